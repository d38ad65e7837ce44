/* The settings table: one row per HVD_* setting (type, field, default,
 * limits, whether the worker needs it, --help text), in the order of --help,
 * --print-config and deploy/worker.env.example; finding a row by variable or
 * flag name. A leaf of the config files. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include "config_priv.h"

#define OFF(f) offsetof(HvdConfig, f)

/* The one table. Order is the order of --help, --print-config and
 * deploy/worker.env.example. */
const CfgRow cfg_rows[] = {
    {"HVD_AMQP_URL", CT_AMQP_URL, OFF(amqp_url), "amqp://guest:guest@localhost:5672/%2f", 0, 0, 0, "URL",
     "RabbitMQ broker URL; amqps:// for TLS; a cluster: one URL per node, separated by spaces"},
    {"HVD_AMQP_URL_FILE", CT_STR, OFF(amqp_url_file), "", 0, 0, 0, "FILE",
     "read HVD_AMQP_URL from this file (container secrets); wins over HVD_AMQP_URL"},
    {"HVD_AMQP_CA_FILE", CT_STR, OFF(amqp_ca_file), "", 0, 0, 0, "FILE",
     "PEM CA certificates that sign the broker's certificate (amqps://); empty = system default"},
    {"HVD_AMQP_CERT_FILE", CT_STR, OFF(amqp_cert_file), "", 0, 0, 0, "FILE",
     "PEM client certificate for amqps:// (with HVD_AMQP_KEY_FILE)"},
    {"HVD_AMQP_KEY_FILE", CT_STR, OFF(amqp_key_file), "", 0, 0, 0, "FILE", "PEM private key of the client certificate"},
    {"HVD_AMQP_VERIFY", CT_BOOL, OFF(amqp_verify), "true", 0, 0, 0, "BOOL",
     "verify the broker's certificate and host name (amqps://)"},
    {"HVD_AMQP_PREFIX", CT_NAME, OFF(amqp_prefix), "hvdeploy", 0, 0, 0, "NAME",
     "prefix of every exchange and queue name"},
    {"HVD_HEARTBEAT", CT_DUR, OFF(heartbeat), "30", 0, 3600, 0, "SECONDS",
     "AMQP heartbeat interval; 0 turns heartbeats off"},
    {"HVD_PG_DSN", CT_PG_DSN, OFF(pg_dsn), "postgresql://localhost/hvdeploy", 0, 0, 0, "DSN",
     "PostgreSQL connection string (URI or key=value; sslmode= for TLS)"},
    {"HVD_PG_DSN_FILE", CT_STR, OFF(pg_dsn_file), "", 0, 0, 0, "FILE",
     "read HVD_PG_DSN from this file (container secrets); wins over HVD_PG_DSN"},
    {"HVD_PG_POOL_SIZE", CT_INT, OFF(pg_pool_size), "4", 1, 64, 0, "N", "PostgreSQL connections per worker process"},
    {"HVD_AGENT_CMD", CT_STR, OFF(agent_cmd), "", 0, 0, REQ_WORKER, "CMD",
     "host agent argv template, split on spaces, {host} = target host; run without a shell"},
    {"HVD_AGENT_TIMEOUTS", CT_TIMEOUTS, OFF(agent_timeouts),
     "vm.create=300,disk.create=1800,nic.create=120,vm.initialize=2400,vm.delete=300", 0, 0, 0, "OP=SECONDS,...",
     "agent time limit per operation, over these defaults; default=N for the rest"},
    {"HVD_AGENT_KILL_GRACE", CT_DUR, OFF(agent_kill_grace), "2", 0, 300, 0, "SECONDS",
     "wait between SIGTERM and SIGKILL of an agent that timed out"},
    {"HVD_AGENT_RETRYABLE_CODES", CT_CODELIST, OFF(agent_retryable_codes), "HOST_BUSY,TRANSIENT", 0, 0, 0, "CODE,...",
     "agent error codes retried like transient failures (others are permanent)"},
    {"HVD_AGENT_RETRYABLE_MESSAGES", CT_TEXTLIST, OFF(agent_retryable_messages), HVD_AGENT_DEFAULT_RETRYABLE_MESSAGES,
     0, 0, 0, "TEXT,...",
     "case-insensitive parts of an agent's error message that make an error transient (Hyper-V, WinRM and file "
     "locks busy); empty = none"},
    {"HVD_AGENT_SESSION_CMD", CT_STR, OFF(agent_session_cmd), "", 0, 0, 0, "CMD",
     "session-mode agent argv template (agents with the session capability); empty = HVD_AGENT_CMD plus --session"},
    {"HVD_AGENT_SESSION_IDLE", CT_DUR, OFF(agent_session_idle), "300", 1, 86400, 0, "SECONDS",
     "a session without requests this long is closed"},
    {"HVD_AGENT_SESSIONS_PER_HOST", CT_INT, OFF(agent_sessions_per_host), "4", 1, 64, 0, "N",
     "agent sessions per host and worker (each serves many requests at once)"},
    {"HVD_AGENT_PROFILE", CT_PROFILE, OFF(agent_profile), "auto", 0, 0, 0, "auto|raw|hvdeploy|CAP,...",
     "what the agents honour: auto asks each host (agent.hello), raw = no capabilities (Aether-V's script), "
     "hvdeploy = idempotency, probe, session and output, or a list of those (e.g. idempotency,probe: per call)"},
    {"HVD_AGENT_ENV_PASS", CT_CODELIST, OFF(agent_env_pass), "", 0, 0, 0, "NAME,...",
     "environment variables passed to the agent besides PATH, HOME, SSH_AUTH_SOCK, HVD_SIM_* (never credentials)"},
    {"HVD_CONCURRENCY", CT_INT, OFF(concurrency), "8", 1, 1024, 0, "N", "jobs in flight per worker process"},
    {"HVD_HOST_CONCURRENCY", CT_INT, OFF(host_concurrency), "1", 1, 1024, 0, "N",
     "jobs running per Hyper-V host across the whole fleet"},
    {"HVD_ALLOWED_HOSTS", CT_HOSTLIST, OFF(allowed_hosts), "", 0, 0, 0, "HOST,...",
     "target hosts this fleet may touch; empty = any valid hostname"},
    {"HVD_MAX_ATTEMPTS", CT_INT, OFF(max_attempts), "5", 1, 100, 0, "N",
     "transient-failure attempts per stage before the job fails"},
    {"HVD_MAX_TAKEOVERS", CT_INT, OFF(max_takeovers), "5", 0, 1000, 0, "N",
     "times a job may be taken over from a worker that died mid-stage before it fails; 0 = no limit"},
    {"HVD_RETRY_DELAYS", CT_INTLIST, OFF(retry_delays), "5,30,120,600", 1, 86400, 0, "SECONDS,...",
     "delays of the retry buckets, one queue each"},
    {"HVD_LEASE_TTL", CT_DUR, OFF(lease_ttl), "30", 1, 86400, 0, "SECONDS",
     "how long a lease on a running job lasts unless renewed"},
    {"HVD_SWEEP_INTERVAL", CT_DUR, OFF(sweep_interval), "5", 1, 3600, 0, "SECONDS",
     "how often PostgreSQL is swept for expired leases and unsent envelopes"},
    {"HVD_BREAKER_THRESHOLD", CT_INT, OFF(breaker_threshold), "3", 0, 1000, 0, "N",
     "consecutive host failures (unreachable, timeout, HOST_BUSY) that open a host's circuit; 0 = off"},
    {"HVD_BREAKER_COOLDOWN", CT_DUR, OFF(breaker_cooldown), "15", 1, 86400, 0, "SECONDS",
     "how long an open circuit waits before one trial call (doubling while trials fail, up to 32x)"},
    {"HVD_SHUTDOWN_GRACE", CT_DUR, OFF(shutdown_grace), "30", 0, 86400, 0, "SECONDS",
     "on SIGTERM, how long in-flight stages may run before their leases are released"},
    {"HVD_SECRET_KEY_FILE", CT_STR, OFF(secret_key_file), "", 0, 0, REQ_WORKER, "FILE",
     "key for secrets at rest: 32 random bytes, base64 (hvdeployctl keygen FILE)"},
    {"HVD_SECRET_OLD_KEY_FILES", CT_PATHLIST, OFF(secret_old_key_files), "", 0, 0, 0, "FILE,...",
     "older keys still accepted for decryption (key rotation)"},
    {"HVD_SECRET_RETENTION", CT_DUR, OFF(secret_retention), "604800", 0, 315360000, 0, "SECONDS",
     "how long a failed job's encrypted secrets are kept for a replay (604800 = 7d)"},
    {"HVD_OUTPUT_KEEP", CT_INT, OFF(output_keep), "200", 0, 100000, 0, "N",
     "last lines of live agent output kept per stage in PostgreSQL (job_output); 0 keeps none"},
    {"HVD_JOB_RETENTION", CT_DUR, OFF(job_retention), "2592000", 0, 315360000, 0, "SECONDS",
     "finished jobs are deleted with their stages and events this long after they ended (2592000 = 30d); 0 keeps "
     "them"},
    {"HVD_METRICS_ADDR", CT_ADDR, OFF(metrics_addr), "127.0.0.1:9464", 0, 0, 0, "HOST:PORT",
     "address of /metrics and /healthz; empty disables"},
    {"HVD_LOG_LEVEL", CT_LEVEL, OFF(log_level), "info", 0, 0, 0, "LEVEL",
     "debug, info, warn or error; logs are JSON lines on stderr"},
    {"HVD_WORKER_ID", CT_STR, OFF(worker_id), "", 0, 0, 0, "ID",
     "this worker's name in logs, leases and events; empty = hostname:pid"},
    {"HVD_CONFIG_FILE", CT_STR, OFF(config_file), "", 0, 0, 0, "FILE",
     "KEY=VALUE file read before the environment (lowest precedence after defaults)"},
};

const size_t cfg_nrows = sizeof cfg_rows / sizeof cfg_rows[0];

const CfgRow *cfg_row_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < cfg_nrows; i++)
        if (strlen(cfg_rows[i].name) == len && strncmp(cfg_rows[i].name, name, len) == 0) return &cfg_rows[i];
    return NULL;
}

/* Finds the row of a flag "--x-y" (name part only, up to len). */
const CfgRow *cfg_row_by_flag(const char *flag, size_t len)
{
    char buf[64];
    for (size_t i = 0; i < cfg_nrows; i++) {
        hvd_config_flag_name(cfg_rows[i].name, buf, sizeof buf);
        if (strlen(buf) == len && strncmp(buf, flag, len) == 0) return &cfg_rows[i];
    }
    return NULL;
}

const char *hvd_config_var_name(size_t i)
{
    return i < cfg_nrows ? cfg_rows[i].name : NULL;
}

const char *hvd_config_var_default(size_t i)
{
    return i < cfg_nrows ? cfg_rows[i].def : NULL;
}

void hvd_config_flag_name(const char *var, char *out, size_t outlen)
{
    if (strncmp(var, "HVD_", 4) == 0) var += 4;
    size_t j = 0;
    if (outlen < 3) {
        if (outlen) out[0] = '\0';
        return;
    }
    out[j++] = '-';
    out[j++] = '-';
    for (; *var && j + 1 < outlen; var++) out[j++] = *var == '_' ? '-' : (char)tolower((unsigned char)*var);
    out[j] = '\0';
}

bool cfg_is_worker(const char *program)
{
    if (!program) return false;
    const char *base = strrchr(program, '/');
    base = base ? base + 1 : program;
    size_t n = strlen(base);
    return n >= 6 && strcmp(base + n - 6, "worker") == 0;
}
