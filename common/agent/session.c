/* Session mode of the host-agent transport (session.h, contract §6a): agent
 * processes that stay up and serve many requests, each tagged with a
 * request_id, answered in any order. Callers write their request and sleep
 * on their own condition; one reader thread reads every session's output,
 * completes the requests, enforces deadlines and cancels, and closes idle
 * or dead sessions. Locking: `mu` guards the sessions and their pending
 * requests; a session's `wmu` serialises writes to its stdin (the reader only
 * ever try-locks it, so it never waits on a caller). */
#include "session.h"
#include "agent_priv.h"
#include "agentproto.h"
#include "buf.h"
#include "codec.h"
#include "session_frame.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(HvdSessions *s)
{
    char c = 1;
    ssize_t rc = write(s->wake[1], &c, 1);
    (void)rc; /* a full pipe means a wake-up is pending anyway */
}

/* ---- writing ---- */

/* Writes all of buf to fd (non-blocking) before deadline. SIGPIPE stays
 * pending in this thread instead of killing the process. */
static bool write_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    size_t off = 0;
    bool ok = true;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            int64_t left = deadline - now_ms();
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (left > 0 && poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) >= 0 && !(pf.revents & (POLLERR | POLLHUP)))
                continue;
        }
        ok = false;
        break;
    }
    if (!sigismember(&old, SIGPIPE)) {
        sigset_t pending;
        struct timespec zero = {0, 0};
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* {"request_id":"<id>", ...the request's other keys} */
static void tagged_request(const char *id, const char *req, size_t len, HvdBuf *out)
{
    while (len && (req[len - 1] == '\n' || req[len - 1] == '\r')) len--;
    size_t i = 0;
    while (i < len && req[i] != '{') i++;
    hvd_buf_printf(out, "{\"request_id\":\"%s\"", id);
    const char *rest = req + i + 1;
    size_t rest_len = i < len ? len - i - 1 : 0;
    size_t k = 0;
    while (k < rest_len && (rest[k] == ' ' || rest[k] == '\t')) k++;
    if (k < rest_len && rest[k] != '}') hvd_buf_puts(out, ",");
    hvd_buf_append(out, rest, rest_len);
    hvd_buf_puts(out, "\n");
}

/* ---- completing requests (mu held) ---- */

static void complete(Pending *p, HvdOutcome o, const char *fmt, const char *detail)
{
    if (p->done) return;
    p->res->outcome = o;
    snprintf(p->res->detail, sizeof p->res->detail, fmt, detail);
    p->done = true;
    pthread_cond_signal(&p->cv);
}

static void unlink_pending(Session *ss, Pending *p)
{
    for (Pending **pp = &ss->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            ss->in_flight--;
            return;
        }
}

static Pending *find_pending(Session *ss, const char *id)
{
    for (Pending *p = ss->pending; p; p = p->next)
        if (strcmp(p->id, id) == 0) return p;
    return NULL;
}

/* The session is gone: every request on it has an unknown outcome. */
static void session_lost(HvdSessions *s, Session *ss, const char *why)
{
    if (ss->dead) return;
    ss->dead = true;
    snprintf(ss->why_dead, sizeof ss->why_dead, "%s", why);
    if (ss->pending) s->stats.lost++;
    while (ss->pending) {
        Pending *p = ss->pending;
        ss->pending = p->next;
        ss->in_flight--;
        complete(p, HVD_OUT_TRANSPORT, "the agent's session ended with the request in flight (%s)", why);
    }
    if (ss->pid > 0) kill(-ss->pid, SIGKILL);
}

/* ---- reading (reader thread, mu held) ---- */

static void handle_line(HvdSessions *s, Session *ss, const char *line, size_t len)
{
    HvdLine l;
    hvd_frame_line(line, len, MAX_LINE, &l);
    Pending *p = l.kind == HVD_LINE_NOISE ? NULL : find_pending(ss, l.id);
    if (!p) {
        /* an answer to no request of ours (a late one, after its deadline), or noise */
        if (l.kind == HVD_LINE_NOISE)
            s->stats.bad_lines++;
        else
            s->stats.unknown_ids++;
        hvd_node_free(l.msg);
        return;
    }
    if (l.kind == HVD_LINE_OUTPUT) {
        if (p->opts && p->opts->on_line) {
            size_t n = l.text_len > HVD_AGENT_LINE_MAX ? HVD_AGENT_LINE_MAX : l.text_len;
            p->opts->on_line(p->opts->line_arg, l.stderr_line ? HVD_AGENT_STDERR : HVD_AGENT_STDOUT, l.text, n,
                             n < l.text_len);
        }
        hvd_node_free(l.msg);
        return;
    }
    unlink_pending(ss, p);
    p->res->stdout_bytes = len;
    p->res->elapsed_ms = now_ms() - p->sent_at;
    p->res->exited = false;
    if (!agent_classify_answer(s->cfg.agent, p->opts, p->operation, l.msg, p->res)) {
        p->done = true;
        pthread_cond_signal(&p->cv);
        return;
    }
    /* a request we stopped: an answer saying so is what the caller asked for */
    if (p->cancel_sent && p->res->code && strcmp(p->res->code, "CANCELLED") == 0)
        p->res->outcome = p->cancel_by_caller ? HVD_OUT_CANCELLED : HVD_OUT_TIMEOUT;
    p->done = true;
    pthread_cond_signal(&p->cv);
}

static void tail_append(Session *ss, const char *p, size_t n)
{
    if (n >= TAIL_CAP) {
        memcpy(ss->tail, p + n - TAIL_CAP, TAIL_CAP);
        ss->tail_len = TAIL_CAP;
        return;
    }
    if (ss->tail_len + n > TAIL_CAP) {
        size_t drop = ss->tail_len + n - TAIL_CAP;
        memmove(ss->tail, ss->tail + drop, ss->tail_len - drop);
        ss->tail_len -= drop;
    }
    memcpy(ss->tail + ss->tail_len, p, n);
    ss->tail_len += n;
}

typedef struct {
    HvdSessions *s;
    Session *ss;
} Reading;

static void on_frame_line(void *arg, const char *line, size_t len)
{
    Reading *rd = arg;
    handle_line(rd->s, rd->ss, line, len);
}

/* Reads what is ready on one of the session's pipes. */
static void drain(HvdSessions *s, Session *ss, bool is_stdout)
{
    char buf[READ_CHUNK];
    int *fd = is_stdout ? &ss->out_fd : &ss->err_fd;
    for (;;) {
        ssize_t r = read(*fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            agent_close_fd(fd);
            if (is_stdout) session_lost(s, ss, "its output closed");
            return;
        }
        if (!is_stdout) {
            tail_append(ss, buf, (size_t)r);
            continue;
        }
        size_t dropped = ss->frame.dropped;
        Reading rd = {s, ss};
        hvd_frame_feed(&ss->frame, buf, (size_t)r, MAX_LINE, on_frame_line, &rd);
        s->stats.bad_lines += ss->frame.dropped - dropped;
    }
}

/* Sends {"cancel": id}; false when the pipe is busy now (tried again later). */
static bool send_cancel(Session *ss, Pending *p)
{
    if (pthread_mutex_trylock(&ss->wmu) != 0) return false;
    char line[64];
    int n = snprintf(line, sizeof line, "{\"cancel\":\"%s\"}\n", p->id);
    bool ok = write_all(ss->in_fd, line, (size_t)n, now_ms() + 50);
    pthread_mutex_unlock(&ss->wmu);
    return ok;
}

/* Deadlines and cancel flags of the requests in flight; returns the next
 * moment something is due (or INT64_MAX). */
static int64_t check_requests(HvdSessions *s, int64_t now)
{
    int64_t next = INT64_MAX;
    for (Session *ss = s->sessions; ss; ss = ss->next) {
        for (Pending *p = ss->pending, *nx; p; p = nx) {
            nx = p->next;
            bool asked = p->opts && p->opts->cancel && atomic_load(p->opts->cancel);
            if (!p->cancel_sent && p->written && (asked || now >= p->deadline)) {
                if (send_cancel(ss, p)) {
                    p->cancel_sent = true;
                    p->cancel_by_caller = asked;
                    p->deadline = now + s->cfg.cancel_grace_ms;
                }
            } else if (p->cancel_sent && now >= p->deadline) {
                unlink_pending(ss, p);
                if (p->cancel_by_caller)
                    complete(p, HVD_OUT_CANCELLED, "agent request cancelled (%s)", "no answer after the cancel");
                else
                    complete(p, HVD_OUT_TIMEOUT, "agent did not answer in time (%s)", "cancel sent, no answer");
                continue;
            }
            if (p->opts && p->opts->cancel && now + TICK_MS < next) next = now + TICK_MS;
            if (p->deadline < next) next = p->deadline;
        }
    }
    return next;
}

/* Idle sessions are closed (EOF on stdin); closing and dead ones reaped. */
static void tend_sessions(HvdSessions *s, int64_t now)
{
    for (Session **pp = &s->sessions; *pp;) {
        Session *ss = *pp;
        if (!ss->starting && !ss->dead && !ss->closing && ss->in_flight == 0 &&
            (s->stop || now - ss->last_used >= s->cfg.idle_ms)) {
            ss->closing = true;
            ss->close_at = now + (s->cfg.agent->kill_grace_ms > 0 ? s->cfg.agent->kill_grace_ms : 2000);
            if (!s->stop) s->stats.closed_idle++;
            if (pthread_mutex_trylock(&ss->wmu) == 0) {
                agent_close_fd(&ss->in_fd);
                pthread_mutex_unlock(&ss->wmu);
            }
        }
        if (ss->closing && !ss->dead && now >= ss->close_at) session_lost(s, ss, "closed");
        if ((ss->closing || ss->dead) && !ss->reaped && ss->pid > 0) {
            int st;
            pid_t r = waitpid(ss->pid, &st, WNOHANG);
            if (r == ss->pid || (r < 0 && errno == ECHILD)) {
                ss->reaped = true;
                agent_live_remove(ss->pid);
            }
        }
        if ((ss->closing || ss->dead) && ss->reaped && !ss->pending && ss->users == 0) {
            *pp = ss->next;
            agent_close_fd(&ss->in_fd);
            agent_close_fd(&ss->out_fd);
            agent_close_fd(&ss->err_fd);
            hvd_frame_free(&ss->frame);
            pthread_mutex_destroy(&ss->wmu);
            free(ss);
            continue;
        }
        pp = &ss->next;
    }
}

static void *reader_main(void *arg)
{
    HvdSessions *s = arg;
    struct pollfd *pf = NULL;
    Session **who = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = now_ms();
        int64_t next = check_requests(s, now);
        tend_sessions(s, now);
        if (s->stop && !s->sessions) break;
        size_t n = 0, need = 1;
        for (Session *ss = s->sessions; ss; ss = ss->next) need += 2;
        if (need > cap) {
            cap = need * 2;
            pf = realloc(pf, cap * sizeof *pf);
            who = realloc(who, cap * sizeof *who);
            if (!pf || !who) abort();
        }
        pf[n] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        who[n++] = NULL;
        for (Session *ss = s->sessions; ss; ss = ss->next) {
            if (ss->starting) continue;
            if (ss->out_fd >= 0) pf[n] = (struct pollfd){.fd = ss->out_fd, .events = POLLIN}, who[n++] = ss;
            if (ss->err_fd >= 0) pf[n] = (struct pollfd){.fd = ss->err_fd, .events = POLLIN}, who[n++] = ss;
        }
        int64_t wait = next == INT64_MAX ? 1000 : next - now;
        if (wait > 1000) wait = 1000; /* idle sessions are looked at once a second */
        if (wait < 0) wait = 0;
        pthread_mutex_unlock(&s->mu);
        int rc = poll(pf, (nfds_t)n, (int)wait);
        pthread_mutex_lock(&s->mu);
        if (rc <= 0) continue;
        if (pf[0].revents) {
            char buf[256];
            while (read(s->wake[0], buf, sizeof buf) > 0) {}
        }
        for (size_t i = 1; i < n; i++) {
            if (!pf[i].revents) continue;
            Session *ss = who[i];
            /* the session may have been freed by an earlier fd of this round: look it up */
            bool alive = false;
            for (Session *x = s->sessions; x && !alive; x = x->next) alive = x == ss;
            if (!alive) continue;
            if (pf[i].fd == ss->out_fd)
                drain(s, ss, true);
            else if (pf[i].fd == ss->err_fd)
                drain(s, ss, false);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(pf);
    free(who);
    return NULL;
}

/* ---- starting a session (caller's thread, mu not held) ---- */

/* Reads the first line within timeout_ms: the agent's {"hello": ...}. */
static bool read_hello(Session *ss, int64_t timeout_ms, char *why, size_t whylen)
{
    int64_t deadline = now_ms() + timeout_ms;
    HvdBuf line = {0};
    bool ok = false;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            snprintf(why, whylen, "the agent's session printed no hello within %lld ms", (long long)timeout_ms);
            break;
        }
        struct pollfd pf = {.fd = ss->out_fd, .events = POLLIN};
        if (poll(&pf, 1, (int)left) <= 0) continue;
        char c;
        ssize_t r = read(ss->out_fd, &c, 1);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) {
            snprintf(why, whylen, "the agent's session ended before its hello");
            break;
        }
        if (c != '\n') {
            if (line.len < 65536) hvd_buf_append(&line, &c, 1);
            continue;
        }
        HvdNode *n = NULL;
        char err[128];
        if (line.len && hvd_json_to_node(line.data, line.len, 65536, &n, err, sizeof err) == HVD_DECODE_OK &&
            hvd_node_get(n, "hello") && hvd_node_get(n, "hello")->type == HVD_MAP) {
            ok = true;
        } else {
            snprintf(why, whylen, "the agent's session did not start with a hello line");
        }
        hvd_node_free(n);
        break;
    }
    hvd_buf_free(&line);
    return ok;
}

static bool session_spawn(HvdSessions *s, Session *ss, char *why, size_t whylen)
{
    char err[256];
    HvdAgentCfg tmpl = *s->cfg.agent; /* the session command, substituted like the per-call one */
    size_t argc = 0;
    while (s->cfg.argv[argc]) argc++;
    tmpl.argv = s->cfg.argv;
    tmpl.argc = argc;
    char **argv = hvd_agent_argv(&tmpl, ss->host, err, sizeof err);
    if (!argv) {
        snprintf(why, whylen, "%s", err);
        return false;
    }
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    bool ok = agent_make_pipe(in) && agent_make_pipe(out) && agent_make_pipe(er);
    int rc = ok ? 0 : errno;
    if (ok) {
        char **envp = hvd_agent_env(s->cfg.agent);
        agent_live_spawn_begin();
        rc = agent_spawn(argv, envp, in, out, er, &ss->pid);
        agent_live_spawn_end(rc == 0 ? ss->pid : 0);
        free(envp);
    }
    agent_close_fd(&in[0]);
    agent_close_fd(&out[1]);
    agent_close_fd(&er[1]);
    ss->in_fd = in[1];
    ss->out_fd = out[0];
    ss->err_fd = er[0];
    if (rc != 0) {
        snprintf(why, whylen, "cannot start the agent's session '%.100s': %s", argv[0], strerror(rc));
        hvd_agent_argv_free(argv);
        ss->pid = -1;
        return false;
    }
    hvd_agent_argv_free(argv);
    agent_set_nonblock(ss->in_fd);
    agent_set_nonblock(ss->out_fd);
    agent_set_nonblock(ss->err_fd);
    return read_hello(ss, s->cfg.hello_ms, why, whylen);
}

/* A session of host to send a request on (mu held; may release it while
 * one starts). NULL with why set when none can be had. */
static Session *pick_session(HvdSessions *s, const char *host, char *why, size_t whylen)
{
    for (;;) {
        Session *best = NULL;
        int count = 0;
        bool starting = false;
        for (Session *ss = s->sessions; ss; ss = ss->next) {
            if (strcmp(ss->host, host) != 0 || ss->dead || ss->closing) continue;
            count++;
            if (ss->starting) {
                starting = true;
                continue;
            }
            if (!best || ss->in_flight < best->in_flight) best = ss;
        }
        if (best && (best->in_flight < s->cfg.depth || count >= s->cfg.max_per_host)) return best;
        if (starting && (!best || count >= s->cfg.max_per_host)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->started, &s->mu, &ts);
            continue;
        }
        if (count >= s->cfg.max_per_host) return best;
        /* start one */
        Session *ss = hvd_xcalloc(1, sizeof *ss);
        snprintf(ss->host, sizeof ss->host, "%s", host);
        ss->starting = true;
        ss->in_fd = ss->out_fd = ss->err_fd = -1;
        pthread_mutex_init(&ss->wmu, NULL);
        ss->next = s->sessions;
        s->sessions = ss;
        pthread_mutex_unlock(&s->mu);
        bool ok = session_spawn(s, ss, why, whylen);
        pthread_mutex_lock(&s->mu);
        ss->starting = false;
        ss->last_used = now_ms();
        pthread_cond_broadcast(&s->started);
        wake(s);
        if (ok) {
            s->stats.started++;
            return ss;
        }
        s->stats.no_hello++;
        session_lost(s, ss, why);
        if (ss->pid <= 0) ss->reaped = true;
        return NULL;
    }
}

HvdOutcome hvd_session_call(HvdSessions *s, const HvdAgentCallOpts *opts, const char *host, const char *operation,
                            const char *request, size_t len, HvdAgentResult *res)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->stderr_tail = hvd_xstrdup("");
    char why[256];
    if (!host || !hvd_hostname_valid(host)) {
        res->outcome = HVD_OUT_BAD_CALL;
        snprintf(res->detail, sizeof res->detail, "invalid target host for the agent");
        return res->outcome;
    }
    int64_t timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : hvd_agent_timeout_ms(s->cfg.agent, operation);
    Pending p = {.operation = operation, .opts = opts, .res = res};
    snprintf(p.id, sizeof p.id, "%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    pthread_cond_init(&p.cv, NULL);

    pthread_mutex_lock(&s->mu);
    Session *ss = s->stop ? NULL : pick_session(s, host, why, sizeof why);
    if (!ss) {
        pthread_mutex_unlock(&s->mu);
        pthread_cond_destroy(&p.cv);
        res->outcome = HVD_OUT_NOT_SENT;
        snprintf(res->detail, sizeof res->detail, "%s", s->stop ? "the sessions are stopping" : why);
        return res->outcome;
    }
    p.session = ss;
    ss->users++;
    p.sent_at = now_ms();
    p.deadline = p.sent_at + timeout;
    p.next = ss->pending;
    ss->pending = &p;
    ss->in_flight++;
    ss->last_used = p.sent_at;
    pthread_mutex_unlock(&s->mu);
    wake(s);

    HvdBuf line = {0};
    tagged_request(p.id, request, len, &line);
    pthread_mutex_lock(&ss->wmu);
    bool written = ss->in_fd >= 0 && write_all(ss->in_fd, line.data, line.len, p.deadline);
    pthread_mutex_unlock(&ss->wmu);
    explicit_bzero(line.data, line.len); /* vm.initialize's request holds the guest's secrets */
    hvd_buf_free(&line);

    pthread_mutex_lock(&s->mu);
    p.written = written;
    if (written) wake(s); /* a cancel raised meanwhile may go now */
    if (!written && !p.done) {
        /* a part of the line may have reached the agent: its outcome is unknown */
        unlink_pending(ss, &p);
        session_lost(s, ss, "its input could not be written");
        complete(&p, HVD_OUT_TRANSPORT, "the request could not be written to the agent's session (%s)", ss->why_dead);
    }
    while (!p.done) pthread_cond_wait(&p.cv, &s->mu);
    if (ss->dead && ss->tail_len) {
        free(res->stderr_tail);
        res->stderr_tail = agent_clean_tail(ss->tail, ss->tail_len, ss->tail_len == TAIL_CAP, opts);
    }
    ss->last_used = now_ms();
    ss->users--;
    pthread_mutex_unlock(&s->mu);
    wake(s); /* a dead session waiting on its last user can go now */
    pthread_cond_destroy(&p.cv);
    if (res->elapsed_ms == 0) res->elapsed_ms = now_ms() - p.sent_at;
    return res->outcome;
}

/* ---- life ---- */

HvdSessions *hvd_sessions_start(const HvdSessionCfg *cfg)
{
    HvdSessions *s = hvd_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (s->cfg.max_per_host < 1) s->cfg.max_per_host = 1;
    if (s->cfg.depth < 1) s->cfg.depth = 1;
    if (s->cfg.hello_ms <= 0) s->cfg.hello_ms = 30000;
    if (s->cfg.cancel_grace_ms <= 0) s->cfg.cancel_grace_ms = 5000;
    if (s->cfg.idle_ms <= 0) s->cfg.idle_ms = 300000;
    atomic_init(&s->next_id, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->started, NULL);
    if (!agent_make_pipe(s->wake)) abort();
    agent_set_nonblock(s->wake[0]);
    agent_set_nonblock(s->wake[1]);
    /* the reader never takes SIGPIPE for a session that died */
    sigset_t all, old;
    sigemptyset(&all);
    sigaddset(&all, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_create(&s->reader, NULL, reader_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s;
}

void hvd_sessions_stop(HvdSessions *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    wake(s);
    pthread_join(s->reader, NULL);
    agent_close_fd(&s->wake[0]);
    agent_close_fd(&s->wake[1]);
    pthread_cond_destroy(&s->started);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void hvd_sessions_stats(HvdSessions *s, HvdSessionStats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->open = 0;
    for (Session *ss = s->sessions; ss; ss = ss->next) out->open += !ss->dead && !ss->closing;
    pthread_mutex_unlock(&s->mu);
}

size_t hvd_sessions_count(HvdSessions *s, const char *host)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (Session *ss = s->sessions; ss; ss = ss->next) n += !ss->dead && !ss->closing && strcmp(ss->host, host) == 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}
