/* hvdeployctl agent-check, the §6a part: what the agent says of itself
 * (agent.hello, hence the profile the worker would use), whether it keeps
 * those promises (vm.find, host.resources, session mode, idempotency), and
 * in plain words the guarantees that do not hold without them. A missing
 * capability is a warning (Main-NewProtocol.ps1 has none); a capability
 * claimed but not honoured breaks the protocol and fails the check. */
#include <stdio.h>
#include <string.h>
#include "agent_check.h"
#include "agentproto.h"
#include "argv.h"
#include "clock.h"
#include "ctl.h"
#include "session.h"

static void caps_text(const HvdAgentCaps *c, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s%s", c->idempotency ? "idempotency, " : "", c->probe ? "probe, " : "",
             c->session ? "session, " : "", c->output ? "output, " : "");
    size_t n = strlen(out);
    if (n >= 2)
        out[n - 2] = '\0';
    else
        snprintf(out, len, "none");
}

void ac_check_hello(Ctx *x, Check *c)
{
    char why[400];
    HvdNode *spec = hvd_node_map();
    HvdAgentResult res;
    ac_call_op(x, HVD_OP_AGENT_HELLO, spec, NULL, &res);
    hvd_node_free(spec);
    c->elapsed_ms = res.elapsed_ms;
    AgentHello *h = &x->hello;
    memset(h, 0, sizeof *h);
    h->answered = res.envelope != NULL;
    const HvdNode *list = hvd_node_get(res.data, "capabilities");
    if (res.outcome == HVD_OUT_SUCCESS && (!list || list->type != HVD_ARRAY)) {
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason,
                 "answered success without data.capabilities (a list of names): the worker cannot tell what it "
                 "honours");
    } else if (res.outcome == HVD_OUT_SUCCESS) {
        h->said = true;
        (void)hvd_plan_profile_from_hello(res.outcome, res.data, &h->caps);
        const char *agent = hvd_node_get_str(res.data, "agent");
        snprintf(h->agent, sizeof h->agent, "%s", agent ? agent : "");
        char caps[80];
        caps_text(&h->caps, caps, sizeof caps);
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "agent '%s' says it honours: %s", agent ? agent : "(unnamed)", caps);
    } else if (res.envelope) {
        snprintf(h->code, sizeof h->code, "%s", res.code ? res.code : "");
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "no agent.hello: it answered %s (%.160s), as Main-NewProtocol.ps1 does: the raw profile, no "
                 "capabilities",
                 res.code ? res.code : "an error", res.message ? res.message : "");
    } else {
        ac_describe(&res, why, sizeof why);
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason,
                 "no answer to agent.hello (%s): an agent must answer an operation it does not know with an error "
                 "envelope",
                 why);
    }
    hvd_agent_result_free(&res);
}

/* Whether vms (vm.find's list) has the VM vm_id stamped with job_id; *listed
 * whether it is there at all. */
static bool find_ours(const HvdNode *vms, const char *vm_id, const char *job_id, bool *listed)
{
    *listed = false;
    for (size_t i = 0; vms && i < vms->u.arr.n; i++) {
        const char *id = hvd_node_get_str(vms->u.arr.items[i], "vm_id");
        const char *job = hvd_node_get_str(vms->u.arr.items[i], "job_id");
        if (!id || strcmp(id, vm_id) != 0) continue;
        *listed = true;
        if (job && strcmp(job, job_id) == 0) return true;
    }
    return false;
}

void ac_check_find(Ctx *x, Check *c)
{
    if (!x->hello.caps.probe) {
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "not offered (no probe capability): a vm.create whose answer is lost cannot be looked up, and a "
                 "rollback cannot find a VM whose creation is in doubt");
        return;
    }
    char why[400];
    HvdNode *spec = hvd_node_map();
    hvd_node_map_set_str(spec, "vm_name", x->vm_name);
    hvd_node_map_set_str(spec, "job_id", x->run_id);
    HvdAgentResult res;
    ac_call_op(x, HVD_OP_VM_FIND, spec, NULL, &res);
    hvd_node_free(spec);
    c->elapsed_ms = res.elapsed_ms;
    const HvdNode *vms = hvd_node_get(res.data, "vms");
    bool listed = false;
    c->status = CHECK_FAIL;
    if (res.outcome != HVD_OUT_SUCCESS) {
        ac_describe(&res, why, sizeof why);
        snprintf(c->reason, sizeof c->reason, "the agent says it has probe, but vm.find failed: %s", why);
    } else if (!vms || vms->type != HVD_ARRAY) {
        snprintf(c->reason, sizeof c->reason, "vm.find answered without data.vms (a list)");
    } else if (!x->vm_id[0][0]) {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "answered with %zu VM(s) named '%s'", vms->u.arr.n, x->vm_name);
    } else if (find_ours(vms, x->vm_id[0], x->run_id, &listed)) {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "found the throwaway VM %s stamped with this check's job id",
                 x->vm_id[0]);
    } else if (listed) {
        snprintf(c->reason, sizeof c->reason,
                 "vm.find lists VM %s without this check's job id %s: vm.create does not stamp hvdeploy:<job_id> "
                 "into its Notes, so no VM could be adopted",
                 x->vm_id[0], x->run_id);
    } else {
        snprintf(c->reason, sizeof c->reason, "vm.find does not list the throwaway VM %s that vm.create made",
                 x->vm_id[0]);
    }
    hvd_agent_result_free(&res);
}

static size_t list_len(const HvdNode *doc, const char *key)
{
    const HvdNode *l = hvd_node_get(doc, key);
    return l && l->type == HVD_ARRAY ? l->u.arr.n : 0;
}

void ac_check_resources(Ctx *x, Check *c)
{
    if (!x->hello.caps.probe) {
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "not offered (no probe capability): no preflight, so a job naming a storage class, network or "
                 "image the host lacks fails only when a stage reaches it, after vm.create made the VM");
        return;
    }
    char why[400];
    HvdNode *spec = hvd_node_map();
    HvdAgentResult res;
    ac_call_op(x, HVD_OP_HOST_RESOURCES, spec, NULL, &res);
    hvd_node_free(spec);
    c->elapsed_ms = res.elapsed_ms;
    c->status = CHECK_FAIL;
    if (res.outcome != HVD_OUT_SUCCESS) {
        ac_describe(&res, why, sizeof why);
        snprintf(c->reason, sizeof c->reason, "the agent says it has probe, but host.resources failed: %s", why);
    } else if (!res.data || res.data->type != HVD_MAP ||
               (!hvd_node_get(res.data, "storage_classes") && !hvd_node_get(res.data, "networks"))) {
        snprintf(c->reason, sizeof c->reason,
                 "host.resources answered without storage_classes or networks: nothing to check a job against");
    } else {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "%zu storage class(es), %zu network(s), %zu golden image(s)",
                 list_len(res.data, "storage_classes"), list_len(res.data, "networks"),
                 list_len(res.data, "golden_images"));
    }
    hvd_agent_result_free(&res);
}

/* The session command as the worker builds it: HVD_AGENT_SESSION_CMD, else
 * the per-call command plus --session. */
static char **session_argv(const Ctx *x)
{
    const char *cmd = ctl_env("HVD_AGENT_SESSION_CMD", NULL);
    size_t n = 0;
    char why[160];
    if (cmd && *cmd) return hvd_argv_split(cmd, &n, why, sizeof why);
    char **v = hvd_xcalloc(x->cfg.argc + 2, sizeof *v);
    for (size_t i = 0; i < x->cfg.argc; i++) v[i] = hvd_xstrdup(x->cfg.argv[i]);
    v[x->cfg.argc] = hvd_xstrdup("--session");
    return v;
}

void ac_check_session(Ctx *x, Check *c)
{
    if (!x->hello.caps.session) {
        c->status = CHECK_SKIP;
        snprintf(c->reason, sizeof c->reason,
                 "not offered: every stage starts a new agent process (a pwsh start, and an ssh handshake, each time)");
        return;
    }
    char **argv = session_argv(x);
    HvdSessionCfg sc = {.agent = &x->cfg,
                        .argv = argv,
                        .max_per_host = 1,
                        .depth = 4,
                        .idle_ms = 60000,
                        .hello_ms = x->timeout_ms,
                        .cancel_grace_ms = 2000};
    HvdSessions *s = argv ? hvd_sessions_start(&sc) : NULL;
    char cid[HVD_UUID_LEN + 1], key[96], ts[HVD_RFC3339_LEN], why[400];
    ac_new_uuid(cid);
    snprintf(key, sizeof key, "%s:session.noop-test", x->run_id);
    hvd_time_rfc3339(hvd_now_ms(), ts);
    HvdNode *spec = hvd_node_map();
    HvdAgentRequest req = {.operation = "noop-test",
                           .resource_spec = spec,
                           .correlation_id = cid,
                           .timestamp = ts,
                           .host = x->host,
                           .job_id = x->run_id,
                           .stage = "noop-test",
                           .attempt = 1,
                           .idempotency_key = key};
    HvdBuf line = {0};
    hvd_agent_request_encode(&req, &line);
    hvd_node_free(spec);
    HvdAgentResult res = {0};
    HvdAgentCallOpts opts = {.timeout_ms = x->timeout_ms};
    if (s) hvd_session_call(s, &opts, x->host, "noop-test", line.data, line.len, &res);
    c->elapsed_ms = res.elapsed_ms;
    if (s && res.outcome == HVD_OUT_SUCCESS) {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "a session started and answered a noop-test in %lld ms",
                 (long long)res.elapsed_ms);
    } else {
        if (s)
            ac_describe(&res, why, sizeof why);
        else
            snprintf(why, sizeof why, "the session command cannot be used");
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason, "the agent says it has session, but a session call failed: %s", why);
    }
    hvd_agent_result_free(&res);
    hvd_buf_free(&line);
    hvd_sessions_stop(s);
    hvd_argv_free(argv);
}

void ac_judge_idempotency(const Ctx *x, Check *c)
{
    bool ignored = x->vm_id[0][0] && x->vm_id[1][0] && strcmp(x->vm_id[0], x->vm_id[1]) != 0;
    size_t l = strlen(c->reason);
    if (x->hello.caps.idempotency && ignored) {
        c->status = CHECK_FAIL;
        snprintf(c->reason + l, sizeof c->reason - l, "; yet agent.hello claims idempotency");
    } else if (!x->hello.caps.idempotency && c->status == CHECK_WARN && ignored) {
        snprintf(c->reason + l, sizeof c->reason - l,
                 ": a vm.create sent again after a lost answer would make a second VM of the name");
    }
}

size_t ac_missing_guarantees(const Ctx *x, const char **out, size_t max)
{
    size_t n = 0;
    const HvdAgentCaps *c = &x->hello.caps;
    if (!c->idempotency && !c->probe && n < max)
        out[n++] = "each stage's effect once, with resume after any crash: a vm.create, disk.create or nic.create "
                   "whose answer is lost (a timeout, an agent crash, a worker killed mid-call) is never sent again, "
                   "because the agent ignores idempotency keys and has no vm.find; the job ends outcome_unknown "
                   "and what it may have made must be checked on the host by hand";
    if (!c->probe && n < max)
        out[n++] = "rollback of everything a failed job made: a VM whose creation is in doubt cannot be found "
                   "(no vm.find), so the rollback says what to check instead of deleting it";
    if (!c->probe && n < max)
        out[n++] = "a job is checked against the host before anything is made: without host.resources a missing "
                   "storage class, network or image is found only at the stage that uses it, after vm.create";
    if (strcmp(x->unknown_code, "OPERATION_ERROR") == 0 && !x->hello.said && n < max)
        out[n++] = "retries of what is transient: every failure is OPERATION_ERROR, so only failures whose "
                   "message matches HVD_AGENT_RETRYABLE_MESSAGES are retried, and any other is final at once";
    return n;
}
