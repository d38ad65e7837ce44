/* Tests of `hvdeployctl agent-check`: it passes against hvdeploy-simhost,
 * fails with the reason against a deliberately broken agent, warns (without
 * failing) against an agent that ignores idempotency keys, and refuses bad
 * usage with exit 2. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hvd-agentcheck-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char *rm = hvd_xasprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(rm);
}

TestSuite(agent_check, .init = setup, .fini = teardown);

/* Runs hvdeployctl agent-check ARGS; returns the exit status and stdout. */
static int run_check(const char *args, HvdBuf *out)
{
    char *ctl = hvd_xasprintf("%s/hvdeployctl", HVD_BIN_DIR);
    cr_assert(access(ctl, X_OK) == 0, "%s is not built (run a full cmake --build)", ctl);
    char *cmd = hvd_xasprintf("%s agent-check %s 2>%s/stderr", ctl, args, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) hvd_buf_append(out, buf, n);
    int st = pclose(p);
    free(cmd);
    free(ctl);
    cr_assert(WIFEXITED(st), "agent-check did not exit normally");
    return WEXITSTATUS(st);
}

static json_t *run_json(const char *agent_cmd, int want_rc)
{
    HvdBuf out = {0};
    char *args = hvd_xasprintf("--host hv01 --output json --timeout 20 --agent-cmd '%s'", agent_cmd);
    int rc = run_check(args, &out);
    cr_assert_eq(rc, want_rc, "exit %d, want %d; output: %s", rc, want_rc, out.data ? out.data : "");
    json_error_t je;
    json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, &je);
    cr_assert_not_null(j, "not JSON (%s): %s", je.text, out.data ? out.data : "");
    hvd_buf_free(&out);
    free(args);
    return j;
}

static json_t *find_check(json_t *report, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(report, "checks"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) return c;
    }
    cr_assert_fail("no check named %s", name);
    return NULL;
}

static void assert_check(json_t *report, const char *name, const char *status, const char *reason_part)
{
    json_t *c = find_check(report, name);
    const char *st = json_string_value(json_object_get(c, "status"));
    const char *reason = json_string_value(json_object_get(c, "reason"));
    cr_assert_str_eq(st, status, "%s: %s (%s)", name, st, reason);
    if (reason_part)
        cr_assert(strstr(reason, reason_part) != NULL, "%s reason '%s' lacks '%s'", name, reason, reason_part);
}

Test(agent_check, passes_against_the_simhost)
{
    char *cmd = hvd_xasprintf("%s/hvdeploy-simhost --state-dir %s --host {host}", HVD_BIN_DIR, dir);
    json_t *r = run_json(cmd, 0);
    cr_assert(json_is_true(json_object_get(r, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(r, "failed")), 0);
    cr_assert_eq(json_integer_value(json_object_get(r, "warnings")), 0);
    assert_check(r, "noop-test", "pass", "answered success");
    assert_check(r, "correlation-id", "pass", "echoed");
    assert_check(r, "unknown-operation", "pass", "UNSUPPORTED_OPERATION");
    assert_check(r, "concurrency", "pass", NULL);
    assert_check(r, "idempotency", "pass", "same answer");
    assert_check(r, "cleanup", "pass", "removed");
    assert_check(r, "hello", "pass", "idempotency, probe, session, output");
    assert_check(r, "vm.find", "pass", "stamped with this check's job id");
    assert_check(r, "host.resources", "pass", NULL);
    assert_check(r, "session", "pass", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(r, "profile")), "hvdeploy");
    json_decref(r);
    /* The throwaway VM was created once and deleted: two effects, no VM left. */
    char *p = hvd_xasprintf("%s/hv01/state.json", dir);
    json_t *st = json_load_file(p, 0, NULL);
    cr_assert_not_null(st);
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 0);
    json_decref(st);
    free(p);
    free(cmd);
}

Test(agent_check, fails_with_the_reason_against_a_broken_agent)
{
    char *cmd = hvd_xasprintf("%s/agent_broken", HVD_TEST_AGENT_DIR);
    json_t *r = run_json(cmd, 1);
    cr_assert(json_is_false(json_object_get(r, "ok")));
    assert_check(r, "noop-test", "pass", NULL);
    assert_check(r, "correlation-id", "fail", "correlation_id 'fixed'");
    assert_check(r, "unknown-operation", "fail", "answered success to the unknown operation");
    json_decref(r);
    free(cmd);
}

Test(agent_check, a_hanging_or_crashing_agent_fails)
{
    char *cmd = hvd_xasprintf("%s/agent_exit 3 none", HVD_TEST_AGENT_DIR);
    json_t *r = run_json(cmd, 1);
    assert_check(r, "noop-test", "fail", "exited with status 3");
    assert_check(r, "unknown-operation", "fail", "no error envelope");
    assert_check(r, "concurrency", "fail", "6 of 6");
    assert_check(r, "idempotency", "warn", "could not create");
    json_decref(r);
    free(cmd);
}

Test(agent_check, ignoring_idempotency_keys_is_a_warning)
{
    char *cmd = hvd_xasprintf("%s/agent_noidem", HVD_TEST_AGENT_DIR);
    json_t *r = run_json(cmd, 0);
    cr_assert(json_is_true(json_object_get(r, "ok")));
    /* no agent.hello either: the raw profile, whose missing capabilities are warnings too */
    cr_assert_eq(json_integer_value(json_object_get(r, "warnings")), 4);
    assert_check(r, "hello", "warn", "no agent.hello");
    assert_check(r, "idempotency", "warn", "does not honour idempotency keys");
    assert_check(r, "vm.find", "warn", "not offered");
    assert_check(r, "host.resources", "warn", "not offered");
    assert_check(r, "session", "skip", "not offered");
    cr_assert_str_eq(json_string_value(json_object_get(r, "profile")), "raw");
    assert_check(r, "cleanup", "pass", "removed");
    json_decref(r);
    free(cmd);
}

Test(agent_check, human_output_and_env_command)
{
    char *cmd = hvd_xasprintf("%s/hvdeploy-simhost --state-dir %s", HVD_BIN_DIR, dir);
    setenv("HVD_AGENT_CMD", cmd, 1);
    HvdBuf out = {0};
    int rc = run_check("--host hv01.lab.example --no-create", &out);
    cr_assert_eq(rc, 0, "%s", out.data);
    cr_assert(strstr(out.data, "PASS  noop-test") != NULL, "%s", out.data);
    cr_assert(strstr(out.data, "SKIP  idempotency") != NULL, "%s", out.data);
    cr_assert(strstr(out.data, "OK: 8 passed, 0 failed, 0 warnings") != NULL, "%s", out.data);
    hvd_buf_free(&out);
    unsetenv("HVD_AGENT_CMD");
    free(cmd);
}

Test(agent_check, usage_errors_exit_2)
{
    HvdBuf out = {0};
    cr_assert_eq(run_check("--agent-cmd /bin/true", &out), 2, "no --host");
    cr_assert_eq(run_check("--host 'bad host' --agent-cmd /bin/true", &out), 2, "bad host");
    cr_assert_eq(run_check("--host hv01 --agent-cmd '  '", &out), 2, "empty command");
    unsetenv("HVD_AGENT_CMD");
    cr_assert_eq(run_check("--host hv01", &out), 2, "no command at all");
    cr_assert_eq(run_check("--host hv01 --agent-cmd /bin/true --output yaml", &out), 2, "bad output");
    cr_assert_eq(run_check("--host hv01 --agent-cmd /bin/true --concurrency 99", &out), 2, "bad concurrency");
    cr_assert_eq(run_check("--help", &out), 0);
    cr_assert(strstr(out.data, "usage: hvdeployctl agent-check") != NULL);
    hvd_buf_free(&out);
}
