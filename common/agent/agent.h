/* The host-agent transport (contract §6), process half: runs HVD_AGENT_CMD
 * as an argv (no shell) in its own process group, writes the JobRequest line,
 * reads stdout and stderr with caps, enforces the per-operation timeout with
 * SIGTERM then SIGKILL to the whole group, and classifies the outcome. The
 * pure half (request encoding, output parsing) is agentproto.h.
 *
 * Thread safety: hvd_agent_call may run in many threads at once with the
 * same (read-only) config. It never reaps a child it did not start
 * (waitpid on its own pid only), never changes signal dispositions, and
 * blocks SIGPIPE only in the calling thread for the duration of the call.
 * Do not set SIGCHLD to SIG_IGN in a process that uses it (children would
 * be reaped by the kernel and their exit status lost). */
#ifndef HVD_AGENT_H
#define HVD_AGENT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node.h"

#define HVD_AGENT_DEFAULT_TIMEOUT_MS (60 * 1000) /* an operation without its own timeout */
#define HVD_AGENT_DEFAULT_GRACE_MS 2000          /* SIGTERM -> SIGKILL */
#define HVD_AGENT_DEFAULT_EOF_GRACE_MS 200       /* after the child exits, wait this long for EOF */
#define HVD_AGENT_DEFAULT_STDERR_CAP 4096        /* bytes of stderr kept (the last ones) */
#define HVD_AGENT_DEFAULT_RETRYABLE "HOST_BUSY,TRANSIENT"
#define HVD_AGENT_MAX_TIMEOUTS 16

typedef enum {
    HVD_AGENT_SUCCESS = 0,    /* envelope status success */
    HVD_AGENT_AGENT_ERROR,    /* envelope error/partial with a permanent (or no) code */
    HVD_AGENT_RETRYABLE,      /* envelope error/partial with a retryable code: transient */
    HVD_AGENT_PROTOCOL_ERROR, /* exit 0 without a valid envelope, or over 1 MiB of output: permanent */
    HVD_AGENT_TIMEOUT,        /* deadline passed without an envelope: transient */
    HVD_AGENT_TRANSPORT,      /* non-zero exit or signal without an envelope, spawn failure: transient */
    HVD_AGENT_UNREACHABLE,    /* exit 255 without an envelope (ssh could not reach the host): transient */
    HVD_AGENT_CANCELLED,      /* the caller's cancel flag was raised: transient */
    HVD_AGENT_BAD_CALL,       /* invalid host or no command: nothing was run; permanent */
} HvdAgentOutcome;

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
    int64_t kill_grace_ms; /* after SIGTERM, before SIGKILL (0 = at once; < 0 = default) */
    int64_t eof_grace_ms;  /* after the child exited, while a grandchild holds the pipes (< 0 = default) */
    size_t stderr_cap;     /* bytes of the stderr tail kept */
} HvdAgentCfg;

/* Defaults: no command yet; timeouts vm.create 300 s, disk.create 1800 s,
 * nic.create 120 s, vm.initialize 900 s, vm.delete 300 s, other 60 s;
 * retryable codes HOST_BUSY, TRANSIENT; grace 2 s; EOF grace 200 ms;
 * stderr tail 4 KiB. */
void hvd_agent_cfg_init(HvdAgentCfg *cfg);
void hvd_agent_cfg_free(HvdAgentCfg *cfg); /* NULL-safe; leaves cfg re-initialisable */

/* Splits tmpl on spaces and tabs into argv words ("{host}" stays a
 * placeholder, replaced per call). Returns false with a one-line reason in
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
/* Replaces the retryable codes with a comma list (empty = none). */
void hvd_agent_cfg_set_retryable(HvdAgentCfg *cfg, const char *csv);
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
    HvdAgentLineFn on_line;   /* (v1.1) optional: live output lines */
    void *line_arg;           /* passed to on_line */
} HvdAgentCallOpts;

typedef struct {
    HvdAgentOutcome outcome;
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
HvdAgentOutcome hvd_agent_call(const HvdAgentCfg *cfg, const char *host, const char *operation, const char *request,
                               size_t len, HvdAgentResult *res);
HvdAgentOutcome hvd_agent_call_opts(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *host,
                                    const char *operation, const char *request, size_t len, HvdAgentResult *res);
void hvd_agent_result_free(HvdAgentResult *res); /* NULL-safe */

/* "success", "agent_error", "retryable", "protocol_error", "timeout",
 * "transport", "unreachable", "cancelled", "bad_call". */
const char *hvd_agent_outcome_name(HvdAgentOutcome o);
/* True for the outcomes retried with the same idempotency key (RETRYABLE,
 * TIMEOUT, TRANSPORT, UNREACHABLE, CANCELLED). */
bool hvd_agent_outcome_transient(HvdAgentOutcome o);

#endif
