/* The host-agent transport (contract §6), process half: runs HVD_AGENT_CMD
 * as an argv (no shell) in its own process group, writes the JobRequest line,
 * reads stdout and stderr with caps, enforces the per-operation timeout with
 * SIGTERM then SIGKILL to the whole group, and classifies the outcome. The
 * pure half (request encoding, output parsing) is agentproto.h.
 *
 * Thread safety: hvd_agent_call may run in many threads at once with the
 * same (read-only) config. It never reaps a child it did not start
 * (waitpid on its own pid only) except the leftovers of agents re-parented to
 * a subreaper (hvd_agent_become_subreaper), never changes signal
 * dispositions, and blocks SIGPIPE only in the calling thread for the
 * duration of the call. Do not set SIGCHLD to SIG_IGN in a process that uses
 * it (children would be reaped by the kernel and their exit status lost).
 *
 * The agent's environment is explicit, not the caller's (which holds the
 * database and broker URLs): PATH (default /usr/local/bin:/usr/bin:/bin),
 * HOME and SSH_AUTH_SOCK when set, LANG=C.UTF-8 and LC_ALL=C.UTF-8, every
 * HVD_SIM_* variable (the simulated host's faults), the sanitizer runtimes'
 * ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS, and the names listed with
 * hvd_agent_cfg_set_env_pass (HVD_AGENT_ENV_PASS). Never passed, even when
 * listed: HVD_PG_DSN*, HVD_AMQP_URL* and any name containing PASS, SECRET,
 * KEY, TOKEN or CREDENTIAL (case-insensitively).
 *
 * What the agent writes is made safe to store where it enters (the call's
 * result): its answer is read even when not UTF-8 (U+FFFD), every string of
 * it and the stderr tail hold no NUL and no invalid UTF-8, the secrets given
 * in HvdAgentCallOpts are masked in all of them (mask.h), and the message is
 * cut to HVD_AGENT_MESSAGE_MAX bytes on a character boundary. */
#ifndef HVD_AGENT_H
#define HVD_AGENT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node.h"
#include "plan.h"
#include "status.h"

#define HVD_AGENT_DEFAULT_TIMEOUT_MS (60 * 1000) /* an operation without its own timeout */
#define HVD_AGENT_DEFAULT_GRACE_MS 2000          /* SIGTERM -> SIGKILL */
#define HVD_AGENT_DEFAULT_EOF_GRACE_MS 200       /* after the child exits, wait this long for EOF */
#define HVD_AGENT_DEFAULT_STDERR_CAP 4096        /* bytes of stderr kept (the last ones) */
#define HVD_AGENT_DEFAULT_RETRYABLE "HOST_BUSY,TRANSIENT"
#define HVD_AGENT_MAX_TIMEOUTS 16

typedef struct {
    char op[32];
    int64_t ms;
} HvdAgentTimeout;

typedef struct {
    char **argv; /* the template words, NULL-terminated; NULL until set */
    size_t argc;
    HvdAgentTimeout timeouts[HVD_AGENT_MAX_TIMEOUTS];
    size_t n_timeouts;
    int64_t default_timeout_ms;
    char **retryable; /* agent codes that are transient */
    size_t n_retryable;
    char **retryable_messages; /* case-insensitive parts of a message that make an error transient */
    size_t n_retryable_messages;
    int64_t kill_grace_ms; /* after SIGTERM, before SIGKILL (0 = at once; < 0 = default) */
    int64_t eof_grace_ms;  /* after the child exited, while a grandchild holds the pipes (< 0 = default) */
    size_t stderr_cap;     /* bytes of the stderr tail kept */
    char **env_pass;       /* more environment names given to the agent (HVD_AGENT_ENV_PASS) */
    size_t n_env_pass;
} HvdAgentCfg;

/* Defaults: no command yet; timeouts vm.create 300 s, disk.create 1800 s,
 * nic.create 120 s, vm.initialize 2400 s (above Main-NewProtocol.ps1's own 2100 s wait), vm.delete 300 s, other 60 s;
 * retryable codes HOST_BUSY, TRANSIENT; grace 2 s; EOF grace 200 ms;
 * stderr tail 4 KiB. */
void hvd_agent_cfg_init(HvdAgentCfg *cfg);
void hvd_agent_cfg_free(HvdAgentCfg *cfg); /* NULL-safe; leaves cfg re-initialisable */

/* Splits tmpl into argv words as hvd_argv_split does (spaces and tabs;
 * '...' and "..." quoting; "{host}" stays a placeholder, replaced per call). Returns false with a one-line reason in
 * err when the template is NULL or has no word. */
bool hvd_agent_cfg_set_command(HvdAgentCfg *cfg, const char *tmpl, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Timeout of one operation (NULL or "*" = the default for the others); ms > 0. */
bool hvd_agent_cfg_set_timeout(HvdAgentCfg *cfg, const char *operation, int64_t ms);
/* "vm.create=300,disk.create=1800,*=60": seconds (decimals allowed) or a
 * value with an "ms" suffix. Returns false with err set on a bad list
 * (cfg unchanged then). */
bool hvd_agent_cfg_parse_timeouts(HvdAgentCfg *cfg, const char *list, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Replaces the extra environment names passed to the agent with a comma list
 * (HVD_AGENT_ENV_PASS; empty = none). Returns false with err set, cfg
 * unchanged, when a name is not a variable name or may never be passed. */
bool hvd_agent_cfg_set_env_pass(HvdAgentCfg *cfg, const char *csv, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The environment the agent gets, as a NULL-terminated vector of "NAME=value"
 * (the strings borrowed from the process's environment or static; free only
 * the vector). */
char **hvd_agent_env(const HvdAgentCfg *cfg);
/* Replaces the retryable codes with a comma list (empty = none). */
void hvd_agent_cfg_set_retryable(HvdAgentCfg *cfg, const char *csv);
/* Replaces the retryable message parts (HVD_AGENT_RETRYABLE_MESSAGES; §6a):
 * an error answer whose message contains one (case-insensitively) is
 * transient whatever its code. */
void hvd_agent_cfg_set_retryable_messages(HvdAgentCfg *cfg, const char *const *texts, size_t n);
bool hvd_agent_message_retryable(const HvdAgentCfg *cfg, const char *message);
int64_t hvd_agent_timeout_ms(const HvdAgentCfg *cfg, const char *operation);
bool hvd_agent_code_retryable(const HvdAgentCfg *cfg, const char *code);

/* The argv for host: "{host}" replaced in every word (also inside a word, as
 * in "admin@{host}"). host must pass hvd_hostname_valid (a NULL host is
 * allowed only when the template has no placeholder). Returns a
 * NULL-terminated malloc'd vector (free with hvd_agent_argv_free), or NULL
 * with err set. */
char **hvd_agent_argv(const HvdAgentCfg *cfg, const char *host, char *err, size_t errlen);
void hvd_agent_argv_free(char **argv);

#define HVD_AGENT_LINE_MAX 4096 /* bytes of one output line passed to on_line; the rest of a longer line is dropped */

typedef enum { HVD_AGENT_STDOUT = 0, HVD_AGENT_STDERR = 1 } HvdAgentStream;

/* (v1.1) Called in the calling thread, while the agent runs, for each
 * complete line it prints on stdout or stderr (and a last line without a
 * newline at EOF): line is len bytes without the newline or a trailing CR,
 * NUL-terminated, at most HVD_AGENT_LINE_MAX bytes (truncated says a longer
 * line was cut). Borrowed for the call only. It must not block for long: the
 * agent's pipes are not read meanwhile. */
typedef void (*HvdAgentLineFn)(void *arg, HvdAgentStream stream, const char *line, size_t len, bool truncated);

typedef struct {
    int64_t timeout_ms;       /* > 0 overrides the operation's timeout */
    const atomic_int *cancel; /* when non-NULL and raised, the call is stopped like a timeout */
    /* The job's secret values, masked in everything the agent wrote (its
     * answer's strings and the stderr tail) before the call returns. */
    const char *const *secrets;
    size_t n_secrets;
    /* The request's correlation_id: an answer carrying another one is an
     * agent_protocol_error (NULL = not checked). */
    const char *correlation_id;
    HvdAgentLineFn on_line; /* (v1.1) optional: live output lines */
    void *line_arg;         /* passed to on_line */
} HvdAgentCallOpts;

typedef struct {
    HvdOutcome outcome;
    HvdNode *envelope; /* the parsed answer (owned), NULL when there was none */
    /* Borrowed from envelope (NULL when absent): */
    const char *status, *message, *code, *correlation_id;
    const HvdNode *data, *logs;
    bool exited;          /* the child exited normally ... */
    int exit_code;        /* ... with this status (else -1) */
    int term_signal;      /* or was killed by this signal (else 0) */
    bool timed_out;       /* the deadline passed (we sent SIGTERM) */
    bool killed;          /* we sent SIGKILL to the group */
    bool output_overflow; /* stdout passed HVD_AGENT_MAX_OUTPUT */
    int64_t elapsed_ms;
    size_t stdout_bytes; /* bytes of stdout read */
    char *stderr_tail;   /* the last stderr_cap bytes (NUL-terminated, may be ""), owned */
    char detail[256];    /* one human sentence on what happened, e.g. "agent exited with status 3 without an answer" */
} HvdAgentResult;

/* Runs one agent call: the configured argv for host, request (len bytes, the
 * JobRequest line) on stdin, the outcome classified per §6 into *res (always
 * filled; free with hvd_agent_result_free). A valid envelope wins over the
 * exit status. Returns res->outcome. */
HvdOutcome hvd_agent_call(const HvdAgentCfg *cfg, const char *host, const char *operation, const char *request,
                          size_t len, HvdAgentResult *res);
HvdOutcome hvd_agent_call_opts(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *host,
                               const char *operation, const char *request, size_t len, HvdAgentResult *res);
void hvd_agent_result_free(HvdAgentResult *res); /* NULL-safe */

/* Makes the calling process a child subreaper (PR_SET_CHILD_SUBREAPER): what
 * an agent leaves running, even in its own session (setsid escapes the
 * process-group kill), is re-parented to this process when its parent dies,
 * and is then killed and reaped by hvd_agent_reap_orphans. Returns 0, or -1
 * with errno. */
int hvd_agent_become_subreaper(void);
/* In a subreaper: kills (SIGKILL, with its process group when it leads one)
 * and reaps every child that is not an agent a call is running: leftovers
 * re-parented here. Returns how many it found; 0 (nothing done) when the
 * process is not a subreaper. Every call runs it at its end; run it also now
 * and then for leftovers whose own parent dies later. */
int hvd_agent_reap_orphans(void);
/* The same, unless a scan ran less than a second ago (then 0). */
int hvd_agent_reap_orphans_now_and_then(void);

#endif
