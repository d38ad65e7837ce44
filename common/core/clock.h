/* Wall-clock and monotonic time in milliseconds, and RFC 3339 UTC formatting
 * shared by logs, envelopes, events and the agent protocol. */
#ifndef HVD_CLOCK_H
#define HVD_CLOCK_H
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#define HVD_RFC3339_LEN 32 /* "2026-11-25T20:04:36.123Z" is 24 chars + NUL; room to spare */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t hvd_now_ms(void);
/* Milliseconds on CLOCK_MONOTONIC: for durations and deadlines in-process. */
int64_t hvd_mono_ms(void);

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

/* pthread_cond_timedwait for at most ms milliseconds (the condition uses
 * CLOCK_REALTIME, as a default-initialised one does). */
void hvd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif
