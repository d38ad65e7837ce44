/* Broker state every broker_*.c shares, and what depends on nothing else:
 * error texts, status names, a lost connection, the getters, and the
 * settling of publisher confirms. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "broker_int.h"
#include "buf.h"
#include "mask.h"

int64_t brk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void brk_err(HvdBroker *b, char *err, size_t errlen, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (err && errlen) snprintf(err, errlen, "%s", line);
    if (b) snprintf(b->last_error, sizeof b->last_error, "%s", line);
}

char *brk_strdup_bytes(amqp_bytes_t bytes)
{
    return hvd_xstrndup(bytes.bytes ? bytes.bytes : "", bytes.len);
}

const char *hvd_broker_status_name(HvdBrokerStatus s)
{
    switch (s) {
    case HVD_BROKER_OK: return "ok";
    case HVD_BROKER_DELIVERY: return "delivery";
    case HVD_BROKER_TIMEOUT: return "timeout";
    case HVD_BROKER_EMPTY: return "empty";
    case HVD_BROKER_CLOSED: return "closed";
    case HVD_BROKER_CANCELLED: return "cancelled";
    case HVD_BROKER_BLOCKED: return "blocked";
    case HVD_BROKER_ERROR: return "error";
    }
    return "unknown";
}

const char *hvd_confirm_name(HvdConfirm c)
{
    switch (c) {
    case HVD_CONFIRM_ACKED: return "acked";
    case HVD_CONFIRM_NACKED: return "nacked";
    case HVD_CONFIRM_RETURNED: return "returned";
    case HVD_CONFIRM_LOST: return "lost";
    }
    return "unknown";
}

char *hvd_broker_mask_url(const char *url)
{
    return hvd_mask_url_dup(url); /* the one masker, core/mask.c */
}

/* A short text for a library status, with errno where it says more. */
const char *brk_status_text(int status, int saved_errno)
{
    if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno != 0) {
        switch (saved_errno) {
        case ECONNREFUSED: return "connection refused";
        case ETIMEDOUT: return "connection timed out";
        case EHOSTUNREACH: return "host unreachable";
        case ENETUNREACH: return "network unreachable";
        case ECONNRESET: return "connection reset by peer";
        default: return strerror(saved_errno);
        }
    }
    switch (status) {
    case AMQP_STATUS_TIMEOUT: return "timed out";
    case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED: return "cannot resolve the host name";
    case AMQP_STATUS_SOCKET_ERROR: return "connection refused or unreachable";
    case AMQP_STATUS_CONNECTION_CLOSED: return "the connection was closed";
    case AMQP_STATUS_SOCKET_CLOSED: return "the socket is closed";
    case AMQP_STATUS_HEARTBEAT_TIMEOUT: return "missed heartbeats";
    default: return amqp_error_string2(status);
    }
}

HvdBrokerStatus brk_lost(HvdBroker *b, int amqp_status, const char *during)
{
    int e = errno; /* of the failed socket call, when the library made one */
    if (amqp_status != AMQP_STATUS_SOCKET_ERROR ||
        (e != ETIMEDOUT && e != ECONNRESET && e != EPIPE && e != EHOSTUNREACH && e != ENETUNREACH))
        e = 0;
    if (!b->dead) {
        if (atomic_load(&b->interrupted))
            brk_err(b, NULL, 0, "connection to RabbitMQ at %s interrupted%s%s", b->desc, during ? " during " : "",
                    during ? during : "");
        else
            brk_err(b, NULL, 0, "connection to RabbitMQ at %s lost%s%s: %s", b->desc, during ? " during " : "",
                    during ? during : "",
                    e == ETIMEDOUT                            ? "no TCP acknowledgement in time (TCP_USER_TIMEOUT)"
                    : e                                       ? brk_status_text(amqp_status, e)
                    : amqp_status == AMQP_STATUS_SOCKET_ERROR ? "socket error"
                                                              : brk_status_text(amqp_status, 0));
    }
    b->dead = true;
    brk_lose_pending(b);
    return HVD_BROKER_CLOSED;
}

bool hvd_broker_is_open(const HvdBroker *b)
{
    return b && !b->dead;
}

bool hvd_broker_is_blocked(const HvdBroker *b, const char **reason)
{
    if (reason) *reason = b && b->blocked ? b->blocked_reason : NULL;
    return b && b->blocked;
}

const char *hvd_broker_last_error(const HvdBroker *b)
{
    return b ? b->last_error : "";
}

const char *hvd_broker_describe(const HvdBroker *b)
{
    return b ? b->desc : "";
}

/* ---- settling confirms ---- */

static void settled_push(HvdBroker *b, uint64_t seq, HvdConfirm st)
{
    if (b->ndone == b->capdone) {
        b->capdone = b->capdone ? b->capdone * 2 : 16;
        b->done = hvd_xrealloc(b->done, b->capdone * sizeof *b->done);
    }
    b->done[b->ndone++] = (BrkSettled){seq, st};
}

void brk_settle(HvdBroker *b, uint64_t tag, bool multiple, HvdConfirm status)
{
    size_t keep = 0;
    for (size_t i = 0; i < b->npend; i++) {
        uint64_t s = b->pend[i];
        if (s == tag || (multiple && s < tag))
            settled_push(b, s, status);
        else
            b->pend[keep++] = s;
    }
    b->npend = keep;
}

void brk_lose_pending(HvdBroker *b)
{
    for (size_t i = 0; i < b->npend; i++) settled_push(b, b->pend[i], HVD_CONFIRM_LOST);
    b->npend = 0;
    b->return_pending = false;
}

/* An ack or nack frame; the first one after a basic.return carries the returned seq. */
