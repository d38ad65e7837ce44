/* Broker connection: connect (URL, TLS, socket options, login with capabilities),
 * interrupt and close. The frames it then reads go through broker_frame.c. */
#include "broker_int.h"
#include "mask.h"
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"

#define BRK_FRAME_MAX 131072
#define BRK_CLOSE_TIMEOUT_MS 2000
#define BRK_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

void hvd_broker_interrupt(HvdBroker *b)
{
    if (!b) return;
    atomic_store(&b->interrupted, true);
    int fd = atomic_load(&b->fd);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
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
                    brk_status_text(rc, saved_errno));
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
                    brk_status_text(r.library_error, 0));
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
