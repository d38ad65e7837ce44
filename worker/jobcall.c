/* The agent calls of a running job: the JobRequest of an operation, the
 * call through the transport, its answer boiled down for the plan; and the
 * vm.find probe that settles a stage whose outcome is unknown (§6a). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"
#include "utf8.h"
#include "agentproto.h"
#include "profiles.h"
#include "session.h"
#include "clock.h"
#include "guestcfg.h"
#include "jobrun_priv.h"
#include "metrics.h"
#include "output.h"
#include "secret.h"

void call_result_free(CallResult *c)
{
    free(c->agent_code);
    hvd_node_free(c->data);
    free(c->log_tail);
    memset(c, 0, sizeof *c);
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
        t += hvd_utf8_tail_start(t, len, 1024); /* never from the middle of a character */
        hvd_buf_printf(&b, "stderr: %s", t);
    }
    return b.len ? hvd_buf_steal(&b) : (hvd_buf_free(&b), NULL);
}

/* Runs one operation with the given resource_spec (consumed). */
static void call_spec(JobRun *r, const char *operation, HvdNode *spec, const char *stage, int attempt, CallResult *out)
{
    Worker *w = r->w;
    memset(out, 0, sizeof *out);
    char ts[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), ts);
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
        .output = r->caps.session && r->caps.output && w->sessions,
    };
    HvdBuf line = {0};
    hvd_agent_request_encode(&req, &line);
    hvd_node_free(spec);

    HvdAgentResult res;
    const char *secrets[HVD_JOB_MAX_SECRETS];
    HvdAgentCallOpts opts = {.cancel = &w->agent_cancel,
                             .secrets = secrets,
                             .n_secrets = r->job_valid ? hvd_job_secret_values(&r->job, secrets) : 0,
                             .correlation_id = r->rec->correlation_id,
                             /* live output of the stage's own call, not of probes or rollbacks */
                             .on_line = strcmp(operation, stage) == 0 ? output_line : NULL};
    opts.line_arg = !opts.on_line ? NULL
                                  : output_begin(w, r->rec->job_id, r->rec->correlation_id, r->rec->content_type, stage,
                                                 attempt, r->secrets, r->n_secrets);
    bool sent = false;
    if (r->caps.session && w->sessions) {
        hvd_session_call(w->sessions, &opts, r->job.target_host, operation, line.data, line.len, &res);
        sent = res.outcome != HVD_OUT_NOT_SENT;
        if (!sent) {
            /* no session could be had (no hello): nothing was sent, so per call it goes, now and for this host */
            hvd_log_kv(HVD_LOG_WARN, &r->log, "agent session unusable: calling per process", "reason", res.detail,
                       NULL);
            hvd_agent_result_free(&res);
            profile_no_session(r->job.target_host);
            r->caps.session = r->caps.output = false;
        }
    }
    if (!sent) hvd_agent_call_opts(&w->agent, &opts, r->job.target_host, operation, line.data, line.len, &res);
    if (opts.line_arg) output_flush(opts.line_arg);
    hvd_secret_buf_free(&line); /* vm.initialize's request holds the guest's secrets */

    out->outcome = res.outcome;
    out->elapsed_ms = res.elapsed_ms;
    out->log_tail = log_tail(&res);
    out->data = res.data && res.data->type == HVD_MAP ? hvd_node_clone(res.data) : hvd_node_map();
    if (res.outcome == HVD_OUT_SUCCESS) {
        hvd_text_printf(out->message, sizeof out->message, "%s", res.message ? res.message : "ok");
    } else if (res.envelope) {
        out->agent_code = hvd_xstrdup(res.code);
        hvd_text_printf(out->message, sizeof out->message, "%s", res.message ? res.message : res.detail);
    } else {
        hvd_text_printf(out->message, sizeof out->message, "%s", res.detail);
    }
    hvd_metric_observe(HVD_M_AGENT_CALL_DURATION, stage, NULL, (double)res.elapsed_ms / 1000.0);
    hvd_agent_result_free(&res);
}

void call_agent(JobRun *r, const char *operation, const char *stage, int attempt, CallResult *out)
{
    HvdNode *spec = hvd_agent_resource_spec(&r->job, operation, r->outputs);
    call_spec(r, operation, spec, stage, attempt, out);
}

HvdOutcome call_probe(JobRun *r, int i, HvdFound *found, HvdNode **adopted, char *message, size_t len)
{
    const HvdStage *sg = &r->rec->stages[i];
    HvdNode *spec = hvd_node_map();
    hvd_node_map_set_str(spec, "vm_name", r->job.vm.vm_name);
    hvd_node_map_set_str(spec, "job_id", r->rec->job_id);
    CallResult c;
    call_spec(r, HVD_OP_VM_FIND, spec, sg->name, sg->attempts, &c);
    *found = HVD_FOUND_NOTHING;
    *adopted = NULL;
    HvdOutcome o = c.outcome;
    if (o == HVD_OUT_SUCCESS) {
        *found = hvd_plan_probe_found(sg->name, c.data, r->rec->job_id, hvd_node_get_str(r->outputs, "vm_id"),
                                      r->job.nic.adapter_name, adopted, message, len);
        HvdLogCtx lc = r->log;
        lc.stage = sg->name;
        hvd_log_kv(*found == HVD_FOUND_IT ? HVD_LOG_INFO : HVD_LOG_WARN, &lc, "vm.find answered", "found",
                   *found == HVD_FOUND_IT        ? "it"
                   : *found == HVD_FOUND_NOTHING ? "nothing"
                                                 : "ambiguous",
                   "detail", message, NULL);
    } else {
        hvd_text_printf(message, len, "vm.find failed: %s", c.message);
    }
    call_result_free(&c);
    return o;
}

HvdOutcome call_preflight(JobRun *r, bool *ok, HvdErrors *errors)
{
    CallResult c;
    call_spec(r, HVD_OP_HOST_RESOURCES, hvd_node_map(), HVD_STAGE_VM_CREATE, 1, &c);
    *ok = true;
    HvdOutcome o = c.outcome;
    if (o == HVD_OUT_SUCCESS) {
        *ok = hvd_plan_preflight(&r->job, c.data, errors);
        if (!*ok)
            hvd_log_kv(HVD_LOG_WARN, &r->log, "preflight: the host lacks what the job names", "loc",
                       errors->n ? errors->items[0].loc : NULL, "reason", errors->n ? errors->items[0].msg : NULL,
                       NULL);
    } else {
        hvd_log_kv(HVD_LOG_WARN, &r->log, "preflight not answered; the agent checks the job itself", "reason",
                   c.message, NULL);
    }
    call_result_free(&c);
    return o;
}
