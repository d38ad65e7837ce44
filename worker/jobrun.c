/* Runs one claimed job: rebuilds it from PostgreSQL (redacted request plus
 * decrypted secrets), runs each stage not yet succeeded through the agent,
 * records every transition through the fenced store calls, and ends with a
 * terminal state, an envelope, a retry wait or a release. No transaction is
 * open while the agent runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include "agentproto.h"
#include "clock.h"
#include "codec.h"
#include "guestcfg.h"
#include "jobrun.h"
#include "log.h"
#include "metrics.h"
#include "output.h"
#include "plan.h"

#define MAX_STAGES 4

/* What each stage makes, as later stages and the envelope's data name it. */
static const struct {
    const char *stage;
    const char *keys[4]; /* NULL-terminated */
} STAGE_OUTPUTS[] = {
    {HVD_STAGE_VM_CREATE, {"vm_id", NULL}},
    {HVD_STAGE_DISK_CREATE, {"disk_id", "disk_path", NULL}},
    {HVD_STAGE_NIC_CREATE, {"nic_id", "adapter_name", "mac_address", NULL}},
};
#define N_STAGE_OUTPUTS (sizeof STAGE_OUTPUTS / sizeof STAGE_OUTPUTS[0])

/* Copies the string values of keys (NULL-terminated) from one map to another. */
static void copy_keys(HvdNode *to, const HvdNode *from, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        const char *v = hvd_node_get_str(from, keys[i]);
        if (v) hvd_node_map_set_str(to, keys[i], v);
    }
}

typedef struct {
    char status[16]; /* succeeded, failed, not_started, rolled_back, pending, running */
    int attempts;
    char started_at[HVD_RFC3339_LEN], finished_at[HVD_RFC3339_LEN];
    char *message, *code, *agent_code;
} StageView;

typedef struct {
    Worker *w;
    HvdJobRecord *rec;
    HvdJob job;
    bool job_valid;
    HvdNode *body;    /* rebuilt request body, secrets restored: never log */
    HvdNode *outputs; /* vm_id, disk_id, ... of finished stages */
    HvdContentType ct;
    HvdLogCtx log;
    const char *stages[MAX_STAGES];
    size_t n;
    StageView st[MAX_STAGES];
    int64_t epoch;
    int final_stage; /* the last stage, when it succeeded in this run and is not yet recorded */
    char *final_output_json;
    char *secrets[8]; /* values registered with the log guard */
    size_t n_secrets;
} JobRun;

/* ---- small helpers ---- */

static void now_text(char out[HVD_RFC3339_LEN])
{
    hvd_time_rfc3339(hvd_now_ms(), out);
}

static void stage_set_error(StageView *sv, const char *message, const char *code, const char *agent_code)
{
    free(sv->message);
    free(sv->code);
    free(sv->agent_code);
    sv->message = hvd_xstrdup(message);
    sv->code = hvd_xstrdup(code);
    sv->agent_code = hvd_xstrdup(agent_code);
}

static void event(JobRun *r, const char *stage, const char *status, int64_t attempt, const char *message)
{
    pub_event(r->w, r->rec->job_id, r->rec->correlation_id, r->rec->content_type, stage, status, attempt, message);
}

static void register_secrets(JobRun *r, const HvdNode *secrets)
{
    if (!secrets || secrets->type != HVD_MAP) return;
    for (size_t i = 0; i < secrets->u.map.n && r->n_secrets < 8; i++) {
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
    for (size_t i = 0; i < MAX_STAGES; i++) {
        free(r->st[i].message);
        free(r->st[i].code);
        free(r->st[i].agent_code);
    }
    hvd_job_free(&r->job);
    hvd_node_free(r->body);
    hvd_node_free(r->outputs);
    free(r->final_output_json);
}

/* Rebuilds the validated job from the stored redacted request and the
 * decrypted secrets. False (with why) when that cannot be done. */
static bool rebuild(JobRun *r, char *why, size_t whylen)
{
    HvdJobRecord *rec = r->rec;
    char err[256];
    HvdNode *request = NULL, *options = NULL, *outputs = NULL;
    if (hvd_json_to_node(rec->request_json, strlen(rec->request_json), 4 * HVD_MAX_BODY, &request, err, sizeof err) !=
        HVD_DECODE_OK) {
        snprintf(why, whylen, "stored request is unreadable: %s", err);
        return false;
    }
    if (rec->options_json && *rec->options_json)
        (void)hvd_json_to_node(rec->options_json, strlen(rec->options_json), 0, &options, err, sizeof err);
    if (rec->outputs_json && *rec->outputs_json)
        (void)hvd_json_to_node(rec->outputs_json, strlen(rec->outputs_json), 0, &outputs, err, sizeof err);
    r->outputs = outputs && outputs->type == HVD_MAP ? outputs : (hvd_node_free(outputs), hvd_node_map());

    HvdNode *body = hvd_node_map();
    hvd_node_map_set_str(body, "job_id", rec->job_id);
    hvd_node_map_set_str(body, "job_type", rec->job_type);
    hvd_node_map_set(body, "request", request);
    if (options && options->type == HVD_MAP)
        hvd_node_map_set(body, "options", options);
    else
        hvd_node_free(options);
    r->body = body;

    if (rec->secret_blob.len > 0) {
        HvdBuf plain = {0};
        if (hvd_secret_open(&r->w->keys, rec->secret_blob.data, rec->secret_blob.len, rec->job_id, &plain, err,
                            sizeof err) != 0) {
            snprintf(why, whylen, "the job's secrets cannot be decrypted: %s", err);
            return false;
        }
        HvdNode *secrets = NULL;
        HvdDecodeStatus ds = hvd_json_to_node(plain.data, plain.len, 0, &secrets, err, sizeof err);
        hvd_secret_buf_free(&plain);
        if (ds != HVD_DECODE_OK) {
            snprintf(why, whylen, "the job's decrypted secrets are unreadable");
            return false;
        }
        register_secrets(r, secrets);
        hvd_restore_secrets(r->body, secrets);
        hvd_node_free(secrets);
    }

    HvdErrors errs = {0};
    HvdValidateOpts vo = {0};
    r->job_valid = hvd_job_validate(r->body, &vo, &r->job, &errs);
    if (!r->job_valid) {
        snprintf(why, whylen, "stored request no longer validates: %s: %s", errs.n ? errs.items[0].loc : "?",
                 errs.n ? errs.items[0].msg : "?");
        hvd_errors_free(&errs);
        return false;
    }
    hvd_errors_free(&errs);
    return true;
}

/* ---- the envelope ---- */

static HvdNode *envelope_data(JobRun *r)
{
    HvdNode *d = hvd_node_map();
    copy_keys(d, r->outputs, STAGE_OUTPUTS[0].keys); /* vm_id first */
    if (r->job_valid) {
        hvd_node_map_set_str(d, "vm_name", r->job.vm.vm_name);
        hvd_node_map_set_str(d, "target_host", r->job.target_host);
        hvd_node_map_set_str(d, "os_family", r->job.os_family);
    } else {
        hvd_node_map_set_str(d, "vm_name", r->rec->vm_name);
        hvd_node_map_set_str(d, "target_host", r->rec->target_host);
    }
    for (size_t k = 1; k < N_STAGE_OUTPUTS; k++) copy_keys(d, r->outputs, STAGE_OUTPUTS[k].keys);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->stages[i], HVD_STAGE_VM_INITIALIZE) == 0 && strcmp(r->st[i].status, "succeeded") == 0 &&
            r->job_valid)
            hvd_node_map_set(d, "guest_config_keys", hvd_guest_config_key_names(&r->job));
    return d;
}

static const char *envelope_stage_status(const char *s)
{
    if (strcmp(s, "pending") == 0 || strcmp(s, "running") == 0) return "not_started";
    return s;
}

static void build_envelope(JobRun *r, const char *status, const char *code, const char *message, HvdBuf *out)
{
    HvdStageResult sr[MAX_STAGES];
    for (size_t i = 0; i < r->n; i++) {
        StageView *sv = &r->st[i];
        sr[i] = (HvdStageResult){
            .name = r->stages[i],
            .status = envelope_stage_status(sv->status),
            .attempts = sv->attempts,
            .started_at = sv->started_at[0] ? sv->started_at : NULL,
            .finished_at = sv->finished_at[0] ? sv->finished_at : NULL,
            .message = sv->message,
            .code = sv->code,
            .agent_code = sv->agent_code,
        };
    }
    HvdNode *data = envelope_data(r);
    char finished[HVD_RFC3339_LEN];
    now_text(finished);
    HvdEnvelope env = {
        .job_id = r->rec->job_id,
        .correlation_id = r->rec->correlation_id,
        .job_type = r->rec->job_type,
        .status = status,
        .code = code,
        .message = message,
        .data = data,
        .stages = sr,
        .n_stages = r->n,
        .errors = NULL,
        .attempts = r->rec->attempts,
        .created_at = r->rec->created_at,
        .finished_at = finished,
    };
    answer_encode(&env, r->ct, out);
    hvd_node_free(data);
}

/* ---- terminal states ---- */

/* Appends a sentence to msg, ending the one before it with a full stop. */
static void append_sentence(char *msg, size_t size, const char *sentence)
{
    size_t l = strlen(msg);
    const char *sep = l && msg[l - 1] != '.' ? ". " : " ";
    snprintf(msg + l, size - l, "%s%s", sep, sentence);
}

static bool any_stage(JobRun *r, const char *status)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->st[i].status, status) == 0) return true;
    return false;
}

/* Runs vm.delete for what the job made. True when nothing is left behind. */
static bool rollback(JobRun *r, char *why, size_t whylen);

/* Ends the job: stores the terminal state and envelope in one transaction,
 * then publishes the envelope (the outbox resends it if we die first).
 * failed_stage (or -1) gets status failed. */
static void finish(JobRun *r, const char *job_status, const char *code, const char *message, int failed_stage,
                   const char *agent_log)
{
    Worker *w = r->w;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", message);
    /* Stages that never ran in this job's life are not_started. */
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->st[i].status, "running") == 0) snprintf(r->st[i].status, sizeof r->st[i].status, "pending");
    if (failed_stage >= 0) {
        snprintf(r->st[failed_stage].status, sizeof r->st[failed_stage].status, "failed");
        if (!r->st[failed_stage].finished_at[0]) now_text(r->st[failed_stage].finished_at);
    }

    bool made_something = any_stage(r, "succeeded");
    bool rolled_back = false;
    if (strcmp(job_status, "succeeded") != 0 && made_something && r->job_valid && r->job.rollback) {
        char why[256] = "";
        rolled_back = rollback(r, why, sizeof why);
        if (rolled_back) {
            /* The envelope's data lists what exists: nothing made is left. */
            for (size_t k = 0; k < N_STAGE_OUTPUTS; k++)
                for (size_t j = 0; STAGE_OUTPUTS[k].keys[j]; j++)
                    hvd_node_map_remove(r->outputs, STAGE_OUTPUTS[k].keys[j]);
            for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->st[i].status, "succeeded") == 0)
                    snprintf(r->st[i].status, sizeof r->st[i].status, "rolled_back");
            append_sentence(msg, sizeof msg, "Everything it made was rolled back.");
        } else {
            char more[400];
            snprintf(more, sizeof more, "Rollback failed (%s); what it made is left in place.", why);
            append_sentence(msg, sizeof msg, more);
        }
    }
    const char *env_status =
        strcmp(job_status, "succeeded") == 0 ? "success" : hvd_plan_failed_status(any_stage(r, "succeeded"));

    HvdBuf env = {0};
    build_envelope(r, env_status, code, msg, &env);

    HvdStageFinal fin[MAX_STAGES];
    for (size_t i = 0; i < r->n; i++) {
        fin[i] = (HvdStageFinal){
            .name = r->stages[i],
            .status = r->st[i].status,
            .error = r->st[i].message,
            .code = r->st[i].code,
            .agent_code = r->st[i].agent_code,
            .agent_log = (int)i == failed_stage ? agent_log : NULL,
            .output_json = (int)i == r->final_stage ? r->final_output_json : NULL,
        };
    }
    char next_job[37] = "";
    char err[256];
    HvdStoreStatus st;
    for (int attempt = 0;; attempt++) {
        st = hvd_store_finish(w->store, r->rec->job_id, r->epoch, job_status, code, fin, r->n, env.data, env.len,
                              next_job, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&w->stopping)) break;
        worker_backoff_sleep(w, attempt);
    }
    if (st == HVD_STORE_OK) {
        hvd_log_kv(strcmp(job_status, "succeeded") == 0 ? HVD_LOG_INFO : HVD_LOG_WARN, &r->log, "job finished",
                   "status", env_status, "code", code, "message", msg, NULL);
        if (r->final_stage >= 0)
            event(r, r->stages[r->final_stage], "succeeded", r->st[r->final_stage].attempts,
                  r->st[r->final_stage].message);
        event(r, NULL, job_status, r->rec->attempts, msg);
        hvd_metric_inc(HVD_M_JOBS_TOTAL, r->rec->job_type, env_status);
        answer_publish(w, r->rec->job_id, r->rec->reply_to, r->rec->correlation_id, r->rec->content_type, &env);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
    } else if (st == HVD_STORE_FENCED) {
        hvd_log_warn(&r->log, "lease lost before the job could be finished: another worker owns it now");
    } else {
        hvd_log_error(&r->log, "cannot record the end of the job: %s", err);
    }
    hvd_buf_free(&env);
}

/* ---- the agent ---- */

typedef struct {
    HvdOutcome outcome;
    char message[512];
    char *agent_code;
    HvdNode *data;  /* envelope data (owned) */
    char *log_tail; /* last agent log lines, redacted by the log guard's rules */
    int64_t elapsed_ms;
    bool cancelled; /* stopped by the end of the shutdown grace */
} CallResult;

static void call_result_free(CallResult *c)
{
    free(c->agent_code);
    hvd_node_free(c->data);
    free(c->log_tail);
}

static HvdOutcome map_outcome(HvdAgentOutcome o)
{
    switch (o) {
    case HVD_AGENT_SUCCESS: return HVD_OUT_SUCCESS;
    case HVD_AGENT_AGENT_ERROR: return HVD_OUT_AGENT_ERROR;
    case HVD_AGENT_RETRYABLE: return HVD_OUT_RETRYABLE;
    case HVD_AGENT_PROTOCOL_ERROR: return HVD_OUT_PROTOCOL_ERROR;
    case HVD_AGENT_TIMEOUT: return HVD_OUT_TIMEOUT;
    case HVD_AGENT_UNREACHABLE: return HVD_OUT_UNREACHABLE;
    case HVD_AGENT_TRANSPORT:
    case HVD_AGENT_CANCELLED: return HVD_OUT_TRANSPORT;
    case HVD_AGENT_BAD_CALL: return HVD_OUT_AGENT_ERROR;
    }
    return HVD_OUT_TRANSPORT;
}

/* The agent's logs (a list of lines or a string) and the stderr tail, as a
 * few lines of text for the stage's error record. */
static char *log_tail(const HvdAgentResult *res)
{
    HvdBuf b = {0};
    if (res->logs && res->logs->type == HVD_ARRAY) {
        size_t n = res->logs->u.arr.n, from = n > 10 ? n - 10 : 0;
        for (size_t i = from; i < n; i++) {
            const HvdNode *l = res->logs->u.arr.items[i];
            if (l->type == HVD_STR) hvd_buf_printf(&b, "%s\n", l->u.s.ptr);
        }
    } else if (res->logs && res->logs->type == HVD_STR) {
        hvd_buf_printf(&b, "%s\n", res->logs->u.s.ptr);
    }
    if (res->stderr_tail && *res->stderr_tail) {
        const char *t = res->stderr_tail;
        size_t len = strlen(t);
        if (len > 1024) t += len - 1024;
        hvd_buf_printf(&b, "stderr: %s", t);
    }
    return b.len ? hvd_buf_steal(&b) : (hvd_buf_free(&b), NULL);
}

static void call_agent(JobRun *r, const char *operation, const char *stage, int attempt, CallResult *out)
{
    Worker *w = r->w;
    memset(out, 0, sizeof *out);
    HvdNode *spec = hvd_agent_resource_spec(&r->job, operation, r->outputs);
    char ts[HVD_RFC3339_LEN];
    now_text(ts);
    char key[80];
    snprintf(key, sizeof key, "%s:%s", r->rec->job_id, operation);
    HvdAgentRequest req = {
        .operation = operation,
        .resource_spec = spec,
        .correlation_id = r->rec->correlation_id,
        .timestamp = ts,
        .host = r->job.target_host,
        .job_id = r->rec->job_id,
        .stage = stage,
        .attempt = attempt,
        .idempotency_key = key,
    };
    HvdBuf line = {0};
    hvd_agent_request_encode(&req, &line);
    hvd_node_free(spec);

    HvdAgentResult res;
    HvdAgentCallOpts opts = {.cancel = &w->agent_cancel, .on_line = output_line};
    opts.line_arg = output_begin(w, r->rec->job_id, r->rec->correlation_id, r->rec->content_type, stage, attempt,
                                 r->secrets, r->n_secrets);
    hvd_agent_call_opts(&w->agent, &opts, r->job.target_host, operation, line.data, line.len, &res);
    output_flush(opts.line_arg);
    out->cancelled = res.outcome == HVD_AGENT_CANCELLED;
    hvd_secret_buf_free(&line);

    out->outcome = map_outcome(res.outcome);
    out->elapsed_ms = res.elapsed_ms;
    out->log_tail = log_tail(&res);
    if (res.outcome == HVD_AGENT_SUCCESS) {
        out->data = res.data ? hvd_node_clone(res.data) : hvd_node_map();
        snprintf(out->message, sizeof out->message, "%s", res.message ? res.message : "ok");
    } else if (res.envelope) {
        out->agent_code = hvd_xstrdup(res.code);
        snprintf(out->message, sizeof out->message, "%s", res.message ? res.message : res.detail);
    } else {
        snprintf(out->message, sizeof out->message, "%s", res.detail);
    }
    hvd_metric_observe(HVD_M_AGENT_CALL_DURATION, stage, NULL, (double)res.elapsed_ms / 1000.0);
    hvd_agent_result_free(&res);
}

static bool rollback(JobRun *r, char *why, size_t whylen)
{
    if (!hvd_node_get_str(r->outputs, "vm_id")) {
        snprintf(why, whylen, "no VM was made");
        return true;
    }
    int max = (int)r->w->cfg.max_attempts;
    for (int attempt = 1; attempt <= max; attempt++) {
        CallResult c;
        call_agent(r, HVD_OP_VM_DELETE, HVD_OP_VM_DELETE, attempt, &c);
        HvdOutcome o = c.outcome;
        snprintf(why, whylen, "%.200s", c.message);
        call_result_free(&c);
        if (o == HVD_OUT_SUCCESS) {
            hvd_log_info(&r->log, "rolled back: VM deleted with its disks");
            return true;
        }
        if (!hvd_outcome_transient(o)) break;
        sleep((unsigned)(attempt < 5 ? attempt : 5));
    }
    return false;
}

/* Keeps the outputs of a stage that later stages and the envelope need. */
static HvdNode *stage_outputs(const char *stage, const HvdNode *data)
{
    HvdNode *out = hvd_node_map();
    for (size_t k = 0; k < N_STAGE_OUTPUTS; k++)
        if (strcmp(stage, STAGE_OUTPUTS[k].stage) == 0) copy_keys(out, data, STAGE_OUTPUTS[k].keys);
    return out;
}

/* ---- the stage loop ---- */

static void release(JobRun *r)
{
    char next_job[37] = "", err[256];
    HvdStoreStatus st = hvd_store_release(r->w->store, r->rec->job_id, r->epoch, next_job, err, sizeof err);
    if (st == HVD_STORE_OK) {
        hvd_log_info(&r->log, "job released for another worker (shutting down)");
        event(r, NULL, "queued", r->rec->attempts, "released by a stopping worker");
        pub_doorbell(r->w, r->rec->job_id, 0);
        if (next_job[0]) pub_doorbell(r->w, next_job, 0);
    } else if (st != HVD_STORE_FENCED) {
        hvd_log_warn(&r->log, "cannot release the job (its lease will expire instead): %s", err);
    }
}

/* The host's circuit is open: the job waits (stage i pending, its attempts
 * untouched) and its doorbell rings after the cooldown plus a spread. */
static void wait_for_host(JobRun *r, int i, int64_t wait_ms)
{
    Worker *w = r->w;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (uint32_t)hvd_mono_ms();
    int64_t spread = w->cfg.breaker_cooldown * 1000;
    int64_t delay = wait_ms + (spread > 0 ? (int64_t)(rnd % (uint32_t)spread) : 0);
    char msg[300], next_job[37] = "", err[256];
    snprintf(msg, sizeof msg, "Host %s keeps failing: its circuit is open, the job waits without spending an attempt.",
             r->job.target_host);
    HvdStoreStatus st = hvd_store_wait_retry(w->store, r->rec->job_id, r->epoch, r->stages[i], msg, NULL, NULL, NULL,
                                             delay, "circuit_open", next_job, err, sizeof err);
    if (st == HVD_STORE_OK) {
        hvd_log_kv(HVD_LOG_WARN, &r->log, "waiting for the host's circuit to close", "stage", r->stages[i], NULL);
        event(r, NULL, "retrying", r->rec->attempts, msg);
        pub_doorbell(w, r->rec->job_id, delay);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
    } else if (st != HVD_STORE_FENCED) {
        hvd_log_error(&r->log, "cannot record the wait for the host (the lease will expire instead): %s", err);
    }
}

/* One store step with retries on transient database errors. */
static HvdStoreStatus step(JobRun *r, const HvdStageStep *s, bool *cancel, int *attempt)
{
    char err[256];
    HvdStoreStatus st;
    for (int i = 0;; i++) {
        st = hvd_store_step(r->w->store, s, cancel, attempt, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&r->w->stopping)) break;
        worker_backoff_sleep(r->w, i);
    }
    if (st == HVD_STORE_FENCED)
        hvd_log_warn(&r->log, "lease lost: another worker owns the job now; stopping");
    else if (st != HVD_STORE_OK)
        hvd_log_error(&r->log, "cannot record stage progress: %s", err);
    return st;
}

static void run_stages(JobRun *r)
{
    Worker *w = r->w;
    size_t i = 0;
    while (i < r->n && strcmp(r->st[i].status, "succeeded") == 0) i++;
    int done_stage = -1; /* a stage that succeeded and is not yet recorded */
    HvdNode *done_output = NULL;
    bool cancel = r->rec->cancel_requested;

    for (;;) {
        if (i == r->n) { /* every stage done: the last one's end is recorded with the job's end */
            r->final_stage = done_stage;
            r->final_output_json = done_output ? hvd_node_to_json(done_output) : NULL;
            hvd_node_free(done_output);
            char msg[256];
            snprintf(msg, sizeof msg, "Deployed VM '%s' on %s (%zu stage%s).", r->job.vm.vm_name, r->job.target_host,
                     r->n, r->n == 1 ? "" : "s");
            finish(r, "succeeded", NULL, msg, -1, NULL);
            return;
        }
        const char *stage = r->stages[i];
        StageView *sv = &r->st[i];

        bool stop = atomic_load(&w->stopping);
        bool late = r->job_valid && hvd_plan_deadline_passed(r->job.has_deadline, r->job.deadline_ms, hvd_now_ms());
        /* A host whose circuit is open is not called: the job waits without
         * spending an attempt, spread over a cooldown so the backlog returns
         * gradually. */
        HvdHostGate gate = HVD_HOST_CLOSED;
        int64_t gate_wait = 0;
        if (!stop && !late && !cancel) gate = breaker_gate(w, r->job.target_host, r->rec->job_id, &gate_wait);
        bool hold = gate == HVD_HOST_OPEN;
        /* Record the stage that just ended; start the next one unless we stop here. */
        char *out_json = done_output ? hvd_node_to_json(done_output) : NULL;
        HvdStageStep s = {
            .job_id = r->rec->job_id,
            .epoch = r->epoch,
            .stage = done_stage >= 0 ? r->stages[done_stage] : NULL,
            .stage_status = "succeeded",
            .output_json = out_json,
            .error = done_stage >= 0 ? r->st[done_stage].message : NULL, /* the agent's success message */
            .next_stage = (stop || late || cancel || hold) ? NULL : stage,
        };
        int attempt = sv->attempts + 1;
        HvdStoreStatus st = HVD_STORE_OK;
        if (s.stage || s.next_stage) st = step(r, &s, &cancel, &attempt);
        free(out_json);
        hvd_node_free(done_output);
        done_output = NULL;
        if (st != HVD_STORE_OK) return;
        if (done_stage >= 0) {
            event(r, r->stages[done_stage], "succeeded", r->st[done_stage].attempts, r->st[done_stage].message);
            done_stage = -1;
        }
        if (stop) {
            release(r);
            return;
        }
        if (late) {
            finish(r, "failed", "deadline_exceeded", "The job's deadline passed before its next stage could start.", -1,
                   NULL);
            return;
        }
        if (hold && !cancel) {
            wait_for_host(r, (int)i, gate_wait);
            return;
        }
        if (cancel && !s.next_stage) {
            finish(r, "cancelled", "cancelled", "The job was cancelled before its next stage.", -1, NULL);
            return;
        }
        if (cancel) { /* the cancel arrived with this very step: the stage was marked running, not run */
            snprintf(sv->status, sizeof sv->status, "pending");
            finish(r, "cancelled", "cancelled", "The job was cancelled before its next stage.", -1, NULL);
            return;
        }

        /* Run the stage. */
        sv->attempts = attempt;
        snprintf(sv->status, sizeof sv->status, "running");
        now_text(sv->started_at);
        sv->finished_at[0] = '\0';
        HvdLogCtx lc = r->log;
        lc.stage = stage;
        lc.attempt = attempt;
        event(r, stage, "running", attempt, NULL);
        hvd_log_info(&lc, "stage started");

        if (strcmp(stage, HVD_STAGE_VM_INITIALIZE) == 0 && r->rec->secret_blob.len == 0 && r->job.guest.present &&
            r->job.guest.guest_la_pw && strcmp(r->job.guest.guest_la_pw, HVD_REDACTED) == 0) {
            stage_set_error(sv, "The guest's secrets are no longer stored (retention passed).", "internal_error", NULL);
            finish(r, "failed", "internal_error",
                   "The guest's secrets are no longer stored, so vm.initialize cannot run.", (int)i, NULL);
            return;
        }

        int64_t t0 = hvd_mono_ms();
        CallResult c;
        call_agent(r, stage, stage, attempt, &c);
        now_text(sv->finished_at);
        hvd_metric_observe(HVD_M_STAGE_DURATION, stage, NULL, (double)(hvd_mono_ms() - t0) / 1000.0);

        if (c.cancelled) {
            /* Shutdown grace over: the stage runs again elsewhere, same idempotency key. */
            hvd_log_warn(&lc, "stage interrupted by shutdown; releasing the job");
            call_result_free(&c);
            release(r);
            return;
        }
        breaker_report(w, r->job.target_host, c.outcome, c.agent_code, gate == HVD_HOST_TRIAL);
        if (leases_lost(w->leases, r->rec->job_id)) {
            hvd_log_warn(&lc, "lease lost while the agent ran: leaving the job to its new owner");
            call_result_free(&c);
            return;
        }

        if (c.outcome == HVD_OUT_SUCCESS && strcmp(stage, HVD_STAGE_VM_CREATE) == 0 &&
            !hvd_node_get_str(c.data, "vm_id")) {
            c.outcome = HVD_OUT_PROTOCOL_ERROR;
            snprintf(c.message, sizeof c.message, "vm.create answered success without data.vm_id");
        }

        const char *code = NULL;
        HvdNextStep next = hvd_plan_after(c.outcome, attempt, (int)w->cfg.max_attempts, &code);
        if (next == HVD_NEXT_CONTINUE) {
            snprintf(sv->status, sizeof sv->status, "succeeded");
            stage_set_error(sv, c.message, NULL, NULL); /* earlier attempts' errors are history */
            done_output = stage_outputs(stage, c.data);
            for (size_t k = 0; k < done_output->u.map.n; k++)
                hvd_node_map_set(r->outputs, done_output->u.map.keys[k], hvd_node_clone(done_output->u.map.vals[k]));
            hvd_log_kv(HVD_LOG_INFO, &lc, "stage succeeded", "vm_id", hvd_node_get_str(r->outputs, "vm_id"), NULL);
            done_stage = (int)i;
            call_result_free(&c);
            i++;
            continue;
        }

        stage_set_error(sv, c.message, next == HVD_NEXT_FAIL ? code : hvd_outcome_code(c.outcome), c.agent_code);
        if (next == HVD_NEXT_RETRY) {
            uint32_t rnd = 0;
            if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (uint32_t)hvd_mono_ms();
            size_t bucket = 0;
            int64_t delay = hvd_plan_retry_delay_ms(w->retry_delays, w->cfg.retry_delays.n, attempt, rnd, &bucket);
            char next_job[37] = "", err[256];
            HvdStoreStatus ws =
                hvd_store_wait_retry(w->store, r->rec->job_id, r->epoch, stage, c.message, hvd_outcome_code(c.outcome),
                                     c.agent_code, c.log_tail, delay, "retry", next_job, err, sizeof err);
            if (ws == HVD_STORE_OK) {
                hvd_log_kv(HVD_LOG_WARN, &lc, "stage failed, will retry", "outcome", hvd_outcome_name(c.outcome),
                           "reason", c.message, "agent_code", c.agent_code, NULL);
                hvd_metric_inc(HVD_M_RETRIES_TOTAL, stage, NULL);
                event(r, stage, "pending", attempt, c.message);
                event(r, NULL, "retrying", r->rec->attempts, c.message);
                pub_doorbell(w, r->rec->job_id, delay);
                if (next_job[0]) pub_doorbell(w, next_job, 0);
            } else if (ws != HVD_STORE_FENCED) {
                hvd_log_error(&lc, "cannot record the retry wait (the lease will expire and the job resume): %s", err);
            }
            call_result_free(&c);
            return;
        }
        /* The job fails. */
        hvd_log_kv(HVD_LOG_WARN, &lc, "stage failed", "outcome", hvd_outcome_name(c.outcome), "code", code, "reason",
                   c.message, "agent_code", c.agent_code, NULL);
        event(r, stage, "failed", attempt, c.message);
        char msg[700];
        if (strcmp(code, "retries_exhausted") == 0)
            snprintf(msg, sizeof msg, "Stage %s failed after %d attempts: %s", stage, attempt, c.message);
        else
            snprintf(msg, sizeof msg, "Stage %s failed: %s", stage, c.message);
        finish(r, "failed", code, msg, (int)i, c.log_tail);
        if (strcmp(code, "retries_exhausted") == 0)
            answer_dead_letter(w, r->rec, stage, code, msg, c.agent_code, c.log_tail);
        call_result_free(&c);
        return;
    }
}

void jobrun_execute(Worker *w, HvdJobRecord *rec, bool takeover)
{
    JobRun r = {.w = w, .rec = rec, .epoch = rec->epoch, .final_stage = -1};
    r.ct = hvd_content_type_parse(rec->content_type);
    if (r.ct == HVD_CT_UNKNOWN) r.ct = HVD_CT_MSGPACK;
    r.log = (HvdLogCtx){.job_id = rec->job_id,
                        .correlation_id = rec->correlation_id,
                        .host = rec->target_host,
                        .attempt = rec->attempts};
    r.n = rec->n_stages > MAX_STAGES ? MAX_STAGES : rec->n_stages;
    for (size_t i = 0; i < r.n; i++) {
        HvdStageRecord *sr = &rec->stages[i];
        r.stages[i] = sr->name;
        snprintf(r.st[i].status, sizeof r.st[i].status, "%s", sr->status);
        r.st[i].attempts = sr->attempts;
        snprintf(r.st[i].started_at, sizeof r.st[i].started_at, "%s", sr->started_at ? sr->started_at : "");
        snprintf(r.st[i].finished_at, sizeof r.st[i].finished_at, "%s", sr->finished_at ? sr->finished_at : "");
        r.st[i].message = hvd_xstrdup(sr->error);
        r.st[i].code = hvd_xstrdup(sr->code);
        r.st[i].agent_code = hvd_xstrdup(sr->agent_code);
    }
    leases_add(w->leases, rec->job_id, rec->epoch);
    if (takeover) {
        hvd_metric_inc(HVD_M_LEASE_TAKEOVERS_TOTAL, NULL, NULL);
        hvd_log_warn(&r.log, "took over a job whose worker's lease expired");
    }
    hvd_log_info(&r.log, "job running");
    event(&r, NULL, "running", rec->attempts, takeover ? "taken over" : NULL);

    char why[512];
    if (!rebuild(&r, why, sizeof why)) {
        hvd_log_error(&r.log, "%s", why);
        if (!r.outputs) r.outputs = hvd_node_map();
        finish(&r, "failed", "internal_error", why, -1, NULL);
    } else {
        r.log.host = r.job.target_host;
        run_stages(&r);
    }
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
