/* Maintenance and operator queries: lease renewal, the sweep for jobs that
 * need a worker, the envelope outbox, secrets past retention, cancellation
 * requests and job lists. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "store_priv.h"
#include "store_view.h"

static const char SQL_RENEW[] =
    "WITH r AS (SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS r(job_id, epoch)),"
    " u AS (UPDATE hvdeploy.jobs j SET lease_expires_at = now() + $4::int * interval '1 second',"
    "  next_run_at = now() + $4::int * interval '1 second'"
    "  FROM r WHERE j.job_id = r.job_id AND j.lease_epoch = r.epoch AND j.lease_owner = $3::text"
    "  AND j.status = 'running' AND j.holds_slot RETURNING j.job_id)"
    " SELECT job_id::text FROM u";

HvdStoreStatus hvd_store_renew(HvdStore *s, const char *const *job_ids, const int64_t *epochs, size_t n, bool *lost,
                               char *err, size_t errlen)
{
    HvdBuf ids = {0}, eps = {0};
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        lost[i] = true;
        if (!store_uuid_ok(job_ids[i])) continue;
        char num[24];
        snprintf(num, sizeof(num), "%lld", (long long)epochs[i]);
        store_array_add(&ids, job_ids[i]);
        store_array_add(&eps, num);
        valid++;
    }
    if (valid == 0) return HVD_STORE_OK;
    store_array_end(&ids);
    store_array_end(&eps);
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) {
        /* unknown, not lost: the caller retries */
        for (size_t i = 0; i < n; i++) lost[i] = false;
        goto out;
    }
    store_p_text(&p, ids.data);
    store_p_text(&p, eps.data);
    store_p_text(&p, s->worker_id);
    store_p_int(&p, s->lease_ttl_s);
    PGresult *r = store_exec1(s, c, SQL_RENEW, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) {
        for (size_t i = 0; i < n; i++) lost[i] = false;
        goto out;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        const char *id = PQgetvalue(r, row, 0);
        for (size_t i = 0; i < n; i++)
            if (strcasecmp(id, job_ids[i]) == 0) lost[i] = false;
    }
    PQclear(r);
    st = HVD_STORE_OK;
out:
    hvd_buf_free(&ids);
    hvd_buf_free(&eps);
    return st;
}

/* clang-format off */
static const char SQL_SWEEP[] =
    "SELECT job_id::text FROM hvdeploy.jobs WHERE status IN " STORE_LIVE " AND next_run_at <= now()"
    " ORDER BY next_run_at LIMIT $1::int FOR UPDATE SKIP LOCKED";
/* clang-format on */

HvdStoreStatus hvd_store_sweep(HvdStore *s, size_t max, char (*job_ids)[37], size_t *n, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    *n = 0;
    if (max == 0) return HVD_STORE_OK;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_int(&p, max > 100000 ? 100000 : (int64_t)max);
    PGresult *r = store_exec1(s, c, SQL_SWEEP, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    for (int row = 0; row < PQntuples(r) && (size_t)row < max; row++) {
        store_col_copy(r, row, 0, job_ids[row], 37);
        (*n)++;
    }
    PQclear(r);
    return HVD_STORE_OK;
}

static const char SQL_OUTBOX[] =
    "SELECT job_id::text, reply_to, content_type, correlation_id, envelope FROM hvdeploy.jobs"
    " WHERE envelope IS NOT NULL AND envelope_sent_at IS NULL"
    " AND finished_at <= now() - $1::bigint * interval '1 millisecond'"
    " ORDER BY finished_at LIMIT $2::int";

void hvd_outbox_item_free(HvdOutboxItem *it)
{
    if (!it) return;
    free(it->reply_to);
    free(it->content_type);
    free(it->correlation_id);
    hvd_buf_free(&it->envelope);
    memset(it, 0, sizeof(*it));
}

HvdStoreStatus hvd_store_outbox(HvdStore *s, int64_t older_than_ms, size_t max, HvdOutboxItem *items, size_t *n,
                                char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    *n = 0;
    if (max == 0) return HVD_STORE_OK;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_int(&p, older_than_ms < 0 ? 0 : older_than_ms);
    store_p_int(&p, max > 100000 ? 100000 : (int64_t)max);
    PGresult *r = store_exec1(s, c, SQL_OUTBOX, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    for (int row = 0; row < PQntuples(r) && (size_t)row < max; row++) {
        HvdOutboxItem *it = &items[row];
        memset(it, 0, sizeof(*it));
        store_col_copy(r, row, 0, it->job_id, sizeof(it->job_id));
        it->reply_to = store_col_dup(r, row, 1);
        it->content_type = store_col_dup(r, row, 2);
        it->correlation_id = store_col_dup(r, row, 3);
        store_col_bytea(r, row, 4, &it->envelope);
        (*n)++;
    }
    PQclear(r);
    return HVD_STORE_OK;
}

static const char SQL_PURGE[] = "DELETE FROM hvdeploy.job_secrets WHERE erase_after <= now()";

HvdStoreStatus hvd_store_purge_secrets(HvdStore *s, size_t *purged, char *err, size_t errlen)
{
    HvdStoreStatus st;
    if (purged) *purged = 0;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_PURGE, NULL, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    if (purged) *purged = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return HVD_STORE_OK;
}

/* A job waiting for its retry is made due at once, so that a sweep takes it
 * up and ends it instead of waiting out the delay. */
/* clang-format off */
static const char SQL_CANCEL[] =
    "WITH o AS (SELECT status FROM hvdeploy.jobs WHERE job_id = $1::uuid FOR UPDATE),"
    " u AS (UPDATE hvdeploy.jobs SET cancel_requested = true, updated_at = now(),"
    "  next_run_at = CASE WHEN status = 'retrying' THEN now() ELSE next_run_at END"
    "  WHERE job_id = $1::uuid AND status IN " STORE_LIVE ")"
    " SELECT status FROM o";
/* clang-format on */

HvdStoreStatus hvd_store_request_cancel(HvdStore *s, const char *job_id, bool *found, bool *already_finished, char *err,
                                        size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    *found = false;
    if (already_finished) *already_finished = false;
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_text(&p, job_id);
    PGresult *r = store_exec1(s, c, SQL_CANCEL, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    if (PQntuples(r) == 1) {
        const char *status = PQgetvalue(r, 0, 0);
        *found = true;
        if (already_finished)
            *already_finished =
                strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
    }
    PQclear(r);
    return HVD_STORE_OK;
}

void hvd_job_records_free(HvdJobRecord *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) hvd_job_record_free(&v[i]);
    free(v);
}

HvdStoreStatus hvd_store_list(HvdStore *s, const char *status, const char *host, size_t limit, HvdJobRecord **out,
                              size_t *n, char *err, size_t errlen)
{
    HvdListFilter f = {.status = status, .host = host, .limit = limit > 100000 ? 100000 : limit};
    return hvd_store_list_filtered(s, &f, out, n, err, errlen);
}
