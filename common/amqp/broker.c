/* Broker connection: connect (URL, TLS, socket options, login with capabilities),
 * close, and the frame dispatcher every other broker_*.c call goes through. */
#include "broker_int.h"
#include "mask.h"
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"

#define BRK_FRAME_MAX 131072
#define BRK_CLOSE_TIMEOUT_MS 2000
#define BRK_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

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
static const char *status_text(int status, int saved_errno)
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
                    : e                                       ? status_text(amqp_status, e)
                    : amqp_status == AMQP_STATUS_SOCKET_ERROR ? "socket error"
                                                              : status_text(amqp_status, 0));
    }
    b->dead = true;
    brk_lose_pending(b);
    return HVD_BROKER_CLOSED;
}

void hvd_broker_interrupt(HvdBroker *b)
{
    if (!b) return;
    atomic_store(&b->interrupted, true);
    int fd = atomic_load(&b->fd);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
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
static void on_confirm(HvdBroker *b, uint64_t tag, bool multiple, HvdConfirm status)
{
    if (b->return_pending) {
        b->return_pending = false;
        brk_settle(b, tag, false, HVD_CONFIRM_RETURNED);
    }
    brk_settle(b, tag, multiple, status);
}

/* ---- channels ---- */

static HvdBrokerStatus open_channel(HvdBroker *b, amqp_channel_t ch, char *err, size_t errlen)
{
    amqp_channel_open(b->conn, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return HVD_BROKER_OK;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        brk_lost(b, r.library_error, "channel.open");
    else
        brk_err(b, NULL, 0, "RabbitMQ at %s refused to open channel %u", b->desc, ch);
    b->dead = true;
    brk_err(b, err, errlen, "%s", b->last_error);
    return HVD_BROKER_CLOSED;
}

HvdBrokerStatus brk_open_data_channel(HvdBroker *b)
{
    HvdBrokerStatus st = open_channel(b, BRK_CH_DATA, NULL, 0);
    if (st != HVD_BROKER_OK) return st;
    b->ch_gen++;
    b->seq = 0;
    b->return_pending = false;
    if (b->confirms) {
        amqp_confirm_select(b->conn, BRK_CH_DATA);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return brk_lost(b, r.library_error, "confirm.select");
            b->dead = true;
            brk_err(b, NULL, 0, "RabbitMQ at %s refused confirm.select", b->desc);
            return HVD_BROKER_CLOSED;
        }
    }
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_rpc_channel(HvdBroker *b, char *err, size_t errlen)
{
    if (b->dead) {
        brk_err(b, err, errlen, "%s", b->last_error);
        return HVD_BROKER_CLOSED;
    }
    if (b->ch_rpc_open) return HVD_BROKER_OK;
    HvdBrokerStatus st = open_channel(b, BRK_CH_RPC, err, errlen);
    if (st == HVD_BROKER_OK) b->ch_rpc_open = true;
    return st;
}

static void send_close_ok(HvdBroker *b, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok = {0};
    (void)amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

/* The broker closed channel ch (reply in m). Answers, reopens channel 1 when it is
 * the one, and says whether our consumer went with it. */
static HvdBrokerStatus on_channel_close(HvdBroker *b, amqp_channel_t ch, const amqp_channel_close_t *m,
                                        bool *consumer_gone)
{
    *consumer_gone = false;
    send_close_ok(b, ch);
    if (ch != BRK_CH_DATA) {
        b->ch_rpc_open = false;
        return HVD_BROKER_OK;
    }
    brk_err(b, NULL, 0, "RabbitMQ at %s closed channel %u: %.*s", b->desc, ch, (int)m->reply_text.len,
            (const char *)m->reply_text.bytes);
    brk_lose_pending(b);
    /* deliveries not yet handed out belong to the closed channel: the broker requeues them */
    for (size_t i = 0; i < b->nstash; i++) {
        amqp_destroy_envelope(b->stash[i]);
        free(b->stash[i]);
    }
    b->nstash = 0;
    if (b->consuming) {
        b->consuming = false;
        b->cancelled = true;
        *consumer_gone = true;
    }
    return brk_open_data_channel(b);
}

HvdBrokerStatus brk_rpc_check(HvdBroker *b, amqp_channel_t ch, int *code, char *text, size_t textlen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    *code = 0;
    if (textlen) text[0] = '\0';
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return HVD_BROKER_OK;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        if (r.library_error == AMQP_STATUS_TIMEOUT) {
            /* The answer may still come: the connection's state is unknown. */
            brk_err(b, NULL, 0, "RabbitMQ at %s did not answer within %d ms", b->desc, b->rpc_timeout_ms);
            b->dead = true;
            brk_lose_pending(b);
        } else {
            brk_lost(b, r.library_error, NULL);
        }
        snprintf(text, textlen, "%s", b->last_error);
        return HVD_BROKER_CLOSED;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            *code = m->reply_code;
            snprintf(text, textlen, "%.*s", (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            bool gone;
            if (on_channel_close(b, ch, m, &gone) != HVD_BROKER_OK) {
                snprintf(text, textlen, "%s", b->last_error);
                return HVD_BROKER_CLOSED;
            }
            return HVD_BROKER_ERROR;
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            *code = m->reply_code;
            brk_err(b, NULL, 0, "RabbitMQ at %s closed the connection: %.*s", b->desc, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
            snprintf(text, textlen, "%s", b->last_error);
            b->dead = true;
            brk_lose_pending(b);
            return HVD_BROKER_CLOSED;
        }
        brk_err(b, NULL, 0, "RabbitMQ at %s answered with unexpected method 0x%08x", b->desc, (unsigned)r.reply.id);
        snprintf(text, textlen, "%s", b->last_error);
        b->dead = true;
        return HVD_BROKER_CLOSED;
    case AMQP_RESPONSE_NONE:
    default:
        brk_err(b, NULL, 0, "RabbitMQ at %s: no reply", b->desc);
        snprintf(text, textlen, "%s", b->last_error);
        b->dead = true;
        return HVD_BROKER_CLOSED;
    }
}

/* ---- frame dispatch ---- */

static HvdBrokerStatus on_return(HvdBroker *b, const amqp_basic_return_t *m)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(b->conn, BRK_CH_DATA, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return brk_lost(
            b, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? r.library_error : AMQP_STATUS_UNEXPECTED_STATE,
            "basic.return");
    amqp_destroy_message(&msg);
    (void)m;
    b->return_pending = b->confirms; /* without confirms no ack follows */
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_handle_frame(HvdBroker *b, const amqp_frame_t *f, bool *changed)
{
    if (f->frame_type != AMQP_FRAME_METHOD) return HVD_BROKER_OK; /* a stray header/body frame */
    amqp_method_number_t id = f->payload.method.id;
    const void *dec = f->payload.method.decoded;

    if (f->channel == 0) {
        if (id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = dec;
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            brk_err(b, NULL, 0, "RabbitMQ at %s closed the connection: %.*s", b->desc, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
            b->dead = true;
            brk_lose_pending(b);
            return HVD_BROKER_CLOSED;
        }
        if (id == AMQP_CONNECTION_BLOCKED_METHOD) {
            const amqp_connection_blocked_t *m = dec;
            free(b->blocked_reason);
            b->blocked_reason = brk_strdup_bytes(m->reason);
            b->blocked = true;
            *changed = true;
        } else if (id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
            b->blocked = false;
            *changed = true;
        }
        return HVD_BROKER_OK;
    }
    if (f->channel == BRK_CH_DATA) {
        switch (id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *m = dec;
            on_confirm(b, m->delivery_tag, m->multiple, HVD_CONFIRM_ACKED);
            *changed = true;
            return HVD_BROKER_OK;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *m = dec;
            on_confirm(b, m->delivery_tag, m->multiple, HVD_CONFIRM_NACKED);
            *changed = true;
            return HVD_BROKER_OK;
        }
        case AMQP_BASIC_RETURN_METHOD: return on_return(b, dec);
        case AMQP_BASIC_DELIVER_METHOD: return brk_stash_delivery(b, dec);
        case AMQP_BASIC_CANCEL_METHOD:
            /* consumer_cancel_notify: the queue went away. No reply is expected. */
            b->consuming = false;
            b->cancelled = true;
            brk_err(b, NULL, 0, "RabbitMQ at %s cancelled our consumer (queue deleted?)", b->desc);
            return HVD_BROKER_CANCELLED;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            bool gone;
            HvdBrokerStatus st = on_channel_close(b, f->channel, dec, &gone);
            *changed = true;
            if (st != HVD_BROKER_OK) return st;
            return gone ? HVD_BROKER_CANCELLED : HVD_BROKER_OK;
        }
        default: return HVD_BROKER_OK;
        }
    }
    if (id == AMQP_CHANNEL_CLOSE_METHOD) {
        bool gone;
        return on_channel_close(b, f->channel, dec, &gone);
    }
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_pump(HvdBroker *b, int timeout_ms)
{
    int64_t deadline = brk_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (b->dead) return HVD_BROKER_CLOSED;
        int64_t left = deadline - brk_now_ms();
        if (left < 0) left = 0;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        amqp_frame_t f;
        amqp_maybe_release_buffers(b->conn);
        int rc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) return HVD_BROKER_TIMEOUT;
        if (rc != AMQP_STATUS_OK) return brk_lost(b, rc, NULL);
        bool changed = false;
        HvdBrokerStatus st = brk_handle_frame(b, &f, &changed);
        if (st != HVD_BROKER_OK) return st;
        if (changed) return HVD_BROKER_OK;
    }
}

HvdBrokerStatus hvd_broker_service(HvdBroker *b, int timeout_ms)
{
    if (!b || b->dead) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_pump(b, timeout_ms);
    if (st == HVD_BROKER_CANCELLED) b->cancelled = false; /* reported here, not again by next */
    return st;
}

/* ---- connect ---- */

static void set_sockopts(int fd, const HvdBrokerOptions *o)
{
    int one = 1;
    int idle = o->keepalive_idle_s > 0 ? o->keepalive_idle_s : 10;
    int intvl = o->keepalive_intvl_s > 0 ? o->keepalive_intvl_s : 5;
    int cnt = o->keepalive_cnt > 0 ? o->keepalive_cnt : 3;
    unsigned user_ms = o->tcp_user_timeout_ms > 0 ? (unsigned)o->tcp_user_timeout_ms : 30000;
    struct timeval tv = {.tv_sec = user_ms / 1000, .tv_usec = (user_ms % 1000) * 1000};
    /* Best effort: a failure leaves the library's defaults, which still work. */
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* rabbitmq-c 0.11 does not keep the errno of a failed connect: connect once more
 * ourselves to learn why (0 when this attempt succeeds). */
static int probe_connect_errno(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char portstr[16];
    int e = 0;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0) return 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        e = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno == EINPROGRESS) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int n = poll(&pfd, 1, timeout_ms);
                socklen_t len = sizeof e;
                if (n == 0)
                    e = ETIMEDOUT;
                else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                    e = errno;
            } else {
                e = errno;
            }
        }
        close(fd);
        if (e == 0) break;
    }
    freeaddrinfo(res);
    return e;
}

static amqp_table_entry_t entry_bool(const char *k, bool v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = v;
    return e;
}

static amqp_table_entry_t entry_str(const char *k, const char *v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

static struct timeval ms_tv(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static bool setup_tls(amqp_socket_t *sock, const HvdBrokerOptions *o, char *why, size_t whylen)
{
    const char *ca = o->tls_ca_file;
    if (!ca && access(BRK_SYSTEM_CA, R_OK) == 0) ca = BRK_SYSTEM_CA;
    if (ca && amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
        snprintf(why, whylen, "cannot load the CA file '%s'", ca);
        return false;
    }
    if (o->tls_cert_file || o->tls_key_file) {
        if (!o->tls_cert_file || !o->tls_key_file) {
            snprintf(why, whylen, "a TLS client certificate needs both a certificate and a key file");
            return false;
        }
        if (amqp_ssl_socket_set_key(sock, o->tls_cert_file, o->tls_key_file) != AMQP_STATUS_OK) {
            snprintf(why, whylen, "cannot load the client certificate '%s' with key '%s'", o->tls_cert_file,
                     o->tls_key_file);
            return false;
        }
    }
    amqp_ssl_socket_set_verify_peer(sock, o->tls_no_verify_peer ? 0 : 1);
    amqp_ssl_socket_set_verify_hostname(sock, o->tls_no_verify_hostname ? 0 : 1);
    return true;
}

HvdBroker *brk_connect_url(const HvdBrokerOptions *o, const char *url, char *err, size_t errlen)
{
    char *urlcopy = hvd_xstrdup(url);
    HvdBroker *b = NULL;
    struct amqp_connection_info ci;

    amqp_default_connection_info(&ci);
    if (amqp_parse_url(urlcopy, &ci) != AMQP_STATUS_OK) {
        char *masked = hvd_broker_mask_url(url);
        brk_err(NULL, err, errlen,
                "HVD_AMQP_URL '%s' is not a valid URL (amqp://user:password@host:port/vhost or amqps://...)", masked);
        free(masked);
        goto fail;
    }
    b = hvd_xcalloc(1, sizeof *b);
    atomic_init(&b->fd, -1);
    atomic_init(&b->interrupted, false);
    b->confirms = o->confirms;
    b->max_body = o->max_body;
    b->rpc_timeout_ms = o->rpc_timeout_ms > 0 ? o->rpc_timeout_ms : 15000;
    snprintf(b->desc, sizeof b->desc, "%s:%d%s%s", ci.host, ci.port, strcmp(ci.vhost, "/") == 0 ? "" : "/",
             strcmp(ci.vhost, "/") == 0 ? "" : ci.vhost);
    snprintf(b->vhost, sizeof b->vhost, "%s", ci.vhost);

    b->conn = amqp_new_connection();
    amqp_socket_t *sock = ci.ssl ? amqp_ssl_socket_new(b->conn) : amqp_tcp_socket_new(b->conn);
    if (!sock) {
        brk_err(b, err, errlen, "cannot create a %s socket for RabbitMQ at %s", ci.ssl ? "TLS" : "TCP", b->desc);
        goto fail;
    }
    if (ci.ssl) {
        char why[400];
        if (!setup_tls(sock, o, why, sizeof why)) {
            brk_err(b, err, errlen, "TLS setup for RabbitMQ at %s failed: %s", b->desc, why);
            goto fail;
        }
    }
    int connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    struct timeval ctv = ms_tv(connect_ms);
    int rc = amqp_socket_open_noblock(sock, ci.host, ci.port, &ctv);
    if (rc != AMQP_STATUS_OK) {
        int saved_errno = rc == AMQP_STATUS_SOCKET_ERROR
                              ? probe_connect_errno(ci.host, ci.port, connect_ms < 3000 ? connect_ms : 3000)
                              : 0;
        if (ci.ssl && rc <= AMQP_STATUS_SSL_ERROR && rc > _AMQP_STATUS_SSL_NEXT_VALUE)
            brk_err(b, err, errlen, "TLS handshake with RabbitMQ at %s:%d failed: %s", ci.host, ci.port,
                    amqp_error_string2(rc));
        else
            brk_err(b, err, errlen, "cannot connect to RabbitMQ at %s:%d: %s", ci.host, ci.port,
                    status_text(rc, saved_errno));
        goto fail;
    }
    int fd = amqp_socket_get_sockfd(sock);
    if (fd >= 0) set_sockopts(fd, o);
    atomic_store(&b->fd, fd);
    (void)amqp_set_handshake_timeout(b->conn, &ctv);
    struct timeval rtv = ms_tv(b->rpc_timeout_ms);
    (void)amqp_set_rpc_timeout(b->conn, &rtv);

    amqp_table_entry_t caps[] = {
        entry_bool("connection.blocked", true),           entry_bool("consumer_cancel_notify", true),
        entry_bool("publisher_confirms", true),           entry_bool("basic.nack", true),
        entry_bool("authentication_failure_close", true),
    };
    amqp_table_entry_t props[3];
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = (amqp_table_t){.num_entries = 5, .entries = caps};
    props[1] = entry_str("connection_name", o->connection_name ? o->connection_name : "hvdeploy");
    props[2] = entry_str("product", "hvdeploy");
    amqp_table_t ptable = {.num_entries = 3, .entries = props};
    int heartbeat = o->heartbeat_s == 0 ? 30 : (o->heartbeat_s < 0 ? 0 : o->heartbeat_s);

    amqp_rpc_reply_t r = amqp_login_with_properties(b->conn, ci.vhost, 0, BRK_FRAME_MAX, heartbeat, &ptable,
                                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            brk_err(b, err, errlen, "RabbitMQ refused login for user '%s' at %s: %.*s", ci.user, b->desc,
                    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
            brk_err(b, err, errlen, "RabbitMQ at %s did not complete the login of user '%s' within %d ms", b->desc,
                    ci.user, connect_ms);
        } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
            brk_err(b, err, errlen, "RabbitMQ login for user '%s' at %s failed: %s", ci.user, b->desc,
                    status_text(r.library_error, 0));
        } else {
            brk_err(b, err, errlen, "RabbitMQ login for user '%s' at %s failed", ci.user, b->desc);
        }
        b->dead = true;
        goto fail;
    }
    if (brk_open_data_channel(b) != HVD_BROKER_OK) {
        brk_err(b, err, errlen, "%s", b->last_error);
        goto fail;
    }
    free(urlcopy);
    return b;

fail:
    if (b) b->dead = true;
    hvd_broker_close(b);
    free(urlcopy);
    return NULL;
}

void hvd_broker_close(HvdBroker *b)
{
    if (!b) return;
    if (b->conn) {
        if (!b->dead && !atomic_load(&b->interrupted)) {
            struct timeval tv = ms_tv(BRK_CLOSE_TIMEOUT_MS);
            (void)amqp_set_rpc_timeout(b->conn, &tv);
            (void)amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(b->conn);
    }
    for (size_t i = 0; i < b->nstash; i++) {
        amqp_destroy_envelope(b->stash[i]);
        free(b->stash[i]);
    }
    free(b->stash);
    amqp_bytes_free(b->consumer_tag);
    free(b->blocked_reason);
    free(b->pend);
    free(b->done);
    free(b);
}
