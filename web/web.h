/* hvdeploy-web, the operators' dashboard: its modules, each with its own
 * header, and the state they share.
 *
 *   main.c      settings, start, signals
 *   http.c      the libmicrohttpd server: routing, security headers, the
 *               per-IP and total limits (http.h)
 *   watchdog.c  each connection's absolute deadline, for slow clients (watchdog.h)
 *   request.c   query and form values of a request, id checks (request.h)
 *   html.c      escaping and the page layout (every dynamic text goes through it; html.h)
 *   auth.c      the password file, HTTP Basic authentication, CSRF tokens (auth.h)
 *   pages_*.c   jobs, one job, hosts, dead letters; actions.c: cancel, retry (pages.h)
 *   sse.c       Server-Sent Events: a job's live output and transitions (pages.h)
 *   assets.c    the one stylesheet and script, served as files (the CSP allows no inline code)
 *   mq.c        the dashboard's RabbitMQ connection (mq.h)
 * This header holds the state they share: the process's Web and a WebReq.
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

#endif
