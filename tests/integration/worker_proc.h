/* Worker processes for integration and chaos tests: a private world per test
 * (fresh database, AMQP prefix, temp dir with the simhost's state), workers
 * started as child processes with stderr in a log file, job messages built
 * from tests/data/jobs with fresh ids, and envelope collection and decoding.
 *
 * Typical use:
 *     WpWorld *w = wp_world_new(NULL);                  // db + prefix + topology + dir
 *     WpWorker *k = wp_start(w, &(WpOptions){.name = "a"});
 *     cr_assert(wp_wait_ready(k, 20000), "%s", wp_log_tail(k));
 *     HvdNode *job = wp_job_load("full-windows.json", NULL);
 *     char q[128]; wp_private_queue(w->broker, q, sizeof q);
 *     wp_publish_job(w, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
 *     WpMsg m[1]; cr_assert_eq(wp_collect(w->broker, q, 1, 30000, m), 1);
 *     ... m[0].body is the decoded envelope ...
 *     wp_msgs_free(m, 1); hvd_node_free(job);
 *     cr_assert_eq(wp_stop(k, 10000), 0);
 *     wp_world_free(w);                                  // kills workers left, drops db, prefix
 *
 * Workers get a clean environment: the parent's variables minus every HVD_*
 * one, then those of WpOptions. A worker dies with the test process
 * (PR_SET_PDEATHSIG), so a failed assertion never leaves one behind.
 * Nothing here reads or prints a secret except wp_job_secrets. */
#ifndef HVD_IT_WORKER_PROC_H
#define HVD_IT_WORKER_PROC_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "broker.h"
#include "codec.h"
#include "node.h"

#define WP_MAX_WORKERS 16

typedef struct WpWorker WpWorker;

/* One test's private world. Every member is owned by the world. */
typedef struct {
    char *prefix;      /* AMQP prefix, e.g. "it4242x1" (topology declared with hvd_it_delays) */
    char *db_name;     /* hvd_it_<pid>_<n>, created empty (workers migrate it) */
    char *dsn;         /* libpq DSN of db_name */
    char *dir;         /* a temp dir: worker logs, the simhost's state (dir/sim) */
    char *sim_dir;     /* dir/sim: effects at sim_dir/<host>/effects.jsonl */
    HvdBroker *broker; /* the test side's connection (confirms on), NULL after wp_world_reconnect fails */
    PGconn *pg;        /* connected on first use by wp_pg_* */
    WpWorker *workers[WP_MAX_WORKERS]; /* every worker started in this world */
    size_t n_workers;
    bool keep_dir; /* leave dir in place at wp_world_free */
} WpWorld;

typedef struct {
    bool no_topology; /* do not declare the topology from the test side */
    bool keep_dir;    /* keep dir after wp_world_free (also kept when $HVD_IT_KEEP is set) */
} WpWorldOptions;

/* Creates a world; fails the test when a service is missing. opt may be NULL. */
WpWorld *wp_world_new(const WpWorldOptions *opt);
/* Kills (SIGKILL) every worker still running, closes connections, deletes the
 * prefix's queues and exchanges, drops the database and removes dir. NULL-safe. */
void wp_world_free(WpWorld *w);
/* Replaces w->broker with a new connection (after a broker restart); retries for
 * up to timeout_ms. False when it could not connect. */
bool wp_world_reconnect(WpWorld *w, int timeout_ms);

/* ---- worker processes ---------------------------------------------------- */

typedef struct {
    const char *name;             /* HVD_WORKER_ID and log file dir/<name>.log; NULL = "w<N>" */
    const char *prefix;           /* NULL = the world's */
    const char *dsn;              /* NULL = the world's database */
    const char *amqp_url;         /* NULL = $HVD_AMQP_URL */
    const char *agent_cmd;        /* NULL = "<bin>/hvdeploy-simhost --state-dir <world>/sim" */
    const char *lease_ttl;        /* HVD_LEASE_TTL; NULL = "10" */
    const char *shutdown_grace;   /* HVD_SHUTDOWN_GRACE; NULL = "10" */
    const char *concurrency;      /* HVD_CONCURRENCY; NULL = worker default */
    const char *host_concurrency; /* HVD_HOST_CONCURRENCY; NULL = worker default */
    const char *metrics_addr;     /* HVD_METRICS_ADDR; NULL = "" (disabled) */
    const char *log_level;        /* HVD_LOG_LEVEL; NULL = "info" */
    const char *retry_delays;     /* HVD_RETRY_DELAYS; NULL = hvd_it_delays ("1,2") */
    const char *sim_latency_ms;   /* HVD_SIM_LATENCY_MS, e.g. "vm.create=2000" */
    const char *sim_fail, *sim_crash, *sim_hang, *sim_seed; /* HVD_SIM_* */
    const char *const *extra; /* more "NAME=value" entries, NULL-terminated (may override) */
} WpOptions;

/* Starts build/bin/hvdeploy-worker with the world's environment and opt (may be
 * NULL). Fails the test when it cannot fork. The worker is registered in w. */
WpWorker *wp_start(WpWorld *w, const WpOptions *opt);
pid_t wp_pid(const WpWorker *k);
const char *wp_name(const WpWorker *k);
const char *wp_log_path(const WpWorker *k);
/* Waits until the log says "worker started"; false on timeout or when it exited. */
bool wp_wait_ready(WpWorker *k, int timeout_ms);
/* Waits until the log contains needle (a plain substring). */
bool wp_wait_log(WpWorker *k, const char *needle, int timeout_ms);
/* The whole log (caller frees; never NULL). */
char *wp_log(const WpWorker *k);
/* The last ~4 KiB of the log, for assertion messages (static buffer, one at a time). */
const char *wp_log_tail(const WpWorker *k);
/* How many times needle occurs in the log. */
size_t wp_log_count(const WpWorker *k, const char *needle);

/* Exit statuses: 0..255 for an exit, 128+N when killed by signal N,
 * WP_RUNNING when it has not exited (yet). */
#define WP_RUNNING (-1)
/* True while the process has not exited (reaps it when it has). */
bool wp_running(WpWorker *k);
/* Waits up to timeout_ms for the exit; returns its status or WP_RUNNING. */
int wp_wait_exit(WpWorker *k, int timeout_ms);
/* SIGTERM, then waits up to timeout_ms; returns the exit status, or WP_RUNNING
 * when it did not exit in time (it is then killed with SIGKILL and reaped). */
int wp_stop(WpWorker *k, int timeout_ms);
/* Sends a signal (no-op once exited). */
void wp_signal(WpWorker *k, int sig);
/* SIGKILL and reap; returns the status (137 unless it had exited already). */
int wp_kill9(WpWorker *k);
void wp_sigstop(WpWorker *k);
void wp_sigcont(WpWorker *k);
/* Milliseconds between the last wp_signal/wp_stop and the exit (-1 when unknown). */
long long wp_exit_after_ms(const WpWorker *k);

/* ---- jobs ------------------------------------------------------------------ */

/* A fresh random (version 4) UUID in canonical form. */
void wp_uuid(char out[37]);
/* Loads tests/data/jobs/<file> (JSON), gives it a fresh job_id and a fresh
 * vm_name "<vm_name prefix>-<6 hex>" (also target_host when host is not NULL).
 * Caller frees with hvd_node_free. */
HvdNode *wp_job_load(const char *file, const char *host);
const char *wp_job_id(const HvdNode *job);
const char *wp_job_vm_name(const HvdNode *job);
const char *wp_job_host(const HvdNode *job);
/* The node at a dotted path ("request.vm_spec") for editing, or NULL. */
HvdNode *wp_job_at(HvdNode *job, const char *path);
/* The secret values of a job body (guest_la_pw, guest_domain_join_pw,
 * cnf_ansible_ssh_key) plus tests/data/secrets.txt, appended to *list (a
 * NULL-terminated array grown with realloc; free with wp_strv_free). */
void wp_job_secrets(const HvdNode *job, char ***list);
void wp_strv_free(char **v);

typedef struct {
    HvdContentType ct;          /* body encoding (HVD_CT_UNKNOWN = raw must be set) */
    const char *content_type;   /* the property; NULL = name of ct; "" = unset */
    const char *routing_key;    /* NULL = "managed_deployment" */
    const char *reply_to;       /* NULL = none */
    const char *correlation_id; /* NULL = none */
    const char *message_id;     /* NULL = none; WP_JOB_ID = the body's job_id */
    const void *raw;            /* a raw body instead of the encoded job */
    size_t raw_len;
    HvdBuf *sent; /* when not NULL, receives the exact bytes published */
} WpSend;
#define WP_JOB_ID ((const char *)1)

/* Publishes job (or s->raw) to <prefix>.jobs and waits for the confirm; fails
 * the test unless the broker acked it. */
void wp_publish_job(WpWorld *w, const HvdNode *job, const WpSend *s);

/* A server-named exclusive queue on w->broker (gone when it closes). */
void wp_private_queue(WpWorld *w, char *name, size_t len);
/* A private queue bound to <prefix>.events with key "#". */
void wp_events_tap(WpWorld *w, char *name, size_t len);

/* ---- receiving ------------------------------------------------------------- */

typedef struct {
    HvdDelivery d; /* properties and the raw body (d.body, d.len) */
    HvdNode *body; /* decoded with d.content_type (JSON when unknown); NULL when undecodable */
} WpMsg;

/* Takes up to n messages from queue (basic.get) until n arrived or timeout_ms
 * passed; returns how many were stored in out[0..]. */
size_t wp_collect(HvdBroker *b, const char *queue, size_t n, int timeout_ms, WpMsg *out);
/* Takes whatever arrives for quiet_ms more (up to max). */
size_t wp_drain(HvdBroker *b, const char *queue, size_t max, int quiet_ms, WpMsg *out);
void wp_msgs_free(WpMsg *m, size_t n);
/* A header of the message as a string (borrowed), or NULL. */
const char *wp_msg_header(const WpMsg *m, const char *key);

/* Helpers for decoded envelopes and events. */
const char *wp_str(const HvdNode *map, const char *key); /* NULL when absent or not a string */
bool wp_is_nil(const HvdNode *map, const char *key);     /* present and nil */
int64_t wp_int(const HvdNode *map, const char *key, int64_t dflt);
/* The stage named name in env.stages, or NULL. */
const HvdNode *wp_env_stage(const HvdNode *env, const char *name);
/* "vm.create,disk.create,..." of env.stages (caller frees). */
char *wp_env_stage_names(const HvdNode *env);
/* True when memory [p, p+n) contains needle. */
bool wp_contains(const void *p, size_t n, const char *needle);

/* Per-job tally of envelopes, for runs where connections break (restarts, chaos). */
typedef struct {
    char id[37];     /* the job id to look for (set by the caller) */
    int envelopes;   /* envelopes seen for it */
    int successes;   /* of which status "success" */
    char status[16]; /* status of the last one ("" = none yet) */
    char code[40];   /* code of the last one ("" = nil) */
} WpSeen;
/* Takes envelopes from queue until every job of seen[0..n) has one (when
 * stop_when_all) or timeout_ms passed, reconnecting w->broker whenever it breaks.
 * Envelopes of other job ids are counted in the return value only. Returns how many
 * envelopes were taken. */
size_t wp_collect_jobs(WpWorld *w, const char *queue, WpSeen *seen, size_t n, int timeout_ms, bool stop_when_all);
/* How many of seen[0..n) have no envelope yet. */
size_t wp_seen_missing(const WpSeen *seen, size_t n);

/* ---- services ----------------------------------------------------------------- */

/* Runs `$HVD_DEV_SH svc VERB` (rmq-restart, pg-stop, rmq-pause...; output discarded);
 * returns its exit status (-1 when dev.sh is not found). */
int wp_svc(const char *verb);

/* ---- the database ------------------------------------------------------------ */

/* First value of the first row of a query on the world's database (printf-style
 * SQL; no parameters): a new string, "" for NULL, NULL when no row. Fails the
 * test on an SQL error. */
char *wp_pg_value(WpWorld *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same as a number (-1 when no row or NULL). */
long wp_pg_long(WpWorld *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Waits until the job's row has that status (polling; the schema may not exist yet). */
bool wp_wait_job_status(WpWorld *w, const char *job_id, const char *status, int timeout_ms);
/* Waits until the job's stage row has that status. */
bool wp_wait_stage_status(WpWorld *w, const char *job_id, const char *stage, const char *status, int timeout_ms);
/* A whole result (caller PQclear's); fails the test on an SQL error. */
PGresult *wp_pg_query(WpWorld *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every value of every column of every table of schema hvdeploy as text
 * (bytea with encode(..., 'escape') so that text inside it stays readable),
 * one value a line. Caller frees. */
char *wp_pg_dump_schema(WpWorld *w);

/* ---- files ----------------------------------------------------------------- */

/* A whole file (caller frees; "" when missing). */
char *wp_read_file(const char *path);
/* Lines of the simhost's effects.jsonl of host (0 when missing). */
size_t wp_effects_count(WpWorld *w, const char *host);

#endif
