/* Unit tests of the transport against agents that behave like real hosts
 * (contract §6a): argv words quoted so a path with spaces is one word, and
 * Aether-V's OPERATION_ERROR answers made transient by their message
 * (HVD_AGENT_RETRYABLE_MESSAGES) — one test per default message. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent.h"
#include "buf.h"

static const char REQ[] = "{\"operation\":\"vm.create\",\"resource_spec\":{},\"correlation_id\":\"c\","
                          "\"metadata\":{\"host\":\"hv01\",\"attempt\":1}}\n";

/* The defaults of HVD_AGENT_RETRYABLE_MESSAGES (config.h), as the worker sets them. */
static void set_default_messages(HvdAgentCfg *cfg)
{
    static const char *const defaults[] = {"being used by another process",
                                           "while the object is in its current state",
                                           "the rpc server is unavailable",
                                           "insufficient system resources",
                                           "the timeout period expired",
                                           "the requested resource is in use",
                                           "winrm client cannot complete the operation",
                                           "maximum number of concurrent operations"};
    hvd_agent_cfg_set_retryable_messages(cfg, defaults, sizeof defaults / sizeof defaults[0]);
}

/* An agent (a shell, run as argv without a shell of ours) that answers an
 * Aether-V style error with message. */
static HvdOutcome answer_error(const char *message, bool with_defaults)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    if (with_defaults) set_default_messages(&cfg);
    char *cmd = hvd_xasprintf("/bin/sh -c 'cat >/dev/null; echo Creating VM...; printf \"%%s\\n\" "
                              "\"{\\\"status\\\":\\\"error\\\",\\\"message\\\":\\\"%s\\\","
                              "\\\"code\\\":\\\"OPERATION_ERROR\\\"}\"'",
                              message);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    HvdAgentResult res;
    hvd_agent_call(&cfg, "hv01", "vm.create", REQ, strlen(REQ), &res);
    HvdOutcome o = res.outcome;
    cr_assert_str_eq(res.code, "OPERATION_ERROR", "%s", res.detail);
    hvd_agent_result_free(&res);
    hvd_agent_cfg_free(&cfg);
    free(cmd);
    return o;
}

#define TRANSIENT_MESSAGE(name, text)                                                                     \
    Test(retryable_messages, name)                                                                        \
    {                                                                                                     \
        cr_assert_eq(answer_error(text, true), HVD_OUT_RETRYABLE, "%s", text);                            \
        cr_assert_eq(answer_error(text, false), HVD_OUT_AGENT_ERROR, "without the list it is permanent"); \
    }

/* The Windows messages behind each default (their Win32/HRESULT names in config.h). */
TRANSIENT_MESSAGE(file_in_use, "The process cannot access the file because it is being used by another process.")
TRANSIENT_MESSAGE(vm_in_transition, "The operation cannot be performed while the object is in its current state.")
TRANSIENT_MESSAGE(rpc_unavailable, "The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)")
TRANSIENT_MESSAGE(no_resources, "Insufficient system resources exist to complete the requested service.")
TRANSIENT_MESSAGE(win32_timeout, "This operation returned because the timeout period expired.")
TRANSIENT_MESSAGE(busy, "The requested resource is in use.")
TRANSIENT_MESSAGE(winrm_quota, "The WS-Management service cannot process the request. The maximum number of "
                               "concurrent operations for this user has been exceeded.")
TRANSIENT_MESSAGE(winrm_timeout, "The WinRM client cannot complete the operation within the time specified.")

Test(retryable_messages, a_real_error_stays_permanent)
{
    cr_assert_eq(answer_error("Virtual switch 'Nope' not found", true), HVD_OUT_AGENT_ERROR);
    cr_assert_eq(answer_error("Storage class 'gold' is not defined on this host", true), HVD_OUT_AGENT_ERROR);
}

Test(retryable_messages, case_does_not_matter)
{
    cr_assert_eq(answer_error("THE RPC SERVER IS UNAVAILABLE", true), HVD_OUT_RETRYABLE);
}

Test(quoted_argv, a_path_with_a_space_is_one_word)
{
    char dir[] = "/tmp/hvd-argv-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *sub = hvd_xasprintf("%s/Program Files", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    char *script = hvd_xasprintf("%s/agent one.sh", sub);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\ncat >/dev/null\necho \"{\\\"status\\\":\\\"success\\\",\\\"message\\\":\\\"$1|$2\\\"}\"\n", f);
    fclose(f);
    cr_assert_eq(chmod(script, 0700), 0);

    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *cmd = hvd_xasprintf("\"%s\" '{host}' \"two words\"", script);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    cr_assert_eq(cfg.argc, 3);
    static const char noop[] = "{\"operation\":\"noop-test\",\"resource_spec\":{},\"metadata\":{}}\n";
    HvdAgentResult res;
    hvd_agent_call(&cfg, "hv01", "noop-test", noop, strlen(noop), &res);
    cr_assert_eq(res.outcome, HVD_OUT_SUCCESS, "%s", res.detail);
    cr_assert_str_eq(res.message, "hv01|two words", "the host placeholder inside quotes is replaced too");
    hvd_agent_result_free(&res);

    cr_assert_not(hvd_agent_cfg_set_command(&cfg, "pwsh -File \"C:/Program Files", err, sizeof err));
    cr_assert(strstr(err, "unterminated"), "%s", err);
    hvd_agent_cfg_free(&cfg);
    unlink(script);
    rmdir(sub);
    rmdir(dir);
    free(cmd);
    free(script);
    free(sub);
}
