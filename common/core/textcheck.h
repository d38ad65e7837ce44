/* Text a job may not carry (hardening, contract §3): NUL characters in any
 * string of a body (PostgreSQL's jsonb refuses \u0000 with SQLSTATE 22P05),
 * AMQP properties that are not UTF-8 (its text columns refuse them with
 * 22021), and names Windows and NTFS treat specially (reserved device names,
 * a trailing dot, invisible and direction-changing characters). The model's
 * validation calls these; each failure is a validation error, so such a
 * message is answered and acked, never retried. */
#ifndef HVD_TEXTCHECK_H
#define HVD_TEXTCHECK_H
#include <stddef.h>
#include "model.h"
#include "node.h"

/* At most this many NUL errors are listed one by one; the rest are counted. */
#define HVD_NUL_ERRORS_MAX 10

/* Adds an error at the dotted loc of every string of body holding a NUL
 * (array items as ".N"), unless errs already has one at that loc. */
void hvd_check_no_nul(const HvdNode *body, HvdErrors *errs);

/* Adds an error at "properties.<name>" for each of the message's
 * message_id, correlation_id and reply_to properties (NULL = absent) that is
 * not valid UTF-8. */
void hvd_check_properties(const char *message_id, const char *correlation_id, const char *reply_to, HvdErrors *errs);

/* NULL when the name (valid UTF-8) is safe as a Windows name, else the
 * reason: a reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or
 * without an extension), a trailing dot, or an invisible or direction-changing
 * character (NBSP, U+2028/U+2029, zero-width U+200B-U+200D, U+2060, U+FEFF,
 * bidi marks U+061C, U+200E, U+200F, embeddings/overrides U+202A-U+202E,
 * isolates U+2066-U+2069). */
const char *hvd_windows_name_problem(const char *s);

#endif
