/* The worker's and the CLI's settings: one table of rows (name, type, place in
 * HvdConfig, default, help), filled from defaults, an optional KEY=VALUE
 * config file, the environment and --flags, in that order of precedence.
 *
 * Every row is an environment variable HVD_X_Y and a flag --x-y. Flags take
 * "--x-y VALUE" or "--x-y=VALUE"; a boolean flag also takes "--x-y" (true)
 * and "--no-x-y" (false). HVD_AMQP_URL_FILE / HVD_PG_DSN_FILE, when set, are
 * read and their trimmed content replaces HVD_AMQP_URL / HVD_PG_DSN whatever
 * layer set those. The config file (HVD_CONFIG_FILE or --config-file) holds
 * KEY=VALUE lines: '#' comments, blank lines, an optional "export ", values
 * optionally in single or double quotes; an unknown HVD_* key is an error,
 * other keys are ignored. Unknown HVD_* environment variables are ignored
 * (HVD_SIM_*, HVD_TEST_* belong to other programs).
 *
 * Durations are whole seconds, optionally with a suffix s, m, h or d
 * ("604800" = "7d"). */
#ifndef HVD_CONFIG_H
#define HVD_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "log.h"

#define HVD_CFG_MAX_RETRY_DELAYS 16
#define HVD_CFG_MAX_TIMEOUTS 8         /* entries of HVD_AGENT_TIMEOUTS */
#define HVD_AGENT_TIMEOUT_FALLBACK 600 /* seconds, for an operation not listed and no default= */
/* Messages of Windows, Hyper-V and WinRM errors that say "busy, try again",
 * not "this cannot work" (README: "Transient errors of the real agent"):
 *   ERROR_SHARING_VIOLATION (32)  "The process cannot access the file because it is being used by another process."
 *   ERROR_INVALID_STATE (5023)    "The operation cannot be performed while the object is in its current state."
 *   RPC_S_SERVER_UNAVAILABLE      "The RPC server is unavailable."
 *   ERROR_NO_SYSTEM_RESOURCES     "Insufficient system resources exist to complete the requested service."
 *   ERROR_TIMEOUT (1460)          "This operation returned because the timeout period expired."
 *   ERROR_BUSY (170)              "The requested resource is in use."
 *   WinRM                         "The WinRM client cannot complete the operation within the time specified."
 *   WinRM quota                   "... The maximum number of concurrent operations for this user has been exceeded." */
#define HVD_AGENT_DEFAULT_RETRYABLE_MESSAGES                                                                \
    "being used by another process,while the object is in its current state,the rpc server is unavailable," \
    "insufficient system resources,the timeout period expired,the requested resource is in use,"            \
    "winrm client cannot complete the operation,maximum number of concurrent operations"

typedef struct {
    char **v; /* NULL when empty */
    size_t n;
} HvdStrList;

typedef struct {
    int64_t v[HVD_CFG_MAX_RETRY_DELAYS];
    size_t n;
} HvdIntList;

/* HVD_AGENT_TIMEOUTS: "op=seconds,..." over the built-in defaults; the op
 * "default" applies to operations not listed. */
typedef struct {
    struct {
        char op[32];
        int64_t seconds;
    } v[HVD_CFG_MAX_TIMEOUTS];
    size_t n;
} HvdTimeouts;

typedef struct {
    char *amqp_url;                      /* HVD_AMQP_URL (secret: print masked) */
    char *amqp_url_file;                 /* HVD_AMQP_URL_FILE */
    char *pg_dsn;                        /* HVD_PG_DSN (secret: print masked) */
    char *pg_dsn_file;                   /* HVD_PG_DSN_FILE */
    char *agent_cmd;                     /* HVD_AGENT_CMD; "" when unset */
    int64_t concurrency;                 /* HVD_CONCURRENCY 1..1024 */
    int64_t host_concurrency;            /* HVD_HOST_CONCURRENCY 1..1024 */
    HvdStrList allowed_hosts;            /* HVD_ALLOWED_HOSTS, lower-cased; empty = any */
    int64_t max_attempts;                /* HVD_MAX_ATTEMPTS 1..100 */
    int64_t max_takeovers;               /* HVD_MAX_TAKEOVERS 0..1000, 0 = no limit */
    HvdIntList retry_delays;             /* HVD_RETRY_DELAYS seconds, 1..16 entries */
    char *amqp_prefix;                   /* HVD_AMQP_PREFIX */
    char *metrics_addr;                  /* HVD_METRICS_ADDR host:port; "" = disabled */
    HvdLogLevel log_level;               /* HVD_LOG_LEVEL */
    char *secret_key_file;               /* HVD_SECRET_KEY_FILE; "" when unset */
    HvdStrList secret_old_key_files;     /* HVD_SECRET_OLD_KEY_FILES */
    int64_t lease_ttl;                   /* HVD_LEASE_TTL seconds */
    int64_t shutdown_grace;              /* HVD_SHUTDOWN_GRACE seconds */
    HvdStrList agent_retryable_codes;    /* HVD_AGENT_RETRYABLE_CODES */
    HvdStrList agent_env_pass;           /* HVD_AGENT_ENV_PASS: more environment names given to the agent */
    HvdStrList agent_retryable_messages; /* HVD_AGENT_RETRYABLE_MESSAGES, as given */
    char *agent_profile;                 /* HVD_AGENT_PROFILE: auto, raw, hvdeploy or a capability list */
    char *agent_session_cmd;             /* HVD_AGENT_SESSION_CMD; "" = HVD_AGENT_CMD plus --session */
    int64_t agent_session_idle;          /* HVD_AGENT_SESSION_IDLE seconds */
    int64_t agent_sessions_per_host;     /* HVD_AGENT_SESSIONS_PER_HOST */
    HvdTimeouts agent_timeouts;          /* HVD_AGENT_TIMEOUTS; use hvd_config_agent_timeout() */
    int64_t agent_kill_grace;            /* HVD_AGENT_KILL_GRACE seconds between SIGTERM and SIGKILL */
    int64_t sweep_interval;              /* HVD_SWEEP_INTERVAL seconds */
    int64_t breaker_threshold;           /* HVD_BREAKER_THRESHOLD host failures; 0 = no breaker */
    int64_t breaker_cooldown;            /* HVD_BREAKER_COOLDOWN seconds */
    int64_t heartbeat;                   /* HVD_HEARTBEAT AMQP heartbeat seconds, 0 = off */
    int64_t pg_pool_size;                /* HVD_PG_POOL_SIZE */
    int64_t secret_retention;            /* HVD_SECRET_RETENTION seconds */
    int64_t job_retention;               /* HVD_JOB_RETENTION seconds; 0 = keep for ever */
    int64_t output_keep;                 /* HVD_OUTPUT_KEEP lines of live output kept per stage; 0 = none */
    char *worker_id;                     /* HVD_WORKER_ID; default "<hostname>:<pid>" */
    char *amqp_ca_file;                  /* HVD_AMQP_CA_FILE */
    char *amqp_cert_file;                /* HVD_AMQP_CERT_FILE */
    char *amqp_key_file;                 /* HVD_AMQP_KEY_FILE */
    bool amqp_verify;                    /* HVD_AMQP_VERIFY: verify the broker's certificate and name */
    char *config_file;                   /* HVD_CONFIG_FILE */
    bool print_config;                   /* --print-config was given (not a variable) */
} HvdConfig;

/* Which program loads the config decides what is required:
 * "hvdeploy-worker" (or any name ending in "worker") requires HVD_AGENT_CMD
 * and HVD_SECRET_KEY_FILE; other programs require nothing (use
 * hvd_config_require for what a subcommand needs). */

/* Fills cfg (all fields, owned; free with hvd_config_free) from defaults <
 * config file < environment < argv. argv[0] is skipped; every other argument
 * must be a settings flag, --help/-h or --print-config.
 * Returns 0 when cfg is valid; 1 when --help was given (usage printed on
 * stdout, the caller exits 0); -1 on a bad value, an unknown option or a
 * missing required setting, with one line in err such as
 *   "HVD_CONCURRENCY: 'abc' is not a whole number between 1 and 1024"
 * (the caller prints it and exits 2, before connecting anywhere).
 * cfg is always safe to pass to hvd_config_free afterwards. */
int hvd_config_load(HvdConfig *cfg, int argc, char **argv, const char *program, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Flags for hvd_config_load_args. */
#define HVD_CFG_KEEP_UNKNOWN 1u /* leave unknown arguments and positionals in argv */
#define HVD_CFG_NO_HELP 2u      /* leave --help/-h in argv (a subcommand prints its own) */
#define HVD_CFG_NO_REQUIRED 4u  /* skip the per-program required check */

/* As hvd_config_load, for a CLI subcommand: settings flags are consumed and
 * removed from argv; with HVD_CFG_KEEP_UNKNOWN anything else stays, in order,
 * after argv[0], and *argc is updated (argv[*argc] = NULL). "--" ends the
 * options: it and everything after it are kept. */
int hvd_config_load_args(HvdConfig *cfg, int *argc, char **argv, const char *program, unsigned flags, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/* -1 with "HVD_AGENT_CMD is required: set it in the environment, the config
 * file or with --agent-cmd" when the named setting is empty, else 0. */
int hvd_config_require(const HvdConfig *cfg, const char *name, char *err, size_t errlen);

void hvd_config_free(HvdConfig *cfg); /* NULL-safe; leaves cfg zeroed */

/* --help text: every setting with its flag, default and help. */
void hvd_config_usage(FILE *out, const char *program);
/* The effective settings as KEY=VALUE lines (a valid config file), with the
 * passwords of HVD_AMQP_URL and HVD_PG_DSN replaced by ***. */
void hvd_config_print(FILE *out, const HvdConfig *cfg);

/* Seconds allowed to the agent for an operation (e.g. "vm.create"). */
int64_t hvd_config_agent_timeout(const HvdConfig *cfg, const char *op);
/* Whether an agent error code is in HVD_AGENT_RETRYABLE_CODES (exact match). */
bool hvd_config_code_retryable(const HvdConfig *cfg, const char *code);

/* The table itself, for tests and tooling: row i's variable name, or NULL
 * past the end; and the flag of a variable ("HVD_AMQP_URL" -> "--amqp-url"). */
const char *hvd_config_var_name(size_t i);
const char *hvd_config_var_default(size_t i); /* "" for none/required */
void hvd_config_flag_name(const char *var, char *out, size_t outlen);

/* Replaces the password of a URL ("amqp://u:pw@h/v" -> "amqp://u:***@h/v",
 * also a "password=" query parameter) or of a libpq key=value string
 * ("host=h password='p w'" -> "host=h password=***", any key ending in
 * "password") with ***. out always NUL-terminated; truncated if too small. */
void hvd_mask_url(const char *url, char *out, size_t outlen);

/* Parses a duration as the settings take it (whole seconds, optionally with a
 * suffix s, m, h or d: "30d"), from 0 to max seconds. */
bool hvd_config_parse_duration(const char *s, int64_t max, int64_t *out);

/* Splits "host:port" / "[v6]:port" into host (without brackets) and port.
 * Returns false when it is not of that form or the port is not 1..65535
 * (0 is accepted when allow_zero). */
bool hvd_parse_host_port(const char *s, char *host, size_t hostlen, int *port, bool allow_zero);

#endif
