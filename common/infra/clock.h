/* Wall-clock and monotonic time in milliseconds and a timed condition wait;
 * with the RFC 3339 formatting of timefmt.h, which it includes. */
#ifndef HVD_CLOCK_H
#define HVD_CLOCK_H
#include <pthread.h>
#include <stdint.h>
#include "timefmt.h"

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t hvd_now_ms(void);
/* Milliseconds on CLOCK_MONOTONIC: for durations and deadlines in-process. */
int64_t hvd_mono_ms(void);

/* pthread_cond_timedwait for at most ms milliseconds (the condition uses
 * CLOCK_REALTIME, as a default-initialised one does). */
void hvd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif
