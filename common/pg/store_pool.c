/* The store's connection pool, statement execution with SQLSTATE mapping,
 * transactions and the small helpers the store_*.c share (parameters and
 * result columns: store_params.c). */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_priv.h"
#include "mask.h"

/* Connections idle inside a transaction longer than this are ended by the
 * server: a worker frozen mid-transaction (SIGSTOP, a debugger) must not
 * hold a host's advisory lock for the fleet. No store transaction waits on
 * anything but the database, so a healthy one never comes near it. */
/* clang-format off */
#define STORE_IDLE_TX_TIMEOUT "-c idle_in_transaction_session_timeout=10000"
/* clang-format on */

void store_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool store_uuid_ok(const char *s)
{
    if (!s || strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* libpq messages span lines ("...failed: Connection refused\n\tIs the
 * server running..."): one line, continuation lines joined with "; " and
 * the tab-indented hints left out. */
static void one_line(char *dst, size_t dstlen, const char *msg)
{
    HvdBuf b = {0};
    const char *p = msg ? msg : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ')) n--;
        if (n > 0 && *p != '\t') {
            if (b.len) hvd_buf_puts(&b, "; ");
            hvd_buf_append(&b, p, n);
        }
        if (!nl) break;
        p = nl + 1;
    }
    snprintf(dst, dstlen, "%s", b.data ? b.data : "");
    hvd_buf_free(&b);
}

void hvd_store_mask_dsn(const char *dsn, char *out, size_t outlen)
{
    if (outlen == 0) return;
    HvdBuf b = {0};
    hvd_mask_url_into(&b, dsn ? dsn : ""); /* the one masker, core/mask.c */
    snprintf(out, outlen, "%s", b.data);
    hvd_buf_free(&b);
}

static char migrations_found[PATH_MAX];
static pthread_once_t migrations_once = PTHREAD_ONCE_INIT;

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Looks next to the running binary (build/bin -> ../../migrations, an
 * install's bin -> ../share/hvdeploy/migrations), then in the source tree the
 * library was built from. */
static void migrations_lookup(void)
{
    char exe[PATH_MAX];
    char cand[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const rel[] = {"/../../migrations", "/../migrations", "/../share/hvdeploy/migrations"};
            for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
                snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
                if (is_dir(cand) && realpath(cand, migrations_found)) return;
            }
        }
    }
#ifdef HVD_SOURCE_DIR
    snprintf(cand, sizeof(cand), "%s/migrations", HVD_SOURCE_DIR);
    if (is_dir(cand) && realpath(cand, migrations_found)) return;
#endif
    snprintf(migrations_found, sizeof(migrations_found), "%s", "/usr/share/hvdeploy/migrations");
}

const char *hvd_store_default_migrations_dir(void)
{
    const char *env = getenv("HVD_MIGRATIONS_DIR");
    if (env && *env) return env;
    pthread_once(&migrations_once, migrations_lookup);
    return migrations_found;
}

/* ---- errors ---- */

/* Whether the server we are connected to is no longer the primary: a
 * demoted primary or a standby refuses writes (25006 read_only_sql_transaction),
 * a server being shut down or restarted ends the session (57P01 admin_shutdown,
 * 57P02 crash_shutdown, 57P03 cannot_connect_now). The connection is dropped
 * and opened again, which with a multi-host DSN and target_session_attrs=
 * read-write finds the new primary. */
static bool sqlstate_not_primary(const char *code)
{
    return code && (strcmp(code, "25006") == 0 || strcmp(code, "57P01") == 0 || strcmp(code, "57P02") == 0 ||
                    strcmp(code, "57P03") == 0);
}

/* Whether a failure means the connection is gone (reset it before reuse). */
static bool sqlstate_breaks_conn(const char *code)
{
    return code && (strncmp(code, "08", 2) == 0 || sqlstate_not_primary(code));
}

static bool sqlstate_transient(const char *code)
{
    return sqlstate_breaks_conn(code) ||
           (code && (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0 || strcmp(code, "53300") == 0));
}

/* Maps a failed result (or none) to RETRY/ERROR with a one-line reason. */
HvdStoreStatus store_fail(StoreConn *c, const PGresult *r, char *err, size_t errlen)
{
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg) msg = r ? PQresultErrorMessage(r) : NULL;
    char line[512];
    if (!msg || !*msg) msg = PQerrorMessage(c->conn);
    one_line(line, sizeof(line), msg);
    if (code && strcmp(code, "25006") == 0) {
        c->broken = true;
        store_set_err(err, errlen, "the database server is no longer the primary (25006, read-only): %s; reconnecting",
                      line);
        return HVD_STORE_RETRY;
    }
    if (PQstatus(c->conn) != CONNECTION_OK || sqlstate_breaks_conn(code)) {
        c->broken = true;
        store_set_err(err, errlen, "database connection lost: %s", line);
        return HVD_STORE_RETRY;
    }
    if (sqlstate_transient(code)) {
        store_set_err(err, errlen, "transient database error (%s): %s", code, line);
        return HVD_STORE_RETRY;
    }
    if (code)
        store_set_err(err, errlen, "database error (%s): %s", code, line);
    else
        store_set_err(err, errlen, "database error: %s", line);
    return HVD_STORE_ERROR;
}

bool store_result_ok(const PGresult *r)
{
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

/* ---- execution ---- */

const char *store_prepared_name(StoreConn *c, const char *sql, char name[16], bool *have)
{
    for (size_t i = 0; i < c->n_prepared; i++) {
        if (c->prepared[i] == sql) {
            snprintf(name, 16, "hvd_s%u", (unsigned)(i & 0xffff));
            *have = true;
            return name;
        }
    }
    *have = false;
    if (c->n_prepared >= STORE_MAX_PREPARED) return NULL;
    snprintf(name, 16, "hvd_s%u", (unsigned)(c->n_prepared & 0xffff));
    return name;
}

PGresult *store_exec(StoreConn *c, const char *sql, const StoreParams *p, HvdStoreStatus *st, char *err, size_t errlen)
{
    static const StoreParams none = {0};
    char name[16];
    bool have = false;
    PGresult *r;
    if (!p) p = &none;
    const char *stmt = store_prepared_name(c, sql, name, &have);
    if (!stmt) {
        r = PQexecParams(c->conn, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
    } else {
        if (!have) {
            r = PQprepare(c->conn, stmt, sql, 0, NULL);
            store_count_round_trip(c);
            if (!store_result_ok(r)) goto failed;
            PQclear(r);
            c->prepared[c->n_prepared++] = sql;
        }
        r = PQexecPrepared(c->conn, stmt, p->n, p->v, p->len, p->fmt, 0);
    }
    store_count_round_trip(c);
    if (store_result_ok(r)) return r;
failed:
    *st = store_fail(c, r, err, errlen);
    PQclear(r);
    return NULL;
}

PGresult *store_exec1(HvdStore *s, StoreConn *c, const char *sql, const StoreParams *p, HvdStoreStatus *st, char *err,
                      size_t errlen)
{
    PGresult *r = store_exec(c, sql, p, st, err, errlen);
    if (r) atomic_fetch_add(&s->tx_count, 1);
    return r;
}

void store_count_round_trip(StoreConn *c)
{
    if (c->round_trips) atomic_fetch_add(c->round_trips, 1);
}

HvdStoreStatus store_exec_script(StoreConn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c->conn, sql);
    store_count_round_trip(c);
    HvdStoreStatus st = HVD_STORE_OK;
    if (!store_result_ok(r)) st = store_fail(c, r, err, errlen);
    PQclear(r);
    return st;
}

HvdStoreStatus store_begin(StoreConn *c, char *err, size_t errlen)
{
    return store_exec_script(c, "BEGIN", err, errlen);
}

HvdStoreStatus store_commit(HvdStore *s, StoreConn *c, char *err, size_t errlen)
{
    PGresult *r = PQexec(c->conn, "COMMIT");
    store_count_round_trip(c);
    HvdStoreStatus st = HVD_STORE_OK;
    if (!store_result_ok(r)) {
        st = store_fail(c, r, err, errlen);
    } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        /* COMMIT of a failed transaction answers ROLLBACK */
        store_set_err(err, errlen, "transaction was rolled back");
        st = HVD_STORE_ERROR;
    } else {
        atomic_fetch_add(&s->tx_count, 1);
    }
    PQclear(r);
    return st;
}

void store_rollback(StoreConn *c)
{
    if (PQstatus(c->conn) != CONNECTION_OK) return;
    if (PQtransactionStatus(c->conn) == PQTRANS_IDLE) return;
    PGresult *r = PQexec(c->conn, "ROLLBACK");
    if (!store_result_ok(r)) c->broken = true;
    PQclear(r);
}

/* ---- pool ---- */

static PGconn *connect_db(const HvdStore *s)
{
    /* Our settings come first: a DSN that sets any of them wins. Every store
     * writes, so only a read-write server will do: with a multi-host DSN
     * (host=a,b or postgresql://a,b/db) libpq skips a standby and, after a
     * failover, finds the promoted one. */
    const char *const keys[] = {"connect_timeout",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "application_name",
                                "options",
                                "target_session_attrs",
                                "dbname",
                                NULL};
    const char *const vals[] = {"10",         "1",    "10", "5", "3", "30000", "hvdeploy", STORE_IDLE_TX_TIMEOUT,
                                "read-write", s->dsn, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

/* Server notices (NOTICE: schema already exists, ...) are not ours to print:
 * the worker's stderr carries JSON log lines only. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Opens or resets c outside the pool lock. */
static HvdStoreStatus ensure_connected(HvdStore *s, StoreConn *c, char *err, size_t errlen)
{
    if (c->conn && !c->broken && PQstatus(c->conn) == CONNECTION_OK) return HVD_STORE_OK;
    c->n_prepared = 0;
    if (c->conn) {
        PQreset(c->conn);
    } else {
        c->conn = connect_db(s);
    }
    if (!c->conn) abort(); /* libpq could not allocate */
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char line[512];
        one_line(line, sizeof(line), PQerrorMessage(c->conn));
        store_set_err(err, errlen, "cannot connect to PostgreSQL: %s", line);
        c->broken = true;
        return HVD_STORE_RETRY;
    }
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    c->broken = false;
    return HVD_STORE_OK;
}

HvdStoreStatus store_conn_ensure(HvdStore *s, StoreConn *c, char *err, size_t errlen)
{
    return ensure_connected(s, c, err, errlen);
}

StoreConn *store_checkout(HvdStore *s, HvdStoreStatus *st, char *err, size_t errlen)
{
    StoreConn *c = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* prefer a connection that is up */
        for (size_t i = 0; i < s->n_conns; i++) {
            StoreConn *k = &s->conns[i];
            if (k->busy) continue;
            if (!c || (k->conn && !k->broken && !(c->conn && !c->broken))) c = k;
        }
        if (c) break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    c->busy = true;
    pthread_mutex_unlock(&s->mu);
    *st = ensure_connected(s, c, err, errlen);
    if (*st != HVD_STORE_OK) {
        store_checkin(s, c);
        return NULL;
    }
    return c;
}

void store_checkin(HvdStore *s, StoreConn *c)
{
    if (!c) return;
    /* never hand out a connection inside a transaction */
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        store_rollback(c);
    if (c->conn && PQstatus(c->conn) != CONNECTION_OK) c->broken = true;
    pthread_mutex_lock(&s->mu);
    c->busy = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

HvdStore *hvd_store_open(const HvdStoreOptions *opt, char *err, size_t errlen)
{
    HvdStore *s = NULL;
    HvdStoreStatus st;
    if (!opt || !opt->dsn) {
        store_set_err(err, errlen, "no database DSN given");
        return NULL;
    }
    if (opt->pool_size < 1 || opt->pool_size > 1024) {
        store_set_err(err, errlen, "pool size must be 1..1024, not %d", opt->pool_size);
        return NULL;
    }
    s = hvd_xcalloc(1, sizeof(*s));
    s->dsn = hvd_xstrdup(opt->dsn);
    s->worker_id = hvd_xstrdup(opt->worker_id && *opt->worker_id ? opt->worker_id : "hvdeploy");
    s->lease_ttl_s = opt->lease_ttl_s > 0 ? opt->lease_ttl_s : 30;
    s->host_concurrency = opt->host_concurrency > 0 ? opt->host_concurrency : 1;
    s->secret_retention_s = opt->secret_retention_s >= 0 ? opt->secret_retention_s : 0;
    s->n_conns = (size_t)opt->pool_size;
    s->conns = hvd_xcalloc(s->n_conns, sizeof(StoreConn));
    for (size_t i = 0; i < s->n_conns; i++) s->conns[i].round_trips = &s->round_trips;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->tx_count, 0);
    atomic_init(&s->round_trips, 0);
    /* one connection now, so that a wrong DSN is reported at once; the others
     * connect when first needed */
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) {
        hvd_store_close(s);
        return NULL;
    }
    store_checkin(s, c);
    return s;
}

void hvd_store_close(HvdStore *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].conn) PQfinish(s->conns[i].conn);
    free(s->conns);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->dsn);
    free(s->worker_id);
    free(s);
}

bool hvd_store_healthy(HvdStore *s)
{
    HvdStoreStatus st;
    char err[256];
    if (!s) return false;
    StoreConn *c = store_checkout(s, &st, err, sizeof(err));
    if (!c) return false;
    bool ok = store_exec_script(c, "SELECT 1", err, sizeof(err)) == HVD_STORE_OK;
    store_checkin(s, c);
    return ok;
}

uint64_t hvd_store_tx_count(HvdStore *s)
{
    return s ? (uint64_t)atomic_load(&s->tx_count) : 0;
}

uint64_t hvd_store_round_trips(HvdStore *s)
{
    return s ? (uint64_t)atomic_load(&s->round_trips) : 0;
}
