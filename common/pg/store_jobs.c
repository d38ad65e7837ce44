/* Recording jobs that will never run, and loading a job for the CLI. */
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* clang-format off */
static const char SQL_INSERT_REJECTED[] =
    "WITH ins AS (INSERT INTO hvdeploy.jobs (job_id, job_type, status, target_host, vm_name,"
    "  correlation_id, reply_to, content_type, request, options, code, envelope, finished_at)"
    "  VALUES ($1::uuid, $2::text, 'failed', $3::text, $4::text, coalesce($5::text, $1::text),"
    "  coalesce($6::text, ''), coalesce($7::text, ''), $8::jsonb, coalesce($9::jsonb, '{}'::jsonb),"
    "  $11::text, $12::bytea, now())"
    "  ON CONFLICT (job_id) DO NOTHING RETURNING job_id),"
    " st AS (INSERT INTO hvdeploy.job_stages (job_id, position, stage, status)"
    "  SELECT ins.job_id, s.ord::smallint, s.name, 'pending' FROM ins,"
    "  unnest($10::text[]) WITH ORDINALITY AS s(name, ord) RETURNING stage),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT * FROM (SELECT ins.job_id, NULL::text, NULL::text, 'failed', 0, $13::text, $11::text FROM ins"
    "  UNION ALL SELECT $1::uuid, st.stage, NULL, 'pending', 0, $13::text, NULL FROM st) e)"
    " SELECT count(*) FROM ins";
/* clang-format on */
static const char SQL_ENVELOPE[] = "SELECT envelope FROM hvdeploy.jobs WHERE job_id = $1::uuid";

HvdStoreStatus hvd_store_record_rejected(HvdStore *s, const HvdJobRecord *job, const char *code, const void *envelope,
                                         size_t envelope_len, bool *existing, HvdBuf *existing_envelope, char *err,
                                         size_t errlen)
{
    HvdStoreStatus st;
    HvdBuf stages = {0};
    StoreParams p = {0};
    PGresult *r = NULL;
    if (existing) *existing = false;
    if (!job || !store_uuid_ok(job->job_id)) {
        store_set_err(err, errlen, "a rejected job is recorded only with a valid job id");
        return HVD_STORE_ERROR;
    }
    if (job->n_stages > HVD_MAX_STAGES) {
        store_set_err(err, errlen, "a job has at most %d stages, not %zu", HVD_MAX_STAGES, job->n_stages);
        return HVD_STORE_ERROR;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_new_job_params(&p, job, &stages);
    store_p_text(&p, code);
    store_p_bin(&p, envelope, envelope ? envelope_len : 0);
    store_p_text(&p, s->worker_id);
    r = store_exec1(s, c, SQL_INSERT_REJECTED, &p, &st, err, errlen);
    if (!r) goto out;
    bool inserted = store_col_int(r, 0, 0) == 1;
    PQclear(r);
    if (!inserted) {
        if (existing) *existing = true;
        p.n = 1;
        r = store_exec1(s, c, SQL_ENVELOPE, &p, &st, err, errlen);
        if (!r) goto out;
        if (existing_envelope && PQntuples(r) == 1) store_col_bytea(r, 0, 0, existing_envelope);
        PQclear(r);
    }
    st = HVD_STORE_OK;
out:
    store_checkin(s, c);
    hvd_buf_free(&stages);
    return st;
}

HvdStoreStatus hvd_store_get(HvdStore *s, const char *job_id, bool *found, HvdJobRecord *rec, char *err, size_t errlen)
{
    HvdStoreStatus st;
    HvdJobRecord scratch = {0};
    *found = false;
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    if (!rec) rec = &scratch;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    /* one snapshot for the job and its stages */
    st = store_exec_script(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen);
    if (st == HVD_STORE_OK) st = store_load_job(s, c, job_id, false, found, rec, NULL, err, errlen);
    if (st == HVD_STORE_OK)
        st = store_commit(s, c, err, errlen);
    else
        store_rollback(c);
    store_checkin(s, c);
    hvd_job_record_free(&scratch);
    return st;
}
