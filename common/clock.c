/* Clocks and RFC 3339 time formatting/parsing (UTC, millisecond precision). */
#include "clock.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>
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
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void hvd_time_rfc3339(int64_t unix_ms, char out[HVD_RFC3339_LEN])
{
    int64_t secs = floor_div(unix_ms, 1000);
    int64_t ms = unix_ms - secs * 1000;
    int64_t days = floor_div(secs, 86400);
    int64_t sod = secs - days * 86400;
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0) y = 0;          /* the format has four year digits */
    if (y > 9999) y = 9999;
    snprintf(out, HVD_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d,
             (int)(sod / 3600), (int)(sod % 3600 / 60), (int)(sod % 60), (int)ms);
}

/* Reads exactly n digits at *p into *v and advances *p. */
static bool digits(const char **p, int n, int64_t *v)
{
    int64_t x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return true;
}

bool hvd_time_parse_rfc3339(const char *s, int64_t *unix_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, se, ms = 0, off = 0;
    const char *p = s;
    if (!s) return false;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ')) return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
        !digits(&p, 2, &se)) return false;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return false;
        int n = 0;
        for (; isdigit((unsigned char)*p); p++, n++)
            if (n < 3) ms = ms * 10 + (*p - '0');
        for (; n < 3; n++) ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int64_t oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return false;
        off = sign * (oh * 60 + om);
    } else {
        return false;
    }
    if (*p != '\0') return false;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return false;
    if (se == 60) se = 59;   /* a leap second is read as the second before it */
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off * 60;
    *unix_ms = secs * 1000 + ms;
    return true;
}
