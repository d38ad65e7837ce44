/* Runs one claimed job: rebuilds it from PostgreSQL (redacted request plus
 * decrypted secrets), then loops — observe, ask hvd_plan_step, carry the
 * decision out — until the job ends, waits, is released or its lease is
 * lost. Each stage boundary is one fenced transaction (the end of one stage
 * and the start of the next); no transaction is open while the agent runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "breaker.h"
#include "utf8.h"
#include "clock.h"
#include "guestcfg.h"
#include "jobrun.h"
#include "jobrun_priv.h"
#include "leases.h"
#include "metrics.h"
#include "profiles.h"
#include "publisher.h"
#include "secret.h"

/* ---- setting up ---- */

static void register_secrets(JobRun *r, const HvdNode *secrets)
{
    if (!secrets || secrets->type != HVD_MAP) return;
    for (size_t i = 0; i < secrets->u.map.n && r->n_secrets < JOBRUN_MAX_SECRETS; i++) {
        const HvdNode *v = secrets->u.map.vals[i];
        if (v->type != HVD_STR || v->u.s.len == 0) continue;
        r->secrets[r->n_secrets] = hvd_xstrdup(v->u.s.ptr);
        hvd_log_register_secret(r->secrets[r->n_secrets]);
        r->n_secrets++;
    }
}

static void jobrun_free(JobRun *r)
{
    for (size_t i = 0; i < r->n_secrets; i++) {
        hvd_log_unregister_secret(r->secrets[i]);
        free(r->secrets[i]);
    }
    hvd_job_free(&r->job);
    hvd_errors_free(&r->errors);
    hvd_node_free(r->body);
    hvd_node_free(r->outputs);
}

static HvdNode *json_map_or_empty(const char *text)
{
    HvdNode *n = NULL;
    char err[128];
    if (text && *text) (void)hvd_json_to_node(text, strlen(text), 0, &n, err, sizeof err);
    if (n && n->type == HVD_MAP) return n;
    hvd_node_free(n);
    return hvd_node_map();
}

/* Rebuilds the validated job from the stored redacted request and the
 * decrypted secrets. False (with r->why) when that cannot be done. */
static bool rebuild(JobRun *r)
{
    HvdJobRecord *rec = r->rec;
    char err[256];
    HvdNode *request = NULL;
    r->outputs = json_map_or_empty(rec->outputs_json);
    const char *req_text = rec->request_json ? rec->request_json : "";
    if (hvd_json_to_node(req_text, strlen(req_text), 4 * HVD_MAX_BODY, &request, err, sizeof err) != HVD_DECODE_OK) {
        hvd_text_printf(r->why, sizeof r->why, "stored request is unreadable: %s", err);
        return false;
    }
    HvdNode *body = hvd_node_map();
    hvd_node_map_set_str(body, "job_id", rec->job_id);
    hvd_node_map_set_str(body, "job_type", rec->job_type);
    hvd_node_map_set(body, "request", request);
    hvd_node_map_set(body, "options", json_map_or_empty(rec->options_json));
    r->body = body;

    if (rec->secret_blob.len > 0) {
        HvdBuf plain = {0};
        if (hvd_secret_open(&r->w->keys, rec->secret_blob.data, rec->secret_blob.len, rec->job_id, &plain, err,
                            sizeof err) != 0) {
            hvd_text_printf(r->why, sizeof r->why, "the job's secrets cannot be decrypted: %s", err);
            return false;
        }
        HvdNode *secrets = NULL;
        HvdDecodeStatus ds = hvd_json_to_node(plain.data, plain.len, 0, &secrets, err, sizeof err);
        hvd_secret_buf_free(&plain);
        if (ds != HVD_DECODE_OK) {
            hvd_text_printf(r->why, sizeof r->why, "the job's decrypted secrets are unreadable");
            return false;
        }
        register_secrets(r, secrets);
        hvd_restore_secrets(r->body, secrets);
        hvd_node_free(secrets);
    }

    HvdErrors errs = {0};
    HvdValidateOpts vo = {0};
    r->job_valid = hvd_job_validate(r->body, &vo, &r->job, &errs);
    if (!r->job_valid)
        hvd_text_printf(r->why, sizeof r->why, "stored request no longer validates: %s: %s",
                        errs.n ? errs.items[0].loc : "?", errs.n ? errs.items[0].msg : "?");
    hvd_errors_free(&errs);
    return r->job_valid;
}

/* ---- recording ---- */

/* One store step with retries on transient database errors: ends the
 * unrecorded stage (if any), starts next_stage (if any). */
static HvdStoreStatus step(JobRun *r, const char *next_stage, bool *cancel, int *attempt)
{
    const HvdStage *ended = r->unrecorded >= 0 ? &r->rec->stages[r->unrecorded] : NULL;
    char err[256];
    HvdStoreStatus st;
    for (int i = 0;; i++) {
        st = hvd_store_step(r->w->store, r->rec->job_id, r->epoch, ended, next_stage, cancel, attempt, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&r->w->stopping)) break;
        worker_backoff_sleep(r->w, i);
    }
    if (st == HVD_STORE_FENCED)
        hvd_log_warn(&r->log, "lease lost: another worker owns the job now; stopping");
    else if (st != HVD_STORE_OK)
        hvd_log_error(&r->log, "cannot record stage progress: %s", err);
    if (st == HVD_STORE_OK && ended) {
        jobrun_event(r, ended->name, "succeeded", ended->attempts, ended->message);
        r->unrecorded = -1;
    }
    return st;
}

bool jobrun_flush(JobRun *r)
{
    if (r->unrecorded < 0) return true;
    bool cancel = false;
    return step(r, NULL, &cancel, NULL) == HVD_STORE_OK;
}

/* Records stage i's start (and the end of the one before). False when the
 * job must stop here; *cancel when a cancel arrived meanwhile (the stage was
 * not started). */
static bool start_stage(JobRun *r, int i, bool *cancel)
{
    HvdStage *sg = &r->rec->stages[i];
    int attempt = sg->attempts + 1;
    if (step(r, sg->name, cancel, &attempt) != HVD_STORE_OK) return false;
    if (*cancel) return true;
    sg->attempts = attempt;
    sg->status = HVD_STAGE_RUNNING; /* in_doubt stays until an answer settles it (plan_step.c) */
    char now[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), now);
    hvd_stage_set(&sg->started_at, now);
    hvd_stage_set(&sg->finished_at, NULL);
    return true;
}

/* ---- observations ---- */

/* What a call's answer leaves on its stage whatever the plan makes of it. */
static void note_call(HvdStage *sg, const CallResult *c)
{
    char now[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), now);
    hvd_stage_set(&sg->finished_at, now);
    hvd_stage_set(&sg->message, c->message);
    hvd_stage_set(&sg->agent_code, c->agent_code);
    hvd_stage_set(&sg->agent_log, c->log_tail);
}

static void set_outputs(JobRun *r, HvdStage *sg, HvdNode *made)
{
    for (size_t k = 0; k < made->u.map.n; k++)
        hvd_node_map_set(r->outputs, made->u.map.keys[k], hvd_node_clone(made->u.map.vals[k]));
    char *json = hvd_node_to_json(made);
    hvd_stage_set(&sg->output_json, json);
    free(json);
}

/* Carries out what the decision says about the observed stage. made is what
 * a success or an adoption made (consumed). */
static void settle(JobRun *r, const HvdStepDecision *d, HvdNode *made)
{
    if (d->settle == HVD_SETTLE_NONE || d->settle_stage < 0) {
        hvd_node_free(made);
        return;
    }
    HvdStage *sg = &r->rec->stages[d->settle_stage];
    HvdLogCtx lc = r->log;
    lc.stage = sg->name;
    lc.attempt = sg->attempts;
    switch (d->settle) {
    case HVD_SETTLE_SUCCEEDED:
    case HVD_SETTLE_ADOPTED:
        sg->status = HVD_STAGE_SUCCEEDED;
        sg->in_doubt = false;
        hvd_stage_set(&sg->code, NULL); /* earlier attempts' failures are history */
        hvd_stage_set(&sg->agent_code, NULL);
        hvd_stage_set(&sg->agent_log, NULL);
        if (made) set_outputs(r, sg, made);
        r->unrecorded = d->settle_stage;
        hvd_log_kv(HVD_LOG_INFO, &lc, d->settle == HVD_SETTLE_ADOPTED ? "stage adopted" : "stage succeeded", "vm_id",
                   hvd_node_get_str(r->outputs, "vm_id"), NULL);
        break;
    case HVD_SETTLE_PENDING:
        sg->status = HVD_STAGE_PENDING;
        sg->in_doubt = d->keep_doubt;
        if (d->settle_code) hvd_stage_set(&sg->code, d->settle_code);
        break;
    case HVD_SETTLE_FAILED:
        sg->status = HVD_STAGE_FAILED;
        sg->in_doubt = false;
        hvd_stage_set(&sg->code, d->settle_code);
        hvd_log_kv(HVD_LOG_WARN, &lc, "stage failed", "code", d->settle_code, "reason", sg->message, "agent_code",
                   sg->agent_code, NULL);
        jobrun_event(r, sg->name, "failed", sg->attempts, sg->message);
        break;
    case HVD_SETTLE_NONE: break;
    }
    hvd_node_free(made);
}

/* ---- the loop ---- */

static HvdStepFacts facts(JobRun *r, const HvdObservation *obs, bool cancel)
{
    HvdStepFacts f = {
        .job = r->rec,
        .job_valid = r->job_valid,
        .rollback = r->job_valid && r->job.rollback,
        .stopping = atomic_load(&r->w->stopping),
        .deadline_passed = r->job_valid && r->job.has_deadline && hvd_now_ms() > r->job.deadline_ms,
        .cancel_requested = cancel,
        .gate = HVD_HOST_CLOSED,
        .caps = r->caps,
        .max_attempts = (int)r->w->cfg.max_attempts,
        .max_takeovers = (int)r->w->cfg.max_takeovers,
        .preflight_done = r->preflight_done,
        .obs = *obs,
    };
    /* vm.initialize needs the guest's secrets; they are gone once retention passed */
    f.secrets_gone = r->job_valid && r->rec->secret_blob.len == 0 && r->job.guest.present && r->job.guest.guest_la_pw &&
                     strcmp(r->job.guest.guest_la_pw, HVD_REDACTED) == 0;
    return f;
}

/* Asks the host what its agent honours (profiles.c), no longer than the
 * job's next operation may take. */
static bool learn_caps(JobRun *r, HvdOutcome *hello, char *why, size_t whylen)
{
    const HvdStage *next = hvd_job_current_stage(r->rec);
    int64_t timeout = hvd_agent_timeout_ms(&r->w->agent, next ? next->name : HVD_STAGE_VM_CREATE);
    return profile_caps(r->w, r->job.target_host, r->rec->job_id, timeout, &r->caps, hello, why, whylen);
}

static void run(JobRun *r)
{
    Worker *w = r->w;
    HvdObservation obs = {.kind = HVD_OBS_NONE, .stage = -1};
    for (size_t i = 0; i < r->rec->n_stages; i++)
        if (r->rec->stages[i].in_doubt && r->rec->stages[i].status == HVD_STAGE_PENDING) {
            obs = (HvdObservation){.kind = HVD_OBS_IN_DOUBT, .stage = (int)i};
            break;
        }
    bool cancel = r->rec->cancel_requested;
    char why[300];
    HvdOutcome hello = HVD_OUT_SUCCESS;
    if (r->job_valid) r->caps_known = learn_caps(r, &hello, why, sizeof why);
    if (!r->caps_known && obs.kind == HVD_OBS_IN_DOUBT) {
        /* whether the stage may be sent again depends on what the agent honours */
        hvd_stage_set(&r->rec->stages[obs.stage].message, why);
        r->rec->stages[obs.stage].in_doubt = true;
        jobrun_wait(r, obs.stage, HVD_WAIT_RETRY, r->rec->stages[obs.stage].attempts, 0);
        return;
    }
    HvdNode *made = NULL; /* what the observed stage made */
    for (;;) {
        HvdStepFacts f = facts(r, &obs, cancel);
        HvdStepDecision d = hvd_plan_step(&f);
        HvdHostGate gate = HVD_HOST_CLOSED;
        int64_t gate_wait = 0;
        if (d.verdict == HVD_STEP_CALL) {
            /* a host whose circuit is open is not called: ask it only now */
            gate = breaker_gate(w, r->job.target_host, r->rec->job_id, &gate_wait);
            if (gate != HVD_HOST_CLOSED) {
                f.gate = gate;
                d = hvd_plan_step(&f);
            }
        }
        settle(r, &d, made);
        made = NULL;
        bool after_call = obs.kind == HVD_OBS_CALL;
        obs = (HvdObservation){.kind = HVD_OBS_NONE, .stage = -1};

        switch (d.verdict) {
        case HVD_STEP_CALL: {
            if (!start_stage(r, d.stage, &cancel)) return;
            if (cancel) continue; /* the plan ends it as cancelled */
            HvdStage *sg = &r->rec->stages[d.stage];
            HvdLogCtx lc = r->log;
            lc.stage = sg->name;
            lc.attempt = sg->attempts;
            jobrun_event(r, sg->name, "running", sg->attempts, NULL);
            hvd_log_info(&lc, "stage started");
            int64_t t0 = hvd_mono_ms();
            CallResult c;
            HvdOutcome reported; /* what the host's circuit hears */
            if (!r->caps_known && hvd_op_creates(sg->name) &&
                !(r->caps_known = learn_caps(r, &hello, why, sizeof why))) {
                /* not sent: a creating call waits until the agent's profile is known */
                c = (CallResult){.outcome = HVD_OUT_NOT_SENT, .data = hvd_node_map()};
                hvd_text_printf(c.message, sizeof c.message, "%s", why);
                reported = hello;
            } else {
                call_agent(r, sg->name, sg->name, sg->attempts, &c);
                reported = c.outcome;
            }
            if (c.outcome == HVD_OUT_TIMEOUT || c.outcome == HVD_OUT_TRANSPORT || c.outcome == HVD_OUT_UNREACHABLE)
                profile_forget(r->job.target_host);
            hvd_metric_observe(HVD_M_STAGE_DURATION, sg->name, NULL, (double)(hvd_mono_ms() - t0) / 1000.0);
            if (reported != HVD_OUT_CANCELLED)
                breaker_report(w, r->job.target_host, reported, c.agent_code, gate == HVD_HOST_TRIAL);
            if (leases_lost(w->leases, r->rec->job_id)) {
                hvd_log_warn(&lc, "lease lost while the agent ran: leaving the job to its new owner");
                call_result_free(&c);
                return;
            }
            note_call(sg, &c);
            if (c.outcome != HVD_OUT_SUCCESS)
                hvd_log_kv(HVD_LOG_WARN, &lc, "stage call failed", "outcome", hvd_outcome_name(c.outcome), "reason",
                           c.message, "agent_code", c.agent_code, NULL);
            obs = (HvdObservation){.kind = HVD_OBS_CALL,
                                   .stage = d.stage,
                                   .outcome = c.outcome,
                                   .output_ok = c.outcome == HVD_OUT_SUCCESS && hvd_stage_output_ok(sg->name, c.data)};
            if (c.outcome == HVD_OUT_SUCCESS && !obs.output_ok)
                hvd_stage_set(&sg->message, "the agent answered success without data.vm_id");
            if (obs.output_ok) made = hvd_stage_outputs(sg->name, c.data);
            call_result_free(&c);
            continue;
        }
        case HVD_STEP_PROBE: {
            HvdFound found = HVD_FOUND_NOTHING;
            char message[300];
            HvdOutcome o = call_probe(r, d.stage, &found, &made, message, sizeof message);
            obs = (HvdObservation){
                .kind = HVD_OBS_PROBE, .stage = d.stage, .outcome = o, .found = found, .after_failure = after_call};
            /* an adopted stage's success event carries this sentence, an
             * ambiguous one's failure too; "nothing found" keeps the call's error */
            if (o == HVD_OUT_SUCCESS && found != HVD_FOUND_NOTHING)
                hvd_stage_set(&r->rec->stages[d.stage].message, message);
            continue;
        }
        case HVD_STEP_PREFLIGHT: {
            bool ok = true;
            HvdOutcome o = call_preflight(r, &ok, &r->errors);
            r->preflight_done = true;
            obs = (HvdObservation){.kind = HVD_OBS_PREFLIGHT, .stage = d.stage, .outcome = o, .preflight_ok = ok};
            continue;
        }
        case HVD_STEP_RETRY: jobrun_wait(r, d.settle_stage, HVD_WAIT_RETRY, d.attempt, 0); return;
        case HVD_STEP_WAIT_HOST: {
            size_t i = hvd_job_first_open_stage(r->rec);
            if (jobrun_flush(r)) jobrun_wait(r, (int)i, HVD_WAIT_CIRCUIT_OPEN, 0, gate_wait);
            return;
        }
        case HVD_STEP_FINISH: jobrun_finish(r, &d); return;
        case HVD_STEP_RELEASE:
            if (jobrun_flush(r)) jobrun_release(r);
            return;
        }
    }
}

void jobrun_execute(Worker *w, HvdJobRecord *rec, bool takeover)
{
    JobRun r = {.w = w, .rec = rec, .epoch = rec->epoch, .unrecorded = -1};
    r.ct = hvd_content_type_parse(rec->content_type);
    if (r.ct == HVD_CT_UNKNOWN) r.ct = HVD_CT_MSGPACK;
    r.log = (HvdLogCtx){.job_id = rec->job_id,
                        .correlation_id = rec->correlation_id,
                        .host = rec->target_host,
                        .attempt = rec->attempts};
    if (rec->n_stages > HVD_MAX_STAGES) rec->n_stages = HVD_MAX_STAGES;
    r.caps = (HvdAgentCaps){0}; /* raw until the host's profile is known */
    leases_add(w->leases, rec->job_id, rec->epoch);
    if (takeover) {
        hvd_metric_inc(HVD_M_LEASE_TAKEOVERS_TOTAL, NULL, NULL);
        hvd_log_warn(&r.log, "took over a job whose worker's lease expired");
    }
    hvd_log_info(&r.log, "job running");
    jobrun_event(&r, NULL, "running", rec->attempts, takeover ? "taken over" : NULL);

    if (!rebuild(&r)) {
        hvd_log_error(&r.log, "%s", r.why);
        if (!r.outputs) r.outputs = hvd_node_map();
    } else {
        r.log.host = r.job.target_host;
    }
    run(&r);
    leases_remove(w->leases, rec->job_id);
    jobrun_free(&r);
}

void jobrun_release_all(Worker *w)
{
    char ids[256][37];
    int64_t epochs[256];
    size_t n = leases_snapshot(w->leases, ids, epochs, 256);
    for (size_t i = 0; i < n; i++) {
        char next_job[37] = "", err[256];
        HvdLogCtx lc = {.job_id = ids[i]};
        if (hvd_store_release(w->store, ids[i], epochs[i], next_job, err, sizeof err) == HVD_STORE_OK) {
            hvd_log_info(&lc, "job released for another worker (shutdown grace over)");
            pub_doorbell(w, ids[i], 0);
            if (next_job[0]) pub_doorbell(w, next_job, 0);
        }
        leases_remove(w->leases, ids[i]);
    }
}
