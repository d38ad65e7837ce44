/* JSON-lines logging on stderr: one object per line, written with a single
 * write() under a lock so that lines from threads never interleave, and a
 * last-resort guard that masks registered secret values in every line.
 *
 * A line looks like
 *   {"time":"2026-11-25T20:04:36.123Z","level":"info","msg":"stage succeeded",
 *    "worker":"hv-w1:4242","job_id":"...","correlation_id":"...",
 *    "stage":"vm.create","attempt":1,"host":"hv01","vm_id":"..."}
 * with the context fields present only when set. Every string is escaped as
 * JSON (control characters as \n, \t or \u00XX) and invalid UTF-8 is
 * replaced by U+FFFD, so each line parses whatever the message holds. */
#ifndef HVD_LOG_H
#define HVD_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

typedef enum {
    HVD_LOG_DEBUG = 0,
    HVD_LOG_INFO = 1,
    HVD_LOG_WARN = 2,
    HVD_LOG_ERROR = 3,
} HvdLogLevel;

/* Per-job context of a line; every member may be NULL / 0 (then omitted).
 * attempt is written when > 0. */
typedef struct {
    const char *job_id;
    const char *correlation_id;
    const char *stage;
    const char *host;
    int64_t attempt;
} HvdLogCtx;

/* Sets the minimum level and the worker id written on every line (NULL =
 * omit "worker"). May be called again (e.g. once the config is loaded);
 * before any call the level is info and there is no worker id. */
void hvd_log_init(HvdLogLevel level, const char *worker_id);
void hvd_log_set_level(HvdLogLevel level);
HvdLogLevel hvd_log_get_level(void);
bool hvd_log_enabled(HvdLogLevel level);
/* Where lines go: stderr (2) by default. For tests. */
void hvd_log_set_fd(int fd);

/* "debug", "info", "warn", "error" (also "warning"), case-insensitive.
 * Returns false for anything else. */
bool hvd_log_level_parse(const char *s, HvdLogLevel *out);
const char *hvd_log_level_name(HvdLogLevel level);

/* One line with a printf-formatted message; ctx may be NULL. */
void hvd_log(HvdLogLevel level, const HvdLogCtx *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void hvd_logv(HvdLogLevel level, const HvdLogCtx *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* One line with a fixed message and extra string fields given as key, value
 * pairs ended by a NULL key: hvd_log_kv(HVD_LOG_INFO, &ctx, "agent answered",
 * "vm_id", id, "agent_code", code, NULL). A NULL value is written as null.
 * A key that collides with a standard field is written as "x_<key>". */
void hvd_log_kv(HvdLogLevel level, const HvdLogCtx *ctx, const char *msg, ...) __attribute__((sentinel));

#define hvd_log_debug(ctx, ...) hvd_log(HVD_LOG_DEBUG, (ctx), __VA_ARGS__)
#define hvd_log_info(ctx, ...) hvd_log(HVD_LOG_INFO, (ctx), __VA_ARGS__)
#define hvd_log_warn(ctx, ...) hvd_log(HVD_LOG_WARN, (ctx), __VA_ARGS__)
#define hvd_log_error(ctx, ...) hvd_log(HVD_LOG_ERROR, (ctx), __VA_ARGS__)

/* The secret guard. While a value is registered, any log line in which it
 * occurs (as is, or as it would look JSON-escaped) gets it replaced by ***,
 * by hvd_mask_secrets' rule (mask.h): a value shorter than
 * HVD_MASK_MIN_ANYWHERE characters only where it stands as a whole token, so
 * a one-letter password does not garble every line holding that letter.
 * Registration is counted: a value registered twice stays masked until it is
 * unregistered twice (two jobs may share a password). Empty and NULL values
 * are ignored. Thread-safe; costs one atomic load per line while nothing is
 * registered. This is a safety net: code must still never log secrets. */
void hvd_log_register_secret(const char *value);
void hvd_log_unregister_secret(const char *value);
/* Number of distinct values registered (for tests). */
unsigned hvd_log_secret_count(void);

/* Appends s to out as the body of a JSON string (no quotes): escapes, and
 * replaces invalid UTF-8 with U+FFFD. Shared with anyone writing JSON by hand. */
void hvd_json_escape(HvdBuf *out, const char *s, size_t len);

#endif
