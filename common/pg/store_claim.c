/* Claiming jobs (§2): recording a new job, and starting a job under a lease
 * with a slot of its host. The facts are read under the host's advisory
 * lock and the job's row lock, hvd_plan_claim decides, and the decision is
 * applied in the same transaction. */
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* Locks the job's host (only while the job is live: a terminal job needs no
 * slot) before the job row, the order every slot decision takes. */
/* clang-format off */
static const char SQL_LOCK_BY_JOB[] =
    "SELECT j.target_host, (SELECT count(*) FROM (SELECT pg_advisory_xact_lock("
    "hashtext('hvdeploy.host:' || j.target_host)) WHERE j.status IN " STORE_LIVE
    " AND j.target_host IS NOT NULL) l) FROM hvdeploy.jobs j WHERE j.job_id = $1::uuid";
/* clang-format on */
static const char SQL_LOCK_HOST[] = "SELECT pg_advisory_xact_lock(hashtext('hvdeploy.host:' || $1::text))";

const char *const STORE_SQL_LOCK_BY_JOB = SQL_LOCK_BY_JOB;

HvdStoreStatus store_lock_job_host(StoreConn *c, const char *job_id, bool *found, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    store_p_text(&p, job_id);
    PGresult *r = store_exec(c, SQL_LOCK_BY_JOB, &p, &st, err, errlen);
    if (!r) return st;
    *found = PQntuples(r) == 1;
    PQclear(r);
    return HVD_STORE_OK;
}

/* No slot: the job waits for its host (arrival order). */
/* clang-format off */
static const char SQL_WAIT_HOST[] =
    "WITH o AS (SELECT status, attempts FROM hvdeploy.jobs WHERE job_id = $1::uuid),"
    " u AS (UPDATE hvdeploy.jobs SET status = 'queued', waiting_reason = 'host_busy',"
    "  next_run_at = now() + $3::int * interval '1 second', lease_owner = NULL,"
    "  lease_expires_at = NULL, holds_slot = false, updated_at = now()"
    "  WHERE job_id = $1::uuid RETURNING job_id),"
    " st AS (UPDATE hvdeploy.job_stages SET status = 'pending', in_doubt = true WHERE job_id = $1::uuid"
    "  AND status = 'running' RETURNING stage, attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, o.status, 'queued', o.attempts, $2::text, 'host_busy' FROM o"
    "  WHERE o.status <> 'queued'"
    "  UNION ALL SELECT $1::uuid, st.stage, 'running', 'pending', st.attempts, $2::text, 'host_busy'"
    "  FROM st)"
    " SELECT count(*) FROM u";
/* clang-format on */

/* The lease and a slot. Slots held by jobs whose holder's lease expired go
 * back to the host first when the decision says so ($6): such a job needs a
 * slot again when it is taken over, and its old holder is fenced. A stage
 * that was running is pending again and in doubt: its call may have reached
 * the agent. */
/* clang-format off */
static const char SQL_TAKE[] =
    "WITH o AS (SELECT status, target_host FROM hvdeploy.jobs WHERE job_id = $1::uuid),"
    " cl AS (UPDATE hvdeploy.jobs w SET holds_slot = false FROM o WHERE $6::boolean"
    "  AND w.target_host = o.target_host AND w.status IN " STORE_LIVE " AND w.holds_slot"
    "  AND w.job_id <> $1::uuid AND (w.status <> 'running' OR w.lease_expires_at IS NULL"
    "  OR w.lease_expires_at <= now()) RETURNING w.job_id),"
    " u AS (UPDATE hvdeploy.jobs SET status = 'running', lease_owner = $2::text,"
    "  lease_epoch = lease_epoch + 1, lease_expires_at = now() + $3::int * interval '1 second',"
    "  next_run_at = now() + $3::int * interval '1 second', attempts = attempts + 1,"
    "  takeovers = takeovers + CASE WHEN $5::boolean THEN 1 ELSE 0 END,"
    "  holds_slot = true, waiting_reason = NULL, updated_at = now()"
    "  WHERE job_id = $1::uuid RETURNING lease_epoch, attempts, takeovers,"
    "  " STORE_TS("lease_expires_at") " AS lease_ts, " STORE_TS("updated_at") " AS updated_ts),"
    " st AS (UPDATE hvdeploy.job_stages SET status = 'pending', in_doubt = true WHERE job_id = $1::uuid"
    "  AND status = 'running' RETURNING stage, attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, o.status, 'running', u.attempts, $2::text, $4::text FROM o, u"
    "  UNION ALL SELECT $1::uuid, st.stage, 'running', 'pending', st.attempts, $2::text, $4::text"
    "  FROM st)"
    " SELECT lease_epoch, attempts, takeovers, lease_ts, updated_ts, (SELECT count(*) FROM cl) FROM u";
/* clang-format on */

static void set_str(char **member, char *v)
{
    free(*member);
    *member = v;
}

/* ---- the second trip: the decision applied, with the commit ---- */

typedef struct {
    StoreParams p;
    const char *sql; /* TAKE, WAIT_HOST or NULL (nothing to write) */
} Apply;

static void apply_params(HvdStore *s, const HvdClaimDecision *d, const char *job_id, Apply *a)
{
    memset(a, 0, sizeof *a);
    if (d->verdict == HVD_CLAIM_RUN) {
        a->sql = SQL_TAKE;
        store_p_text(&a->p, job_id);
        store_p_text(&a->p, s->worker_id);
        store_p_int(&a->p, s->lease_ttl_s);
        store_p_text(&a->p, d->takeover ? "takeover" : "claimed");
        store_p_bool(&a->p, d->takeover);
        store_p_bool(&a->p, d->free_expired_slots);
    } else if (d->verdict == HVD_CLAIM_WAIT && d->record_host_busy) {
        a->sql = SQL_WAIT_HOST;
        store_p_text(&a->p, job_id);
        store_p_text(&a->p, s->worker_id);
        store_p_int(&a->p, s->lease_ttl_s);
    }
}

/* rec as the TAKE left it. */
static HvdStoreStatus taken(HvdStore *s, const PGresult *r, HvdJobRecord *rec, char *err, size_t errlen)
{
    if (PQntuples(r) != 1) {
        store_set_err(err, errlen, "job %s vanished while being claimed", rec->job_id);
        return HVD_STORE_ERROR;
    }
    rec->status = HVD_JOB_RUNNING;
    rec->epoch = store_col_int(r, 0, 0);
    rec->attempts = (int)store_col_int(r, 0, 1);
    rec->takeovers = (int)store_col_int(r, 0, 2);
    set_str(&rec->lease_owner, hvd_xstrdup(s->worker_id));
    set_str(&rec->lease_expires_at, store_col_dup(r, 0, 3));
    set_str(&rec->next_run_at, store_col_dup(r, 0, 3));
    set_str(&rec->updated_at, store_col_dup(r, 0, 4));
    rec->waiting = HVD_WAIT_NONE;
    for (size_t i = 0; i < rec->n_stages; i++)
        if (rec->stages[i].status == HVD_STAGE_RUNNING) {
            rec->stages[i].status = HVD_STAGE_PENDING;
            rec->stages[i].in_doubt = true;
        }
    return HVD_STORE_OK;
}

/* Decides on the facts the first trip read (its last two results: the job
 * and its stages), then applies the decision and commits in one trip. */
static HvdStoreStatus decide_and_apply(HvdStore *s, StoreConn *c, const char *job_id, PGresult *job, PGresult *stages,
                                       HvdClaim *out, HvdJobRecord *rec, char *err, size_t errlen)
{
    if (!store_record_from(s, job, stages, rec, &out->facts)) out->facts = (HvdClaimFacts){.found = false};
    out->decision = hvd_plan_claim(&out->facts);
    Apply a;
    apply_params(s, &out->decision, job_id, &a);
    StoreStmt two[2] = {{.sql = a.sql, .p = &a.p}, {.sql = "COMMIT"}};
    PGresult *res[2] = {NULL, NULL};
    HvdStoreStatus st =
        a.sql ? store_pipeline(c, two, 2, res, err, errlen) : store_pipeline(c, &two[1], 1, &res[1], err, errlen);
    if (st == HVD_STORE_OK && strcmp(PQcmdStatus(res[1]), "COMMIT") != 0) {
        store_set_err(err, errlen, "transaction was rolled back");
        st = HVD_STORE_ERROR;
    }
    if (st == HVD_STORE_OK) {
        atomic_fetch_add(&s->tx_count, 1);
        if (out->decision.verdict == HVD_CLAIM_RUN) st = taken(s, res[0], rec, err, errlen);
        if (out->decision.verdict == HVD_CLAIM_WAIT && out->decision.record_host_busy) {
            rec->status = HVD_JOB_QUEUED;
            rec->waiting = HVD_WAIT_HOST_BUSY;
        }
    }
    PQclear(res[0]);
    PQclear(res[1]);
    return st;
}

HvdStoreStatus hvd_store_claim(HvdStore *s, const char *job_id, HvdClaim *out, HvdJobRecord *rec, char *err,
                               size_t errlen)
{
    HvdStoreStatus st;
    HvdJobRecord scratch = {0};
    if (!rec) rec = &scratch;
    memset(out, 0, sizeof *out);
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    /* one trip for the facts: the job's host locked, then its row */
    StoreParams id = {0}, idw = {0};
    store_p_text(&id, job_id);
    store_p_text(&idw, job_id);
    store_p_text(&idw, s->worker_id);
    StoreStmt one[4] = {{.sql = "BEGIN"},
                        {.sql = SQL_LOCK_BY_JOB, .p = &id},
                        {.sql = STORE_SQL_LOAD_JOB_LOCKED, .p = &idw},
                        {.sql = STORE_SQL_LOAD_STAGES, .p = &id}};
    PGresult *res[4];
    st = store_pipeline(c, one, 4, res, err, errlen);
    if (st == HVD_STORE_OK) st = decide_and_apply(s, c, job_id, res[2], res[3], out, rec, err, errlen);
    for (int i = 0; i < 4; i++) PQclear(res[i]);
    if (st != HVD_STORE_OK) store_rollback(c);
    store_checkin(s, c);
    hvd_job_record_free(&scratch);
    return st;
}

/* clang-format off */
static const char SQL_INSERT_JOB[] =
    "WITH ins AS (INSERT INTO hvdeploy.jobs (job_id, job_type, status, target_host, vm_name,"
    "  correlation_id, reply_to, content_type, request, options)"
    "  VALUES ($1::uuid, $2::text, 'queued', $3::text, $4::text, coalesce($5::text, $1::text),"
    "  coalesce($6::text, ''), coalesce($7::text, ''), $8::jsonb, coalesce($9::jsonb, '{}'::jsonb))"
    "  ON CONFLICT DO NOTHING RETURNING job_id),"
    " st AS (INSERT INTO hvdeploy.job_stages (job_id, position, stage, status)"
    "  SELECT ins.job_id, s.ord::smallint, s.name, 'pending' FROM ins,"
    "  unnest($10::text[]) WITH ORDINALITY AS s(name, ord) RETURNING stage, position),"
    " sec AS (INSERT INTO hvdeploy.job_secrets (job_id, key_id, ciphertext)"
    "  SELECT ins.job_id, coalesce($11::text, ''), $12::bytea FROM ins WHERE $12::bytea IS NOT NULL),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT * FROM (SELECT ins.job_id, NULL::text, NULL::text, 'queued', 0, $13::text, 'received' FROM ins"
    "  UNION ALL SELECT $1::uuid, st.stage, NULL, 'pending', 0, $13::text, NULL FROM st) e)"
    " SELECT count(*) FROM ins";
/* clang-format on */

/* The columns of a new job's row and its stage names ($1..$10). */
void store_new_job_params(StoreParams *p, const HvdJobRecord *job, HvdBuf *stages)
{
    store_p_text(p, job->job_id);
    store_p_text(p, job->job_type ? job->job_type : "");
    store_p_text(p, job->target_host);
    store_p_text(p, job->vm_name);
    store_p_text(p, job->correlation_id);
    store_p_text(p, job->reply_to);
    store_p_text(p, job->content_type);
    store_p_text(p, job->request_json);
    store_p_text(p, job->options_json);
    for (size_t i = 0; i < job->n_stages; i++) store_array_add(stages, job->stages[i].name);
    store_array_end(stages);
    store_p_text(p, stages->data);
}

HvdStoreStatus hvd_store_claim_new(HvdStore *s, const HvdJobRecord *job, HvdClaim *out, HvdJobRecord *rec, char *err,
                                   size_t errlen)
{
    HvdStoreStatus st;
    HvdJobRecord scratch = {0};
    HvdBuf stages = {0};
    if (!rec) rec = &scratch;
    memset(out, 0, sizeof *out);
    if (!job || !store_uuid_ok(job->job_id) || !job->target_host || !job->vm_name) {
        store_set_err(err, errlen, "claim_new needs a job id (UUID), a target host and a VM name");
        return HVD_STORE_ERROR;
    }
    if (job->n_stages > HVD_MAX_STAGES) {
        store_set_err(err, errlen, "a job has at most %d stages, not %zu", HVD_MAX_STAGES, job->n_stages);
        return HVD_STORE_ERROR;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    /* One trip: the host first (arrival order, seq, then follows the lock
     * order), the insert, the job's own host (another, when the id exists
     * with another host), its row and stages. */
    StoreParams host = {0}, ins = {0}, id = {0}, idw = {0};
    store_p_text(&host, job->target_host);
    store_new_job_params(&ins, job, &stages);
    store_p_text(&ins, job->secret_key_id);
    store_p_bin(&ins, job->secret_blob.data, job->secret_blob.len);
    store_p_text(&ins, s->worker_id);
    store_p_text(&id, job->job_id);
    store_p_text(&idw, job->job_id);
    store_p_text(&idw, s->worker_id);
    StoreStmt one[6] = {{.sql = "BEGIN"},
                        {.sql = SQL_LOCK_HOST, .p = &host},
                        {.sql = SQL_INSERT_JOB, .p = &ins},
                        {.sql = SQL_LOCK_BY_JOB, .p = &id},
                        {.sql = STORE_SQL_LOAD_JOB_LOCKED, .p = &idw},
                        {.sql = STORE_SQL_LOAD_STAGES, .p = &id}};
    PGresult *res[6];
    st = store_pipeline(c, one, 6, res, err, errlen);
    if (st == HVD_STORE_OK && store_col_int(res[2], 0, 0) != 1 && PQntuples(res[4]) == 0) {
        /* neither inserted nor there: the live-name index refused it; nothing is kept */
        out->decision.verdict = HVD_CLAIM_DUPLICATE_NAME;
        store_rollback(c);
    } else if (st == HVD_STORE_OK) {
        st = decide_and_apply(s, c, job->job_id, res[4], res[5], out, rec, err, errlen);
    }
    for (int i = 0; i < 6; i++) PQclear(res[i]);
    if (st != HVD_STORE_OK) store_rollback(c);
    store_checkin(s, c);
    hvd_buf_free(&stages);
    hvd_job_record_free(&scratch);
    return st;
}
