/* RFC 3339 UTC formatting and parsing shared by logs, envelopes, events, the
 * agent protocol and validation. Pure: times are Unix milliseconds. */
#ifndef HVD_TIMEFMT_H
#define HVD_TIMEFMT_H
#include <stdbool.h>
#include <stdint.h>

#define HVD_RFC3339_LEN 32 /* "2026-11-25T20:04:36.123Z" is 24 chars + NUL; room to spare */

/* Writes unix_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, always milliseconds)
 * into out, NUL-terminated. Works for times before 1970 too. */
void hvd_time_rfc3339(int64_t unix_ms, char out[HVD_RFC3339_LEN]);

/* Parses an RFC 3339 date-time ("2026-11-25T20:04:36Z", optional fraction,
 * "Z" or a "+hh:mm"/"-hh:mm" offset, 't'/'z' accepted) into Unix epoch
 * milliseconds (fraction truncated to milliseconds). Returns false when s is
 * not such a time or a field is out of range. */
bool hvd_time_parse_rfc3339(const char *s, int64_t *unix_ms);
/* The same, returning NULL on success or the reason it is not such a time
 * ("expected a time as HH:MM:SS", ...; exactly "timezone" when only the
 * offset is missing). */
const char *hvd_time_parse_rfc3339_why(const char *s, int64_t *unix_ms);

#endif
