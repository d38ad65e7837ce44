/* UTF-8, the one implementation: decoding a sequence, validating a string,
 * cutting text on a character boundary and replacing what is not UTF-8 with
 * U+FFFD. Every text that reaches PostgreSQL, an envelope or a log line
 * passes through these (PostgreSQL refuses invalid UTF-8 in text with
 * SQLSTATE 22021, and NUL in jsonb with 22P05).
 *
 * "Strict" throughout: no overlong forms, no UTF-16 surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. */
#ifndef HVD_UTF8_H
#define HVD_UTF8_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define HVD_UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD in UTF-8 */

/* Length (1..4) of the valid sequence at s[0..n) and its code point in *cp
 * (cp may be NULL); 0 when the bytes there are not a valid sequence (or
 * n == 0). */
size_t hvd_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* True when s[0..len) is valid UTF-8 (NUL bytes are valid). */
bool hvd_utf8_valid(const char *s, size_t len);

/* Code points in s[0..bytes); an invalid byte counts as one. *valid (may be
 * NULL) says whether all of it was valid. */
size_t hvd_utf8_count(const char *s, size_t bytes, bool *valid);

/* The longest prefix of s[0..len) of at most max bytes that does not end in
 * the middle of a character: returns its length (<= max). Bytes that are not
 * UTF-8 count as characters of one byte. */
size_t hvd_utf8_truncate(const char *s, size_t len, size_t max);

/* Where to start to keep at most the last max bytes of s[0..len) without
 * beginning in the middle of a character: returns the offset. */
size_t hvd_utf8_tail_start(const char *s, size_t len, size_t max);

/* snprintf for text that may reach PostgreSQL: when the result does not fit
 * it is cut before the character that would straddle the end, never inside
 * it. Returns what snprintf would (the untruncated length, or < 0). */
int hvd_text_printf(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Flags of hvd_utf8_sanitize. */
#define HVD_UTF8_NUL 1u /* also replace NUL bytes with U+FFFD (text for PostgreSQL) */

/* Appends s[0..len) to out with every invalid byte (and, with HVD_UTF8_NUL,
 * every NUL) replaced by U+FFFD. */
void hvd_utf8_sanitize(const char *s, size_t len, unsigned flags, HvdBuf *out);
/* The same as a new NUL-terminated string (caller frees); NULL in, NULL out. */
char *hvd_utf8_sanitize_dup(const char *s, size_t len, unsigned flags);
/* True when s[0..len) needs no change by hvd_utf8_sanitize with flags. */
bool hvd_utf8_clean(const char *s, size_t len, unsigned flags);

#endif
