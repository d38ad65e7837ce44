/* Private to session mode (session.c, session_base.c, session_reader.c): a
 * session, a pending request, the set of sessions, and the pieces they share.
 * Who calls whom, without a circle: session.c -> session_reader.c (the
 * reader thread it starts) -> session_base.c; session.c -> session_base.c.
 * Locking as session.c's top comment says. */
#ifndef HVD_SESSION_PRIV_H
#define HVD_SESSION_PRIV_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "agent_priv.h"
#include "session_frame.h"
#include "buf.h"
#include "session.h"

#define READ_CHUNK 65536
#define MAX_LINE HVD_AGENT_MAX_OUTPUT /* a longer line is dropped (and counted) */
#define TICK_MS 100                   /* how often cancel flags and idle sessions are looked at */
#define TAIL_CAP 1024                 /* stderr bytes of a session kept for a lost-session report */

typedef struct Session Session;

typedef struct Pending {
    char id[24];
    const char *operation;
    const HvdAgentCallOpts *opts;
    HvdAgentResult *res;
    Session *session;
    pthread_cond_t cv;
    bool written; /* its line is on the agent's stdin: a cancel may follow it */
    bool done, cancel_sent, cancel_by_caller;
    int64_t deadline, sent_at;
    struct Pending *next;
} Pending;

struct Session {
    char host[256];
    pid_t pid;
    int in_fd, out_fd, err_fd;
    HvdFrame frame; /* stdout, cut into lines */
    char tail[TAIL_CAP];
    size_t tail_len;
    Pending *pending;
    int in_flight;
    int users; /* callers between picking it and their last look at it: it is not freed under them */
    bool starting, dead, closing, reaped;
    int64_t last_used, close_at;
    char why_dead[160];
    pthread_mutex_t wmu;
    Session *next;
};

struct HvdSessions {
    HvdSessionCfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t started; /* a session finished starting (or failed to) */
    Session *sessions;
    pthread_t reader;
    int wake[2];
    bool stop;
    atomic_uint_fast64_t next_id;
    HvdSessionStats stats;
};

/* ---- session_base.c ---- */
/* Milliseconds on the monotonic clock. */
int64_t ss_now_ms(void);
/* Wakes the reader thread out of its poll. */
void ss_wake(HvdSessions *s);
/* Writes all of buf to fd (non-blocking) before deadline. SIGPIPE stays
 * pending in this thread instead of killing the process. */
bool ss_write_all(int fd, const char *buf, size_t len, int64_t deadline);
/* {"request_id":"<id>", ...the request's other keys} */
void ss_tagged_request(const char *id, const char *req, size_t len, HvdBuf *out);
/* Completes p (once) with outcome o and detail fmt (one %s: detail), and signals its caller. */
void ss_complete(Pending *p, HvdOutcome o, const char *fmt, const char *detail);
/* Removes p from its session's list. */
void ss_unlink_pending(Session *ss, Pending *p);
/* The pending request of that id on ss, or NULL. */
Pending *ss_find_pending(Session *ss, const char *id);
/* The session is gone: every request on it has an unknown outcome. */
void ss_session_lost(HvdSessions *s, Session *ss, const char *why);

/* ---- session_reader.c ---- */
/* The reader thread (arg: the HvdSessions); runs until stop is set. */
void *ss_reader_main(void *arg);

#endif
