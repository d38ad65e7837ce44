/* Session mode of the host-agent transport (session.h, contract §6a): agent
 * processes that stay up and serve many requests, each tagged with a
 * request_id, answered in any order. Callers write their request and sleep
 * on their own condition; one reader thread reads every session's output,
 * completes the requests, enforces deadlines and cancels, and closes idle
 * or dead sessions. Locking: `mu` guards the sessions and their pending
 * requests; a session's `wmu` serialises writes to its stdin (the reader only
 * ever try-locks it, so it never waits on a caller).
 * This file: starting a session, a call, and the set's life; the reader
 * thread is session_reader.c, the shared pieces session_base.c. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "agentproto.h"
#include "buf.h"
#include "codec.h"
#include "session_priv.h"

/* Reads the first line within timeout_ms: the agent's {"hello": ...}. */
static bool read_hello(Session *ss, int64_t timeout_ms, char *why, size_t whylen)
{
    int64_t deadline = ss_now_ms() + timeout_ms;
    HvdBuf line = {0};
    bool ok = false;
    for (;;) {
        int64_t left = deadline - ss_now_ms();
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
        ss->last_used = ss_now_ms();
        pthread_cond_broadcast(&s->started);
        ss_wake(s);
        if (ok) {
            s->stats.started++;
            return ss;
        }
        s->stats.no_hello++;
        ss_session_lost(s, ss, why);
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
    p.sent_at = ss_now_ms();
    p.deadline = p.sent_at + timeout;
    p.next = ss->pending;
    ss->pending = &p;
    ss->in_flight++;
    ss->last_used = p.sent_at;
    pthread_mutex_unlock(&s->mu);
    ss_wake(s);

    HvdBuf line = {0};
    ss_tagged_request(p.id, request, len, &line);
    pthread_mutex_lock(&ss->wmu);
    bool written = ss->in_fd >= 0 && ss_write_all(ss->in_fd, line.data, line.len, p.deadline);
    pthread_mutex_unlock(&ss->wmu);
    explicit_bzero(line.data, line.len); /* vm.initialize's request holds the guest's secrets */
    hvd_buf_free(&line);

    pthread_mutex_lock(&s->mu);
    p.written = written;
    if (written) ss_wake(s); /* a cancel raised meanwhile may go now */
    if (!written && !p.done) {
        /* a part of the line may have reached the agent: its outcome is unknown */
        ss_unlink_pending(ss, &p);
        ss_session_lost(s, ss, "its input could not be written");
        ss_complete(&p, HVD_OUT_TRANSPORT, "the request could not be written to the agent's session (%s)",
                    ss->why_dead);
    }
    while (!p.done) pthread_cond_wait(&p.cv, &s->mu);
    if (ss->dead && ss->tail_len) {
        free(res->stderr_tail);
        res->stderr_tail = agent_clean_tail(ss->tail, ss->tail_len, ss->tail_len == TAIL_CAP, opts);
    }
    ss->last_used = ss_now_ms();
    ss->users--;
    pthread_mutex_unlock(&s->mu);
    ss_wake(s); /* a dead session waiting on its last user can go now */
    pthread_cond_destroy(&p.cv);
    if (res->elapsed_ms == 0) res->elapsed_ms = ss_now_ms() - p.sent_at;
    return res->outcome;
}

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
    pthread_create(&s->reader, NULL, ss_reader_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s;
}

void hvd_sessions_stop(HvdSessions *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    ss_wake(s);
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
