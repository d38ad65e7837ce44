/* One line of live agent output made fit to publish and store: the job's
 * secret values masked (as they are and as they look JSON-escaped), a
 * secret's beginning masked at the end of a line that was cut, invalid UTF-8
 * replaced by U+FFFD and control characters (but tab) by '?'. Pure. */
#ifndef HVD_OUTLINE_H
#define HVD_OUTLINE_H
#include <stdbool.h>
#include <stddef.h>

#define HVD_OUTLINE_MASK "***"
#define HVD_OUTLINE_MIN_PARTIAL 3 /* a cut line's tail this long that begins a secret is masked */

/* Returns a new NUL-terminated string (free it). secrets may hold NULL or
 * empty values (ignored). */
char *hvd_outline_clean(const char *line, size_t len, bool truncated, char *const *secrets, size_t n_secrets);

/* Whether line (len bytes) is the agent's answer rather than output: a JSON
 * object with a "status" key. */
bool hvd_outline_is_answer(const char *line, size_t len);

#endif
