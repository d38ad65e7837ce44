/* The host-agent transport, per call (§6): one agent process per request
 * (agent_proc.c), a poll loop over its pipes with caps, live lines and
 * deadlines, and what came back classified (agent_answer.c). Configuration
 * is agent_cfg.c, session mode session.c. */
#include "agent.h"
#include "agent_priv.h"
#include "argv.h"
#include "agentproto.h"
#include "buf.h"
#include "mask.h"
#include "model.h"
#include "utf8.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READ_CHUNK 16384
#define NO_PIDFD_POLL_MS 10 /* how often the exit is checked when pidfd_open is unavailable */
#define CANCEL_POLL_MS 50

/* ---- the call ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits one stream into lines for HvdAgentCallOpts.on_line. */
typedef struct {
    char buf[HVD_AGENT_LINE_MAX + 1];
    size_t len;
    bool cut; /* the current line passed HVD_AGENT_LINE_MAX: drop until its newline */
} LineSplit;

/* The state of one call while its child runs. */
typedef struct {
    const HvdAgentCallOpts *opts;
    LineSplit lines[2]; /* stdout, stderr */
    pid_t pid;
    int in_fd, out_fd, err_fd, pidfd;
    const char *req;
    size_t req_len, written;
    HvdBuf out;
    char *tail;
    size_t tail_len, tail_cap;
    size_t err_total; /* stderr bytes read in all (more than tail_len: the tail was cut) */
    bool exited, timed_out, cancelled, killed, overflow, eof_kill;
    int64_t exit_seen_at, term_at;
} Call;

static void tail_append(Call *c, const char *p, size_t n)
{
    c->err_total += n;
    size_t cap = c->tail_cap;
    if (cap == 0) return;
    if (n >= cap) {
        memcpy(c->tail, p + n - cap, cap);
        c->tail_len = cap;
        return;
    }
    if (c->tail_len + n > cap) {
        size_t drop = c->tail_len + n - cap;
        memmove(c->tail, c->tail + drop, c->tail_len - drop);
        c->tail_len -= drop;
    }
    memcpy(c->tail + c->tail_len, p, n);
    c->tail_len += n;
}

static void line_emit(Call *c, HvdAgentStream stream)
{
    LineSplit *ls = &c->lines[stream];
    size_t n = ls->len;
    if (n && ls->buf[n - 1] == '\r') n--;
    ls->buf[n] = '\0';
    c->opts->on_line(c->opts->line_arg, stream, ls->buf, n, ls->cut);
    ls->len = 0;
    ls->cut = false;
}

/* Feeds bytes of one stream to the line callback (when there is one). */
static void lines_feed(Call *c, HvdAgentStream stream, const char *p, size_t n)
{
    if (!c->opts || !c->opts->on_line) return;
    LineSplit *ls = &c->lines[stream];
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        size_t room = HVD_AGENT_LINE_MAX - ls->len;
        if (take > room) ls->cut = true;
        memcpy(ls->buf + ls->len, p, take < room ? take : room);
        ls->len += take < room ? take : room;
        if (!nl) return;
        line_emit(c, stream);
        p = nl + 1;
        n -= take + 1;
    }
}

/* At EOF: a last line without its newline still counts. */
static void lines_end(Call *c, HvdAgentStream stream)
{
    if (c->opts && c->opts->on_line && (c->lines[stream].len || c->lines[stream].cut)) line_emit(c, stream);
}

static void kill_group(Call *c, int sig)
{
    /* The child is not reaped until the end of the call, so its pid (the
     * group id) cannot have been reused. */
    kill(-c->pid, sig);
    if (sig == SIGKILL) c->killed = true;
}

/* Drains fd (non-blocking) into stdout's buffer or stderr's tail. */
static void drain(Call *c, int *fd, bool is_stdout)
{
    char chunk[READ_CHUNK];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            if (!is_stdout) {
                tail_append(c, chunk, (size_t)n);
                lines_feed(c, HVD_AGENT_STDERR, chunk, (size_t)n);
                continue;
            }
            size_t room = (size_t)HVD_AGENT_MAX_OUTPUT + 1 - c->out.len;
            hvd_buf_append(&c->out, chunk, (size_t)n < room ? (size_t)n : room);
            lines_feed(c, HVD_AGENT_STDOUT, chunk, (size_t)n < room ? (size_t)n : room);
            if (c->out.len > (size_t)HVD_AGENT_MAX_OUTPUT) {
                c->overflow = true;
                if (!c->killed) kill_group(c, SIGKILL);
                agent_close_fd(fd);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        agent_close_fd(fd); /* EOF or a read error */
        lines_end(c, is_stdout ? HVD_AGENT_STDOUT : HVD_AGENT_STDERR);
        return;
    }
}

static void feed(Call *c)
{
    while (c->written < c->req_len) {
        ssize_t n = write(c->in_fd, c->req + c->written, c->req_len - c->written);
        if (n > 0) {
            c->written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        break; /* EPIPE (the child closed stdin or exited) or another error: stop feeding */
    }
    agent_close_fd(&c->in_fd);
}

static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* WNOWAIT: leave it a zombie so its process group id stays reserved. */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
    return si.si_pid == pid;
}

static int64_t min_wait(int64_t cur, int64_t at, int64_t now)
{
    int64_t d = at - now;
    if (d < 0) d = 0;
    return (cur < 0 || d < cur) ? d : cur;
}

static void run_loop(Call *c, const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, int64_t deadline)
{
    int64_t grace = cfg->kill_grace_ms >= 0 ? cfg->kill_grace_ms : HVD_AGENT_DEFAULT_GRACE_MS;
    int64_t eof_grace = cfg->eof_grace_ms >= 0 ? cfg->eof_grace_ms : HVD_AGENT_DEFAULT_EOF_GRACE_MS;
    const atomic_int *cancel = opts ? opts->cancel : NULL;
    for (;;) {
        int64_t now = now_ms();
        if (!c->exited && child_exited(c->pid)) {
            c->exited = true;
            c->exit_seen_at = now;
            agent_close_fd(&c->in_fd);
        }
        if (c->exited && c->out_fd < 0 && c->err_fd < 0) return;
        if (c->exited && now - c->exit_seen_at >= eof_grace) {
            /* A descendant outlived the agent and holds its pipes: take
             * what is already buffered, then end it. */
            if (c->out_fd >= 0) drain(c, &c->out_fd, true);
            if (c->err_fd >= 0) drain(c, &c->err_fd, false);
            c->eof_kill = true;
            kill_group(c, SIGKILL);
            return;
        }
        if (!c->timed_out && !c->cancelled && !c->exited) {
            if (cancel && atomic_load(cancel))
                c->cancelled = true;
            else if (now >= deadline)
                c->timed_out = true;
            if (c->timed_out || c->cancelled) {
                kill_group(c, SIGTERM);
                c->term_at = now;
                agent_close_fd(&c->in_fd);
            }
        }
        if ((c->timed_out || c->cancelled) && !c->killed && now >= c->term_at + grace) kill_group(c, SIGKILL);

        struct pollfd pf[4];
        int n = 0, i_in = -1, i_out = -1, i_err = -1;
        if (c->in_fd >= 0) {
            i_in = n;
            pf[n++] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT};
        }
        if (c->out_fd >= 0) {
            i_out = n;
            pf[n++] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
        }
        if (c->err_fd >= 0) {
            i_err = n;
            pf[n++] = (struct pollfd){.fd = c->err_fd, .events = POLLIN};
        }
        if (c->pidfd >= 0 && !c->exited) pf[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};

        int64_t wait = -1;
        if (!c->timed_out && !c->cancelled && !c->exited) wait = min_wait(wait, deadline, now);
        if ((c->timed_out || c->cancelled) && !c->killed) wait = min_wait(wait, c->term_at + grace, now);
        if (c->exited) wait = min_wait(wait, c->exit_seen_at + eof_grace, now);
        if (!c->exited && (c->pidfd < 0 || c->killed)) wait = min_wait(wait, now + NO_PIDFD_POLL_MS, now);
        if (cancel && !c->cancelled) wait = min_wait(wait, now + CANCEL_POLL_MS, now);
        if (wait > INT32_MAX) wait = INT32_MAX;

        int r = poll(pf, (nfds_t)n, (int)wait);
        if (r < 0) {
            if (errno == EINTR) continue;
            /* poll itself failed (should not happen): back off and rely on timers. */
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            if (pf[i_in].revents & (POLLERR | POLLHUP | POLLNVAL))
                agent_close_fd(&c->in_fd);
            else
                feed(c);
        }
        if (i_out >= 0 && pf[i_out].revents) drain(c, &c->out_fd, true);
        if (i_err >= 0 && pf[i_err].revents) drain(c, &c->err_fd, false);
    }
}

static void classify(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *operation, Call *c,
                     int64_t timeout_ms, HvdAgentResult *res)
{
    HvdNode *env = NULL;
    HvdAgentParse pr = c->overflow ? HVD_AGENT_PARSE_TOO_LARGE
                                   : hvd_agent_output_parse(c->out.data ? c->out.data : "", c->out.len, &env);
    if (pr == HVD_AGENT_PARSE_TOO_LARGE) {
        hvd_node_free(env);
        res->outcome = HVD_OUT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "agent wrote more than %d bytes to stdout", HVD_AGENT_MAX_OUTPUT);
        return;
    }
    if (pr == HVD_AGENT_PARSE_OK && env) {
        agent_classify_answer(cfg, opts, operation, env, res);
        return;
    }
    hvd_node_free(env);
    if (c->cancelled) {
        res->outcome = HVD_OUT_CANCELLED;
        snprintf(res->detail, sizeof res->detail, "agent call cancelled after %lld ms", (long long)res->elapsed_ms);
    } else if (c->timed_out) {
        res->outcome = HVD_OUT_TIMEOUT;
        snprintf(res->detail, sizeof res->detail, "agent did not answer within %lld ms", (long long)timeout_ms);
    } else if (res->exited && res->exit_code == 0) {
        res->outcome = HVD_OUT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "agent exited 0 without an answer on stdout");
    } else if (res->exited && res->exit_code == 255) {
        res->outcome = HVD_OUT_UNREACHABLE;
        snprintf(res->detail, sizeof res->detail, "agent exited 255 without an answer (host unreachable)");
    } else if (res->exited) {
        res->outcome = HVD_OUT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "agent exited with status %d without an answer", res->exit_code);
    } else {
        res->outcome = HVD_OUT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "agent was killed by signal %d without an answer", res->term_signal);
    }
}

HvdOutcome hvd_agent_call(const HvdAgentCfg *cfg, const char *host, const char *operation, const char *request,
                          size_t len, HvdAgentResult *res)
{
    return hvd_agent_call_opts(cfg, NULL, host, operation, request, len, res);
}

HvdOutcome hvd_agent_call_opts(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *host,
                               const char *operation, const char *request, size_t len, HvdAgentResult *res)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    int64_t t0 = now_ms();
    Call c = {
        .pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pidfd = -1, .req = request, .req_len = len, .opts = opts};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char why[256];
    bool ran = false;
    int64_t timeout_ms = (opts && opts->timeout_ms > 0) ? opts->timeout_ms : hvd_agent_timeout_ms(cfg, operation);
    c.tail_cap = cfg->stderr_cap;
    c.tail = hvd_xmalloc(c.tail_cap + 1);

    char **argv = hvd_agent_argv(cfg, host, why, sizeof why);
    char **envp = NULL;
    if (!argv) {
        res->outcome = HVD_OUT_BAD_CALL;
        snprintf(res->detail, sizeof res->detail, "%s", why);
        goto done;
    }

    /* A write to a pipe whose reader is gone raises SIGPIPE in this thread:
     * keep it pending instead of letting it kill the process. */
    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    if (!agent_make_pipe(in) || !agent_make_pipe(out) || !agent_make_pipe(err)) {
        res->outcome = HVD_OUT_NOT_SENT;
        snprintf(res->detail, sizeof res->detail, "cannot create pipes for the agent: %s", strerror(errno));
        goto unblock;
    }
    envp = hvd_agent_env(cfg);
    agent_live_spawn_begin(); /* the reaper must not meet this agent before it is listed */
    int rc = agent_spawn(argv, envp, in, out, err, &c.pid);
    agent_live_spawn_end(rc == 0 ? c.pid : 0);
    agent_close_fd(&in[0]);
    agent_close_fd(&out[1]);
    agent_close_fd(&err[1]);
    c.in_fd = in[1];
    c.out_fd = out[0];
    c.err_fd = err[0];
    in[1] = out[0] = err[0] = -1;
    if (rc != 0) {
        res->outcome = HVD_OUT_NOT_SENT;
        snprintf(res->detail, sizeof res->detail, "cannot run agent '%.*s': %s",
                 (int)hvd_utf8_truncate(argv[0], strlen(argv[0]), 100), argv[0], strerror(rc));
        goto unblock;
    }
    c.pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0); /* O_CLOEXEC by definition; -1 on old kernels */
    agent_set_nonblock(c.in_fd);
    agent_set_nonblock(c.out_fd);
    agent_set_nonblock(c.err_fd);
    if (len == 0) agent_close_fd(&c.in_fd);

    ran = true;
    run_loop(&c, cfg, opts, t0 + timeout_ms);

    int status = 0;
    while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {}
    agent_live_remove(c.pid);
    if (WIFEXITED(status)) {
        res->exited = true;
        res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->term_signal = WTERMSIG(status);
    }

unblock:
    agent_close_fd(&c.in_fd);
    agent_close_fd(&c.out_fd);
    agent_close_fd(&c.err_fd);
    agent_close_fd(&c.pidfd);
    for (int i = 0; i < 2; i++) {
        agent_close_fd(&in[i]);
        agent_close_fd(&out[i]);
        agent_close_fd(&err[i]);
    }
    if (!sigismember(&old_mask, SIGPIPE)) {
        sigset_t pending;
        struct timespec zero = {0, 0};
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

done:
    res->elapsed_ms = now_ms() - t0;
    res->timed_out = c.timed_out;
    res->killed = c.killed;
    res->output_overflow = c.overflow;
    res->stdout_bytes = c.out.len;
    res->stderr_tail = agent_clean_tail(c.tail, c.tail_len, c.err_total > c.tail_len, opts);
    explicit_bzero(c.tail, c.tail_len);
    free(c.tail);
    if (ran) classify(cfg, opts, operation, &c, timeout_ms, res);
    if (c.out.data) explicit_bzero(c.out.data, c.out.len); /* the agent may have echoed a secret */
    hvd_buf_free(&c.out);
    hvd_agent_argv_free(argv);
    free(envp);
    if (ran) hvd_agent_reap_orphans_now_and_then();
    return res->outcome;
}
