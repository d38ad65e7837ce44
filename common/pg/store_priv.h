/* Internals shared by the store_*.c files: the connection pool, statement
 * execution with SQLSTATE mapping, transactions and parameter lists. */
#ifndef HVD_STORE_PRIV_H
#define HVD_STORE_PRIV_H
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include "store.h"

/* Statements prepared per connection: the SQL text's address is the key
 * (every statement is a static string), so each module keeps its SQL next to
 * the code that runs it. */
/* clang-format off */
#define STORE_MAX_PREPARED 64
/* clang-format on */

typedef struct {
    PGconn *conn;
    atomic_uint_fast64_t *round_trips; /* the store's counter */
    bool busy;                         /* checked out by a thread */
    bool broken;                       /* reset before its next use */
    size_t n_prepared;
    const char *prepared[STORE_MAX_PREPARED];
} StoreConn;

struct HvdStore {
    char *dsn;
    char *worker_id;
    int lease_ttl_s;
    int host_concurrency;
    int secret_retention_s;
    size_t n_conns;
    StoreConn *conns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint_fast64_t tx_count;
    atomic_uint_fast64_t round_trips;
};

/* The job statuses a job can still leave ("live"), as an SQL list. */
/* clang-format off */
#define STORE_LIVE "('queued','running','retrying')"
/* clang-format on */
/* RFC 3339 UTC text with milliseconds of a timestamptz expression. */
/* clang-format off */
#define STORE_TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* clang-format on */
/* A job that is waiting for a slot of its host (the table alias is w). */
/* clang-format off */
#define STORE_WAITING_FOR_SLOT(w)                                                        \
    "(" w ".status = 'queued' AND (" w ".waiting_reason = 'host_busy' OR " w              \
    ".next_run_at IS NULL OR " w ".next_run_at <= now()) OR " w ".status = 'retrying' AND " w \
    ".next_run_at <= now() OR " w ".status = 'running' AND " w ".lease_expires_at <= now())"
/* clang-format on */
/* The fence of every runner write: params $1 job id, $2 epoch, $3 worker. */
/* clang-format off */
#define STORE_FENCE                                                                      \
    "job_id = $1::uuid AND lease_epoch = $2::bigint AND lease_owner = $3::text AND status = " \
    "'running' AND holds_slot"
/* clang-format on */

/* ---- parameters ---- */
/* clang-format off */
#define STORE_MAX_PARAMS 24
/* clang-format on */
typedef struct {
    int n;
    const char *v[STORE_MAX_PARAMS];
    int len[STORE_MAX_PARAMS];
    int fmt[STORE_MAX_PARAMS];
    char num[STORE_MAX_PARAMS][24];
} StoreParams;

void store_p_text(StoreParams *p, const char *s); /* NULL -> SQL NULL */
void store_p_int(StoreParams *p, int64_t v);
void store_p_bool(StoreParams *p, bool v);
void store_p_bin(StoreParams *p, const void *data, size_t len); /* NULL -> SQL NULL */
/* Appends s to b as one element of a PostgreSQL array literal ("{...}"). */
void store_array_add(HvdBuf *b, const char *s); /* NULL -> NULL element */
void store_array_end(HvdBuf *b);                /* closes it ("{}" when empty) */

/* ---- pool ---- */
StoreConn *store_checkout(HvdStore *s, HvdStoreStatus *st, char *err, size_t errlen);
void store_checkin(HvdStore *s, StoreConn *c);
/* Opens c, or opens it again when it broke, with the pool's settings: for a
 * connection kept outside the pool (a role's). RETRY with err when it cannot. */
HvdStoreStatus store_conn_ensure(HvdStore *s, StoreConn *c, char *err, size_t errlen);
/* The job statuses a job has ended in, as an SQL list. */
/* clang-format off */
#define STORE_TERMINAL "('succeeded','failed','cancelled')"
/* clang-format on */

/* ---- execution ----
 * store_exec runs one statement (prepared once per connection) and returns
 * its result when it succeeded, else NULL with *st (RETRY or ERROR) and err
 * set; a connection failure marks the connection for a reset. */
PGresult *store_exec(StoreConn *c, const char *sql, const StoreParams *p, HvdStoreStatus *st, char *err, size_t errlen);
/* store_exec in autocommit: a successful statement counts as a transaction. */
PGresult *store_exec1(HvdStore *s, StoreConn *c, const char *sql, const StoreParams *p, HvdStoreStatus *st, char *err,
                      size_t errlen);
HvdStoreStatus store_begin(StoreConn *c, char *err, size_t errlen);
/* Maps a failed result (or none) to RETRY/ERROR with a one-line reason; a
 * lost connection is marked for a reset. */
HvdStoreStatus store_fail(StoreConn *c, const PGresult *r, char *err, size_t errlen);
bool store_result_ok(const PGresult *r);
/* The name of sql's prepared statement on c (*have: prepared already), NULL
 * when c has no room for another. */
const char *store_prepared_name(StoreConn *c, const char *sql, char name[16], bool *have);

/* ---- pipelines (store_pipeline.c) ----
 * Several statements in one round trip (libpq's pipeline mode): each is
 * sent at once, then one sync, then the results read. A statement that
 * fails aborts the rest; the transaction they are in is then to be rolled
 * back. results[i] is set for each statement (NULL after a failure). */
typedef struct {
    const char *sql; /* a static string (its address names the prepared statement); "BEGIN"/"COMMIT" too */
    const StoreParams *p;
} StoreStmt;
HvdStoreStatus store_pipeline(StoreConn *c, const StoreStmt *stmts, size_t n, PGresult **results, char *err,
                              size_t errlen);
/* One more round trip to the server on c (for metrics and the benchmark). */
void store_count_round_trip(StoreConn *c);
HvdStoreStatus store_commit(HvdStore *s, StoreConn *c, char *err, size_t errlen);
void store_rollback(StoreConn *c);
/* Runs SQL text with the simple protocol (several statements, no params). */
HvdStoreStatus store_exec_script(StoreConn *c, const char *sql, char *err, size_t errlen);

/* Copies a text column (NULL when SQL NULL). */
char *store_col_dup(const PGresult *r, int row, int col);
bool store_col_bool(const PGresult *r, int row, int col);
int64_t store_col_int(const PGresult *r, int row, int col);
void store_col_copy(const PGresult *r, int row, int col, char *dst, size_t dstlen);
/* Decodes a bytea column (text format) into out (appending). */
void store_col_bytea(const PGresult *r, int row, int col, HvdBuf *out);

void store_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool store_uuid_ok(const char *s);

/* ---- records (store_record.c) ---- */
/* Loads the job (and its stages) into rec; *found false when unknown. With
 * for_update the job row is locked (inside a transaction). facts (may be
 * NULL) gets what hvd_plan_claim decides on. */
HvdStoreStatus store_load_job(HvdStore *s, StoreConn *c, const char *job_id, bool for_update, bool *found,
                              HvdJobRecord *rec, HvdClaimFacts *facts, char *err, size_t errlen);
HvdStoreStatus store_load_stages(StoreConn *c, const char *job_id, HvdJobRecord *rec, char *err, size_t errlen);
/* The same two statements for a pipeline: the job row locked ($1 job id, $2
 * this worker) and its stages ($1); their results into rec and facts. False
 * when the job row is not there. */
extern const char *const STORE_SQL_LOAD_JOB_LOCKED;
extern const char *const STORE_SQL_LOAD_STAGES;
bool store_record_from(HvdStore *s, const PGresult *job, const PGresult *stages, HvdJobRecord *rec,
                       HvdClaimFacts *facts);
HvdJobStatus store_col_job_status(const PGresult *r, int row, int col);
HvdStageStatus store_col_stage_status(const PGresult *r, int row, int col);
/* The columns of a new job's row and its stage names as $1..$10 (store_claim.c). */
void store_new_job_params(StoreParams *p, const HvdJobRecord *job, HvdBuf *stages);

/* Takes the advisory lock of the job's host when the job is live (every
 * transaction that moves slots takes it before any job row). */
HvdStoreStatus store_lock_job_host(StoreConn *c, const char *job_id, bool *found, char *err, size_t errlen);
extern const char *const STORE_SQL_LOCK_BY_JOB; /* the same, for a pipeline ($1 job id) */

#endif
