/* Claiming jobs: recording a new job, starting it under a lease with a slot
 * of its host (arrival order, fencing epoch), loading job records, and
 * recording jobs that will never run. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* ---- records ---- */

/* One job with its secret blob and the columns the claim decides on; the
 * locked form is the same statement with FOR UPDATE. */
/* clang-format off */
#define SQL_LOAD_JOB_SELECT                                                                                    \
    "SELECT j.job_id::text, j.status, j.job_type, j.target_host, j.vm_name, j.correlation_id,"                 \
    " j.reply_to, j.content_type, j.request::text, j.options::text, j.outputs::text, j.attempts,"             \
    " j.lease_epoch, j.cancel_requested, " STORE_TS("j.created_at") ", j.envelope,"                            \
    " j.envelope_sent_at IS NOT NULL, j.code, " STORE_TS("j.updated_at") ", " STORE_TS("j.finished_at") ","    \
    " j.lease_owner, " STORE_TS("j.lease_expires_at") ", j.waiting_reason, " STORE_TS("j.next_run_at") ","    \
    " sec.ciphertext, coalesce(j.lease_expires_at > now(), false), coalesce(j.next_run_at > now(), false),"   \
    " j.holds_slot, j.seq"                                                                                     \
    " FROM hvdeploy.jobs j LEFT JOIN hvdeploy.job_secrets sec ON sec.job_id = j.job_id"                        \
    " WHERE j.job_id = $1::uuid"
/* clang-format on */
static const char SQL_LOAD_JOB[] = SQL_LOAD_JOB_SELECT;
static const char SQL_LOAD_JOB_LOCKED[] = SQL_LOAD_JOB_SELECT " FOR UPDATE OF j";
/* clang-format off */
static const char SQL_LOAD_STAGES[] =
    "SELECT stage, status, attempts, " STORE_TS("started_at") ", " STORE_TS("finished_at") ","
    " error, code, agent_code, output::text, agent_log"
    " FROM hvdeploy.job_stages WHERE job_id = $1::uuid ORDER BY position";
/* clang-format on */

static void stage_record_free(HvdStageRecord *st)
{
    free(st->started_at);
    free(st->finished_at);
    free(st->error);
    free(st->code);
    free(st->agent_code);
    free(st->output_json);
    free(st->agent_log);
    memset(st, 0, sizeof(*st));
}

void hvd_job_record_free(HvdJobRecord *r)
{
    if (!r) return;
    free(r->job_type);
    free(r->target_host);
    free(r->vm_name);
    free(r->correlation_id);
    free(r->reply_to);
    free(r->content_type);
    free(r->request_json);
    free(r->options_json);
    free(r->outputs_json);
    if (r->secret_blob.data) sodium_memzero(r->secret_blob.data, r->secret_blob.len);
    hvd_buf_free(&r->secret_blob);
    free(r->created_at);
    for (size_t i = 0; i < r->n_stages && i < 4; i++) stage_record_free(&r->stages[i]);
    hvd_buf_free(&r->envelope);
    free(r->code);
    free(r->updated_at);
    free(r->finished_at);
    free(r->lease_owner);
    free(r->lease_expires_at);
    free(r->waiting_reason);
    free(r->next_run_at);
    memset(r, 0, sizeof(*r));
}

HvdStoreStatus store_load_job(StoreConn *c, const char *job_id, bool for_update, bool *found, HvdJobRecord *rec,
                              StoreJobState *d, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    store_p_text(&p, job_id);
    *found = false;
    PGresult *r = store_exec(c, for_update ? SQL_LOAD_JOB_LOCKED : SQL_LOAD_JOB, &p, &st, err, errlen);
    if (!r) return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return HVD_STORE_OK;
    }
    *found = true;
    if (d) {
        d->lease_live = store_col_bool(r, 0, 25);
        d->not_due = store_col_bool(r, 0, 26);
        d->holds_slot = store_col_bool(r, 0, 27);
        d->seq = store_col_int(r, 0, 28);
    }
    if (rec) {
        hvd_job_record_free(rec);
        store_col_copy(r, 0, 0, rec->job_id, sizeof(rec->job_id));
        store_col_copy(r, 0, 1, rec->status, sizeof(rec->status));
        rec->job_type = store_col_dup(r, 0, 2);
        rec->target_host = store_col_dup(r, 0, 3);
        rec->vm_name = store_col_dup(r, 0, 4);
        rec->correlation_id = store_col_dup(r, 0, 5);
        rec->reply_to = store_col_dup(r, 0, 6);
        rec->content_type = store_col_dup(r, 0, 7);
        rec->request_json = store_col_dup(r, 0, 8);
        rec->options_json = store_col_dup(r, 0, 9);
        rec->outputs_json = store_col_dup(r, 0, 10);
        rec->attempts = (int)store_col_int(r, 0, 11);
        rec->epoch = store_col_int(r, 0, 12);
        rec->cancel_requested = store_col_bool(r, 0, 13);
        rec->created_at = store_col_dup(r, 0, 14);
        store_col_bytea(r, 0, 15, &rec->envelope);
        rec->envelope_sent = store_col_bool(r, 0, 16);
        rec->code = store_col_dup(r, 0, 17);
        rec->updated_at = store_col_dup(r, 0, 18);
        rec->finished_at = store_col_dup(r, 0, 19);
        rec->lease_owner = store_col_dup(r, 0, 20);
        rec->lease_expires_at = store_col_dup(r, 0, 21);
        rec->waiting_reason = store_col_dup(r, 0, 22);
        rec->next_run_at = store_col_dup(r, 0, 23);
        store_col_bytea(r, 0, 24, &rec->secret_blob);
    }
    PQclear(r);
    if (!rec) return HVD_STORE_OK;

    r = store_exec(c, SQL_LOAD_STAGES, &p, &st, err, errlen);
    if (!r) return st;
    for (int i = 0; i < PQntuples(r) && i < 4; i++) {
        HvdStageRecord *sr = &rec->stages[i];
        store_col_copy(r, i, 0, sr->name, sizeof(sr->name));
        store_col_copy(r, i, 1, sr->status, sizeof(sr->status));
        sr->attempts = (int)store_col_int(r, i, 2);
        sr->started_at = store_col_dup(r, i, 3);
        sr->finished_at = store_col_dup(r, i, 4);
        sr->error = store_col_dup(r, i, 5);
        sr->code = store_col_dup(r, i, 6);
        sr->agent_code = store_col_dup(r, i, 7);
        sr->output_json = store_col_dup(r, i, 8);
        sr->agent_log = store_col_dup(r, i, 9);
        rec->n_stages = (size_t)i + 1;
    }
    PQclear(r);
    return HVD_STORE_OK;
}

/* ---- claiming ---- */

/* Locks the job's host (only while the job is live: a terminal job needs no
 * slot) before the job row, the order every slot decision takes. */
/* clang-format off */
static const char SQL_LOCK_BY_JOB[] =
    "SELECT j.target_host, (SELECT count(*) FROM (SELECT pg_advisory_xact_lock("
    "hashtext('hvdeploy.host:' || j.target_host)) WHERE j.status IN " STORE_LIVE
    " AND j.target_host IS NOT NULL) l) FROM hvdeploy.jobs j WHERE j.job_id = $1::uuid";
/* clang-format on */
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

static const char SQL_LOCK_HOST[] = "SELECT pg_advisory_xact_lock(hashtext('hvdeploy.host:' || $1::text))";

/* The other live jobs of the host: slot holders with a live lease, all
 * holders, and earlier jobs waiting for a slot. */
/* clang-format off */
static const char SQL_SLOTS[] =
    "SELECT count(*) FILTER (WHERE w.holds_slot AND w.status = 'running' AND w.lease_expires_at > now()),"
    " count(*) FILTER (WHERE w.holds_slot),"
    " count(*) FILTER (WHERE w.seq < $3::bigint AND NOT (w.holds_slot AND w.status = 'running'"
    " AND w.lease_expires_at > now()) AND " STORE_WAITING_FOR_SLOT("w") ")"
    " FROM hvdeploy.jobs w WHERE w.target_host = $2::text AND w.status IN " STORE_LIVE
    " AND w.job_id <> $1::uuid";
/* clang-format on */
/* Slots held by jobs whose holder's lease expired go back to the host: such a
 * job needs a slot again when it is taken over, and its old holder is fenced. */
/* clang-format off */
static const char SQL_CLEAR_EXPIRED[] =
    "UPDATE hvdeploy.jobs SET holds_slot = false WHERE target_host = $2::text AND status IN " STORE_LIVE
    " AND holds_slot AND job_id <> $1::uuid AND (status <> 'running' OR lease_expires_at IS NULL"
    " OR lease_expires_at <= now())";
/* clang-format on */

static const char SQL_WAIT_HOST[] =
    "WITH o AS (SELECT status, attempts FROM hvdeploy.jobs WHERE job_id = $1::uuid),"
    " u AS (UPDATE hvdeploy.jobs SET status = 'queued', waiting_reason = 'host_busy',"
    "  next_run_at = now() + $3::int * interval '1 second', lease_owner = NULL,"
    "  lease_expires_at = NULL, holds_slot = false, updated_at = now()"
    "  WHERE job_id = $1::uuid RETURNING job_id),"
    " st AS (UPDATE hvdeploy.job_stages SET status = 'pending' WHERE job_id = $1::uuid"
    "  AND status = 'running' RETURNING stage, attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, o.status, 'queued', o.attempts, $2::text, 'host_busy' FROM o"
    "  WHERE o.status <> 'queued'"
    "  UNION ALL SELECT $1::uuid, st.stage, 'running', 'pending', st.attempts, $2::text, 'host_busy'"
    "  FROM st)"
    " SELECT count(*) FROM u";

/* clang-format off */
static const char SQL_TAKE[] =
    "WITH o AS (SELECT status FROM hvdeploy.jobs WHERE job_id = $1::uuid),"
    " u AS (UPDATE hvdeploy.jobs SET status = 'running', lease_owner = $2::text,"
    "  lease_epoch = lease_epoch + 1, lease_expires_at = now() + $3::int * interval '1 second',"
    "  next_run_at = now() + $3::int * interval '1 second', attempts = attempts + 1,"
    "  holds_slot = true, waiting_reason = NULL, updated_at = now()"
    "  WHERE job_id = $1::uuid RETURNING lease_epoch, attempts, " STORE_TS("lease_expires_at") " AS lease_ts,"
    "  " STORE_TS("updated_at") " AS updated_ts),"
    " st AS (UPDATE hvdeploy.job_stages SET status = 'pending' WHERE job_id = $1::uuid"
    "  AND status = 'running' RETURNING stage, attempts),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, o.status, 'running', u.attempts, $2::text, $4::text FROM o, u"
    "  UNION ALL SELECT $1::uuid, st.stage, 'running', 'pending', st.attempts, $2::text, $4::text"
    "  FROM st)"
    " SELECT lease_epoch, attempts, lease_ts, updated_ts FROM u";
/* clang-format on */

static bool terminal(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

/* The decision of hvd_store_claim, inside an open transaction. */
static HvdStoreStatus claim_in_tx(HvdStore *s, StoreConn *c, const char *job_id, const char *locked_host,
                                  HvdClaimOutcome *out, HvdJobRecord *rec, bool *takeover, char *err, size_t errlen)
{
    HvdStoreStatus st = HVD_STORE_OK;
    StoreJobState d = {0};
    bool found = false;
    PGresult *r;
    char *host = NULL;

    if (takeover) *takeover = false;
    if (!locked_host) {
        st = store_lock_job_host(c, job_id, &found, err, errlen);
        if (st != HVD_STORE_OK) return st;
        if (!found) {
            *out = HVD_CLAIM_NOT_FOUND;
            return HVD_STORE_OK;
        }
    }

    st = store_load_job(c, job_id, true, &found, rec, &d, err, errlen);
    if (st != HVD_STORE_OK) return st;
    if (!found) {
        *out = HVD_CLAIM_NOT_FOUND;
        return HVD_STORE_OK;
    }
    if (terminal(rec->status)) {
        *out = HVD_CLAIM_FINISHED;
        return HVD_STORE_OK;
    }
    if (locked_host && rec->target_host && strcmp(rec->target_host, locked_host) != 0) {
        /* a job sent again with another host: its own host decides (rare, so
         * taking this lock after the row lock is acceptable: a deadlock would
         * only surface as RETRY) */
        StoreParams q = {0};
        store_p_text(&q, rec->target_host);
        r = store_exec(c, SQL_LOCK_HOST, &q, &st, err, errlen);
        if (!r) return st;
        PQclear(r);
    }
    bool running = strcmp(rec->status, "running") == 0;
    if (running && d.lease_live) {
        *out = HVD_CLAIM_HELD;
        return HVD_STORE_OK;
    }
    if (!running && d.not_due && !(rec->waiting_reason && strcmp(rec->waiting_reason, "host_busy") == 0)) {
        *out = HVD_CLAIM_WAITING; /* a retry wait that is not over */
        return HVD_STORE_OK;
    }
    host = hvd_xstrdup(rec->target_host);
    bool slot = running && d.holds_slot;
    if (!slot) {
        StoreParams q = {0};
        store_p_text(&q, job_id);
        store_p_text(&q, host);
        store_p_int(&q, d.seq);
        r = store_exec(c, SQL_SLOTS, &q, &st, err, errlen);
        if (!r) goto out;
        int64_t live = store_col_int(r, 0, 0), all = store_col_int(r, 0, 1);
        int64_t earlier = store_col_int(r, 0, 2);
        PQclear(r);
        slot = live < s->host_concurrency && earlier == 0;
        if (slot && all >= s->host_concurrency) {
            q.n = 2;
            r = store_exec(c, SQL_CLEAR_EXPIRED, &q, &st, err, errlen);
            if (!r) goto out;
            PQclear(r);
        }
    }
    StoreParams w = {0};
    store_p_text(&w, job_id);
    store_p_text(&w, s->worker_id);
    store_p_int(&w, s->lease_ttl_s);
    if (!slot) {
        r = store_exec(c, SQL_WAIT_HOST, &w, &st, err, errlen);
        if (!r) goto out;
        PQclear(r);
        *out = HVD_CLAIM_WAITING;
        goto out;
    }
    bool took = running && (!rec->lease_owner || strcmp(rec->lease_owner, s->worker_id) != 0);
    store_p_text(&w, took ? "takeover" : "claimed");
    r = store_exec(c, SQL_TAKE, &w, &st, err, errlen);
    if (!r) goto out;
    if (PQntuples(r) != 1) {
        PQclear(r);
        store_set_err(err, errlen, "job %s vanished while being claimed", job_id);
        st = HVD_STORE_ERROR;
        goto out;
    }
    /* the record as the transaction left it */
    snprintf(rec->status, sizeof(rec->status), "running");
    rec->epoch = store_col_int(r, 0, 0);
    rec->attempts = (int)store_col_int(r, 0, 1);
    free(rec->lease_owner);
    rec->lease_owner = hvd_xstrdup(s->worker_id);
    free(rec->lease_expires_at);
    rec->lease_expires_at = store_col_dup(r, 0, 2);
    free(rec->next_run_at);
    rec->next_run_at = store_col_dup(r, 0, 2);
    free(rec->updated_at);
    rec->updated_at = store_col_dup(r, 0, 3);
    free(rec->waiting_reason);
    rec->waiting_reason = NULL;
    PQclear(r);
    for (size_t i = 0; i < rec->n_stages; i++)
        if (strcmp(rec->stages[i].status, "running") == 0)
            snprintf(rec->stages[i].status, sizeof(rec->stages[i].status), "pending");
    if (takeover) *takeover = took;
    *out = HVD_CLAIM_RUN;
out:
    free(host);
    return st;
}

HvdStoreStatus hvd_store_claim(HvdStore *s, const char *job_id, HvdClaimOutcome *out, HvdJobRecord *rec, bool *takeover,
                               char *err, size_t errlen)
{
    HvdStoreStatus st;
    HvdJobRecord scratch = {0};
    if (!rec) rec = &scratch;
    if (takeover) *takeover = false;
    if (!store_uuid_ok(job_id)) {
        *out = HVD_CLAIM_NOT_FOUND;
        return HVD_STORE_OK;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    st = store_begin(c, err, errlen);
    if (st == HVD_STORE_OK) st = claim_in_tx(s, c, job_id, NULL, out, rec, takeover, err, errlen);
    if (st == HVD_STORE_OK)
        st = store_commit(s, c, err, errlen);
    else
        store_rollback(c);
    store_checkin(s, c);
    hvd_job_record_free(&scratch);
    return st;
}

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
static const char SQL_EXISTS[] = "SELECT 1 FROM hvdeploy.jobs WHERE job_id = $1::uuid";

static void new_job_params(StoreParams *p, const HvdNewJob *job, HvdBuf *stages)
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
    for (size_t i = 0; i < job->n_stages; i++) store_array_add(stages, job->stages[i]);
    store_array_end(stages);
    store_p_text(p, stages->data);
}

HvdStoreStatus hvd_store_claim_new(HvdStore *s, const HvdNewJob *job, HvdClaimOutcome *out, HvdJobRecord *rec,
                                   char *err, size_t errlen)
{
    HvdStoreStatus st;
    HvdJobRecord scratch = {0};
    HvdBuf stages = {0};
    StoreParams p = {0};
    PGresult *r = NULL;
    StoreConn *c = NULL;
    if (!rec) rec = &scratch;
    if (!job || !store_uuid_ok(job->job_id) || !job->target_host || !job->vm_name) {
        store_set_err(err, errlen, "claim_new needs a job id (UUID), a target host and a VM name");
        return HVD_STORE_ERROR;
    }
    if (job->n_stages > 4) {
        store_set_err(err, errlen, "a job has at most 4 stages, not %zu", job->n_stages);
        return HVD_STORE_ERROR;
    }
    c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    st = store_begin(c, err, errlen);
    if (st != HVD_STORE_OK) goto out;
    /* the host first: arrival order (seq) then follows the lock order */
    store_p_text(&p, job->target_host);
    r = store_exec(c, SQL_LOCK_HOST, &p, &st, err, errlen);
    if (!r) goto out;
    PQclear(r);
    p.n = 0;
    new_job_params(&p, job, &stages);
    store_p_text(&p, job->secret_key_id);
    store_p_bin(&p, job->secret_blob, job->secret_blob ? job->secret_len : 0);
    store_p_text(&p, s->worker_id);
    r = store_exec(c, SQL_INSERT_JOB, &p, &st, err, errlen);
    if (!r) goto out;
    bool inserted = store_col_int(r, 0, 0) == 1;
    PQclear(r);
    if (!inserted) {
        /* either the job id exists (then it is a claim) or the name is taken */
        p.n = 1;
        r = store_exec(c, SQL_EXISTS, &p, &st, err, errlen);
        if (!r) goto out;
        bool exists = PQntuples(r) == 1;
        PQclear(r);
        if (!exists) {
            *out = HVD_CLAIM_DUPLICATE_NAME;
            store_rollback(c);
            goto out;
        }
    }
    st = claim_in_tx(s, c, job->job_id, job->target_host, out, rec, NULL, err, errlen);
    if (st == HVD_STORE_OK) st = store_commit(s, c, err, errlen);
out:
    if (st != HVD_STORE_OK) store_rollback(c);
    store_checkin(s, c);
    hvd_buf_free(&stages);
    hvd_job_record_free(&scratch);
    return st;
}

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
static const char SQL_ENVELOPE[] = "SELECT envelope FROM hvdeploy.jobs WHERE job_id = $1::uuid";

HvdStoreStatus hvd_store_record_rejected(HvdStore *s, const HvdNewJob *job, const char *code, const void *envelope,
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
    if (job->n_stages > 4) {
        store_set_err(err, errlen, "a job has at most 4 stages, not %zu", job->n_stages);
        return HVD_STORE_ERROR;
    }
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    new_job_params(&p, job, &stages);
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
    if (st == HVD_STORE_OK) st = store_load_job(c, job_id, false, found, rec, NULL, err, errlen);
    if (st == HVD_STORE_OK)
        st = store_commit(s, c, err, errlen);
    else
        store_rollback(c);
    store_checkin(s, c);
    hvd_job_record_free(&scratch);
    return st;
}
