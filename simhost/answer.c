/* Simhost answers (the Main-NewProtocol.ps1 envelope, in either flavour; the
 * error envelope is aether.c's) and small helpers: GUIDs, hashing, time,
 * host-name checks, typed resource_spec reads, PowerShell's case-insensitive
 * comparison. */
#include "simhost.h"
#include "utf8.h"
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <wctype.h>

void sim_log(SimCall *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_array_append_new(c->logs, json_string(line));
}

void sim_fail(SimCall *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    snprintf(c->code, sizeof c->code, "%s", code ? code : SIM_CODE_OPERATION);
    if (!c->error_type[0]) snprintf(c->error_type, sizeof c->error_type, "RuntimeException");
}

void sim_noise(SimCall *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_array_append_new(c->noise, json_string(line));
}

json_t *sim_envelope(const SimCall *c, const char *status, const char *message, json_t *data, const char *code)
{
    json_t *env = json_object();
    json_object_set_new(env, "status", json_string(status));
    json_object_set_new(env, "message", json_string(message ? message : ""));
    json_object_set_new(env, "data", data ? data : json_object());
    if (c->flavor == SIM_FLAVOR_AETHER) {
        /* Write-JobResult adds code, logs and correlation_id only when non-empty. */
        if (code && *code) json_object_set_new(env, "code", json_string(code));
        if (json_array_size(c->logs) > 0) json_object_set(env, "logs", c->logs);
        if (c->correlation_id && *c->correlation_id)
            json_object_set_new(env, "correlation_id", json_string(c->correlation_id));
        return env;
    }
    json_object_set_new(env, "code", code ? json_string(code) : json_null());
    json_object_set(env, "logs", c->logs);
    json_object_set_new(env, "correlation_id", c->correlation_id ? json_string(c->correlation_id) : json_null());
    return env;
}

char *sim_dump_line(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *line = malloc(n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    memcpy(line, s, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    free(s);
    return line;
}

void sim_guid_from(uint64_t a, uint64_t b, char out[37])
{
    /* Version 4 layout, so the id looks like Hyper-V's. */
    a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
    b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)((a >> 16) & 0xFFFF),
             (unsigned)(a & 0xFFFF), (unsigned)(b >> 48), (unsigned long long)(b & 0xFFFFFFFFFFFFULL));
}

void sim_guid_random(char out[37])
{
    uint64_t r[2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r[0] = sim_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
        r[1] = sim_mix(r[0] ^ (uint64_t)ts.tv_sec);
    }
    sim_guid_from(r[0], r[1], out);
}

uint64_t sim_hash(uint64_t h, const char *s)
{
    if (h == 0) h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= 0xFF; /* separator: ("ab","c") != ("a","bc") */
    h *= 1099511628211ULL;
    return h;
}

uint64_t sim_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

void sim_now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000));
}

bool sim_host_safe(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_') return false;
        if (ch == '.' && i + 1 < n && s[i + 1] == '.') return false;
    }
    return true;
}

const char *sim_spec_str(const SimCall *c, const char *key)
{
    const char *s = json_string_value(json_object_get(c->spec, key));
    return (s && *s) ? s : NULL;
}

bool sim_spec_int(const SimCall *c, const char *key, int64_t *out)
{
    json_t *v = json_object_get(c->spec, key);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || d < -9e15 || d > 9e15) return false;
        *out = (int64_t)d;
        return true;
    }
    if (json_is_string(v)) { /* PowerShell's [int] cast accepts "4" */
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || end == s || *end) return false;
        *out = x;
        return true;
    }
    return false;
}

/* Decodes one UTF-8 code point at *p (advancing it) with the core's decoder;
 * a byte that starts no valid sequence is taken as itself. */
static uint32_t utf8_next(const unsigned char **p)
{
    uint32_t cp;
    size_t n = hvd_utf8_decode(*p, strnlen((const char *)*p, 4), &cp);
    if (n == 0) {
        cp = **p;
        n = 1;
    }
    *p += n;
    return cp;
}

size_t sim_utf8_chars(const char *s)
{
    return hvd_utf8_count(s, strlen(s), NULL);
}

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

bool sim_strieq(const char *a, const char *b)
{
    if (!a || !b) return false;
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *q) {
        if (*p < 0x80 && *q < 0x80) {
            if (tolower(*p) != tolower(*q)) return false;
            p++;
            q++;
            continue;
        }
        pthread_once(&utf8_once, utf8_locale_init);
        uint32_t x = utf8_next(&p), y = utf8_next(&q);
        if (x == y) continue;
        if (!utf8_locale || towlower_l((wint_t)x, utf8_locale) != towlower_l((wint_t)y, utf8_locale)) return false;
    }
    return *p == *q;
}
