/* The ways a running job stops running: its terminal state with its envelope
 * (after a rollback when it asked for one), a wait for a retry or for its
 * host's circuit, and a release at shutdown. Each is one fenced store
 * transaction, then the messages it implies (envelope, events, doorbells). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include "answer.h"
#include "utf8.h"
#include "clock.h"
#include "guestcfg.h"
#include "jobrun_priv.h"
#include "metrics.h"
#include "publisher.h"

void jobrun_event(JobRun *r, const char *stage, const char *status, int64_t attempt, const char *message)
{
    pub_event(r->w, r->rec->job_id, r->rec->correlation_id, r->rec->content_type, stage, status, attempt, message);
}

static uint32_t random32(void)
{
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (uint32_t)hvd_mono_ms();
    return rnd;
}

/* Appends a sentence to msg, ending the one before it with a full stop. */
static void append_sentence(char *msg, size_t size, const char *sentence)
{
    size_t l = strlen(msg);
    const char *sep = l && msg[l - 1] != '.' ? ". " : " ";
    hvd_text_printf(msg + l, size - l, "%s%s", sep, sentence);
}

/* ---- rollback ---- */

/* vm.delete of one VM, retried while transient; its last call decides. */
static HvdDeleteResult delete_vm(JobRun *r, const char *vm_id, char *why, size_t whylen)
{
    int max = (int)r->w->cfg.max_attempts;
    HvdDeleteResult res = HVD_DELETE_FAILED;
    for (int attempt = 1; attempt <= max; attempt++) {
        HvdNode *saved = hvd_node_clone(r->outputs);
        hvd_node_map_set_str(r->outputs, "vm_id", vm_id);
        CallResult c;
        call_agent(r, HVD_OP_VM_DELETE, HVD_OP_VM_DELETE, attempt, &c);
        hvd_node_free(r->outputs);
        r->outputs = saved;
        HvdOutcome o = c.outcome;
        hvd_text_printf(why, whylen < 201 ? whylen : 201, "%s", c.message);
        res = hvd_plan_delete_result(o, c.message);
        call_result_free(&c);
        if (res == HVD_DELETE_DONE || !hvd_outcome_transient(o) || o == HVD_OUT_CANCELLED) break;
        sleep((unsigned)(attempt < 5 ? attempt : 5));
    }
    return res;
}

/* Undoes what the job made (§6a: by vm_id; by name only where vm.find tells
 * this job's VM from another's). DONE when nothing of it is left; UNKNOWN
 * when the last vm.delete got no answer. */
static HvdDeleteResult rollback(JobRun *r, int failed_stage, bool maybe_made, char *why, size_t whylen)
{
    const char *vm_id = hvd_node_get_str(r->outputs, "vm_id");
    bool vm_in_doubt =
        maybe_made && failed_stage >= 0 && strcmp(r->rec->stages[failed_stage].name, HVD_STAGE_VM_CREATE) == 0;
    switch (hvd_plan_rollback(vm_id != NULL, vm_in_doubt, &r->caps)) {
    case HVD_ROLLBACK_NOTHING: hvd_text_printf(why, whylen, "no VM was made"); return HVD_DELETE_DONE;
    case HVD_ROLLBACK_DELETE_VM: {
        char *id = hvd_xstrdup(vm_id);
        HvdDeleteResult res = delete_vm(r, id, why, whylen);
        free(id);
        return res;
    }
    case HVD_ROLLBACK_FIND_THEN_DELETE: {
        HvdFound found = HVD_FOUND_NOTHING;
        HvdNode *adopted = NULL;
        char msg[300];
        HvdOutcome o = call_probe(r, failed_stage, &found, &adopted, msg, sizeof msg);
        HvdDeleteResult res = HVD_DELETE_FAILED;
        if (o != HVD_OUT_SUCCESS)
            hvd_text_printf(why, whylen, "%s", msg);
        else if (found == HVD_FOUND_NOTHING)
            res = HVD_DELETE_DONE, hvd_text_printf(why, whylen, "no VM of this job exists");
        else if (found == HVD_FOUND_IT)
            res = delete_vm(r, hvd_node_get_str(adopted, "vm_id"), why, whylen);
        else
            hvd_text_printf(why, whylen, "%s", msg);
        hvd_node_free(adopted);
        return res;
    }
    case HVD_ROLLBACK_CANNOT:
        hvd_text_printf(why, whylen, "the agent cannot find VMs: check host %s for a VM named '%s' made by job %s",
                        r->job.target_host, r->job.vm.vm_name, r->rec->job_id);
        return HVD_DELETE_FAILED;
    }
    return HVD_DELETE_FAILED;
}

/* ---- the envelope ---- */

static void build_envelope(JobRun *r, const char *status, const char *code, const char *message, HvdBuf *out)
{
    bool initialized = false;
    for (size_t i = 0; i < r->rec->n_stages; i++)
        if (strcmp(r->rec->stages[i].name, HVD_STAGE_VM_INITIALIZE) == 0 &&
            r->rec->stages[i].status == HVD_STAGE_SUCCEEDED)
            initialized = true;
    HvdNode *data = hvd_plan_envelope_data(r->outputs, r->job_valid ? r->job.vm.vm_name : r->rec->vm_name,
                                           r->job_valid ? r->job.target_host : r->rec->target_host,
                                           r->job_valid ? r->job.os_family : NULL,
                                           initialized && r->job_valid ? hvd_guest_config_key_names(&r->job) : NULL);
    char finished[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), finished);
    HvdEnvelope env = {
        .job_id = r->rec->job_id,
        .correlation_id = r->rec->correlation_id,
        .job_type = r->rec->job_type,
        .status = status,
        .code = code,
        .message = message,
        .data = data,
        .stages = r->rec->stages,
        .n_stages = r->rec->n_stages,
        .errors = r->errors.n ? &r->errors : NULL,
        .attempts = r->rec->attempts,
        .created_at = r->rec->created_at,
        .finished_at = finished,
    };
    answer_encode(&env, r->ct, out);
    hvd_node_free(data);
}

/* The sentence of a job's end. */
static void end_message(JobRun *r, const HvdStepDecision *d, char *msg, size_t len)
{
    const HvdStage *failed = d->failed_stage >= 0 ? &r->rec->stages[d->failed_stage] : NULL;
    const char *why = failed && failed->message && *failed->message ? failed->message
                                                                    : "its call was under way when its worker stopped";
    const char *code = d->code ? d->code : "";
    if (d->job_status == HVD_JOB_SUCCEEDED)
        hvd_text_printf(msg, len, "Deployed VM '%s' on %s (%zu stage%s).", r->job.vm.vm_name, r->job.target_host,
                        r->rec->n_stages, r->rec->n_stages == 1 ? "" : "s");
    else if (strcmp(code, "cancelled") == 0)
        hvd_text_printf(msg, len, "The job was cancelled before its next stage.");
    else if (strcmp(code, "deadline_exceeded") == 0)
        hvd_text_printf(msg, len, "The job's deadline passed before its next stage could start.");
    else if (!r->job_valid)
        hvd_text_printf(msg, len, "%s", r->why);
    else if (strcmp(code, "validation_error") == 0)
        hvd_text_printf(msg, len, "Host %s does not have what the job names: %zu validation error%s.",
                        r->job.target_host, r->errors.n, r->errors.n == 1 ? "" : "s");
    else if (strcmp(code, "outcome_unknown") == 0 && failed)
        hvd_text_printf(
            msg, len,
            "The outcome of stage %s is unknown (%s): the agent cannot be asked again safely, so what it may "
            "have made on %s (VM '%s') must be checked there.",
            failed->name, why, r->job.target_host, r->job.vm.vm_name);
    else if (strcmp(code, "takeovers_exhausted") == 0 && failed)
        hvd_text_printf(msg, len, "Stage %s lost its worker %d times; the job is not taken over again.", failed->name,
                        r->rec->takeovers);
    else if (strcmp(code, "retries_exhausted") == 0 && failed)
        hvd_text_printf(msg, len, "Stage %s failed after %d attempts: %s", failed->name, failed->attempts, why);
    else if (failed && failed->message && strcmp(code, "internal_error") == 0 &&
             strcmp(failed->name, HVD_STAGE_VM_INITIALIZE) == 0)
        hvd_text_printf(msg, len, "The guest's secrets are no longer stored, so vm.initialize cannot run.");
    else if (failed)
        hvd_text_printf(msg, len, "Stage %s failed: %s", failed->name, why);
    else
        hvd_text_printf(msg, len, "The job failed (%s).", code);
}

void jobrun_finish(JobRun *r, const HvdStepDecision *d)
{
    Worker *w = r->w;
    HvdJobRecord *rec = r->rec;
    char msg[1024];
    end_message(r, d, msg, sizeof msg);
    if (d->failed_stage >= 0 && d->code && strcmp(d->code, "internal_error") == 0 &&
        strcmp(rec->stages[d->failed_stage].name, HVD_STAGE_VM_INITIALIZE) == 0) {
        hvd_stage_set(&rec->stages[d->failed_stage].message,
                      "The guest's secrets are no longer stored (retention passed).");
    }
    /* Stages that never ran in this job's life are not_started. */
    for (size_t i = 0; i < rec->n_stages; i++)
        if (rec->stages[i].status == HVD_STAGE_RUNNING) rec->stages[i].status = HVD_STAGE_PENDING;

    /* the failed stage's last call may have made its VM: left behind until shown otherwise */
    bool vm_maybe_left =
        d->maybe_made && d->failed_stage >= 0 && strcmp(rec->stages[d->failed_stage].name, HVD_STAGE_VM_CREATE) == 0;
    if (d->rollback) {
        char why[300] = "";
        HvdDeleteResult res = rollback(r, d->failed_stage, d->maybe_made, why, sizeof why);
        if (res == HVD_DELETE_DONE) {
            /* The envelope's data lists what exists: nothing made is left. */
            hvd_stage_outputs_forget(r->outputs);
            for (size_t i = 0; i < rec->n_stages; i++)
                if (rec->stages[i].status == HVD_STAGE_SUCCEEDED) rec->stages[i].status = HVD_STAGE_ROLLED_BACK;
            vm_maybe_left = false;
            hvd_log_info(&r->log, "rolled back: VM deleted with its disks");
            append_sentence(msg, sizeof msg, "Everything it made was rolled back.");
        } else {
            char more[600];
            const char *vm_id = hvd_node_get_str(r->outputs, "vm_id");
            if (res == HVD_DELETE_UNKNOWN)
                hvd_text_printf(
                    more, sizeof more,
                    "Rollback failed: the outcome of vm.delete is unknown (%s), so VM '%s' (%s) may or may not "
                    "still exist on %s: check it there.",
                    why, r->job.vm.vm_name, vm_id ? vm_id : "id unknown", r->job.target_host);
            else
                hvd_text_printf(more, sizeof more, "Rollback failed (%s); what it made is left in place.", why);
            append_sentence(msg, sizeof msg, more);
        }
    }
    bool left = hvd_job_any_stage(rec, HVD_STAGE_SUCCEEDED) || vm_maybe_left;
    const char *env_status = d->job_status == HVD_JOB_SUCCEEDED ? "success" : hvd_plan_failed_status(left);

    HvdBuf env = {0};
    build_envelope(r, env_status, d->code, msg, &env);
    char next_job[37] = "";
    char err[256];
    HvdStoreStatus st;
    for (int attempt = 0;; attempt++) {
        st = hvd_store_finish(w->store, rec->job_id, r->epoch, d->job_status, d->code, rec->stages, rec->n_stages,
                              env.data, env.len, next_job, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&w->stopping)) break;
        worker_backoff_sleep(w, attempt);
    }
    if (st == HVD_STORE_OK) {
        hvd_log_kv(d->job_status == HVD_JOB_SUCCEEDED ? HVD_LOG_INFO : HVD_LOG_WARN, &r->log, "job finished", "status",
                   env_status, "code", d->code, "message", msg, NULL);
        if (r->unrecorded >= 0) {
            const HvdStage *sg = &rec->stages[r->unrecorded];
            jobrun_event(r, sg->name, hvd_stage_status_name(sg->status), sg->attempts, sg->message);
            r->unrecorded = -1;
        }
        jobrun_event(r, NULL, hvd_job_status_name(d->job_status), rec->attempts, msg);
        hvd_metric_inc(HVD_M_JOBS_TOTAL, rec->job_type, env_status);
        answer_publish(w, rec->job_id, rec->reply_to, rec->correlation_id, rec->content_type, &env);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
        if (d->dead_letter) {
            const HvdStage *sg = d->failed_stage >= 0 ? &rec->stages[d->failed_stage] : NULL;
            answer_dead_letter(w, rec, sg ? sg->name : NULL, d->code, msg, sg ? sg->agent_code : NULL,
                               sg ? sg->agent_log : NULL);
        }
    } else if (st == HVD_STORE_FENCED) {
        hvd_log_warn(&r->log, "lease lost before the job could be finished: another worker owns it now");
    } else {
        hvd_log_error(&r->log, "cannot record the end of the job: %s", err);
    }
    hvd_buf_free(&env);
}

/* ---- waits and release ---- */

void jobrun_wait(JobRun *r, int i, HvdWaitReason reason, int attempt, int64_t wait_ms)
{
    Worker *w = r->w;
    HvdStage *sg = &r->rec->stages[i];
    int64_t delay;
    if (reason == HVD_WAIT_CIRCUIT_OPEN) {
        /* spread over a cooldown so the backlog returns gradually */
        int64_t spread = w->cfg.breaker_cooldown * 1000;
        delay = wait_ms + (spread > 0 ? (int64_t)(random32() % (uint32_t)spread) : 0);
        char msg[300];
        hvd_text_printf(msg, sizeof msg,
                        "Host %s keeps failing: its circuit is open, the job waits without spending an attempt.",
                        r->job.target_host);
        hvd_stage_set(&sg->message, msg);
        hvd_stage_set(&sg->code, NULL);
        hvd_stage_set(&sg->agent_code, NULL);
        hvd_stage_set(&sg->agent_log, NULL);
    } else {
        size_t bucket = 0;
        delay = hvd_plan_retry_delay_ms(w->retry_delays, w->cfg.retry_delays.n, attempt, random32(), &bucket);
    }
    char next_job[37] = "", err[256];
    HvdStoreStatus st =
        hvd_store_wait_retry(w->store, r->rec->job_id, r->epoch, sg, delay, reason, next_job, err, sizeof err);
    HvdLogCtx lc = r->log;
    lc.stage = sg->name;
    lc.attempt = sg->attempts;
    if (st == HVD_STORE_OK) {
        if (reason == HVD_WAIT_CIRCUIT_OPEN) {
            hvd_log_kv(HVD_LOG_WARN, &lc, "waiting for the host's circuit to close", NULL);
        } else {
            hvd_log_kv(HVD_LOG_WARN, &lc, "stage failed, will retry", "reason", sg->message, "agent_code",
                       sg->agent_code, NULL);
            hvd_metric_inc(HVD_M_RETRIES_TOTAL, sg->name, NULL);
            jobrun_event(r, sg->name, "pending", sg->attempts, sg->message);
        }
        jobrun_event(r, NULL, "retrying", r->rec->attempts, sg->message);
        pub_doorbell(w, r->rec->job_id, delay);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
    } else if (st != HVD_STORE_FENCED) {
        hvd_log_error(&lc, "cannot record the wait (the lease will expire and the job resume): %s", err);
    }
}

void jobrun_release(JobRun *r)
{
    char next_job[37] = "", err[256];
    HvdStoreStatus st = hvd_store_release(r->w->store, r->rec->job_id, r->epoch, next_job, err, sizeof err);
    if (st == HVD_STORE_OK) {
        hvd_log_info(&r->log, "job released for another worker (shutting down)");
        jobrun_event(r, NULL, "queued", r->rec->attempts, "released by a stopping worker");
        pub_doorbell(r->w, r->rec->job_id, 0);
        if (next_job[0]) pub_doorbell(r->w, next_job, 0);
    } else if (st != HVD_STORE_FENCED) {
        hvd_log_warn(&r->log, "cannot release the job (its lease will expire instead): %s", err);
    }
}
