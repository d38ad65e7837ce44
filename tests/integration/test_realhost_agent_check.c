/* `hvdeployctl agent-check` against the simhost's flavours (issue 9): the
 * lines it prints about the profile, each capability and the guarantees
 * that do not hold, and its exit status — 0 with warnings against aether-v
 * (Main-NewProtocol.ps1 as it is), 0 without against hvdeploy (the shim), 1
 * when an agent claims a capability it does not honour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it_ctl.h"

static char *Tmp;

static void fini(void)
{
    it_rmtree(Tmp);
    Tmp = NULL;
}

TestSuite(realhost_agent_check, .fini = fini, .timeout = 120);

static ItCtl check(const char *flavor, const char *env)
{
    Tmp = it_tmpdir("agentcheck");
    return it_ctl(
        Tmp,
        "agent-check --host hv01.lab.example --timeout 20 --agent-cmd '%s%s/hvdeploy-simhost --state-dir %s/sim --flavor %s'",
        env ? env : "", HVD_BIN_DIR, Tmp, flavor);
}

static void has(const ItCtl *r, const char *line)
{
    cr_assert(strstr(r->out, line), "agent-check prints '%s':\n%s", line, r->out);
}

Test(realhost_agent_check, aether_v_warns_which_guarantees_do_not_hold)
{
    ItCtl r = check("aether-v", NULL);
    cr_assert_eq(r.rc, 0, "warnings only: exit 0\n%s%s", r.out, r.err);
    has(&r, "WARN  hello              no agent.hello: it answered OPERATION_ERROR");
    has(&r, "WARN  idempotency        the agent does not honour idempotency keys");
    has(&r, "a vm.create sent again after a lost answer would make a second VM of the name");
    has(&r, "WARN  vm.find            not offered (no probe capability)");
    has(&r, "WARN  host.resources     not offered (no probe capability): no preflight");
    has(&r, "SKIP  session            not offered");
    has(&r, "PASS  cleanup            removed the throwaway VMs");
    has(&r, "profile: raw (idempotency no, probe no, session no, output no), as HVD_AGENT_PROFILE=auto finds it");
    has(&r, "guarantees that do not hold with this agent:");
    has(&r, "  - each stage's effect once, with resume after any crash:");
    has(&r, "the job ends outcome_unknown");
    has(&r, "  - rollback of everything a failed job made:");
    has(&r, "  - a job is checked against the host before anything is made:");
    has(&r, "  - retries of what is transient: every failure is OPERATION_ERROR");
    has(&r, "OK: 5 passed, 0 failed, 4 warnings");
    /* nothing of the check is left on the host (it made two VMs of one name) */
    char *state = hvd_xasprintf("%s/sim/hv01.lab.example/state.json", Tmp);
    char *text = it_slurp(state);
    cr_assert(strstr(text, "\"vms\":[]") || strstr(text, "\"vms\": []"), "no VM left: %s", text);
    free(text);
    free(state);
    it_ctl_free(&r);
}

Test(realhost_agent_check, hvdeploy_passes_every_capability)
{
    ItCtl r = check("hvdeploy", NULL);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    has(&r,
        "PASS  hello              agent 'hvdeploy-simhost 1.1' says it honours: idempotency, probe, session, output");
    has(&r, "PASS  idempotency        vm.create repeated with one key gave the same answer");
    has(&r, "PASS  vm.find            found the throwaway VM");
    has(&r, "PASS  host.resources     2 storage class(es), 3 network(s), 4 golden image(s)");
    has(&r, "PASS  session            a session started and answered a noop-test");
    has(&r, "profile: hvdeploy (idempotency yes, probe yes, session yes, output yes)");
    has(&r, "guarantees: all hold with what this agent honours");
    has(&r, "OK: 10 passed, 0 failed, 0 warnings");
    it_ctl_free(&r);
}

/* An agent that says probe but whose vm.find fails breaks the protocol: exit 1. */
Test(realhost_agent_check, a_claimed_capability_not_honoured_fails)
{
    ItCtl r = check("hvdeploy", "env HVD_SIM_FAIL=vm.find=1:BROKEN ");
    cr_assert_eq(r.rc, 1, "exit 1\n%s%s", r.out, r.err);
    has(&r, "FAIL  vm.find            the agent says it has probe, but vm.find failed");
    has(&r, "FAILED: 9 passed, 1 failed, 0 warnings");
    it_ctl_free(&r);
}

/* --output json carries the profile, the capabilities and the guarantees. */
Test(realhost_agent_check, json_names_the_profile_and_the_guarantees)
{
    Tmp = it_tmpdir("agentcheck");
    ItCtl r = it_ctl(
        Tmp,
        "agent-check --host hv01.lab.example --no-create --output json --agent-cmd '%s/hvdeploy-simhost --state-dir %s/sim --flavor aether-v'",
        HVD_BIN_DIR, Tmp);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "\"profile\":\"raw\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"capabilities\":[]"), "%s", r.out);
    cr_assert(strstr(r.out, "\"guarantees_not_held\":[\"each stage's effect once"), "%s", r.out);
    it_ctl_free(&r);
}
