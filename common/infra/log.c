/* JSON-lines logger: levels, per-job context, JSON escaping, secret guard. */
#include "log.h"
#include "clock.h"
#include "mask.h"
#include "utf8.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOG_MAX_VALUE (32 * 1024) /* bytes of one string value before it is cut */

typedef struct {
    char *raw; /* the value as registered */
    char *esc; /* its JSON-escaped form, NULL when the same as raw */
    size_t raw_len;
    unsigned refs;
} LogSecret;

/* One lock guards the secret list, the worker id and the write, so a line is
 * built against a consistent secret list and written whole. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_level = HVD_LOG_INFO;
static atomic_int log_fd = 2;
static atomic_uint log_nsecrets; /* distinct registered values */
static char *log_worker;
static LogSecret *log_secrets; /* sorted by raw_len, longest first */
static size_t log_secrets_cap;
static const char **log_forms; /* every raw and escaped form, for hvd_mask_secrets */
static size_t log_nforms, log_forms_cap;

/* Rebuilds log_forms from log_secrets (log_lock held). */
static void forms_rebuild(unsigned n)
{
    if (log_forms_cap < 2 * (size_t)n) {
        log_forms_cap = 2 * (size_t)n;
        log_forms = hvd_xrealloc(log_forms, log_forms_cap * sizeof *log_forms);
    }
    log_nforms = 0;
    for (unsigned i = 0; i < n; i++) {
        log_forms[log_nforms++] = log_secrets[i].raw;
        if (log_secrets[i].esc) log_forms[log_nforms++] = log_secrets[i].esc;
    }
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hvd_log_init(HvdLogLevel level, const char *worker_id)
{
    pthread_mutex_lock(&log_lock);
    free(log_worker);
    log_worker = worker_id && *worker_id ? hvd_xstrdup(worker_id) : NULL;
    pthread_mutex_unlock(&log_lock);
    hvd_log_set_level(level);
}

void hvd_log_set_level(HvdLogLevel level)
{
    if (level < HVD_LOG_DEBUG) level = HVD_LOG_DEBUG;
    if (level > HVD_LOG_ERROR) level = HVD_LOG_ERROR;
    atomic_store(&log_level, (int)level);
}

HvdLogLevel hvd_log_get_level(void)
{
    return (HvdLogLevel)atomic_load(&log_level);
}

bool hvd_log_enabled(HvdLogLevel level)
{
    return (int)level >= atomic_load(&log_level);
}

void hvd_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

bool hvd_log_level_parse(const char *s, HvdLogLevel *out)
{
    if (!s) return false;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (HvdLogLevel)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = HVD_LOG_WARN;
        return true;
    }
    return false;
}

const char *hvd_log_level_name(HvdLogLevel level)
{
    return level >= HVD_LOG_DEBUG && level <= HVD_LOG_ERROR ? level_names[level] : "info";
}

/* ---- JSON escaping ---- */

void hvd_json_escape(HvdBuf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of bytes copied verbatim */
    while (i < len) {
        unsigned char c = p[i];
        const char *rep = NULL;
        char ubuf[7];
        size_t adv = 1;
        if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\r')
            rep = "\\r";
        else if (c == '\t')
            rep = "\\t";
        else if (c == '\b')
            rep = "\\b";
        else if (c == '\f')
            rep = "\\f";
        else if (c < 0x20 || c == 0x7F) {
            memcpy(ubuf, "\\u00", 4);
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = '\0';
            rep = ubuf;
        } else if (c >= 0x80) {
            adv = hvd_utf8_decode(p + i, len - i, NULL);
            if (adv == 0) {
                rep = "\xEF\xBF\xBD"; /* U+FFFD for one bad byte */
                adv = 1;
            }
        }
        if (rep) {
            hvd_buf_append(out, s + run, i - run);
            hvd_buf_puts(out, rep);
            i += adv;
            run = i;
        } else {
            i += adv;
        }
    }
    hvd_buf_append(out, s + run, len - run);
}

/* ---- secret guard ---- */

void hvd_log_register_secret(const char *value)
{
    if (!value || !*value) return;
    pthread_mutex_lock(&log_lock);
    unsigned n = atomic_load(&log_nsecrets);
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(log_secrets[i].raw, value) == 0) {
            log_secrets[i].refs++;
            goto out;
        }
    }
    if (n == log_secrets_cap) {
        log_secrets_cap = log_secrets_cap ? log_secrets_cap * 2 : 8;
        log_secrets = hvd_xrealloc(log_secrets, log_secrets_cap * sizeof *log_secrets);
    }
    LogSecret s = {.raw = hvd_xstrdup(value), .raw_len = strlen(value), .refs = 1};
    HvdBuf esc = {0};
    hvd_json_escape(&esc, value, s.raw_len);
    if (strcmp(esc.data, value) != 0) s.esc = hvd_buf_steal(&esc);
    hvd_buf_free(&esc);
    unsigned at = 0; /* keep longest first so a value is never masked only in part */
    while (at < n && log_secrets[at].raw_len >= s.raw_len) at++;
    memmove(&log_secrets[at + 1], &log_secrets[at], (n - at) * sizeof *log_secrets);
    log_secrets[at] = s;
    forms_rebuild(n + 1);
    atomic_store(&log_nsecrets, n + 1);
out:
    pthread_mutex_unlock(&log_lock);
}

static void wipe_free(char *p)
{
    if (!p) return;
    volatile char *v = p;
    while (*v) *v++ = 0;
    free(p);
}

void hvd_log_unregister_secret(const char *value)
{
    if (!value || !*value) return;
    pthread_mutex_lock(&log_lock);
    unsigned n = atomic_load(&log_nsecrets);
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(log_secrets[i].raw, value) != 0) continue;
        if (--log_secrets[i].refs == 0) {
            wipe_free(log_secrets[i].raw);
            wipe_free(log_secrets[i].esc);
            memmove(&log_secrets[i], &log_secrets[i + 1], (n - i - 1) * sizeof *log_secrets);
            forms_rebuild(n - 1);
            atomic_store(&log_nsecrets, n - 1);
        }
        break;
    }
    pthread_mutex_unlock(&log_lock);
}

unsigned hvd_log_secret_count(void)
{
    return atomic_load(&log_nsecrets);
}

/* Appends "key":"value" (value masked, escaped and cut at LOG_MAX_VALUE).
 * Called with log_lock held. */
static void put_str(HvdBuf *line, const char *key, const char *value)
{
    hvd_buf_puts(line, ",\"");
    hvd_json_escape(line, key, strlen(key));
    hvd_buf_puts(line, "\":");
    if (!value) {
        hvd_buf_puts(line, "null");
        return;
    }
    HvdBuf tmp = {0};
    const char *v = value;
    /* the one masker (core/mask.c): a short secret only as a whole token */
    if (atomic_load(&log_nsecrets) && hvd_mask_secrets(value, strlen(value), log_forms, log_nforms, 0, &tmp))
        v = tmp.data;
    size_t len = strlen(v);
    hvd_buf_puts(line, "\"");
    if (len > LOG_MAX_VALUE) {
        size_t keep = hvd_utf8_truncate(v, len, LOG_MAX_VALUE);
        hvd_json_escape(line, v, keep);
        hvd_buf_printf(line, "...[%zu bytes cut]", len - keep);
    } else {
        hvd_json_escape(line, v, len);
    }
    hvd_buf_puts(line, "\"");
    hvd_buf_free(&tmp);
}

static bool reserved_key(const char *k)
{
    static const char *const names[] = {"time",           "level", "msg",     "worker", "job_id",
                                        "correlation_id", "stage", "attempt", "host"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(k, names[i]) == 0) return true;
    return false;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Builds and writes one line. kv: NULL-key-terminated pairs, or NULL. */
static void emit(HvdLogLevel level, const HvdLogCtx *ctx, const char *msg, va_list *kv)
{
    char ts[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), ts);
    HvdBuf line = {0};
    pthread_mutex_lock(&log_lock);
    hvd_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", ts, hvd_log_level_name(level));
    put_str(&line, "msg", msg ? msg : "");
    if (log_worker) put_str(&line, "worker", log_worker);
    if (ctx) {
        if (ctx->job_id) put_str(&line, "job_id", ctx->job_id);
        if (ctx->correlation_id) put_str(&line, "correlation_id", ctx->correlation_id);
        if (ctx->stage) put_str(&line, "stage", ctx->stage);
        if (ctx->attempt > 0) hvd_buf_printf(&line, ",\"attempt\":%lld", (long long)ctx->attempt);
        if (ctx->host) put_str(&line, "host", ctx->host);
    }
    if (kv) {
        const char *k;
        while ((k = va_arg(*kv, const char *)) != NULL) {
            const char *v = va_arg(*kv, const char *);
            if (reserved_key(k)) {
                char *xk = hvd_xasprintf("x_%s", k);
                put_str(&line, xk, v);
                free(xk);
            } else {
                put_str(&line, k, v);
            }
        }
    }
    hvd_buf_puts(&line, "}\n");
    write_all(atomic_load(&log_fd), line.data, line.len);
    pthread_mutex_unlock(&log_lock);
    hvd_buf_free(&line);
}

void hvd_logv(HvdLogLevel level, const HvdLogCtx *ctx, const char *fmt, va_list ap)
{
    if (!hvd_log_enabled(level)) return;
    char small[512];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(small, sizeof small, fmt, cp);
    va_end(cp);
    if (n < 0) {
        emit(level, ctx, fmt, NULL);
    } else if ((size_t)n < sizeof small) {
        emit(level, ctx, small, NULL);
    } else {
        char *big = hvd_xmalloc((size_t)n + 1);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        emit(level, ctx, big, NULL);
        free(big);
    }
}

void hvd_log(HvdLogLevel level, const HvdLogCtx *ctx, const char *fmt, ...)
{
    if (!hvd_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    hvd_logv(level, ctx, fmt, ap);
    va_end(ap);
}

void hvd_log_kv(HvdLogLevel level, const HvdLogCtx *ctx, const char *msg, ...)
{
    if (!hvd_log_enabled(level)) return;
    va_list ap;
    va_start(ap, msg);
    emit(level, ctx, msg, &ap);
    va_end(ap);
}
