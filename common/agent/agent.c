/* The host-agent transport: configuration, posix_spawn in a process group,
 * a poll loop over the child's pipes with caps and deadlines, and the §6
 * classification of what came back. */
#include "agent.h"
#include "agent_priv.h"
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

#define HOST_PLACEHOLDER "{host}"
#define READ_CHUNK 16384
#define NO_PIDFD_POLL_MS 10 /* how often the exit is checked when pidfd_open is unavailable */
#define CANCEL_POLL_MS 50

static const HvdAgentTimeout DEFAULT_TIMEOUTS[] = {
    {"vm.create", 300 * 1000},     {"disk.create", 1800 * 1000}, {"nic.create", 120 * 1000},
    {"vm.initialize", 900 * 1000}, {"vm.delete", 300 * 1000},
};

/* ---- configuration ---- */

void hvd_agent_cfg_init(HvdAgentCfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->timeouts, DEFAULT_TIMEOUTS, sizeof DEFAULT_TIMEOUTS);
    cfg->n_timeouts = sizeof DEFAULT_TIMEOUTS / sizeof DEFAULT_TIMEOUTS[0];
    cfg->default_timeout_ms = HVD_AGENT_DEFAULT_TIMEOUT_MS;
    cfg->kill_grace_ms = HVD_AGENT_DEFAULT_GRACE_MS;
    cfg->eof_grace_ms = HVD_AGENT_DEFAULT_EOF_GRACE_MS;
    cfg->stderr_cap = HVD_AGENT_DEFAULT_STDERR_CAP;
    hvd_agent_cfg_set_retryable(cfg, HVD_AGENT_DEFAULT_RETRYABLE);
}

void hvd_agent_cfg_free(HvdAgentCfg *cfg)
{
    if (!cfg) return;
    agent_free_words(cfg->argv, cfg->argc);
    agent_free_words(cfg->retryable, cfg->n_retryable);
    agent_free_words(cfg->env_pass, cfg->n_env_pass);
    memset(cfg, 0, sizeof *cfg);
}

bool hvd_agent_cfg_set_command(HvdAgentCfg *cfg, const char *tmpl, char *err, size_t errlen)
{
    size_t n = 0;
    char **v = tmpl ? agent_split_words(tmpl, " \t", &n) : NULL;
    if (n == 0) {
        agent_free_words(v, n);
        snprintf(err, errlen,
                 "the agent command is empty: set HVD_AGENT_CMD to the agent's argv, e.g. "
                 "'ssh -T {host} pwsh -NoProfile -File C:/ProgramData/Aether-V/Main-NewProtocol.ps1'");
        return false;
    }
    agent_free_words(cfg->argv, cfg->argc);
    cfg->argv = v;
    cfg->argc = n;
    return true;
}

bool hvd_agent_cfg_set_timeout(HvdAgentCfg *cfg, const char *operation, int64_t ms)
{
    if (ms <= 0) return false;
    if (!operation || strcmp(operation, "*") == 0) {
        cfg->default_timeout_ms = ms;
        return true;
    }
    if (!*operation || strlen(operation) >= sizeof cfg->timeouts[0].op) return false;
    for (size_t i = 0; i < cfg->n_timeouts; i++) {
        if (strcmp(cfg->timeouts[i].op, operation) == 0) {
            cfg->timeouts[i].ms = ms;
            return true;
        }
    }
    if (cfg->n_timeouts == HVD_AGENT_MAX_TIMEOUTS) return false;
    snprintf(cfg->timeouts[cfg->n_timeouts].op, sizeof cfg->timeouts[0].op, "%s", operation);
    cfg->timeouts[cfg->n_timeouts++].ms = ms;
    return true;
}

/* "300", "2.5" (seconds) or "500ms". */
static bool parse_duration_ms(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0) return false;
    double ms;
    if (strcmp(end, "ms") == 0)
        ms = v;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        ms = v * 1000.0;
    else
        return false;
    if (ms < 1 || ms > 7.0 * 24 * 3600 * 1000) return false;
    *out = (int64_t)ms;
    return true;
}

bool hvd_agent_cfg_parse_timeouts(HvdAgentCfg *cfg, const char *list, char *err, size_t errlen)
{
    HvdAgentCfg tmp = *cfg; /* shallow: only the timeout fields are touched */
    size_t n = 0;
    char **items = agent_split_words(list ? list : "", ", \t", &n);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char *eq = strchr(items[i], '=');
        int64_t ms = 0;
        if (!eq || eq == items[i] || !parse_duration_ms(eq + 1, &ms)) {
            snprintf(err, errlen, "bad agent timeout '%s': want operation=seconds (or =NNNms)", items[i]);
            ok = false;
            break;
        }
        *eq = '\0';
        if (!hvd_agent_cfg_set_timeout(&tmp, items[i], ms)) {
            snprintf(err, errlen, "bad agent timeout for '%s'", items[i]);
            ok = false;
        }
    }
    agent_free_words(items, n);
    if (ok) {
        memcpy(cfg->timeouts, tmp.timeouts, sizeof cfg->timeouts);
        cfg->n_timeouts = tmp.n_timeouts;
        cfg->default_timeout_ms = tmp.default_timeout_ms;
    }
    return ok;
}

void hvd_agent_cfg_set_retryable(HvdAgentCfg *cfg, const char *csv)
{
    agent_free_words(cfg->retryable, cfg->n_retryable);
    cfg->retryable = agent_split_words(csv ? csv : "", ", \t", &cfg->n_retryable);
}

int64_t hvd_agent_timeout_ms(const HvdAgentCfg *cfg, const char *operation)
{
    for (size_t i = 0; operation && i < cfg->n_timeouts; i++)
        if (strcmp(cfg->timeouts[i].op, operation) == 0) return cfg->timeouts[i].ms;
    return cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : HVD_AGENT_DEFAULT_TIMEOUT_MS;
}

bool hvd_agent_code_retryable(const HvdAgentCfg *cfg, const char *code)
{
    for (size_t i = 0; code && i < cfg->n_retryable; i++)
        if (strcmp(cfg->retryable[i], code) == 0) return true;
    return false;
}

/* ---- argv ---- */

static char *substitute(const char *word, const char *host)
{
    HvdBuf b = {0};
    const char *p = word, *hit;
    while ((hit = strstr(p, HOST_PLACEHOLDER)) != NULL) {
        hvd_buf_append(&b, p, (size_t)(hit - p));
        hvd_buf_puts(&b, host);
        p = hit + strlen(HOST_PLACEHOLDER);
    }
    hvd_buf_puts(&b, p);
    return hvd_buf_steal(&b);
}

char **hvd_agent_argv(const HvdAgentCfg *cfg, const char *host, char *err, size_t errlen)
{
    if (!cfg->argv || cfg->argc == 0) {
        snprintf(err, errlen, "no agent command is configured");
        return NULL;
    }
    bool placeholder = false;
    for (size_t i = 0; i < cfg->argc; i++)
        if (strstr(cfg->argv[i], HOST_PLACEHOLDER)) placeholder = true;
    if (host && !hvd_hostname_valid(host)) {
        snprintf(err, errlen, "refusing to run the agent for host '%.80s': not a valid host name", host);
        return NULL;
    }
    if (!host && placeholder) {
        snprintf(err, errlen, "the agent command has {host} but no host was given");
        return NULL;
    }
    char **v = hvd_xcalloc(cfg->argc + 1, sizeof *v);
    for (size_t i = 0; i < cfg->argc; i++) v[i] = host ? substitute(cfg->argv[i], host) : hvd_xstrdup(cfg->argv[i]);
    v[cfg->argc] = NULL;
    return v;
}

void hvd_agent_argv_free(char **argv)
{
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

/* ---- outcome names ---- */

const char *hvd_agent_outcome_name(HvdAgentOutcome o)
{
    switch (o) {
    case HVD_AGENT_SUCCESS: return "success";
    case HVD_AGENT_AGENT_ERROR: return "agent_error";
    case HVD_AGENT_RETRYABLE: return "retryable";
    case HVD_AGENT_PROTOCOL_ERROR: return "protocol_error";
    case HVD_AGENT_TIMEOUT: return "timeout";
    case HVD_AGENT_TRANSPORT: return "transport";
    case HVD_AGENT_UNREACHABLE: return "unreachable";
    case HVD_AGENT_CANCELLED: return "cancelled";
    case HVD_AGENT_BAD_CALL: return "bad_call";
    }
    return "unknown";
}

bool hvd_agent_outcome_transient(HvdAgentOutcome o)
{
    return o == HVD_AGENT_RETRYABLE || o == HVD_AGENT_TIMEOUT || o == HVD_AGENT_TRANSPORT ||
           o == HVD_AGENT_UNREACHABLE || o == HVD_AGENT_CANCELLED;
}

void hvd_agent_result_free(HvdAgentResult *res)
{
    if (!res) return;
    hvd_node_free(res->envelope);
    free(res->stderr_tail);
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
}

/* ---- the call ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the pipe ends clear of 0-2 so that the dup2s in the child cannot
 * clobber one another when the caller runs with a standard fd closed. */
static int lift_fd(int fd)
{
    if (fd < 0 || fd > 2) return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

static bool make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    p[0] = lift_fd(p[0]);
    p[1] = lift_fd(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        if (p[0] >= 0) close(p[0]);
        if (p[1] >= 0) close(p[1]);
        return false;
    }
    return true;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The state of one call while its child runs. */
typedef struct {
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
                continue;
            }
            size_t room = (size_t)HVD_AGENT_MAX_OUTPUT + 1 - c->out.len;
            hvd_buf_append(&c->out, chunk, (size_t)n < room ? (size_t)n : room);
            if (c->out.len > (size_t)HVD_AGENT_MAX_OUTPUT) {
                c->overflow = true;
                if (!c->killed) kill_group(c, SIGKILL);
                close_fd(fd);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close_fd(fd); /* EOF or a read error */
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
    close_fd(&c->in_fd);
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
            close_fd(&c->in_fd);
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
                close_fd(&c->in_fd);
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
                close_fd(&c->in_fd);
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
    char why[160];
    if (pr == HVD_AGENT_PARSE_OK && env) {
        hvd_agent_answer_clean(env, opts ? opts->secrets : NULL, opts ? opts->n_secrets : 0);
        if (!hvd_agent_answer_check(env, operation, opts ? opts->correlation_id : NULL, why, sizeof why)) {
            /* not an answer to this request: nothing of it is used */
            hvd_node_free(env);
            res->outcome = HVD_AGENT_PROTOCOL_ERROR;
            snprintf(res->detail, sizeof res->detail, "%s", why);
            return;
        }
    }
    if (pr == HVD_AGENT_PARSE_TOO_LARGE) {
        hvd_node_free(env);
        res->outcome = HVD_AGENT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "agent wrote more than %d bytes to stdout", HVD_AGENT_MAX_OUTPUT);
        return;
    }
    if (pr == HVD_AGENT_PARSE_OK && env) {
        res->envelope = env;
        res->status = hvd_node_get_str(env, "status");
        res->message = hvd_node_get_str(env, "message");
        res->code = hvd_node_get_str(env, "code");
        res->correlation_id = hvd_node_get_str(env, "correlation_id");
        res->data = hvd_node_get(env, "data");
        res->logs = hvd_node_get(env, "logs");
        const char *st = res->status ? res->status : "";
        if (strcmp(st, "success") == 0) {
            res->outcome = HVD_AGENT_SUCCESS;
            snprintf(res->detail, sizeof res->detail, "agent answered success");
        } else if (strcmp(st, "error") == 0 || strcmp(st, "partial") == 0) {
            res->outcome = hvd_agent_code_retryable(cfg, res->code) ? HVD_AGENT_RETRYABLE : HVD_AGENT_AGENT_ERROR;
            const char *m = res->message ? res->message : "";
            const char *code = res->code ? res->code : "none";
            snprintf(res->detail, sizeof res->detail, "agent answered %s (code %.*s): %.*s", st,
                     (int)hvd_utf8_truncate(code, strlen(code), 40), code, (int)hvd_utf8_truncate(m, strlen(m), 160),
                     m);
        } else {
            res->outcome = HVD_AGENT_PROTOCOL_ERROR;
            snprintf(res->detail, sizeof res->detail, "agent answered an unknown status '%.*s'",
                     (int)hvd_utf8_truncate(st, strlen(st), 40), st);
        }
        return;
    }
    hvd_node_free(env);
    if (c->cancelled) {
        res->outcome = HVD_AGENT_CANCELLED;
        snprintf(res->detail, sizeof res->detail, "agent call cancelled after %lld ms", (long long)res->elapsed_ms);
    } else if (c->timed_out) {
        res->outcome = HVD_AGENT_TIMEOUT;
        snprintf(res->detail, sizeof res->detail, "agent did not answer within %lld ms", (long long)timeout_ms);
    } else if (res->exited && res->exit_code == 0) {
        res->outcome = HVD_AGENT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "agent exited 0 without an answer on stdout");
    } else if (res->exited && res->exit_code == 255) {
        res->outcome = HVD_AGENT_UNREACHABLE;
        snprintf(res->detail, sizeof res->detail, "agent exited 255 without an answer (host unreachable)");
    } else if (res->exited) {
        res->outcome = HVD_AGENT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "agent exited with status %d without an answer", res->exit_code);
    } else {
        res->outcome = HVD_AGENT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "agent was killed by signal %d without an answer", res->term_signal);
    }
}

static int spawn(Call *c, char **argv, char **envp, int in[2], int out[2], int err[2])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* Only an ignored disposition survives exec; give the agent defaults. */
    static const int DFL[] = {SIGPIPE, SIGCHLD, SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR1,
                              SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ};
    for (size_t i = 0; i < sizeof DFL / sizeof DFL[0]; i++) sigaddset(&dfl, DFL[i]);
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &dfl);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
        /* Every other descriptor of the caller stays out of the agent, even
     * one a library opened without O_CLOEXEC. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (!rc) rc = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* ---- making what the agent wrote safe to store ---- */

/* The stderr tail: from a character boundary when it was cut, no invalid
 * UTF-8 or NUL, the secrets masked (also one cut at the tail's start). */
static char *clean_tail(const char *tail, size_t len, bool cut, const HvdAgentCallOpts *opts)
{
    size_t from = 0; /* a cut tail may begin with the rest of a character: skip it */
    if (cut)
        while (from < len && from < 3 && ((unsigned char)tail[from] & 0xC0) == 0x80) from++;
    HvdBuf clean = {0}, masked = {0};
    hvd_utf8_sanitize(tail + from, len - from, HVD_UTF8_NUL, &clean);
    hvd_mask_secrets(clean.data, clean.len, opts ? opts->secrets : NULL, opts ? opts->n_secrets : 0,
                     cut ? HVD_MASK_CUT_START : 0, &masked);
    explicit_bzero(clean.data, clean.len);
    hvd_buf_free(&clean);
    return hvd_buf_steal(&masked);
}

HvdAgentOutcome hvd_agent_call(const HvdAgentCfg *cfg, const char *host, const char *operation, const char *request,
                               size_t len, HvdAgentResult *res)
{
    return hvd_agent_call_opts(cfg, NULL, host, operation, request, len, res);
}

HvdAgentOutcome hvd_agent_call_opts(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *host,
                                    const char *operation, const char *request, size_t len, HvdAgentResult *res)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    int64_t t0 = now_ms();
    Call c = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pidfd = -1, .req = request, .req_len = len};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char why[256];
    bool ran = false;
    int64_t timeout_ms = (opts && opts->timeout_ms > 0) ? opts->timeout_ms : hvd_agent_timeout_ms(cfg, operation);
    c.tail_cap = cfg->stderr_cap;
    c.tail = hvd_xmalloc(c.tail_cap + 1);

    char **argv = hvd_agent_argv(cfg, host, why, sizeof why);
    char **envp = NULL;
    if (!argv) {
        res->outcome = HVD_AGENT_BAD_CALL;
        snprintf(res->detail, sizeof res->detail, "%s", why);
        goto done;
    }

    /* A write to a pipe whose reader is gone raises SIGPIPE in this thread:
     * keep it pending instead of letting it kill the process. */
    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    if (!make_pipe(in) || !make_pipe(out) || !make_pipe(err)) {
        res->outcome = HVD_AGENT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "cannot create pipes for the agent: %s", strerror(errno));
        goto unblock;
    }
    envp = hvd_agent_env(cfg);
    agent_live_spawn_begin(); /* the reaper must not meet this agent before it is listed */
    int rc = spawn(&c, argv, envp, in, out, err);
    agent_live_spawn_end(rc == 0 ? c.pid : 0);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    c.in_fd = in[1];
    c.out_fd = out[0];
    c.err_fd = err[0];
    in[1] = out[0] = err[0] = -1;
    if (rc != 0) {
        res->outcome = HVD_AGENT_TRANSPORT;
        snprintf(res->detail, sizeof res->detail, "cannot run agent '%.*s': %s",
                 (int)hvd_utf8_truncate(argv[0], strlen(argv[0]), 100), argv[0], strerror(rc));
        goto unblock;
    }
    c.pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0); /* O_CLOEXEC by definition; -1 on old kernels */
    set_nonblock(c.in_fd);
    set_nonblock(c.out_fd);
    set_nonblock(c.err_fd);
    if (len == 0) close_fd(&c.in_fd);

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
    close_fd(&c.in_fd);
    close_fd(&c.out_fd);
    close_fd(&c.err_fd);
    close_fd(&c.pidfd);
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
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
    res->stderr_tail = clean_tail(c.tail, c.tail_len, c.err_total > c.tail_len, opts);
    explicit_bzero(c.tail, c.tail_len);
    free(c.tail);
    if (ran) classify(cfg, opts, operation, &c, timeout_ms, res);
    if (c.out.data) explicit_bzero(c.out.data, c.out.len); /* the agent may have echoed a secret */
    hvd_buf_free(&c.out);
    hvd_agent_argv_free(argv);
    free(envp);
    if (ran) hvd_agent_reap_orphans();
    return res->outcome;
}
