/* RFC 3339 time formatting and parsing (UTC, millisecond precision): pure,
 * the time comes in as Unix milliseconds. */
#include "timefmt.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>

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
    if (y < 0) y = 0; /* the format has four year digits */
    if (y > 9999) y = 9999;
    snprintf(out, HVD_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d, (int)(sod / 3600),
             (int)(sod % 3600 / 60), (int)(sod % 60), (int)ms);
}

/* RFC 3339 parsing, with a reason for what is wrong (shared by the job
 * validator, which reports it, and everything else that reads times). */
static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly n digits of s into *out. */
static bool digits_n(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* NULL on success, "timezone" when only the offset is missing, else a reason. */
const char *hvd_time_parse_rfc3339_why(const char *s, int64_t *epoch_ms)
{
    int y, mo, d, h, mi, sec;
    if (!s) return "no input";
    size_t len = strlen(s);
    if (len < 19) return "input is too short";
    if (!digits_n(s, 4, &y) || s[4] != '-' || !digits_n(s + 5, 2, &mo) || s[7] != '-' || !digits_n(s + 8, 2, &d))
        return "expected a date as YYYY-MM-DD";
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return "expected 'T' between the date and the time";
    if (!digits_n(s + 11, 2, &h) || s[13] != ':' || !digits_n(s + 14, 2, &mi) || s[16] != ':' ||
        !digits_n(s + 17, 2, &sec))
        return "expected a time as HH:MM:SS";
    if (mo < 1 || mo > 12) return "month value is outside expected range of 1-12";
    if (d < 1 || d > days_in_month(y, mo)) return "day value is outside expected range";
    if (h > 23) return "hour value is outside expected range of 0-23";
    if (mi > 59) return "minute value is outside expected range of 0-59";
    if (sec > 60) return "second value is outside expected range of 0-59";
    if (sec == 60) sec = 59; /* a leap second: keep it inside the same minute */
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3) ms = ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return "expected digits after the decimal point";
        for (; nd < 3; nd++) ms *= 10;
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits_n(p + 1, 2, &oh) || p[3] != ':' || !digits_n(p + 4, 2, &om))
            return "expected a timezone offset as +hh:mm or -hh:mm";
        if (oh > 23 || om > 59) return "timezone offset is outside expected range";
        offset_min = (int64_t)oh * 60 + om;
        if (*p == '-') offset_min = -offset_min;
        p += 6;
    } else if (*p == '\0') {
        return "timezone";
    } else {
        return "unexpected extra characters at the end of the input";
    }
    if (*p != '\0') return "unexpected extra characters at the end of the input";
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - offset_min * 60;
    *epoch_ms = secs * 1000 + ms;
    return NULL;
}

bool hvd_time_parse_rfc3339(const char *s, int64_t *unix_ms)
{
    int64_t v;
    if (hvd_time_parse_rfc3339_why(s, &v) != NULL) return false;
    if (unix_ms) *unix_ms = v;
    return true;
}
