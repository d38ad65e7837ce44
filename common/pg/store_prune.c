/* Retention (contract §8 v1.1): deleting finished jobs whose envelope was
 * sent, oldest first, a bounded batch per transaction (see store_fleet.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store_fleet.h"
#include "store_priv.h"

/* The jobs that may go, in the order of index jobs_prunable (migration 0003). */
/* clang-format off */
#define PRUNABLE                                                                           \
    " FROM hvdeploy.jobs WHERE status IN " STORE_TERMINAL " AND envelope_sent_at IS NOT NULL" \
    " AND finished_at < now() - $1::bigint * interval '1 second'"

/* One batch, one statement (one transaction): the victims are locked (skipping
 * any row another transaction holds, e.g. a replay resetting it), then their
 * events go (job_events has no foreign key: it is append-only and written in
 * the hot path) and the jobs with them; stages, secrets and job output follow
 * by ON DELETE CASCADE. The status is checked again on the locked row, so a
 * job replayed meanwhile stays. */
static const char SQL_PRUNE_BATCH[] =
    "WITH v AS (SELECT job_id" PRUNABLE " ORDER BY finished_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
    " e AS (DELETE FROM hvdeploy.job_events ev USING v WHERE ev.job_id = v.job_id RETURNING 1),"
    " j AS (DELETE FROM hvdeploy.jobs jb USING v WHERE jb.job_id = v.job_id RETURNING 1)"
    " SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM e)";

static const char SQL_PRUNE_COUNT[] =
    "WITH v AS (SELECT job_id" PRUNABLE ")"
    " SELECT (SELECT count(*) FROM v),"
    " (SELECT count(*) FROM hvdeploy.job_events ev WHERE ev.job_id IN (SELECT job_id FROM v))";
/* clang-format on */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static HvdStoreStatus run_counts(HvdStore *s, const char *sql, const StoreParams *p, int64_t *a, int64_t *b, char *err,
                                 size_t errlen)
{
    HvdStoreStatus st;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, sql, p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    *a = store_col_int(r, 0, 0);
    *b = store_col_int(r, 0, 1);
    PQclear(r);
    return HVD_STORE_OK;
}

HvdStoreStatus hvd_store_prune(HvdStore *s, const HvdPruneOptions *o, HvdPruneResult *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!o || o->older_than_s <= 0 || o->batch < 1 || o->batch > 100000) {
        store_set_err(err, errlen, "prune: the age must be over 0 s and the batch 1 to 100000 jobs");
        return HVD_STORE_ERROR;
    }
    StoreParams p = {0};
    store_p_int(&p, o->older_than_s);
    if (o->dry_run) return run_counts(s, SQL_PRUNE_COUNT, &p, &res->jobs, &res->events, err, errlen);
    store_p_int(&p, (int64_t)o->batch);
    int64_t until = o->budget_ms > 0 ? mono_ms() + o->budget_ms : 0;
    for (;;) {
        int64_t jobs = 0, events = 0;
        HvdStoreStatus st = run_counts(s, SQL_PRUNE_BATCH, &p, &jobs, &events, err, errlen);
        if (st != HVD_STORE_OK) return st;
        res->jobs += jobs;
        res->events += events;
        res->batches++;
        if ((size_t)jobs < o->batch) return HVD_STORE_OK; /* none left (or only locked ones) */
        if ((o->max_batches && res->batches >= o->max_batches) || (until && mono_ms() >= until)) {
            res->more = true;
            return HVD_STORE_OK;
        }
    }
}
