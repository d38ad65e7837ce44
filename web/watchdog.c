/* Each connection's absolute deadline (--request-timeout, longer for an
 * event stream), enforced by a thread that shuts the socket of a connection
 * past it: clients that trickle a request or read an answer slowly cannot
 * hold the server. libmicrohttpd tells it of every connection's start and
 * end (web_watchdog_notify). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include "clock.h"
#include "watchdog.h"

#define WATCHDOG_TICK_MS 250

/* A connection the watchdog knows: its socket and deadline. */
typedef struct Tracked {
    struct MHD_Connection *conn;
    int fd;
    int64_t deadline_ms;
    bool cut;
    struct Tracked *next;
} Tracked;

struct WebWatchdog {
    const Web *web;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards tracked; held while a socket is shut */
    Tracked *tracked;
};

static WebWatchdog *the_watchdog; /* for web_extend_deadline */

WebWatchdog *web_watchdog_new(const Web *w)
{
    WebWatchdog *wd = hvd_xcalloc(1, sizeof *wd);
    wd->web = w;
    pthread_mutex_init(&wd->mu, NULL);
    the_watchdog = wd;
    return wd;
}

void web_watchdog_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    WebWatchdog *wd = cls;
    pthread_mutex_lock(&wd->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        Tracked *t = hvd_xcalloc(1, sizeof *t);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->conn = c;
        t->fd = ci ? ci->connect_fd : -1;
        t->deadline_ms = hvd_mono_ms() + (int64_t)wd->web->request_timeout_s * 1000;
        t->next = wd->tracked;
        wd->tracked = t;
        *socket_context = t;
    } else {
        /* libmicrohttpd closes the socket after this returns */
        for (Tracked **p = &wd->tracked; *p; p = &(*p)->next) {
            if (*p == *socket_context) {
                Tracked *t = *p;
                *p = t->next;
                free(t);
                break;
            }
        }
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&wd->mu);
}

static void *watchdog_main(void *arg)
{
    WebWatchdog *wd = arg;
    while (!atomic_load(&wd->stop)) {
        struct timespec ts = {0, WATCHDOG_TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = hvd_mono_ms();
        pthread_mutex_lock(&wd->mu);
        for (Tracked *t = wd->tracked; t; t = t->next) {
            if (t->cut || t->fd < 0 || now < t->deadline_ms) continue;
            /* its thread sees the socket end and closes the connection */
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
        }
        pthread_mutex_unlock(&wd->mu);
    }
    return NULL;
}

bool web_watchdog_start(WebWatchdog *wd)
{
    wd->started = pthread_create(&wd->thread, NULL, watchdog_main, wd) == 0;
    return wd->started;
}

void web_watchdog_free(WebWatchdog *wd)
{
    if (!wd) return;
    atomic_store(&wd->stop, true);
    if (wd->started) pthread_join(wd->thread, NULL);
    for (Tracked *t = wd->tracked, *n; t; t = n) {
        n = t->next;
        free(t);
    }
    pthread_mutex_destroy(&wd->mu);
    if (the_watchdog == wd) the_watchdog = NULL;
    free(wd);
}

void web_extend_deadline(WebReq *r, unsigned seconds)
{
    WebWatchdog *wd = the_watchdog;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!wd || !ci) return;
    pthread_mutex_lock(&wd->mu);
    Tracked *t = ci->socket_context;
    if (t) t->deadline_ms = hvd_mono_ms() + (int64_t)seconds * 1000;
    pthread_mutex_unlock(&wd->mu);
    /* the stream writes at least every few seconds, so the idle timeout can stay */
}
