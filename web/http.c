/* The dashboard's HTTP server on libmicrohttpd: one thread per connection,
 * at most --max-connections in all and --per-ip from one address; every
 * connection has an absolute deadline (--request-timeout, longer for an
 * event stream) that a watchdog enforces by shutting its socket, so clients
 * that trickle a request or read an answer slowly cannot hold the server.
 * Routes requests, reads small form bodies, and adds the security headers
 * (a strict Content-Security-Policy, no caching, no framing) to every answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "web.h"

#define WATCHDOG_TICK_MS 250
#define IDLE_TIMEOUT_S 10 /* no byte either way for this long: closed (libmicrohttpd's own timeout) */

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                          "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/* A connection the watchdog knows: its socket and deadline. */
typedef struct Tracked {
    struct MHD_Connection *conn;
    int fd;
    int64_t deadline_ms;
    bool cut;
    struct Tracked *next;
} Tracked;

struct WebServer {
    Web *web;
    struct MHD_Daemon *daemon;
    int port;
    pthread_t watchdog;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards tracked; held while a socket is shut */
    Tracked *tracked;
};

static struct WebServer *the_server; /* for web_extend_deadline */

/* ---- connection tracking ---- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct WebServer *s = cls;
    pthread_mutex_lock(&s->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        Tracked *t = hvd_xcalloc(1, sizeof *t);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->conn = c;
        t->fd = ci ? ci->connect_fd : -1;
        t->deadline_ms = hvd_mono_ms() + (int64_t)s->web->request_timeout_s * 1000;
        t->next = s->tracked;
        s->tracked = t;
        *socket_context = t;
    } else {
        /* libmicrohttpd closes the socket after this returns */
        for (Tracked **p = &s->tracked; *p; p = &(*p)->next) {
            if (*p == *socket_context) {
                Tracked *t = *p;
                *p = t->next;
                free(t);
                break;
            }
        }
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *watchdog_main(void *arg)
{
    struct WebServer *s = arg;
    while (!atomic_load(&s->stop)) {
        struct timespec ts = {0, WATCHDOG_TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = hvd_mono_ms();
        pthread_mutex_lock(&s->mu);
        for (Tracked *t = s->tracked; t; t = t->next) {
            if (t->cut || t->fd < 0 || now < t->deadline_ms) continue;
            /* its thread sees the socket end and closes the connection */
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

void web_extend_deadline(WebReq *r, unsigned seconds)
{
    struct WebServer *s = the_server;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!s || !ci) return;
    pthread_mutex_lock(&s->mu);
    Tracked *t = ci->socket_context;
    if (t) t->deadline_ms = hvd_mono_ms() + (int64_t)seconds * 1000;
    pthread_mutex_unlock(&s->mu);
    /* the stream writes at least every few seconds, so the idle timeout can stay */
}

/* ---- requests ---- */

const char *web_arg(WebReq *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *web_form_value(const WebReq *r, const char *name)
{
    const char *p = r->form.data, *end = p ? p + r->form.len : NULL;
    size_t nl = strlen(name);
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
            HvdBuf v = {0};
            hvd_buf_puts(&v, "");
            for (const char *q = eq + 1; q < stop; q++) {
                if (*q == '+') {
                    hvd_buf_puts(&v, " ");
                } else if (*q == '%' && q + 2 < stop && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    char ch = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    hvd_buf_append(&v, &ch, 1);
                    q += 2;
                } else {
                    hvd_buf_append(&v, q, 1);
                }
            }
            return hvd_buf_steal(&v);
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}

static void add_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
}

static enum MHD_Result send_answer(WebReq *r)
{
    struct MHD_Response *resp = r->stream;
    if (!resp) {
        resp = MHD_create_response_from_buffer(r->body.len, r->body.data ? r->body.data : (void *)"",
                                               MHD_RESPMEM_MUST_COPY);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "text/html; charset=utf-8");
    }
    add_headers(resp);
    if (r->location[0]) MHD_add_response_header(resp, "Location", r->location);
    if (r->set_cookie) {
        char cookie[160];
        snprintf(cookie, sizeof cookie, "hvd_csrf=%s; Path=/; HttpOnly; SameSite=Strict", r->csrf_cookie);
        MHD_add_response_header(resp, "Set-Cookie", cookie);
    }
    if (r->auth_challenge)
        MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"hvdeploy actions\", charset=\"UTF-8\"");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status ? r->status : MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* "/jobs/<id>/<verb>" -> id and verb (either may be empty). */
static bool split_path(const char *url, const char *prefix, char *id, size_t idlen, char *verb, size_t verblen)
{
    size_t pl = strlen(prefix);
    if (strncmp(url, prefix, pl) != 0) return false;
    const char *p = url + pl;
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= idlen) return false;
    memcpy(id, p, n);
    id[n] = '\0';
    snprintf(verb, verblen, "%s", slash ? slash + 1 : "");
    return true;
}

static void route(WebReq *r)
{
    const char *url = r->url;
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    char id[128], verb[32];
    auth_csrf_prepare(r);
    if (!get && !post) {
        html_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and POST are served here.");
        return;
    }
    if (strcmp(url, "/healthz") == 0 && get) {
        bool ok = hvd_store_healthy(r->web->store);
        r->status = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
        r->content_type = "text/plain; charset=utf-8";
        hvd_buf_puts(&r->body, ok ? "ok\n" : "database unavailable\n");
        return;
    }
    if (strncmp(url, "/static/", 8) == 0 && get) {
        if (!assets_serve(r, url + 8)) html_error(r, MHD_HTTP_NOT_FOUND, "No such file.");
        return;
    }
    if (strcmp(url, "/") == 0 && get) {
        r->status = MHD_HTTP_FOUND;
        snprintf(r->location, sizeof r->location, "/jobs");
        return;
    }
    if (strcmp(url, "/jobs") == 0 && get) return page_jobs(r);
    if (strcmp(url, "/hosts") == 0 && get) return page_hosts(r);
    if (strcmp(url, "/dead") == 0 && get) return page_dead(r);
    if (split_path(url, "/jobs/", id, sizeof id, verb, sizeof verb)) {
        if (get && !verb[0]) return page_job(r, id);
        if (get && strcmp(verb, "stream") == 0) return sse_job(r, id);
        if (post && (strcmp(verb, "cancel") == 0 || strcmp(verb, "retry") == 0)) return action_job(r, id, verb);
    }
    if (split_path(url, "/dead/", id, sizeof id, verb, sizeof verb)) {
        if (get && !verb[0]) return page_dead_one(r, id);
        if (post && strcmp(verb, "replay") == 0) return action_dead_replay(r, id);
    }
    html_error(r, post ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
               post ? "There is no such action." : "There is no such page.");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    Web *w = cls;
    (void)version;
    WebReq *r = *con_cls;
    if (!r) {
        r = hvd_xcalloc(1, sizeof *r);
        r->web = w;
        r->conn = conn;
        r->method = method;
        r->url = url;
        *con_cls = r;
        return MHD_YES; /* the body, if any, comes next */
    }
    if (*upload_data_size) {
        if (r->form.len + *upload_data_size > WEB_MAX_BODY)
            r->form_too_large = true;
        else
            hvd_buf_append(&r->form, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->form_too_large)
        html_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "The form is too large.");
    else
        route(r);
    return send_answer(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    WebReq *r = *con_cls;
    if (!r) return;
    hvd_buf_free(&r->body);
    hvd_buf_free(&r->form);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    hvd_log_kv(HVD_LOG_DEBUG, NULL, "http server", "detail", msg, NULL);
}

struct WebServer *web_server_start(Web *w, char *err, size_t errlen)
{
    int port = 0;
    bool v6 = false;
    int fd = hvd_listen_tcp(w->listen, "--listen", &port, &v6, err, errlen);
    if (fd < 0) return NULL;
    struct WebServer *s = hvd_xcalloc(1, sizeof *s);
    s->web = w;
    s->port = port;
    pthread_mutex_init(&s->mu, NULL);
    the_server = s;
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, w, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, w->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, w->per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)512 * 1024, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "--listen %s: cannot start the HTTP server", w->listen);
        close(fd);
        pthread_mutex_destroy(&s->mu);
        free(s);
        the_server = NULL;
        return NULL;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
        snprintf(err, errlen, "cannot start the connection watchdog");
        MHD_stop_daemon(s->daemon);
        free(s);
        the_server = NULL;
        return NULL;
    }
    return s;
}

int web_server_port(const struct WebServer *s)
{
    return s ? s->port : 0;
}

void web_server_stop(struct WebServer *s)
{
    if (!s) return;
    /* streams see w->stopping and end; then every connection thread is joined */
    MHD_stop_daemon(s->daemon);
    atomic_store(&s->stop, true);
    pthread_join(s->watchdog, NULL);
    for (Tracked *t = s->tracked, *n; t; t = n) {
        n = t->next;
        free(t);
    }
    pthread_mutex_destroy(&s->mu);
    the_server = NULL;
    free(s);
}
