/* The clocks (wall and monotonic, in milliseconds) and a timed condition
 * wait. */
#include "clock.h"
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hvd_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t hvd_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* Days since 1970-01-01 of a proleptic Gregorian civil date (H. Hinnant's
 * algorithm), so formatting and parsing need neither timegm nor TZ. */
void hvd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}
