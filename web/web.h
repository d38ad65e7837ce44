/* hvdeploy-web, the operators' dashboard: shared state and the interfaces
 * between its modules.
 *
 *   main.c     settings, start, signals
 *   http.c     the libmicrohttpd server: routing, security headers, limits on
 *              slow clients (per-connection deadline, per-IP and total limits)
 *   html.c     escaping and the page layout (every dynamic text goes through it)
 *   auth.c     the password file, HTTP Basic authentication, CSRF tokens
 *   pages_*.c  jobs, one job, hosts, dead letters; actions (cancel, retry, replay)
 *   sse.c      Server-Sent Events: a job's live output and transitions
 *   assets.c   the one stylesheet and script, served as files (the CSP allows no inline code)
 *
 * Pages are read-only unless --allow-actions; actions also need the password
 * and a CSRF token. Threads: one per connection (libmicrohttpd), bounded by
 * the connection limits; PostgreSQL through a small pool. */
#ifndef HVD_WEB_H
#define HVD_WEB_H
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "buf.h"
#include "config.h"
#include "store.h"

#define WEB_DEFAULT_ADDR "127.0.0.1:8480"
#define WEB_MAX_BODY 8192 /* bytes of a form body */

typedef struct {
    HvdConfig cfg;
    HvdStore *store;
    char listen[160];
    bool allow_actions;
    char *password_hash;        /* crypto_pwhash_str text from --password-file; NULL = actions impossible */
    unsigned char csrf_key[32]; /* random per process: CSRF tokens are HMACs under it */
    unsigned max_connections, per_ip;
    unsigned request_timeout_s; /* a connection's absolute deadline (a page) */
    unsigned stream_max_s;      /* how long one event stream lasts before the browser reconnects */
    int page_size;              /* jobs per page */
    atomic_bool stopping;
    pthread_mutex_t dead_mu;     /* one reader of the dead-letter queue at a time */
    pthread_mutex_t auth_mu;     /* one password check at a time (argon2 is costly) */
    unsigned char good_auth[32]; /* keyed digest of the last credentials that passed */
    bool has_good_auth;
} Web;

/* One request being answered. */
typedef struct {
    Web *web;
    struct MHD_Connection *conn;
    const char *method, *url;
    HvdBuf form; /* a POST body (application/x-www-form-urlencoded) */
    bool form_too_large;
    char csrf_cookie[65]; /* the browser's CSRF cookie (hex), or a new one to set */
    bool set_cookie;
    /* the answer */
    unsigned status;
    HvdBuf body;
    const char *content_type;
    char location[512];          /* a redirect */
    bool auth_challenge;         /* 401 with WWW-Authenticate */
    struct MHD_Response *stream; /* an event stream instead of body */
} WebReq;

/* ---- http.c ---- */
struct WebServer;
struct WebServer *web_server_start(Web *w, char *err, size_t errlen);
int web_server_port(const struct WebServer *s);
void web_server_stop(struct WebServer *s);
/* A query-string or form value (NULL when absent). */
const char *web_arg(WebReq *r, const char *name);
/* A form field of a POST body (malloc'd, URL-decoded; NULL when absent). */
char *web_form_value(const WebReq *r, const char *name);
/* Extends the connection's absolute deadline to seconds from now (event streams). */
void web_extend_deadline(WebReq *r, unsigned seconds);

/* ---- html.c ---- */
/* Appends s HTML-escaped (& < > " ' and control characters). NULL appends nothing. */
void html_esc(HvdBuf *b, const char *s);
/* printf where every %s argument is escaped: only %s, %d, %lld and %% are allowed. */
void html_printf(HvdBuf *b, const char *fmt, ...);
/* s URL-encoded for a query string or a path segment. */
void html_url(HvdBuf *b, const char *s);
/* The layout: <head> with the stylesheet and script, the navigation with nav
 * (jobs, hosts, dead) marked current, and the end. */
void html_begin(WebReq *r, const char *title, const char *nav);
void html_end(WebReq *r);
/* An error page with status and one sentence. Returns MHD_YES. */
void html_error(WebReq *r, unsigned status, const char *message);
/* A hidden CSRF field for forms (empty when actions are off). */
void html_csrf_field(WebReq *r);
/* A status word as a coloured badge. */
void html_badge(HvdBuf *b, const char *status);

/* ---- auth.c ---- */
/* Loads the password file (one crypto_pwhash_str line). False with err set. */
bool auth_load_password(Web *w, const char *path, char *err, size_t errlen);
/* Prints the hash of the password read from stdin (one line) for a password file. */
int auth_hash_password_main(void);
/* The request's Basic credentials match the password file. */
bool auth_check(WebReq *r);
/* The CSRF cookie of the browser (made when missing) and the token of forms. */
void auth_csrf_prepare(WebReq *r);
void auth_csrf_token(const WebReq *r, char out[65]);
/* The POST carries the CSRF cookie and a form token that matches it, and no
 * foreign Origin. */
bool auth_csrf_ok(const WebReq *r);

/* ---- pages ---- */
void page_jobs(WebReq *r);
void page_job(WebReq *r, const char *job_id);
void page_hosts(WebReq *r);
void page_dead(WebReq *r);
void page_dead_one(WebReq *r, const char *id);
/* POST /jobs/<id>/cancel|retry, /dead/<id>/replay: checks actions, password, CSRF. */
void action_job(WebReq *r, const char *job_id, const char *verb);
void action_dead_replay(WebReq *r, const char *id);
/* Actions are on, the password matched and the CSRF token too; else the
 * refusal is answered (403, or 401 asking for the password) and false. */
bool web_action_allowed(WebReq *r);
/* GET /jobs/<id>/stream */
void sse_job(WebReq *r, const char *job_id);
/* /static/... ; false when unknown */
bool assets_serve(WebReq *r, const char *path);

/* A broker connection of the dashboard (pages_dead.c); NULL with err set. */
struct HvdBroker *web_broker_connect(Web *w, bool confirms, char *err, size_t errlen);

/* small shared helpers (pages_jobs.c) */
void web_job_summary_row(HvdBuf *b, const HvdJobRecord *j);
bool web_uuid_ok(const char *s);

#endif
