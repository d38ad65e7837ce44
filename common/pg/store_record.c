/* Loading a job record (record.h) with its stages, and the facts a claim
 * decides on (plan.h: HvdClaimFacts), from the jobs, job_stages and
 * job_secrets tables. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* The job, its secret blob, and the claim's facts: its lease and due time,
 * and the other live jobs of its host (slot holders under a live lease, all
 * slot holders, earlier jobs waiting for a slot). $2 is this worker. The
 * locked form is the same statement with FOR UPDATE. */
/* clang-format off */
#define SQL_LOAD_JOB_SELECT                                                                                    \
    "SELECT j.job_id::text, j.status, j.job_type, j.target_host, j.vm_name, j.correlation_id,"                 \
    " j.reply_to, j.content_type, j.request::text, j.options::text, j.outputs::text, j.attempts,"             \
    " j.lease_epoch, j.cancel_requested, " STORE_TS("j.created_at") ", j.envelope,"                            \
    " j.envelope_sent_at IS NOT NULL, j.code, " STORE_TS("j.updated_at") ", " STORE_TS("j.finished_at") ","    \
    " j.lease_owner, " STORE_TS("j.lease_expires_at") ", j.waiting_reason, " STORE_TS("j.next_run_at") ","    \
    " sec.ciphertext, sec.key_id, j.takeovers,"                                                                \
    " coalesce(j.lease_expires_at > now(), false), coalesce(j.next_run_at > now(), false), j.holds_slot,"     \
    " coalesce(j.lease_owner = $2::text, false), h.live, h.holders, h.earlier"                                 \
    " FROM hvdeploy.jobs j LEFT JOIN hvdeploy.job_secrets sec ON sec.job_id = j.job_id"                        \
    " LEFT JOIN LATERAL (SELECT"                                                                               \
    "  count(*) FILTER (WHERE w.holds_slot AND w.status = 'running' AND w.lease_expires_at > now()) AS live,"  \
    "  count(*) FILTER (WHERE w.holds_slot) AS holders,"                                                       \
    "  count(*) FILTER (WHERE w.seq < j.seq AND NOT (w.holds_slot AND w.status = 'running'"                    \
    "   AND w.lease_expires_at > now()) AND " STORE_WAITING_FOR_SLOT("w") ") AS earlier"                       \
    "  FROM hvdeploy.jobs w WHERE w.target_host = j.target_host AND w.status IN " STORE_LIVE                   \
    "  AND w.job_id <> j.job_id AND j.status IN " STORE_LIVE ") h ON true"                                     \
    " WHERE j.job_id = $1::uuid"
/* clang-format on */
static const char SQL_LOAD_JOB[] = SQL_LOAD_JOB_SELECT;
static const char SQL_LOAD_JOB_LOCKED[] = SQL_LOAD_JOB_SELECT " FOR UPDATE OF j";
/* clang-format off */
static const char SQL_LOAD_STAGES[] =
    "SELECT stage, status, attempts, " STORE_TS("started_at") ", " STORE_TS("finished_at") ","
    " error, code, agent_code, output::text, agent_log, in_doubt"
    " FROM hvdeploy.job_stages WHERE job_id = $1::uuid ORDER BY position";
/* clang-format on */

HvdJobStatus store_col_job_status(const PGresult *r, int row, int col)
{
    HvdJobStatus v = HVD_JOB_QUEUED;
    (void)hvd_job_status_parse(PQgetvalue(r, row, col), &v);
    return v;
}

HvdStageStatus store_col_stage_status(const PGresult *r, int row, int col)
{
    HvdStageStatus v = HVD_STAGE_PENDING;
    (void)hvd_stage_status_parse(PQgetvalue(r, row, col), &v);
    return v;
}

/* The job row's columns (0..26) into rec. */
static void job_columns(const PGresult *r, HvdJobRecord *rec)
{
    store_col_copy(r, 0, 0, rec->job_id, sizeof(rec->job_id));
    rec->status = store_col_job_status(r, 0, 1);
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
    if (!hvd_wait_reason_parse(PQgetisnull(r, 0, 22) ? NULL : PQgetvalue(r, 0, 22), &rec->waiting))
        rec->waiting = HVD_WAIT_NONE;
    rec->next_run_at = store_col_dup(r, 0, 23);
    store_col_bytea(r, 0, 24, &rec->secret_blob);
    rec->secret_key_id = store_col_dup(r, 0, 25);
    rec->takeovers = (int)store_col_int(r, 0, 26);
}

static void claim_facts(const PGresult *r, const HvdJobRecord *rec, int host_concurrency, HvdClaimFacts *f)
{
    *f = (HvdClaimFacts){
        .found = true,
        .status = rec->status,
        .waiting = rec->waiting,
        .lease_live = store_col_bool(r, 0, 27),
        .not_due = store_col_bool(r, 0, 28),
        .holds_slot = store_col_bool(r, 0, 29),
        .lease_ours = store_col_bool(r, 0, 30),
        .host_live = store_col_int(r, 0, 31),
        .host_holders = store_col_int(r, 0, 32),
        .host_earlier = store_col_int(r, 0, 33),
        .host_concurrency = host_concurrency,
    };
}

const char *const STORE_SQL_LOAD_JOB_LOCKED = SQL_LOAD_JOB_LOCKED;
const char *const STORE_SQL_LOAD_STAGES = SQL_LOAD_STAGES;

static void stage_rows(const PGresult *r, HvdJobRecord *rec)
{
    for (size_t i = 0; i < rec->n_stages; i++) hvd_stage_clear(&rec->stages[i]);
    rec->n_stages = 0;
    for (int i = 0; i < PQntuples(r) && i < HVD_MAX_STAGES; i++) {
        HvdStage *sr = &rec->stages[i];
        store_col_copy(r, i, 0, sr->name, sizeof(sr->name));
        sr->status = store_col_stage_status(r, i, 1);
        sr->attempts = (int)store_col_int(r, i, 2);
        sr->started_at = store_col_dup(r, i, 3);
        sr->finished_at = store_col_dup(r, i, 4);
        sr->message = store_col_dup(r, i, 5);
        sr->code = store_col_dup(r, i, 6);
        sr->agent_code = store_col_dup(r, i, 7);
        sr->output_json = store_col_dup(r, i, 8);
        sr->agent_log = store_col_dup(r, i, 9);
        sr->in_doubt = store_col_bool(r, i, 10);
        rec->n_stages = (size_t)i + 1;
    }
}

bool store_record_from(HvdStore *s, const PGresult *job, const PGresult *stages, HvdJobRecord *rec,
                       HvdClaimFacts *facts)
{
    if (facts) *facts = (HvdClaimFacts){.found = false};
    if (PQntuples(job) == 0) return false;
    hvd_job_record_free(rec);
    job_columns(job, rec);
    if (facts) claim_facts(job, rec, s->host_concurrency, facts);
    stage_rows(stages, rec);
    return true;
}

HvdStoreStatus store_load_stages(StoreConn *c, const char *job_id, HvdJobRecord *rec, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    store_p_text(&p, job_id);
    PGresult *r = store_exec(c, SQL_LOAD_STAGES, &p, &st, err, errlen);
    if (!r) return st;
    stage_rows(r, rec);
    PQclear(r);
    return HVD_STORE_OK;
}

HvdStoreStatus store_load_job(HvdStore *s, StoreConn *c, const char *job_id, bool for_update, bool *found,
                              HvdJobRecord *rec, HvdClaimFacts *facts, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st = HVD_STORE_OK;
    store_p_text(&p, job_id);
    store_p_text(&p, s->worker_id);
    *found = false;
    if (facts) *facts = (HvdClaimFacts){.found = false};
    PGresult *r = store_exec(c, for_update ? SQL_LOAD_JOB_LOCKED : SQL_LOAD_JOB, &p, &st, err, errlen);
    if (!r) return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return HVD_STORE_OK;
    }
    *found = true;
    hvd_job_record_free(rec);
    job_columns(r, rec);
    if (facts) claim_facts(r, rec, s->host_concurrency, facts);
    PQclear(r);
    return store_load_stages(c, job_id, rec, err, errlen);
}
