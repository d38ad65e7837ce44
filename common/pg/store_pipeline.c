/* Several statements in one round trip (store_priv.h: store_pipeline),
 * with libpq's pipeline mode: a claim reads its facts in one trip and
 * applies its decision with the commit in a second; a transaction that
 * decides nothing in between (finish, retry wait, release) is one trip.
 * In pipeline mode every queued command — a statement's first Parse too —
 * answers with its result and a NULL; the sync answers last. */
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

#define MAX_PIPELINE 16

static bool is_plain(const char *sql)
{
    return strcmp(sql, "BEGIN") == 0 || strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0;
}

/* Queues one statement, with its Parse the first time (*prepared set). */
static bool send_one(StoreConn *c, const StoreStmt *st, bool *prepared)
{
    static const StoreParams none = {0};
    const StoreParams *p = st->p ? st->p : &none;
    *prepared = false;
    if (is_plain(st->sql)) return PQsendQueryParams(c->conn, st->sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
    char name[16];
    bool have = false;
    const char *stmt = store_prepared_name(c, st->sql, name, &have);
    if (!stmt) return PQsendQueryParams(c->conn, st->sql, p->n, NULL, p->v, p->len, p->fmt, 0) == 1;
    if (!have) {
        if (PQsendPrepare(c->conn, stmt, st->sql, 0, NULL) != 1) return false;
        c->prepared[c->n_prepared++] = st->sql;
        *prepared = true;
    }
    return PQsendQueryPrepared(c->conn, stmt, p->n, p->v, p->len, p->fmt, 0) == 1;
}

/* One command's result, and the NULL that follows it. NULL when the
 * connection failed. */
static PGresult *command_result(StoreConn *c)
{
    PGresult *r = PQgetResult(c->conn);
    if (!r) return NULL;
    PGresult *end;
    while ((end = PQgetResult(c->conn)) != NULL) PQclear(end); /* (one result per command expected) */
    return r;
}

/* Forgets a Parse that did not happen (its statement is prepared again next time). */
static void unprepare(StoreConn *c, const char *sql)
{
    for (size_t i = 0; i < c->n_prepared; i++)
        if (c->prepared[i] == sql) {
            c->prepared[i] = c->prepared[--c->n_prepared];
            c->broken = true; /* names follow positions: start afresh rather than renumber */
            return;
        }
}

HvdStoreStatus store_pipeline(StoreConn *c, const StoreStmt *stmts, size_t n, PGresult **results, char *err,
                              size_t errlen)
{
    bool prepared[MAX_PIPELINE];
    for (size_t i = 0; i < n; i++) results[i] = NULL;
    if (n > MAX_PIPELINE) {
        store_set_err(err, errlen, "a pipeline holds at most %d statements", MAX_PIPELINE);
        return HVD_STORE_ERROR;
    }
    if (PQenterPipelineMode(c->conn) != 1) return store_fail(c, NULL, err, errlen);
    size_t sent = 0;
    bool failed = false;
    while (sent < n && send_one(c, &stmts[sent], &prepared[sent])) sent++;
    if (sent < n || PQpipelineSync(c->conn) != 1) failed = true;
    store_count_round_trip(c);
    PGresult *bad = NULL;
    for (size_t i = 0; i < sent && PQstatus(c->conn) == CONNECTION_OK; i++) {
        if (prepared[i]) {
            PGresult *pr = command_result(c);
            if (!store_result_ok(pr)) {
                unprepare(c, stmts[i].sql);
                if (!bad && pr && PQresultStatus(pr) != PGRES_PIPELINE_ABORTED) bad = pr, pr = NULL;
                failed = true;
            }
            PQclear(pr);
        }
        PGresult *r = command_result(c);
        if (!store_result_ok(r)) {
            if (!bad && r && PQresultStatus(r) != PGRES_PIPELINE_ABORTED) bad = r, r = NULL;
            failed = true;
            PQclear(r);
            continue;
        }
        results[i] = r;
    }
    /* the sync, then out of pipeline mode */
    while (PQstatus(c->conn) == CONNECTION_OK) {
        PGresult *r = PQgetResult(c->conn);
        if (!r) continue;
        ExecStatusType t = PQresultStatus(r);
        PQclear(r);
        if (t == PGRES_PIPELINE_SYNC) break;
    }
    if (PQstatus(c->conn) != CONNECTION_OK || PQexitPipelineMode(c->conn) != 1) {
        c->broken = true;
        failed = true;
    }
    if (!failed) return HVD_STORE_OK;
    HvdStoreStatus st = store_fail(c, bad, err, errlen);
    PQclear(bad);
    for (size_t i = 0; i < n; i++) {
        PQclear(results[i]);
        results[i] = NULL;
    }
    return st;
}
