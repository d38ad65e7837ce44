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
    bool busy;   /* checked out by a thread */
    bool broken; /* reset before its next use */
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

/* ---- record loading (store_claim.c) ---- */
/* Loads the job (and its stages) into rec; *found false when unknown. With
 * for_update the job row is locked (inside a transaction). The extra decision
 * columns are returned in d when not NULL. */
typedef struct {
    bool lease_live; /* lease_expires_at > now() */
    bool not_due;    /* next_run_at > now() */
    bool holds_slot;
    int64_t seq;
} StoreJobState;
HvdStoreStatus store_load_job(StoreConn *c, const char *job_id, bool for_update, bool *found, HvdJobRecord *rec,
                              StoreJobState *d, char *err, size_t errlen);

/* Takes the advisory lock of the job's host when the job is live (every
 * transaction that moves slots takes it before any job row). */
HvdStoreStatus store_lock_job_host(StoreConn *c, const char *job_id, bool *found, char *err, size_t errlen);

#endif
