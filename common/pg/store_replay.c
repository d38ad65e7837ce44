/* Replay of a failed job (hvdeployctl dead replay): one transaction that
 * checks the job can resume and puts it back in the queue from its failed stage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* The host's advisory lock first (the order every slot decision takes), even
 * though a failed job holds no slot: the job becomes live again here. */
static const char SQL_REPLAY_LOCK_HOST[] =
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtext('hvdeploy.host:' || j.target_host))"
    " FROM hvdeploy.jobs j WHERE j.job_id = $1::uuid AND j.target_host IS NOT NULL) l";

/* Everything the decision needs, with the job row locked. */
/* clang-format off */
static const char SQL_REPLAY_LOAD[] =
    "SELECT j.status, j.code, j.target_host, j.vm_name,"
    " (SELECT count(*) FROM hvdeploy.job_stages s WHERE s.job_id = j.job_id),"
    " (SELECT count(*) FROM hvdeploy.job_stages s WHERE s.job_id = j.job_id AND s.status = 'rolled_back'),"
    " (SELECT s.stage FROM hvdeploy.job_stages s WHERE s.job_id = j.job_id AND s.status <> 'succeeded'"
    "  ORDER BY s.position LIMIT 1),"
    " EXISTS (SELECT 1 FROM hvdeploy.job_stages s WHERE s.job_id = j.job_id AND s.stage = 'vm.initialize'"
    "  AND s.status <> 'succeeded'),"
    " EXISTS (SELECT 1 FROM hvdeploy.job_secrets k WHERE k.job_id = j.job_id),"
    " (SELECT o.job_id::text FROM hvdeploy.jobs o WHERE o.target_host = j.target_host"
    "  AND lower(o.vm_name) = lower(j.vm_name) AND o.status IN " STORE_LIVE " AND o.job_id <> j.job_id LIMIT 1)"
    " FROM hvdeploy.jobs j WHERE j.job_id = $1::uuid FOR UPDATE OF j";
/* clang-format on */

/* Back to the queue: due now, no lease, no terminal state; every stage not
 * succeeded pending with no attempts; the retained secrets kept until the job
 * ends again; one event per transition, the old error kept in its detail. */
static const char SQL_REPLAY_RESET[] =
    "WITH j AS (UPDATE hvdeploy.jobs SET status = 'queued', next_run_at = now(), waiting_reason = NULL,"
    "  finished_at = NULL, envelope = NULL, envelope_sent_at = NULL, code = NULL, cancel_requested = false,"
    "  lease_owner = NULL, lease_expires_at = NULL, holds_slot = false, updated_at = now()"
    "  WHERE job_id = $1::uuid AND status = 'failed' RETURNING job_id, attempts),"
    " old AS (SELECT s.stage, s.status, s.attempts, s.code, s.error FROM hvdeploy.job_stages s"
    "  WHERE s.job_id = $1::uuid AND s.status <> 'succeeded'),"
    " st AS (UPDATE hvdeploy.job_stages s SET status = 'pending', attempts = 0, started_at = NULL,"
    "  finished_at = NULL, error = NULL, code = NULL, agent_code = NULL, agent_log = NULL, output = NULL"
    "  FROM j WHERE s.job_id = $1::uuid AND s.status <> 'succeeded' RETURNING s.stage),"
    " k AS (UPDATE hvdeploy.job_secrets SET erase_after = NULL WHERE job_id = $1::uuid"
    "  AND EXISTS (SELECT 1 FROM j)),"
    " ev AS (INSERT INTO hvdeploy.job_events (job_id, stage, from_status, to_status, attempt, worker, detail)"
    "  SELECT $1::uuid, NULL, 'failed', 'queued', j.attempts, $2::text, 'replay' FROM j"
    "  UNION ALL SELECT $1::uuid, old.stage, old.status, 'pending', old.attempts, $2::text,"
    "  left('replay' || coalesce(' (was ' || old.code || coalesce(': ' || old.error, '') || ')', ''), 500)"
    "  FROM old JOIN st USING (stage) WHERE old.status <> 'pending' OR old.attempts > 0)"
    " SELECT count(*) FROM j";

/* Codes of jobs that were refused before they ever ran: nothing to resume. */
static bool never_ran(const char *code)
{
    static const char *const codes[] = {"validation_error",
                                        "malformed_message",
                                        "unsupported_content_type",
                                        "unsupported_job_type",
                                        "message_too_large",
                                        "host_not_allowed",
                                        NULL};
    for (size_t i = 0; code && codes[i]; i++)
        if (strcmp(code, codes[i]) == 0) return true;
    return false;
}

/* Fills why when the loaded job (row 0 of r) cannot be replayed. */
static void replay_refusal(const PGresult *r, const char *job_id, char *why, size_t whylen)
{
    const char *status = PQgetvalue(r, 0, 0);
    const char *code = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
    const char *host = PQgetvalue(r, 0, 2), *vm = PQgetvalue(r, 0, 3);
    int64_t n_stages = store_col_int(r, 0, 4), rolled_back = store_col_int(r, 0, 5);
    bool pending_stage = !PQgetisnull(r, 0, 6);
    bool needs_secrets = store_col_bool(r, 0, 7), has_secrets = store_col_bool(r, 0, 8);
    const char *other = PQgetisnull(r, 0, 9) ? NULL : PQgetvalue(r, 0, 9);

    if (strcmp(status, "failed") != 0)
        store_set_err(why, whylen, "job %s is %s, not failed: there is nothing to replay", job_id, status);
    else if (never_ran(code) || n_stages == 0)
        store_set_err(why, whylen, "job %s was refused before it ran (%s): submit a corrected job instead", job_id,
                      code ? code : "no stages");
    else if (rolled_back > 0)
        store_set_err(why, whylen, "job %s was rolled back: submit it again instead", job_id);
    else if (!pending_stage)
        store_set_err(why, whylen, "every stage of job %s succeeded: there is nothing to resume", job_id);
    else if (needs_secrets && !has_secrets)
        store_set_err(why, whylen,
                      "the secrets of job %s were erased (retention passed): vm.initialize cannot run; "
                      "submit it again",
                      job_id);
    else if (other)
        store_set_err(why, whylen, "another live job (%s) on %s is deploying a VM named '%s'", other, host, vm);
}

HvdStoreStatus hvd_store_replay(HvdStore *s, const char *job_id, bool *found, char *why, size_t whylen, char *err,
                                size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    PGresult *r = NULL;
    bool committed = false;
    *found = false;
    if (why && whylen) why[0] = '\0';
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    store_p_text(&p, job_id);
    st = store_begin(c, err, errlen);
    if (st != HVD_STORE_OK) goto out;
    r = store_exec(c, SQL_REPLAY_LOCK_HOST, &p, &st, err, errlen);
    if (!r) goto out;
    PQclear(r);
    r = store_exec(c, SQL_REPLAY_LOAD, &p, &st, err, errlen);
    if (!r) goto out;
    if (PQntuples(r) != 1) goto out; /* unknown: found stays false */
    *found = true;
    char refusal[512] = "";
    replay_refusal(r, job_id, refusal, sizeof refusal);
    PQclear(r);
    r = NULL;
    if (refusal[0]) {
        store_set_err(why, whylen, "%s", refusal);
        goto out;
    }
    store_p_text(&p, s->worker_id);
    r = store_exec(c, SQL_REPLAY_RESET, &p, &st, err, errlen);
    if (!r) goto out;
    if (store_col_int(r, 0, 0) != 1) {
        /* cannot happen under the row lock; refuse rather than commit half of it */
        store_set_err(why, whylen, "job %s changed while it was being replayed: try again", job_id);
        goto out;
    }
    st = store_commit(s, c, err, errlen);
    committed = st == HVD_STORE_OK;
out:
    PQclear(r);
    if (!committed) store_rollback(c);
    store_checkin(s, c);
    return st;
}
