/* The dashboard's HTTP server on libmicrohttpd: one thread per connection,
 * at most --max-connections in all and --per-ip from one address; every
 * connection has an absolute deadline kept by watchdog.c. Routes requests,
 * reads small form bodies, and adds the security headers (a strict
 * Content-Security-Policy, no caching, no framing) to every answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "listen.h"
#include "auth.h"
#include "html.h"
#include "http.h"
#include "log.h"
#include "pages.h"
#include "watchdog.h"

#define IDLE_TIMEOUT_S 10 /* no byte either way for this long: closed (libmicrohttpd's own timeout) */

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                          "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

struct WebServer {
    Web *web;
    struct MHD_Daemon *daemon;
    int port;
    WebWatchdog *watchdog;
};

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
    s->watchdog = web_watchdog_new(w);
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, w, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, w->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, w->per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_CONNECTION, web_watchdog_notify, s->watchdog, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)512 * 1024, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "--listen %s: cannot start the HTTP server", w->listen);
        close(fd);
        web_watchdog_free(s->watchdog);
        free(s);
        return NULL;
    }
    if (!web_watchdog_start(s->watchdog)) {
        snprintf(err, errlen, "cannot start the connection watchdog");
        MHD_stop_daemon(s->daemon);
        web_watchdog_free(s->watchdog);
        free(s);
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
    web_watchdog_free(s->watchdog);
    free(s);
}
