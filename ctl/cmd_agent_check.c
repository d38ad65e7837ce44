/* hvdeployctl agent-check: conformance checks of a host agent command
 * against the agent protocol (contract §6, §6a), each reported
 * pass/fail/warn/skip with its reason: the §6 checks and the throwaway VM
 * here, agent.hello and the capabilities in agent_check_caps.c, the report
 * in agent_check_report.c, the call helpers in agent_check_call.c. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"
#include "agent_check.h"
#include "agentproto.h"
#include "clock.h"
#include "codec.h"
#include "ctl.h"
#include "model.h"

#define CHECK_UNKNOWN_OP "agent-check.unknown-operation"
#define MAX_CONCURRENCY 8
#define MIN_CONCURRENCY 2

static void usage(FILE *f)
{
    fputs(
        "usage: hvdeployctl agent-check --host HOST [--agent-cmd CMD] [--output json|human]\n"
        "                               [--timeout SECONDS] [--concurrency N] [--no-create]\n"
        "\n"
        "Runs the agent protocol conformance checks against an agent command and a host:\n"
        "  noop-test          the agent answers a noop-test with success\n"
        "  correlation-id     the answer echoes the request's correlation_id\n"
        "  unknown-operation  an unknown operation gets an error envelope (not a crash or a hang)\n"
        "  concurrency        N calls at once are all answered\n"
        "  hello              agent.hello names the agent and its capabilities (contract 6a); an\n"
        "                     error answer, as Main-NewProtocol.ps1 gives, is the raw profile (a warning)\n"
        "  idempotency        vm.create of a throwaway VM twice with one idempotency key gives one\n"
        "                     answer (a warning when it does not; a failure when hello claims it)\n"
        "  vm.find            finds the throwaway VM stamped with the check's job id (with probe)\n"
        "  host.resources     the host's storage classes, networks and images (with probe)\n"
        "  session            a session (the command plus --session) answers (with session)\n"
        "  cleanup            the throwaway VM(s) removed with vm.delete\n"
        "A capability the agent lacks is a warning saying which guarantee does not hold and why;\n"
        "one it claims but does not honour is a failure. The report ends with the profile the\n"
        "worker would use (HVD_AGENT_PROFILE=auto) and the guarantees that do not hold.\n"
        "\n"
        "  --host HOST          the Hyper-V host ({host} in the command), required\n"
        "  --agent-cmd CMD      the agent argv template (default: $HVD_AGENT_CMD)\n"
        "  --output json|human  json prints {ok, passed, failed, warnings, profile, agent, capabilities,\n"
        "                       guarantees_not_held, checks: [{name, status, reason, elapsed_ms}]}\n"
        "  --timeout SECONDS    per call, except vm.create/vm.delete which use the worker's defaults (default 60)\n"
        "  --concurrency N      calls at once, 2-8 (default 6)\n"
        "  --no-create          skip the idempotency and cleanup checks (they create and delete a VM)\n"
        "  -h, --help           this help\n"
        "\n"
        "For a real host over OpenSSH:\n"
        "  hvdeployctl agent-check --host hv01.example --agent-cmd \\\n"
        "    \"ssh -T -o BatchMode=yes {host} pwsh -NoProfile -File '\\\"C:/Program Files/Aether-V/hvdeploy-agent.ps1\\\"'\"\n"
        "\n"
        "Exit status: 0 no check failed (warnings allowed), 1 a check failed, 2 usage error.\n",
        f);
}

static void check_noop(Ctx *x, Check *noop, Check *corr)
{
    char cid[HVD_UUID_LEN + 1];
    HvdNode *spec = hvd_node_map();
    hvd_node_map_set_str(spec, "test_field", "hvdeploy agent-check");
    HvdAgentResult res;
    ac_call_op(x, "noop-test", spec, cid, &res);
    hvd_node_free(spec);
    noop->elapsed_ms = corr->elapsed_ms = res.elapsed_ms;
    char why[400];
    ac_describe(&res, why, sizeof why);
    if (res.outcome == HVD_OUT_SUCCESS) {
        noop->status = CHECK_PASS;
        snprintf(noop->reason, sizeof noop->reason, "answered success in %lld ms", (long long)res.elapsed_ms);
    } else {
        noop->status = CHECK_FAIL;
        snprintf(noop->reason, sizeof noop->reason, "noop-test was not answered with success: %s", why);
    }
    if (!res.envelope) {
        corr->status = CHECK_FAIL;
        snprintf(corr->reason, sizeof corr->reason, "no answer to look for the correlation_id in (%s)", why);
    } else if (!res.correlation_id) {
        corr->status = CHECK_FAIL;
        snprintf(corr->reason, sizeof corr->reason, "the answer has no correlation_id (sent %s)", cid);
    } else if (strcmp(res.correlation_id, cid) != 0) {
        corr->status = CHECK_FAIL;
        snprintf(corr->reason, sizeof corr->reason, "the answer carries correlation_id '%.80s', the request sent %s",
                 res.correlation_id, cid);
    } else {
        corr->status = CHECK_PASS;
        snprintf(corr->reason, sizeof corr->reason, "echoed %s", cid);
    }
    hvd_agent_result_free(&res);
}

static void check_unknown(Ctx *x, Check *c)
{
    HvdNode *spec = hvd_node_map();
    HvdAgentResult res;
    ac_call_op(x, CHECK_UNKNOWN_OP, spec, NULL, &res);
    hvd_node_free(spec);
    c->elapsed_ms = res.elapsed_ms;
    snprintf(x->unknown_code, sizeof x->unknown_code, "%s", res.code ? res.code : "");
    if (res.outcome == HVD_OUT_AGENT_ERROR || res.outcome == HVD_OUT_RETRYABLE) {
        if (res.status && strcmp(res.status, "error") == 0) {
            c->status = CHECK_PASS;
            snprintf(c->reason, sizeof c->reason, "answered error (code %s): %.200s", res.code ? res.code : "none",
                     res.message ? res.message : "");
        } else {
            c->status = CHECK_FAIL;
            snprintf(c->reason, sizeof c->reason, "answered status '%s' to an unknown operation; expected error",
                     res.status ? res.status : "");
        }
    } else if (res.outcome == HVD_OUT_SUCCESS) {
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason,
                 "answered success to the unknown operation '%s'; expected an error "
                 "envelope",
                 CHECK_UNKNOWN_OP);
    } else {
        char why[400];
        ac_describe(&res, why, sizeof why);
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason, "no error envelope for an unknown operation: %s", why);
    }
    hvd_agent_result_free(&res);
}

typedef struct {
    Ctx *x;
    int i;
    bool check_corr; /* the agent echoed the id when called alone: crossed answers are detectable */
    bool ok;
    int64_t elapsed_ms;
    char why[400];
} ConcCall;

static void *conc_one(void *arg)
{
    ConcCall *cc = arg;
    char cid[HVD_UUID_LEN + 1], key[112];
    ac_new_uuid(cid);
    snprintf(key, sizeof key, "%s:noop-test.%d", cc->x->run_id, cc->i);
    HvdNode *spec = hvd_node_map();
    HvdAgentResult res;
    ac_call(cc->x, "noop-test", spec, cid, key, 1, cc->x->timeout_ms, &res);
    hvd_node_free(spec);
    cc->elapsed_ms = res.elapsed_ms;
    if (res.outcome != HVD_OUT_SUCCESS) {
        ac_describe(&res, cc->why, sizeof cc->why);
    } else if (cc->check_corr && (!res.correlation_id || strcmp(res.correlation_id, cid) != 0)) {
        snprintf(cc->why, sizeof cc->why, "answer to another request (correlation_id '%.80s', sent %s)",
                 res.correlation_id ? res.correlation_id : "", cid);
    } else {
        cc->ok = true;
    }
    hvd_agent_result_free(&res);
    return NULL;
}

static void check_concurrency(Ctx *x, int n, bool check_corr, Check *c)
{
    pthread_t t[MAX_CONCURRENCY];
    ConcCall cc[MAX_CONCURRENCY];
    int started = 0, failed = 0;
    int64_t t0 = hvd_mono_ms();
    for (int i = 0; i < n; i++) {
        cc[i] = (ConcCall){.x = x, .i = i, .check_corr = check_corr};
        if (pthread_create(&t[i], NULL, conc_one, &cc[i]) != 0) {
            snprintf(cc[i].why, sizeof cc[i].why, "cannot start a thread");
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    c->elapsed_ms = hvd_mono_ms() - t0;
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!cc[i].ok) {
            failed++;
            if (!first) first = cc[i].why;
        }
    }
    if (failed == 0) {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "%d concurrent noop-tests all answered in %lld ms", n,
                 (long long)c->elapsed_ms);
    } else {
        c->status = CHECK_FAIL;
        snprintf(c->reason, sizeof c->reason, "%d of %d concurrent noop-tests failed; first: %.400s", failed, n,
                 first ? first : "?");
    }
}

/* Removes a throwaway VM; returns false with why set when it could not. */
static bool delete_vm(Ctx *x, const char *vm_id, const char *name, char *why, size_t whylen)
{
    char cid[HVD_UUID_LEN + 1], key[128];
    ac_new_uuid(cid);
    snprintf(key, sizeof key, "%s:vm.delete:%.40s", x->run_id, vm_id ? vm_id : name);
    HvdNode *spec = hvd_node_map();
    if (vm_id) hvd_node_map_set_str(spec, "vm_id", vm_id);
    hvd_node_map_set_str(spec, "vm_name", name);
    hvd_node_map_set_bool(spec, "delete_disks", true);
    HvdAgentResult res;
    ac_call(x, "vm.delete", spec, cid, key, 1, 0, &res);
    hvd_node_free(spec);
    bool ok = res.outcome == HVD_OUT_SUCCESS;
    if (!ok) ac_describe(&res, why, whylen);
    hvd_agent_result_free(&res);
    return ok;
}

static void check_idempotency(Ctx *x, Check *c)
{
    char key[96], cid[HVD_UUID_LEN + 1], why[400];
    const char *name = x->vm_name;
    snprintf(key, sizeof key, "%s:vm.create", x->run_id);
    ac_new_uuid(cid);
    HvdNode *spec = hvd_node_map();
    hvd_node_map_set_str(spec, "vm_name", name);
    hvd_node_map_set_int(spec, "gb_ram", 1);
    hvd_node_map_set_int(spec, "cpu_cores", 1);
    hvd_node_map_set(spec, "storage_class", hvd_node_nil());
    hvd_node_map_set_bool(spec, "vm_clustered", false);
    hvd_node_map_set_str(spec, "os_family", "linux");
    HvdAgentResult a, b;
    ac_call(x, "vm.create", spec, cid, key, 1, 0, &a);
    ac_call(x, "vm.create", spec, cid, key, 2, 0, &b);
    hvd_node_free(spec);
    c->elapsed_ms = a.elapsed_ms + b.elapsed_ms;
    const char *id_a = a.outcome == HVD_OUT_SUCCESS ? hvd_node_get_str(a.data, "vm_id") : NULL;
    const char *id_b = b.outcome == HVD_OUT_SUCCESS ? hvd_node_get_str(b.data, "vm_id") : NULL;

    if (a.outcome != HVD_OUT_SUCCESS) {
        ac_describe(&a, why, sizeof why);
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason, "could not create the throwaway VM '%s' to test idempotency: %s", name,
                 why);
    } else if (!id_a) {
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason, "vm.create answered success without data.vm_id; cannot compare answers");
    } else if (b.outcome != HVD_OUT_SUCCESS) {
        ac_describe(&b, why, sizeof why);
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "the agent does not honour idempotency keys: vm.create repeated with "
                 "key %s was not answered with the first answer but with %s",
                 key, why);
    } else if (!id_b || strcmp(id_a, id_b) != 0) {
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "the agent does not honour idempotency keys: vm.create repeated with "
                 "key %s made another VM (vm_id %.40s, then %.40s)",
                 key, id_a, id_b ? id_b : "none");
    } else if (!hvd_node_equal(a.envelope, b.envelope)) {
        c->status = CHECK_WARN;
        snprintf(c->reason, sizeof c->reason,
                 "same vm_id %s for a repeated key, but the second answer differs from "
                 "the first",
                 id_a);
    } else {
        c->status = CHECK_PASS;
        snprintf(c->reason, sizeof c->reason, "vm.create repeated with one key gave the same answer (vm_id %s)", id_a);
    }

    snprintf(x->vm_id[0], sizeof x->vm_id[0], "%s", id_a ? id_a : "");
    /* the repeat may have made a second VM even when its answer is unusable
     * (Aether-V answers vm_id "System.Object[]" for two VMs of one name) */
    snprintf(x->vm_id[1], sizeof x->vm_id[1], "%s", id_b ? id_b : id_a ? "(unusable answer)" : "");
    hvd_agent_result_free(&a);
    hvd_agent_result_free(&b);
}

/* Removes every VM the check made: by vm_id when vm.create answered one id
 * twice (or once), by name when it made two (an agent that ignores keys may
 * answer an id that names no single VM, e.g. "System.Object[]"; the name is
 * this run's own). */
static void check_cleanup(Ctx *x, Check *cleanup)
{
    char why[400];
    cleanup->status = CHECK_PASS;
    snprintf(cleanup->reason, sizeof cleanup->reason, "nothing to clean up");
    if (!x->vm_id[0][0] && !x->vm_id[1][0]) return;
    bool two = x->vm_id[1][0] && strcmp(x->vm_id[0], x->vm_id[1]) != 0;
    const char *id = two ? NULL : x->vm_id[0][0] ? x->vm_id[0] : x->vm_id[1];
    int64_t t0 = hvd_mono_ms();
    if (delete_vm(x, id, x->vm_name, why, sizeof why)) {
        snprintf(cleanup->reason, sizeof cleanup->reason, "removed the throwaway VM%s '%s'%s", two ? "s" : "",
                 x->vm_name, two ? " (by name: the repeat may have made another)" : "");
    } else {
        cleanup->status = CHECK_WARN;
        snprintf(cleanup->reason, sizeof cleanup->reason,
                 "could not remove the throwaway VM '%s' (%.40s): %s; remove it by hand", x->vm_name,
                 id ? id : "by name", why);
    }
    cleanup->elapsed_ms = hvd_mono_ms() - t0;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int ctl_cmd_agent_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"agent-cmd", required_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'},
        {"concurrency", required_argument, NULL, 'c'},
        {"no-create", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    Ctx x = {.timeout_ms = 60 * 1000};
    const char *cmd = ctl_env("HVD_AGENT_CMD", NULL);
    CtlOutput output = CTL_OUTPUT_HUMAN;
    long concurrency = 6, secs = 0;
    bool create = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': x.host = optarg; break;
        case 'a': cmd = optarg; break;
        case 'o':
            if (!ctl_parse_output("agent-check", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 't':
            if (!parse_int(optarg, 1, 86400, &secs)) {
                ctl_error("agent-check", "--timeout wants whole seconds from 1 to 86400, not '%s'", optarg);
                return CTL_EXIT_USAGE;
            }
            x.timeout_ms = secs * 1000;
            break;
        case 'c':
            if (!parse_int(optarg, MIN_CONCURRENCY, MAX_CONCURRENCY, &concurrency)) {
                ctl_error("agent-check", "--concurrency wants %d to %d, not '%s'", MIN_CONCURRENCY, MAX_CONCURRENCY,
                          optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'n': create = false; break;
        case 'h': usage(stdout); return CTL_EXIT_OK;
        default: usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        ctl_error("agent-check", "unexpected argument '%s'", argv[optind]);
        return CTL_EXIT_USAGE;
    }
    if (!x.host) {
        ctl_error("agent-check", "--host is required");
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (!hvd_hostname_valid(x.host)) {
        ctl_error("agent-check", "--host '%s' is not a valid host name or IPv4 address", x.host);
        return CTL_EXIT_USAGE;
    }
    char err[512];
    hvd_agent_cfg_init(&x.cfg);
    if (!hvd_agent_cfg_set_command(&x.cfg, cmd, err, sizeof err)) {
        ctl_error("agent-check", "%s (or pass --agent-cmd)", err);
        hvd_agent_cfg_free(&x.cfg);
        return CTL_EXIT_USAGE;
    }
    ac_new_uuid(x.run_id);

    snprintf(x.vm_name, sizeof x.vm_name, "hvd-agent-check-%.8s", x.run_id);

    Check checks[] = {
        {.name = "noop-test"}, {.name = "correlation-id"}, {.name = "unknown-operation"}, {.name = "concurrency"},
        {.name = "hello"},     {.name = "idempotency"},    {.name = "vm.find"},           {.name = "host.resources"},
        {.name = "session"},   {.name = "cleanup"},
    };
    size_t n = sizeof checks / sizeof checks[0];
    check_noop(&x, &checks[0], &checks[1]);
    check_unknown(&x, &checks[2]);
    check_concurrency(&x, (int)concurrency, checks[1].status == CHECK_PASS, &checks[3]);
    ac_check_hello(&x, &checks[4]);
    if (create) {
        check_idempotency(&x, &checks[5]);
        ac_judge_idempotency(&x, &checks[5]);
    } else {
        checks[5].status = CHECK_SKIP;
        snprintf(checks[5].reason, sizeof checks[5].reason, "skipped (--no-create)");
    }
    ac_check_find(&x, &checks[6]);
    ac_check_resources(&x, &checks[7]);
    ac_check_session(&x, &checks[8]);
    if (create)
        check_cleanup(&x, &checks[9]);
    else
        n--;
    int rc = ac_report(output, &x, checks, n);
    hvd_agent_cfg_free(&x.cfg);
    return rc;
}
