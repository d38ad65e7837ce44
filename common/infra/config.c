/* Settings table, layered loading (defaults < file < env < flags), validation
 * with one-line errors, --help, --print-config and password masking. */
#include "config.h"
#include "buf.h"
#include "mask.h"
#include "plan.h"
#include "urllist.h"
#include <amqp.h>
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum {
    CT_STR,      /* any string */
    CT_NAME,     /* AMQP name prefix: [A-Za-z0-9._:-], 1..100 */
    CT_AMQP_URL, /* amqp:// or amqps:// URL; secret */
    CT_PG_DSN,   /* libpq URI or key=value string; secret */
    CT_INT,      /* whole number in [min, max] */
    CT_DUR,      /* seconds with optional s/m/h/d suffix, in [min, max] */
    CT_BOOL,
    CT_LEVEL,    /* debug|info|warn|error */
    CT_INTLIST,  /* comma list of whole numbers in [min, max], 1..16 entries */
    CT_HOSTLIST, /* comma list of hostnames / IPv4, lower-cased */
    CT_CODELIST, /* comma list of agent codes */
    CT_PATHLIST, /* comma list of file paths */
    CT_TIMEOUTS, /* op=seconds,... */
    CT_ADDR,     /* host:port or empty */
    CT_PROFILE,  /* auto|raw|hvdeploy */
    CT_TEXTLIST, /* comma list of non-empty texts (kept as given) */
} CfgType;

#define REQ_WORKER 1u

typedef struct {
    const char *name;
    CfgType type;
    size_t off;
    const char *def;
    int64_t min, max;
    unsigned required;
    const char *metavar;
    const char *help;
} CfgRow;

#define OFF(f) offsetof(HvdConfig, f)

/* The one table. Order is the order of --help, --print-config and
 * deploy/worker.env.example. */
static const CfgRow rows[] = {
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
#define NROWS (sizeof rows / sizeof rows[0])

static const char *const timeout_ops[] = {"vm.create",     "disk.create", "nic.create",
                                          "vm.initialize", "vm.delete",   "default"};

/* A value of one row during loading, and where it came from. */
typedef struct {
    char *val; /* owned */
    char *src; /* owned: "" (default/env) or " (from ...)" */
} Layer;

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value made safe to quote in a one-line error: cut, control chars as '?'. */
static void quote_val(const char *v, char *out, size_t outlen)
{
    size_t j = 0, max = 80;
    for (size_t i = 0; v[i] && j + 4 < outlen; i++) {
        if (i == max) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
        unsigned char c = (unsigned char)v[i];
        out[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[j] = '\0';
}

static const CfgRow *row_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strlen(rows[i].name) == len && strncmp(rows[i].name, name, len) == 0) return &rows[i];
    return NULL;
}

const char *hvd_config_var_name(size_t i)
{
    return i < NROWS ? rows[i].name : NULL;
}

const char *hvd_config_var_default(size_t i)
{
    return i < NROWS ? rows[i].def : NULL;
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

/* ---- small parsers ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_dur(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!*s || !isdigit((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return false;
    int64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return false;
        }
        if (end[1]) return false;
    }
    if (v > INT64_MAX / mul) return false;
    v *= mul;
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool hvd_config_parse_duration(const char *s, int64_t max, int64_t *out)
{
    return s && parse_dur(s, 0, max, out);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "1", "yes", "on"}, *const f[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = true, true;
        if (strcasecmp(s, f[i]) == 0) return *out = false, true;
    }
    return false;
}

static bool ipv4_ok(const char *s)
{
    int parts = 0;
    const char *p = s;
    while (1) {
        if (!isdigit((unsigned char)*p)) return false;
        int v = 0, nd = 0;
        const char *start = p;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p++ - '0');
            if (++nd > 3) return false;
        }
        if (v > 255 || (nd > 1 && *start == '0')) return false;
        parts++;
        if (*p == '\0') break;
        if (*p++ != '.') return false;
    }
    return parts == 4;
}

/* RFC 1123 host name (labels of letters, digits and inner hyphens) or a
 * dotted-quad IPv4 address; an all-numeric name must be a valid IPv4. */
static bool hostname_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 253) return false;
    bool all_numeric = true;
    const char *label = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t ll = (size_t)(p - label);
            if (ll == 0 || ll > 63 || label[0] == '-' || p[-1] == '-') return false;
            if (*p == '\0') break;
            label = p + 1;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-') return false;
        if (!isdigit((unsigned char)*p)) all_numeric = false;
    }
    return all_numeric ? ipv4_ok(s) : true;
}

bool hvd_parse_host_port(const char *s, char *host, size_t hostlen, int *port, bool allow_zero)
{
    if (!s) return false;
    const char *colon, *hstart = s, *hend;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (!hend || hend[1] != ':') return false;
        hstart = s + 1;
        colon = hend + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return false;
        hend = colon;
        if (memchr(s, ':', (size_t)(colon - s))) return false; /* bare IPv6 needs brackets */
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= hostlen) return false;
    int64_t p;
    if (!parse_int(colon + 1, allow_zero ? 0 : 1, 65535, &p)) return false;
    memcpy(host, hstart, hl);
    host[hl] = '\0';
    *port = (int)p;
    return true;
}

static bool addr_ok(const char *s)
{
    char host[256];
    int port;
    if (!hvd_parse_host_port(s, host, sizeof host, &port, false)) return false;
    if (*s == '[') {
        for (const char *p = host; *p; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') return false;
        return true;
    }
    return hostname_ok(host);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:-", *s)) return false;
    return true;
}

static bool code_ok(const char *s)
{
    if (!*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return false;
    return true;
}

static void strlist_free(HvdStrList *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void strlist_push(HvdStrList *l, const char *s)
{
    l->v = hvd_xrealloc(l->v, (l->n + 2) * sizeof *l->v);
    l->v[l->n++] = hvd_xstrdup(s);
    l->v[l->n] = NULL;
}

/* Splits a comma list into trimmed items; calls ok() on each. Returns false
 * and the bad item in *bad (owned by the caller) when an item is empty or
 * refused. An empty (or all-blank) string is an empty list. */
static bool split_list(const char *s, HvdStrList *out, bool (*ok)(const char *), bool lower, char **bad)
{
    char *copy = hvd_xstrdup(s);
    char *all = trim(copy);
    bool good = true;
    if (*all) {
        char *p = all;
        for (;;) {
            char *comma = strchr(p, ',');
            if (comma) *comma = '\0';
            char *item = trim(p);
            if (lower)
                for (char *c = item; *c; c++) *c = (char)tolower((unsigned char)*c);
            if (!*item || (ok && !ok(item))) {
                *bad = hvd_xstrdup(item);
                good = false;
                break;
            }
            strlist_push(out, item);
            if (!comma) break;
            p = comma + 1;
        }
    }
    free(copy);
    if (!good) strlist_free(out);
    return good;
}

static bool timeout_op_known(const char *op)
{
    for (size_t k = 0; k < sizeof timeout_ops / sizeof *timeout_ops; k++)
        if (strcmp(op, timeout_ops[k]) == 0) return true;
    return false;
}

/* Applies "op=seconds,..." over t. On failure *bad is the first bad item. */
static bool timeouts_apply(HvdTimeouts *t, const char *s, char **bad)
{
    HvdStrList items = {0};
    if (!split_list(s, &items, NULL, false, bad)) return false;
    bool good = true;
    for (size_t i = 0; i < items.n && good; i++) {
        char *orig = hvd_xstrdup(items.v[i]);
        char *eq = strchr(items.v[i], '=');
        int64_t secs = 0;
        char *op = NULL;
        if (eq) {
            *eq = '\0';
            op = trim(items.v[i]);
        }
        good = eq && timeout_op_known(op) && parse_dur(trim(eq + 1), 1, 86400, &secs);
        if (good) {
            size_t j = 0;
            while (j < t->n && strcmp(t->v[j].op, op) != 0) j++;
            if (j == t->n && t->n < HVD_CFG_MAX_TIMEOUTS) {
                t->n++;
                snprintf(t->v[j].op, sizeof t->v[j].op, "%s", op);
            }
            if (j < t->n) t->v[j].seconds = secs;
            free(orig);
        } else {
            *bad = orig;
        }
    }
    strlist_free(&items);
    return good;
}

/* ---- password masking (core/mask.c is the one masker) ---- */

void hvd_mask_url(const char *url, char *out, size_t outlen)
{
    if (!out || outlen == 0) return;
    HvdBuf o = {0};
    hvd_mask_url_into(&o, url);
    snprintf(out, outlen, "%s", o.data);
    hvd_buf_free(&o);
}

static char *mask_dup(const char *url)
{
    return hvd_mask_url_dup(url ? url : "");
}

/* HVD_AMQP_URL: one URL, or the nodes of a cluster separated by whitespace
 * (urllist.h), each a URL amqp_parse_url accepts and none naming several
 * hosts with a comma (which rabbitmq-c would cut to the first). */
static bool amqp_url_list_ok(const char *name, const char *v, const char *src, char *err, size_t errlen)
{
    HvdUrlList urls;
    char q[128], why[64];
    if (!hvd_url_list_split(v, &urls, why, sizeof why)) {
        set_err(err, errlen, "%s: %s (amqp://user:password@host:port/vhost, several separated by spaces)%s", name, why,
                src);
        return false;
    }
    bool good = true;
    for (size_t i = 0; good && i < urls.n; i++) {
        char *m = mask_dup(urls.v[i]);
        quote_val(m, q, sizeof q);
        free(m);
        char at[64] = ""; /* " (URL i of n)" */
        if (urls.n > 1) snprintf(at, sizeof at, " (URL %zu of %zu)", i + 1, urls.n);
        struct amqp_connection_info info;
        if (hvd_url_host_has_comma(urls.v[i])) {
            set_err(err, errlen,
                    "%s: '%s'%s names several hosts with ',', which rabbitmq-c would cut to the first: give one URL "
                    "per node, separated by spaces (amqp://u:p@a:5672/%%2f amqp://u:p@b:5672/%%2f)%s",
                    name, q, at, src);
            good = false;
        } else if (amqp_parse_url(urls.v[i], &info) != AMQP_STATUS_OK) { /* parses in place: a copy */
            set_err(err, errlen,
                    "%s: '%s'%s is not an AMQP URL (amqp://user:password@host:port/vhost or amqps://...)%s", name, q,
                    at, src);
            good = false;
        }
    }
    hvd_url_list_free(&urls);
    return good;
}

/* ---- assigning a value to a row ---- */

#define FIELD(cfg, row, T) ((T *)((char *)(cfg) + (row)->off))

/* Parses v into the row's field. On failure writes the one-line error. */
static bool assign(HvdConfig *cfg, const CfgRow *r, const char *v, const char *src, char *err, size_t errlen)
{
    char q[128];
    quote_val(v, q, sizeof q);
    char *bad = NULL;
    switch (r->type) {
    case CT_STR: {
        char **f = FIELD(cfg, r, char *);
        free(*f);
        *f = hvd_xstrdup(v);
        return true;
    }
    case CT_NAME:
        if (!name_ok(v)) {
            set_err(err, errlen, "%s: '%s' is not a name of 1 to 100 letters, digits, '.', '_', ':' or '-'%s", r->name,
                    q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_AMQP_URL:
        if (!amqp_url_list_ok(r->name, v, src, err, errlen)) return false;
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_PG_DSN: {
        char *perr = NULL;
        PQconninfoOption *opts = *v ? PQconninfoParse(v, &perr) : NULL;
        if (!opts) {
            char *m = mask_dup(v);
            quote_val(m, q, sizeof q);
            free(m);
            /* libpq's reason unless it quotes part of the string (a password could be in it) */
            char reason[160] = "";
            if (perr && !strchr(perr, '"') && !strchr(perr, '\'')) {
                snprintf(reason, sizeof reason, ": %s", perr);
                trim(reason);
            }
            set_err(err, errlen,
                    "%s: '%s' is not a libpq connection string (postgresql://host/db or host=... dbname=...)%s%s",
                    r->name, q, reason, src);
            PQfreemem(perr);
            return false;
        }
        PQconninfoFree(opts);
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    }
    case CT_INT:
        if (!parse_int(v, r->min, r->max, FIELD(cfg, r, int64_t))) {
            set_err(err, errlen, "%s: '%s' is not a whole number between %lld and %lld%s", r->name, q,
                    (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    case CT_DUR:
        if (!parse_dur(v, r->min, r->max, FIELD(cfg, r, int64_t))) {
            set_err(err, errlen, "%s: '%s' is not a duration of %lld to %lld seconds (e.g. 30, 30s, 5m, 2h, 7d)%s",
                    r->name, q, (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    case CT_BOOL:
        if (!parse_bool(v, FIELD(cfg, r, bool))) {
            set_err(err, errlen, "%s: '%s' is not a boolean (true or false)%s", r->name, q, src);
            return false;
        }
        return true;
    case CT_PROFILE:
        if (!hvd_plan_profile_valid(v)) {
            set_err(err, errlen,
                    "%s: '%s' is not auto, raw, hvdeploy or a list of idempotency, probe, session, output%s", r->name,
                    q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_LEVEL:
        if (!hvd_log_level_parse(v, FIELD(cfg, r, HvdLogLevel))) {
            set_err(err, errlen, "%s: '%s' is not one of debug, info, warn, error%s", r->name, q, src);
            return false;
        }
        return true;
    case CT_INTLIST: {
        HvdStrList items = {0};
        HvdIntList *l = FIELD(cfg, r, HvdIntList);
        bool good = split_list(v, &items, NULL, false, &bad) && items.n >= 1 && items.n <= HVD_CFG_MAX_RETRY_DELAYS;
        for (size_t i = 0; good && i < items.n; i++)
            if (!parse_int(items.v[i], r->min, r->max, &l->v[i])) good = false;
        if (good) l->n = items.n;
        strlist_free(&items);
        free(bad);
        if (!good) {
            set_err(err, errlen, "%s: '%s' is not a comma list of 1 to %d whole numbers between %lld and %lld%s",
                    r->name, q, HVD_CFG_MAX_RETRY_DELAYS, (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    }
    case CT_HOSTLIST:
    case CT_CODELIST:
    case CT_TEXTLIST:
    case CT_PATHLIST: {
        HvdStrList *l = FIELD(cfg, r, HvdStrList), tmp = {0};
        bool (*ok)(const char *) = r->type == CT_HOSTLIST ? hostname_ok : r->type == CT_CODELIST ? code_ok : NULL;
        if (!split_list(v, &tmp, ok, r->type == CT_HOSTLIST, &bad)) {
            char qb[128];
            quote_val(bad, qb, sizeof qb);
            const char *what = r->type == CT_HOSTLIST   ? "a valid hostname or IPv4 address"
                               : r->type == CT_CODELIST ? "an agent code (letters, digits, '.', '_', '-')"
                               : r->type == CT_TEXTLIST ? "a text"
                                                        : "a file path";
            if (*bad)
                set_err(err, errlen, "%s: '%s' is not %s (in '%s')%s", r->name, qb, what, q, src);
            else
                set_err(err, errlen, "%s: '%s' has an empty entry; expected a comma list of %ss%s", r->name, q,
                        r->type == CT_HOSTLIST   ? "host name"
                        : r->type == CT_CODELIST ? "agent code"
                        : r->type == CT_TEXTLIST ? "text"
                                                 : "file path",
                        src);
            free(bad);
            return false;
        }
        strlist_free(l);
        *l = tmp;
        return true;
    }
    case CT_TIMEOUTS: {
        HvdTimeouts *t = FIELD(cfg, r, HvdTimeouts), tmp = {0};
        if (!timeouts_apply(&tmp, r->def, &bad)) abort(); /* the built-in default must parse */
        if (!timeouts_apply(&tmp, v, &bad)) {
            char qb[128];
            quote_val(bad ? bad : v, qb, sizeof qb);
            set_err(err, errlen,
                    "%s: '%s' is not OP=SECONDS with OP one of vm.create, disk.create, nic.create, "
                    "vm.initialize, vm.delete, default and SECONDS 1 to 86400%s",
                    r->name, qb, src);
            free(bad);
            return false;
        }
        *t = tmp;
        return true;
    }
    case CT_ADDR:
        if (*v && !addr_ok(v)) {
            set_err(err, errlen, "%s: '%s' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable%s",
                    r->name, q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    }
    return false;
}

/* ---- layers ---- */

static void layer_set(Layer *l, const char *val, char *src)
{
    free(l->val);
    free(l->src);
    l->val = hvd_xstrdup(val);
    l->src = src ? src : hvd_xstrdup("");
}

/* Reads a whole small file (secrets, config). NULL with errno on failure. */
static char *read_small_file(const char *path, size_t max, bool *too_big)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    char chunk[4096];
    size_t n;
    *too_big = false;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        hvd_buf_append(&b, chunk, n);
        if (b.len > max) {
            *too_big = true;
            break;
        }
    }
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad || *too_big) {
        if (b.data) memset(b.data, 0, b.len);
        hvd_buf_free(&b);
        errno = bad ? saved : EFBIG;
        return NULL;
    }
    return hvd_buf_steal(&b);
}

/* Unquotes a config-file value in place: '...' literal, "..." with \" \\ \n. */
static bool unquote(char *v)
{
    size_t n = strlen(v);
    if (n == 0 || (v[0] != '\'' && v[0] != '"')) return true;
    char qc = v[0];
    if (n < 2 || v[n - 1] != qc) return false;
    char *w = v;
    for (size_t i = 1; i < n - 1; i++) {
        if (qc == '"' && v[i] == '\\' && i + 1 < n - 1) {
            i++;
            *w++ = v[i] == 'n' ? '\n' : v[i];
        } else {
            *w++ = v[i];
        }
    }
    *w = '\0';
    return true;
}

static int load_file(Layer *layers, const char *path, char *err, size_t errlen)
{
    bool big;
    char *text = read_small_file(path, 1 << 20, &big);
    if (!text) {
        set_err(err, errlen, "HVD_CONFIG_FILE %s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0, lineno = 0;
    for (char *line = text, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        if (strncmp(s, "export ", 7) == 0) s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: expected KEY=VALUE", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const CfgRow *r = row_by_name(key, strlen(key));
        if (!r) {
            if (strncmp(key, "HVD_", 4) == 0) {
                char qk[128];
                quote_val(key, qk, sizeof qk);
                set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: unknown setting '%s' (see --help)", path, lineno, qk);
                rc = -1;
            }
            continue;
        }
        if (strcmp(r->name, "HVD_CONFIG_FILE") == 0) {
            set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: HVD_CONFIG_FILE cannot be set in the config file", path,
                    lineno);
            rc = -1;
            break;
        }
        if (!unquote(val)) {
            set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: unbalanced quotes in the value of %s", path, lineno, r->name);
            rc = -1;
            break;
        }
        layer_set(&layers[r - rows], val, hvd_xasprintf(" (from %s:%d)", path, lineno));
    }
    free(text);
    return rc;
}

/* Replaces the layer of target by the trimmed content of the file named by
 * the layer of file_row, when that is set. */
static int apply_file_variant(Layer *layers, const char *file_var, const char *target_var, char *err, size_t errlen)
{
    Layer *fl = &layers[row_by_name(file_var, strlen(file_var)) - rows];
    Layer *tl = &layers[row_by_name(target_var, strlen(target_var)) - rows];
    if (!fl->val || !*fl->val) return 0;
    bool big;
    char *text = read_small_file(fl->val, 64 * 1024, &big);
    if (!text) {
        set_err(err, errlen, "%s %s: cannot read: %s", file_var, fl->val, strerror(errno));
        return -1;
    }
    char *t = trim(text);
    if (!*t) {
        set_err(err, errlen, "%s %s: the file is empty", file_var, fl->val);
        free(text);
        return -1;
    }
    layer_set(tl, t, hvd_xasprintf(" (from %s %s)", file_var, fl->val));
    memset(text, 0, strlen(text));
    free(text);
    return 0;
}

static bool is_worker(const char *program)
{
    if (!program) return false;
    const char *base = strrchr(program, '/');
    base = base ? base + 1 : program;
    size_t n = strlen(base);
    return n >= 6 && strcmp(base + n - 6, "worker") == 0;
}

int hvd_config_require(const HvdConfig *cfg, const char *name, char *err, size_t errlen)
{
    const CfgRow *r = row_by_name(name, strlen(name));
    if (!r) {
        set_err(err, errlen, "%s: no such setting", name);
        return -1;
    }
    bool empty = false;
    switch (r->type) {
    case CT_STR:
    case CT_NAME:
    case CT_AMQP_URL:
    case CT_PG_DSN:
    case CT_ADDR: {
        const char *v = *(char *const *)((const char *)cfg + r->off);
        empty = !v || !v[strspn(v, " \t")];
        break;
    }
    case CT_HOSTLIST:
    case CT_CODELIST:
    case CT_PATHLIST: empty = ((const HvdStrList *)((const char *)cfg + r->off))->n == 0; break;
    default: break;
    }
    if (empty) {
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        set_err(err, errlen, "%s is required: set it in the environment, the config file or with %s", r->name, flag);
        return -1;
    }
    return 0;
}

/* Finds the row of a flag "--x-y" (name part only, up to len). */
static const CfgRow *row_by_flag(const char *flag, size_t len)
{
    char buf[64];
    for (size_t i = 0; i < NROWS; i++) {
        hvd_config_flag_name(rows[i].name, buf, sizeof buf);
        if (strlen(buf) == len && strncmp(buf, flag, len) == 0) return &rows[i];
    }
    return NULL;
}

int hvd_config_load_args(HvdConfig *cfg, int *argc, char **argv, const char *program, unsigned flags, char *err,
                         size_t errlen)
{
    Layer layers[NROWS];
    int rc = -1, keep = 1;
    memset(cfg, 0, sizeof *cfg);
    memset(layers, 0, sizeof layers);
    if (err && errlen) err[0] = '\0';
    const char *prog = program ? program : (argv && argv[0] ? argv[0] : "hvdeploy");
    for (size_t i = 0; i < NROWS; i++) layer_set(&layers[i], rows[i].def, NULL);

    /* Flags are parsed first (into their own layer) so that --config-file is
     * known before the file is read; they are applied last. */
    Layer flag_layers[NROWS];
    memset(flag_layers, 0, sizeof flag_layers);
    int n = argc ? *argc : 0;
    bool opts_done = false;
    for (int i = 1; i < n; i++) {
        char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (!(flags & HVD_CFG_KEEP_UNKNOWN)) {
                char qa[128];
                quote_val(a, qa, sizeof qa);
                set_err(err, errlen, "unexpected argument '%s' (see %s --help)", qa, prog);
                goto out;
            }
            argv[keep++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            if (!(flags & HVD_CFG_KEEP_UNKNOWN)) {
                opts_done = true;
                continue;
            }
            for (; i < n; i++) argv[keep++] = argv[i];
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (flags & HVD_CFG_NO_HELP) {
                argv[keep++] = a;
                continue;
            }
            hvd_config_usage(stdout, prog);
            rc = 1;
            goto out;
        }
        if (strcmp(a, "--print-config") == 0 && !(flags & HVD_CFG_KEEP_UNKNOWN)) {
            cfg->print_config = true;
            continue;
        }
        const char *name = a + 2, *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const CfgRow *r = a[1] == '-' ? row_by_flag(a, nlen) : NULL;
        bool negated = false;
        if (!r && a[1] == '-' && strncmp(name, "no-", 3) == 0 && !eq) {
            char pos[64];
            snprintf(pos, sizeof pos, "--%s", name + 3);
            r = row_by_flag(pos, strlen(pos));
            if (r && r->type != CT_BOOL) r = NULL;
            negated = r != NULL;
        }
        if (!r) {
            if (flags & HVD_CFG_KEEP_UNKNOWN) {
                argv[keep++] = a;
                continue;
            }
            char qa[128];
            quote_val(a, qa, sizeof qa);
            set_err(err, errlen, "unknown option '%s' (see %s --help)", qa, prog);
            goto out;
        }
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (r->type == CT_BOOL) {
            val = negated ? "false" : "true";
        } else if (i + 1 < n) {
            val = argv[++i];
        } else {
            set_err(err, errlen, "%s needs a value (%s)", flag, r->metavar);
            goto out;
        }
        layer_set(&flag_layers[r - rows], val, hvd_xasprintf(" (from %s)", flag));
    }
    if (argc) {
        *argc = keep;
        if (argv) argv[keep] = NULL;
    }

    /* config file: flag, else environment */
    const char *cfile = NULL;
    size_t cfi = (size_t)(row_by_name("HVD_CONFIG_FILE", 15) - rows);
    if (flag_layers[cfi].val)
        cfile = flag_layers[cfi].val;
    else if (getenv("HVD_CONFIG_FILE"))
        cfile = getenv("HVD_CONFIG_FILE");
    if (cfile && *cfile && load_file(layers, cfile, err, errlen) != 0) goto out;

    for (size_t i = 0; i < NROWS; i++) {
        const char *e = getenv(rows[i].name);
        if (e) layer_set(&layers[i], e, NULL);
        if (flag_layers[i].val) {
            layer_set(&layers[i], flag_layers[i].val, flag_layers[i].src);
            flag_layers[i].src = NULL;
        }
    }
    if (apply_file_variant(layers, "HVD_AMQP_URL_FILE", "HVD_AMQP_URL", err, errlen) != 0) goto out;
    if (apply_file_variant(layers, "HVD_PG_DSN_FILE", "HVD_PG_DSN", err, errlen) != 0) goto out;

    for (size_t i = 0; i < NROWS; i++)
        if (!assign(cfg, &rows[i], layers[i].val, layers[i].src, err, errlen)) goto out;

    if (!*cfg->worker_id) {
        char host[256] = "localhost";
        if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
        host[sizeof host - 1] = '\0';
        free(cfg->worker_id);
        cfg->worker_id = hvd_xasprintf("%s:%ld", host, (long)getpid());
    }
    if (!!*cfg->amqp_cert_file != !!*cfg->amqp_key_file) {
        set_err(err, errlen, "HVD_AMQP_CERT_FILE and HVD_AMQP_KEY_FILE go together: set both or neither");
        goto out;
    }
    if (!(flags & HVD_CFG_NO_REQUIRED) && is_worker(prog)) {
        for (size_t i = 0; i < NROWS; i++)
            if ((rows[i].required & REQ_WORKER) && hvd_config_require(cfg, rows[i].name, err, errlen) != 0) goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < NROWS; i++) {
        free(layers[i].val);
        free(layers[i].src);
        free(flag_layers[i].val);
        free(flag_layers[i].src);
    }
    if (rc == -1 && err && errlen && !err[0]) set_err(err, errlen, "invalid configuration");
    return rc;
}

int hvd_config_load(HvdConfig *cfg, int argc, char **argv, const char *program, char *err, size_t errlen)
{
    /* work on a copy of argv: the strict form never needs to rewrite it */
    char **copy = hvd_xcalloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof *copy);
    for (int i = 0; i < argc; i++) copy[i] = argv[i];
    int n = argc;
    int rc = hvd_config_load_args(cfg, &n, copy, program, 0, err, errlen);
    free(copy);
    return rc;
}

void hvd_config_free(HvdConfig *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NROWS; i++) {
        const CfgRow *r = &rows[i];
        switch (r->type) {
        case CT_STR:
        case CT_NAME:
        case CT_AMQP_URL:
        case CT_PG_DSN:
        case CT_PROFILE:
        case CT_ADDR: {
            char **f = FIELD(cfg, r, char *);
            if (*f && (r->type == CT_AMQP_URL || r->type == CT_PG_DSN)) memset(*f, 0, strlen(*f));
            free(*f);
            break;
        }
        case CT_HOSTLIST:
        case CT_CODELIST:
        case CT_TEXTLIST:
        case CT_PATHLIST: strlist_free(FIELD(cfg, r, HvdStrList)); break;
        default: break;
        }
    }
    memset(cfg, 0, sizeof *cfg);
}

int64_t hvd_config_agent_timeout(const HvdConfig *cfg, const char *op)
{
    int64_t def = HVD_AGENT_TIMEOUT_FALLBACK;
    for (size_t i = 0; i < cfg->agent_timeouts.n; i++) {
        if (op && strcmp(cfg->agent_timeouts.v[i].op, op) == 0) return cfg->agent_timeouts.v[i].seconds;
        if (strcmp(cfg->agent_timeouts.v[i].op, "default") == 0) def = cfg->agent_timeouts.v[i].seconds;
    }
    return def;
}

bool hvd_config_code_retryable(const HvdConfig *cfg, const char *code)
{
    if (!code) return false;
    for (size_t i = 0; i < cfg->agent_retryable_codes.n; i++)
        if (strcmp(cfg->agent_retryable_codes.v[i], code) == 0) return true;
    return false;
}

/* ---- output ---- */

void hvd_config_usage(FILE *out, const char *program)
{
    const char *prog = program ? program : "hvdeploy-worker";
    bool worker = is_worker(prog);
    fprintf(out, "Usage: %s [--help] [--print-config] [--SETTING VALUE]...\n\n", prog);
    fprintf(out, "Every setting is an environment variable and a flag (--x-y VALUE or --x-y=VALUE;\n"
                 "a boolean also takes --x-y and --no-x-y). Precedence: defaults < HVD_CONFIG_FILE\n"
                 "< environment < flags. Durations are seconds, optionally with s, m, h or d.\n\n");
    fprintf(out, "  --help            print this help and exit\n"
                 "  --print-config    print the effective settings (passwords masked) and exit\n\n");
    for (size_t i = 0; i < NROWS; i++) {
        const CfgRow *r = &rows[i];
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        fprintf(out, "  %s, %s %s\n      %s\n", r->name, flag, r->type == CT_BOOL ? "[BOOL]" : r->metavar, r->help);
        if (r->required && worker)
            fprintf(out, "      (required)\n");
        else if (strcmp(r->name, "HVD_WORKER_ID") == 0)
            fprintf(out, "      default: <hostname>:<pid>\n");
        else if (!*r->def)
            fprintf(out, "      default: (empty)\n");
        else
            fprintf(out, "      default: %s\n", r->def);
    }
}

static void print_value(FILE *out, const char *name, const char *v)
{
    bool plain = !*v || (!isspace((unsigned char)v[0]) && !isspace((unsigned char)v[strlen(v) - 1]) && v[0] != '\'' &&
                         v[0] != '"' && !strpbrk(v, "\n\r"));
    if (plain) {
        fprintf(out, "%s=%s\n", name, v);
        return;
    }
    fprintf(out, "%s=\"", name);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') fputc('\\', out);
        if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
    fputs("\"\n", out);
}

void hvd_config_print(FILE *out, const HvdConfig *cfg)
{
    for (size_t i = 0; i < NROWS; i++) {
        const CfgRow *r = &rows[i];
        const void *f = (const char *)cfg + r->off;
        HvdBuf b = {0};
        hvd_buf_puts(&b, "");
        switch (r->type) {
        case CT_STR:
        case CT_NAME:
        case CT_PROFILE:
        case CT_ADDR: {
            const char *s = *(char *const *)f;
            hvd_buf_puts(&b, s ? s : "");
            break;
        }
        case CT_AMQP_URL:
        case CT_PG_DSN: {
            const char *s = *(char *const *)f;
            if (s) hvd_mask_url_into(&b, s);
            break;
        }
        case CT_INT:
        case CT_DUR: hvd_buf_printf(&b, "%lld", (long long)*(const int64_t *)f); break;
        case CT_BOOL: hvd_buf_puts(&b, *(const bool *)f ? "true" : "false"); break;
        case CT_LEVEL: hvd_buf_puts(&b, hvd_log_level_name(*(const HvdLogLevel *)f)); break;
        case CT_INTLIST: {
            const HvdIntList *l = f;
            for (size_t k = 0; k < l->n; k++) hvd_buf_printf(&b, "%s%lld", k ? "," : "", (long long)l->v[k]);
            break;
        }
        case CT_HOSTLIST:
        case CT_CODELIST:
        case CT_TEXTLIST:
        case CT_PATHLIST: {
            const HvdStrList *l = f;
            for (size_t k = 0; k < l->n; k++) hvd_buf_printf(&b, "%s%s", k ? "," : "", l->v[k]);
            break;
        }
        case CT_TIMEOUTS: {
            const HvdTimeouts *t = f;
            for (size_t k = 0; k < t->n; k++)
                hvd_buf_printf(&b, "%s%s=%lld", k ? "," : "", t->v[k].op, (long long)t->v[k].seconds);
            break;
        }
        }
        print_value(out, r->name, b.data);
        hvd_buf_free(&b);
    }
}
