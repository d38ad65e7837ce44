/* Masking, the one implementation: a job's secret values in text the agent
 * (or anything else) wrote, the password of a URL or libpq connection
 * string, and the values of the secret fields in a raw body that could not
 * be decoded. Whatever is masked becomes "***".
 *
 * The rule for short secrets (issue 12, item 9). A secret of at least
 * HVD_MASK_MIN_ANYWHERE characters is masked wherever it occurs. A shorter
 * one is masked only where it stands as a whole token: where the text around
 * it does not continue it with a letter, digit, '_' or non-ASCII character
 * on either side. Why: a one-letter password "a" masked as a substring would
 * turn every "a" of every log line into "***" (destroying unrelated text and,
 * by the pattern of the holes, showing the password); as a token it is still
 * masked where a program prints it ("password a", "pw=a", "'a'"), while the
 * "a" inside "deploying" stays. Such a short secret inside a longer word
 * reveals nothing: nobody can tell which letters of the word are the secret.
 * Six characters is where a chance occurrence inside unrelated words becomes
 * rare (and every real password policy asks for more). */
#ifndef HVD_MASK_H
#define HVD_MASK_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define HVD_MASK "***"
#define HVD_MASK_MIN_ANYWHERE 6 /* characters (code points) */

/* Flags of hvd_mask_secrets. */
#define HVD_MASK_CUT_START 1u /* s may begin inside a secret (a tail): mask a leading part of one too */
#define HVD_MASK_CUT_END 2u   /* s may end inside a secret (a cut prefix): mask a trailing part of one */

/* Appends s[0..len) to out with every occurrence of each of secrets[0..n)
 * (NULL and empty ones ignored) replaced by HVD_MASK, by the rule above;
 * overlapping or adjacent occurrences become one mask. Returns true when
 * anything was masked. */
bool hvd_mask_secrets(const char *s, size_t len, const char *const *secrets, size_t n, unsigned flags, HvdBuf *out);
/* The same as a new string (caller frees); NULL in, NULL out. */
char *hvd_mask_secrets_dup(const char *s, const char *const *secrets, size_t n, unsigned flags);

/* The password of a URL ("amqp://u:pw@h/v" -> "amqp://u:***@h/v", also any
 * query parameter whose name ends in "password") or of a libpq key=value
 * string ("host=h password='p w'" -> "host=h password=***", any key ending in
 * "password", case-insensitively; a string that is neither shows nothing
 * after its last well-formed pair: "***"), appended to out. */
void hvd_mask_url_into(HvdBuf *out, const char *url);
char *hvd_mask_url_dup(const char *url); /* NULL in, NULL out */

/* A raw message body that could not be decoded (JSON, msgpack, or neither),
 * appended to out as received except for the value after each of the secret
 * field names (guest_la_pw, guest_domain_join_pw, cnf_ansible_ssh_key, found
 * case-insensitively): a JSON string's content becomes *** (quotes kept), a
 * msgpack string, bin or number becomes the string "***" (the structure stays
 * decodable), anything else up to the next ',', ';', '&', '}', ']' or line
 * end is masked; a value cut off by the end of the body is masked to the end.
 * Returns the number of values masked. */
size_t hvd_mask_raw_secrets(const void *body, size_t len, HvdBuf *out);

#endif
