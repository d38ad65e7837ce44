/* The /metrics, /healthz and /livez HTTP endpoint (libmicrohttpd), proof against
 * slow clients (issue 12: 70 connections trickling a byte every 5 s kept
 * /healthz unanswered). Our own thread runs the daemon (external polling), so
 * it can end connections that live too long whatever they send:
 *   - each connection has HVD_METRICS_CONN_MAX_MS from accept to close, not an
 *     idle timeout that every byte renews;
 *   - one client address holds at most HVD_METRICS_PER_IP connections, so one
 *     pod cannot take the slots a probe from elsewhere needs;
 *   - HVD_METRICS_CONN_LIMIT connections in all, far above what probes and a
 *     scraper use. */
#include "metrics.h"
#include "config.h"
#include "log.h"
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One accepted connection, from the daemon's notify callback. */
typedef struct Conn {
    struct MHD_Connection *c;
    int64_t started_ms;
    bool cut; /* shut down once for being too old */
    struct Conn *next;
} Conn;

struct HvdMetricsServer {
    struct MHD_Daemon *daemon;
    HvdReadyFn ready;
    _Atomic(HvdReadyFn) live; /* /livez; NULL = the same as ready */
    void *arg;
    int port;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    Conn *conns; /* touched only by the server thread (the daemon calls back from it) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    HvdMetricsServer *srv = cls;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        Conn *k = hvd_xcalloc(1, sizeof *k);
        k->c = c;
        k->started_ms = mono_ms();
        k->next = srv->conns;
        srv->conns = k;
        return;
    }
    for (Conn **p = &srv->conns; *p; p = &(*p)->next)
        if ((*p)->c == c) {
            Conn *dead = *p;
            *p = dead->next;
            free(dead);
            return;
        }
}

/* Shuts the socket of every connection older than the bound: the daemon then
 * reads its end and closes it (and tells on_connection). */
static void cut_old(HvdMetricsServer *srv)
{
    int64_t now = mono_ms();
    for (Conn *k = srv->conns; k; k = k->next) {
        if (k->cut || now - k->started_ms < HVD_METRICS_CONN_MAX_MS) continue;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
        k->cut = true;
    }
}

static void *serve(void *arg)
{
    HvdMetricsServer *srv = arg;
    while (!atomic_load(&srv->stop)) {
        MHD_run_wait(srv->daemon, 100);
        cut_old(srv);
    }
    return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    HvdMetricsServer *srv = cls;
    (void)version;
    (void)upload_data;
    /* a request body is ignored: swallow it, answer once it is read */
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    (void)con_cls;
    bool livez = strcmp(url, "/livez") == 0;
    bool known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 || livez;
    if (!known) return reply(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "not found\n", 10);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "method not allowed\n", 19);
    if (strcmp(url, "/metrics") == 0) {
        HvdBuf b = {0};
        hvd_metrics_render(&b);
        enum MHD_Result r = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        hvd_buf_free(&b);
        return r;
    }
    char reason[256] = "";
    HvdReadyFn check = livez && atomic_load(&srv->live) ? atomic_load(&srv->live) : srv->ready;
    bool ok = check ? check(srv->arg, reason, sizeof reason) : true;
    if (ok) return reply(c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3);
    if (!reason[0]) snprintf(reason, sizeof reason, "not ready");
    char body[300];
    int n = snprintf(body, sizeof body, "%s\n", reason);
    return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", body,
                 n < 0                      ? 0
                 : (size_t)n >= sizeof body ? sizeof body - 1
                                            : (size_t)n);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    hvd_log_kv(HVD_LOG_WARN, NULL, "metrics http server", "detail", msg, NULL);
}

HvdMetricsServer *hvd_metrics_server_start(const char *addr, HvdReadyFn ready, void *arg, char *err, size_t errlen)
{
    char host[256], port_s[8];
    int port = 0, fd = -1;
    HvdMetricsServer *srv = NULL;
    struct addrinfo hints = {0}, *res = NULL;
    if (!addr || !hvd_parse_host_port(addr, host, sizeof host, &port, true)) {
        snprintf(err, errlen, "HVD_METRICS_ADDR '%s': expected HOST:PORT", addr ? addr : "");
        goto fail;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "HVD_METRICS_ADDR %s: cannot resolve %s: %s", addr, host, gai_strerror(gai));
        goto fail;
    }
    int saved = 0;
    struct addrinfo *ai;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        snprintf(err, errlen, "HVD_METRICS_ADDR %s: cannot bind: %s", addr, strerror(saved));
        goto fail;
    }
    bool v6 = ai->ai_family == AF_INET6;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    srv = hvd_xcalloc(1, sizeof *srv);
    srv->ready = ready;
    srv->arg = arg;
    srv->port = port;
    srv->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, handle, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* must come first */
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(HVD_METRICS_CONN_MAX_MS / 1000),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HVD_METRICS_CONN_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)HVD_METRICS_PER_IP, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "HVD_METRICS_ADDR %s: cannot start the HTTP server", addr);
        goto fail;
    }
    fd = -1; /* the daemon's now */
    if (pthread_create(&srv->thread, NULL, serve, srv) != 0) {
        snprintf(err, errlen, "HVD_METRICS_ADDR %s: cannot start the HTTP server's thread", addr);
        MHD_stop_daemon(srv->daemon);
        goto fail;
    }
    srv->thread_started = true;
    freeaddrinfo(res);
    return srv;
fail:
    if (fd >= 0) close(fd);
    if (res) freeaddrinfo(res);
    free(srv);
    return NULL;
}

int hvd_metrics_server_port(const HvdMetricsServer *s)
{
    return s ? s->port : 0;
}

void hvd_metrics_server_stop(HvdMetricsServer *s)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    if (s->thread_started) pthread_join(s->thread, NULL);
    MHD_stop_daemon(s->daemon); /* closes the listening socket and the connections (telling on_connection) */
    while (s->conns) {
        Conn *k = s->conns;
        s->conns = k->next;
        free(k);
    }
    free(s);
}

void hvd_metrics_server_set_live(HvdMetricsServer *s, HvdReadyFn live)
{
    if (s) atomic_store(&s->live, live);
}
