/* The runner's writes, every one fenced by the lease epoch: stage steps,
 * retry waits, release at shutdown, the terminal state with its envelope,
 * envelopes confirmed, secrets erased. */
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* The oldest other job of the finishing job's host that waits for a slot
 * (the caller rings its doorbell). j is the CTE of the updated job. */
/* clang-format off */
#define STORE_NEXT_JOB(extra)                                                                 \
    " nx AS (SELECT w.job_id FROM hvdeploy.jobs w, j WHERE w.target_host = j.target_host"      \
    "  AND w.status IN " STORE_LIVE " AND w.job_id <> $1::uuid AND NOT (w.holds_slot"          \
    "  AND w.status = 'running' AND w.lease_expires_at > now()) AND " STORE_WAITING_FOR_SLOT("w") \
    extra " ORDER BY w.seq LIMIT 1)"
/* clang-format on */

/* clang-format off */
static const char SQL_STEP[] =
    "WITH j AS (UPDATE hvdeploy.jobs SET lease_expires_at = now() + $4::int * interval '1 second',"
    "  next_run_at = now() + $4::int * interval '1 second',"
    "  outputs = CASE WHEN $6::text = 'succeeded' AND jsonb_typeof($7::jsonb) = 'object'"
    "   THEN outputs || $7::jsonb ELSE outputs END, updated_at = now()"
    "  WHERE " STORE_FENCE " RETURNING cancel_requested),"
    " old AS (SELECT stage, status FROM hvdeploy.job_stages WHERE job_id = $1::uuid"
    "  AND stage IN ($5::text, $12::text)),"
    " e AS (UPDATE hvdeploy.job_stages s SET status = $6::text, finished_at = now(),"
    "  output = CASE WHEN $6::text = 'succeeded' THEN $7::jsonb ELSE s.output END,"
    /* a success closes the stage's failure history: no code once it succeeded */
    "  error = coalesce($8::text, s.error),"
    "  code = CASE WHEN $6::text = 'succeeded' THEN NULL ELSE coalesce($9::text, s.code) END,"
    "  agent_code = CASE WHEN $6::text = 'succeeded' THEN NULL ELSE coalesce($10::text, s.agent_code) END,"
    "  agent_log = coalesce($11::text, s.agent_log), in_doubt = false"
    "  FROM j WHERE s.job_id = $1::uuid AND s.stage = $5::text RETURNING s.stage, s.attempts),"
    " n AS (UPDATE hvdeploy.job_stages s SET status = 'running', attempts = s.attempts + 1,"
    /* in_doubt stays: an earlier attempt's unknown outcome is not undone by a new start */
    "  started_at = now(), finished_at = NULL"
    "  FROM j WHERE s.job_id = $1::uuid AND s.stage = $12::text AND NOT j.cancel_requested"
    "  RETURNING s.stage, s.attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, e.stage, old.status, $6::text, e.attempts, $3::text, $9::text"
    "  FROM e JOIN old USING (stage)"
    "  UNION ALL SELECT $1::uuid, n.stage, old.status, 'running', n.attempts, $3::text, NULL"
    "  FROM n JOIN old USING (stage))"
    " SELECT (SELECT count(*) FROM j), (SELECT bool_or(cancel_requested) FROM j),"
    " (SELECT max(attempts) FROM n), (SELECT count(*) FROM e), (SELECT count(*) FROM n)";
/* clang-format on */

HvdStoreStatus hvd_store_step(HvdStore *s, const char *job_id, int64_t epoch, const HvdStage *ended,
                              const char *next_stage, bool *cancel_requested, int *next_attempt, char *err,
                              size_t errlen)
{
    HvdStoreStatus st;
    StoreParams p = {0};
    if (cancel_requested) *cancel_requested = false;
    if (next_attempt) *next_attempt = 0;
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "step needs a job id");
        return HVD_STORE_ERROR;
    }
    if (ended && ended->status != HVD_STAGE_SUCCEEDED && ended->status != HVD_STAGE_FAILED) {
        store_set_err(err, errlen, "a stage ends succeeded or failed, not %s", hvd_stage_status_name(ended->status));
        return HVD_STORE_ERROR;
    }
    if (ended && next_stage && strcmp(ended->name, next_stage) == 0) {
        store_set_err(err, errlen, "stage %s cannot end and start in one step", next_stage);
        return HVD_STORE_ERROR;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_text(&p, job_id);
    store_p_int(&p, epoch);
    store_p_text(&p, s->worker_id);
    store_p_int(&p, s->lease_ttl_s);
    store_p_text(&p, ended ? ended->name : NULL);
    store_p_text(&p, ended ? hvd_stage_status_name(ended->status) : NULL);
    store_p_text(&p, ended && ended->status == HVD_STAGE_SUCCEEDED ? ended->output_json : NULL);
    store_p_text(&p, ended ? ended->message : NULL);
    store_p_text(&p, ended ? ended->code : NULL);
    store_p_text(&p, ended ? ended->agent_code : NULL);
    store_p_text(&p, ended ? ended->agent_log : NULL);
    store_p_text(&p, next_stage);
    PGresult *r = store_exec1(s, c, SQL_STEP, &p, &st, err, errlen);
    if (!r) goto out;
    if (store_col_int(r, 0, 0) == 0) {
        st = HVD_STORE_FENCED;
    } else if (ended && store_col_int(r, 0, 3) == 0) {
        store_set_err(err, errlen, "stage %s is not planned for job %s", ended->name, job_id);
        st = HVD_STORE_ERROR;
    } else {
        bool cancel = store_col_bool(r, 0, 1);
        if (cancel_requested) *cancel_requested = cancel;
        if (next_stage && !cancel && store_col_int(r, 0, 4) == 0) {
            store_set_err(err, errlen, "stage %s is not planned for job %s", next_stage, job_id);
            st = HVD_STORE_ERROR;
        } else {
            if (next_attempt) *next_attempt = (int)store_col_int(r, 0, 2);
            st = HVD_STORE_OK;
        }
    }
    PQclear(r);
out:
    store_checkin(s, c);
    return st;
}

/* clang-format off */
static const char SQL_WAIT_RETRY[] =
    "WITH j AS (UPDATE hvdeploy.jobs SET status = 'retrying', waiting_reason = $10::text,"
    "  next_run_at = now() + $9::bigint * interval '1 millisecond', lease_owner = NULL,"
    "  lease_expires_at = NULL, holds_slot = false, updated_at = now()"
    "  WHERE " STORE_FENCE " RETURNING job_id, attempts, target_host, seq),"
    " old AS (SELECT stage, status FROM hvdeploy.job_stages WHERE job_id = $1::uuid AND stage = $4::text),"
    " st AS (UPDATE hvdeploy.job_stages s SET status = 'pending', finished_at = now(),"
    "  error = $5::text, code = $6::text, agent_code = $7::text, agent_log = $8::text, in_doubt = $11::boolean"
    "  FROM j WHERE s.job_id = $1::uuid AND s.stage = $4::text RETURNING s.stage, s.attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, 'running', 'retrying', j.attempts, $3::text, $10::text FROM j"
    "  UNION ALL SELECT $1::uuid, st.stage, old.status, 'pending', st.attempts, $3::text, 'retry_wait'"
    "  FROM st JOIN old USING (stage)),"
    STORE_NEXT_JOB("")
    " SELECT (SELECT count(*) FROM j), (SELECT job_id::text FROM nx)";
/* clang-format on */

/* Locks the host, runs one fenced statement whose result row is (count of the
 * job rows it changed, next job), commits. */
static HvdStoreStatus host_tx(HvdStore *s, const char *job_id, const char *sql, const StoreParams *p, char next_job[37],
                              char *err, size_t errlen)
{
    HvdStoreStatus st;
    if (next_job) next_job[0] = '\0';
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    /* one round trip: nothing is decided between these statements (a fenced
     * write that changed nothing commits nothing) */
    StoreParams id = {0};
    store_p_text(&id, job_id);
    StoreStmt stmts[4] = {
        {.sql = "BEGIN"}, {.sql = STORE_SQL_LOCK_BY_JOB, .p = &id}, {.sql = sql, .p = p}, {.sql = "COMMIT"}};
    PGresult *res[4];
    st = store_pipeline(c, stmts, 4, res, err, errlen);
    if (st == HVD_STORE_OK && strcmp(PQcmdStatus(res[3]), "COMMIT") != 0) {
        store_set_err(err, errlen, "transaction was rolled back");
        st = HVD_STORE_ERROR;
    }
    if (st == HVD_STORE_OK) {
        atomic_fetch_add(&s->tx_count, 1);
        if (PQntuples(res[1]) == 0 || store_col_int(res[2], 0, 0) == 0)
            st = HVD_STORE_FENCED;
        else if (next_job)
            store_col_copy(res[2], 0, 1, next_job, 37);
    }
    for (int i = 0; i < 4; i++) PQclear(res[i]);
    if (st != HVD_STORE_OK && st != HVD_STORE_FENCED) store_rollback(c);
    store_checkin(s, c);
    return st;
}

HvdStoreStatus hvd_store_wait_retry(HvdStore *s, const char *job_id, int64_t epoch, const HvdStage *stage,
                                    int64_t delay_ms, HvdWaitReason reason, char next_job[37], char *err, size_t errlen)
{
    StoreParams p = {0};
    if (next_job) next_job[0] = '\0';
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "wait_retry needs a job id");
        return HVD_STORE_ERROR;
    }
    static const HvdStage none = {.name = ""};
    if (!stage) stage = &none;
    store_p_text(&p, job_id);
    store_p_int(&p, epoch);
    store_p_text(&p, s->worker_id);
    store_p_text(&p, stage->name[0] ? stage->name : NULL);
    store_p_text(&p, stage->message);
    store_p_text(&p, stage->code);
    store_p_text(&p, stage->agent_code);
    store_p_text(&p, stage->agent_log);
    store_p_int(&p, delay_ms < 0 ? 0 : delay_ms);
    store_p_text(&p, reason == HVD_WAIT_NONE ? "retry" : hvd_wait_reason_name(reason));
    store_p_bool(&p, stage->in_doubt);
    return host_tx(s, job_id, SQL_WAIT_RETRY, &p, next_job, err, errlen);
}

/* clang-format off */
static const char SQL_RELEASE[] =
    "WITH j AS (UPDATE hvdeploy.jobs SET status = 'queued', waiting_reason = NULL, next_run_at = now(),"
    "  lease_owner = NULL, lease_expires_at = NULL, holds_slot = false, updated_at = now()"
    "  WHERE " STORE_FENCE " RETURNING job_id, attempts, target_host, seq),"
    " st AS (UPDATE hvdeploy.job_stages s SET status = 'pending', finished_at = now(), in_doubt = true"
    "  FROM j WHERE s.job_id = $1::uuid AND s.status = 'running' RETURNING s.stage, s.attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, 'running', 'queued', j.attempts, $3::text, 'released' FROM j"
    "  UNION ALL SELECT $1::uuid, st.stage, 'running', 'pending', st.attempts, $3::text, 'released'"
    "  FROM st),"
    /* the released job waits too: only a job that arrived before it is next */
    STORE_NEXT_JOB(" AND w.seq < j.seq")
    " SELECT (SELECT count(*) FROM j), (SELECT job_id::text FROM nx)";
/* clang-format on */

HvdStoreStatus hvd_store_release(HvdStore *s, const char *job_id, int64_t epoch, char next_job[37], char *err,
                                 size_t errlen)
{
    StoreParams p = {0};
    if (next_job) next_job[0] = '\0';
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "release needs a job id");
        return HVD_STORE_ERROR;
    }
    store_p_text(&p, job_id);
    store_p_int(&p, epoch);
    store_p_text(&p, s->worker_id);
    return host_tx(s, job_id, SQL_RELEASE, &p, next_job, err, errlen);
}

/* clang-format off */
static const char SQL_FINISH[] =
    "WITH f AS (SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
    "  $12::text[], $13::text[]) AS f(stage, status, error, code, agent_code, agent_log, output)),"
    " j AS (UPDATE hvdeploy.jobs SET status = $4::text, code = $5::text, envelope = $6::bytea,"
    "  envelope_sent_at = NULL, finished_at = now(), updated_at = now(), lease_owner = NULL,"
    "  lease_expires_at = NULL, holds_slot = false, waiting_reason = NULL, next_run_at = NULL,"
    "  outputs = outputs || coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM f,"
    "   jsonb_each(CASE WHEN jsonb_typeof(f.output::jsonb) = 'object' THEN f.output::jsonb"
    "   ELSE '{}'::jsonb END) e WHERE f.status = 'succeeded'), '{}'::jsonb)"
    "  WHERE " STORE_FENCE " RETURNING job_id, attempts, target_host, seq),"
    " old AS (SELECT s.stage, s.status FROM hvdeploy.job_stages s WHERE s.job_id = $1::uuid),"
    " st AS (UPDATE hvdeploy.job_stages s SET status = f.status,"
    "  finished_at = CASE WHEN s.status = 'running' THEN now() ELSE s.finished_at END,"
    "  output = CASE WHEN f.status = 'succeeded' AND f.output IS NOT NULL THEN f.output::jsonb"
    "   ELSE s.output END,"
    "  error = coalesce(f.error, s.error),"
    "  code = CASE WHEN f.status = 'succeeded' THEN NULL ELSE coalesce(f.code, s.code) END,"
    "  agent_code = CASE WHEN f.status = 'succeeded' THEN NULL ELSE coalesce(f.agent_code, s.agent_code) END,"
    "  agent_log = coalesce(f.agent_log, s.agent_log), in_doubt = false"
    "  FROM j, f WHERE s.job_id = $1::uuid AND s.stage = f.stage"
    "  RETURNING s.stage, s.status, s.attempts, f.code AS fcode),"
    " sd AS (DELETE FROM hvdeploy.job_secrets WHERE job_id = $1::uuid AND $4::text <> 'failed'"
    "  AND EXISTS (SELECT 1 FROM j)),"
    " sk AS (UPDATE hvdeploy.job_secrets SET erase_after = now() + $14::int * interval '1 second'"
    "  WHERE job_id = $1::uuid AND $4::text = 'failed' AND EXISTS (SELECT 1 FROM j)),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, st.stage, old.status, st.status, st.attempts, $3::text, st.fcode"
    "  FROM st JOIN old USING (stage) WHERE old.status IS DISTINCT FROM st.status"
    "  UNION ALL SELECT $1::uuid, NULL, 'running', $4::text, j.attempts, $3::text, $5::text FROM j),"
    STORE_NEXT_JOB("")
    " SELECT (SELECT count(*) FROM j), (SELECT job_id::text FROM nx)";
/* clang-format on */

HvdStoreStatus hvd_store_finish(HvdStore *s, const char *job_id, int64_t epoch, HvdJobStatus status, const char *code,
                                const HvdStage *stages, size_t n_stages, const void *envelope, size_t envelope_len,
                                char next_job[37], char *err, size_t errlen)
{
    HvdBuf arr[7] = {{0}};
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_ERROR;
    if (next_job) next_job[0] = '\0';
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "finish needs a job id");
        return HVD_STORE_ERROR;
    }
    if (!hvd_job_status_terminal(status)) {
        store_set_err(err, errlen, "a job ends succeeded, failed or cancelled, not %s", hvd_job_status_name(status));
        return HVD_STORE_ERROR;
    }
    for (size_t i = 0; i < n_stages; i++) {
        if (stages[i].status == HVD_STAGE_RUNNING) {
            store_set_err(err, errlen, "stage %s cannot end as running", stages[i].name);
            return HVD_STORE_ERROR;
        }
        store_array_add(&arr[0], stages[i].name);
        store_array_add(&arr[1], hvd_stage_status_name(stages[i].status));
        store_array_add(&arr[2], stages[i].message);
        store_array_add(&arr[3], stages[i].code);
        store_array_add(&arr[4], stages[i].agent_code);
        store_array_add(&arr[5], stages[i].agent_log);
        store_array_add(&arr[6], stages[i].status == HVD_STAGE_SUCCEEDED ? stages[i].output_json : NULL);
    }
    for (size_t k = 0; k < 7; k++) store_array_end(&arr[k]);
    store_p_text(&p, job_id);
    store_p_int(&p, epoch);
    store_p_text(&p, s->worker_id);
    store_p_text(&p, hvd_job_status_name(status));
    store_p_text(&p, code);
    store_p_bin(&p, envelope, envelope ? envelope_len : 0);
    for (size_t k = 0; k < 7; k++) store_p_text(&p, arr[k].data);
    store_p_int(&p, s->secret_retention_s);
    st = host_tx(s, job_id, SQL_FINISH, &p, next_job, err, errlen);
    for (size_t k = 0; k < 7; k++) hvd_buf_free(&arr[k]);
    return st;
}

static const char SQL_MARK_SENT[] = "UPDATE hvdeploy.jobs SET envelope_sent_at = now() WHERE job_id = ANY($1::uuid[])"
                                    " AND envelope IS NOT NULL AND envelope_sent_at IS NULL";

HvdStoreStatus hvd_store_mark_sent(HvdStore *s, const char *const *job_ids, size_t n, char *err, size_t errlen)
{
    HvdBuf ids = {0};
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    for (size_t i = 0; i < n; i++)
        if (store_uuid_ok(job_ids[i])) store_array_add(&ids, job_ids[i]);
    if (ids.len == 0) return HVD_STORE_OK;
    store_array_end(&ids);
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (c) {
        store_p_text(&p, ids.data);
        PGresult *r = store_exec1(s, c, SQL_MARK_SENT, &p, &st, err, errlen);
        if (r) st = HVD_STORE_OK;
        PQclear(r);
        store_checkin(s, c);
    }
    hvd_buf_free(&ids);
    return st;
}

/* clang-format off */
static const char SQL_ERASE_SECRETS[] =
    "WITH j AS (SELECT job_id FROM hvdeploy.jobs WHERE " STORE_FENCE " FOR UPDATE),"
    " d AS (DELETE FROM hvdeploy.job_secrets s USING j WHERE s.job_id = j.job_id)"
    " SELECT count(*) FROM j";
/* clang-format on */

HvdStoreStatus hvd_store_erase_secrets(HvdStore *s, const char *job_id, int64_t epoch, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "erase_secrets needs a job id");
        return HVD_STORE_ERROR;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_text(&p, job_id);
    store_p_int(&p, epoch);
    store_p_text(&p, s->worker_id);
    PGresult *r = store_exec1(s, c, SQL_ERASE_SECRETS, &p, &st, err, errlen);
    if (r) st = store_col_int(r, 0, 0) == 1 ? HVD_STORE_OK : HVD_STORE_FENCED;
    PQclear(r);
    store_checkin(s, c);
    return st;
}
