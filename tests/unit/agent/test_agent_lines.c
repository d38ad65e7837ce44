/* Unit tests of the agent transport's live output (HvdAgentCallOpts.on_line):
 * lines arrive while the agent runs, each stream on its own, a last line
 * without a newline at EOF, CR stripped, long lines cut at HVD_AGENT_LINE_MAX,
 * and the envelope still parsed from stdout as before. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "buf.h"

static const char REQ[] = "{\"operation\":\"vm.create\",\"resource_spec\":{},\"correlation_id\":\"c\"}\n";

typedef struct {
    char *text[64];
    HvdAgentStream stream[64];
    bool cut[64];
    size_t len[64];
    int64_t at_ms[64];
    size_t n;
} Seen;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_line(void *arg, HvdAgentStream stream, const char *line, size_t len, bool truncated)
{
    Seen *s = arg;
    cr_assert_eq(strlen(line), len, "the line is NUL-terminated at len");
    if (s->n == 64) return;
    s->text[s->n] = strdup(line);
    s->stream[s->n] = stream;
    s->cut[s->n] = truncated;
    s->len[s->n] = len;
    s->at_ms[s->n] = mono_ms();
    s->n++;
}

static void seen_free(Seen *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->text[i]);
}

/* Runs cmd with on_line collecting into seen; returns the outcome. */
static HvdOutcome run(const char *cmd, Seen *seen, HvdAgentResult *res)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    /* the agent's environment is explicit: the test agent's knobs are passed by name */
    cr_assert(
        hvd_agent_cfg_set_env_pass(&cfg, "HVD_TEST_LINES,HVD_TEST_LINE_MS,HVD_TEST_STDERR_EVERY", err, sizeof err),
        "%s", err);
    HvdAgentCallOpts o = {.on_line = on_line, .line_arg = seen};
    /* noop-test: the answers here carry no vm_id, which a vm.create answer must */
    HvdOutcome out = hvd_agent_call_opts(&cfg, &o, NULL, "noop-test", REQ, strlen(REQ), res);
    hvd_agent_cfg_free(&cfg);
    return out;
}

/* A shell script agent in a fresh temp file (the command template has no shell). */
static char *script(const char *body)
{
    char *path = strdup("/tmp/hvd-agent-lines-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "#!/bin/sh\ncat >/dev/null\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
    return path;
}

Test(agent_lines, arrive_while_the_agent_runs)
{
    setenv("HVD_TEST_LINES", "5", 1);
    setenv("HVD_TEST_LINE_MS", "200", 1);
    setenv("HVD_TEST_STDERR_EVERY", "2", 1);
    Seen s = {0};
    HvdAgentResult res;
    int64_t t0 = mono_ms();
    HvdOutcome o = run(HVD_TEST_AGENT_DIR "/agent_talky", &s, &res);
    int64_t t1 = mono_ms();
    cr_assert_eq(o, HVD_OUT_SUCCESS, "%s", res.detail);
    /* five lines and the envelope line */
    cr_assert_eq(s.n, 6, "lines seen: %zu", s.n);
    cr_assert_str_eq(s.text[0], "vm.create line 1");
    cr_assert_eq(s.stream[0], HVD_AGENT_STDOUT);
    cr_assert_str_eq(s.text[1], "vm.create line 2");
    cr_assert_eq(s.stream[1], HVD_AGENT_STDERR);
    cr_assert_eq(s.stream[3], HVD_AGENT_STDERR);
    cr_assert(strstr(s.text[5], "\"status\":\"success\""), "the envelope line comes too: %s", s.text[5]);
    /* live: the first line came ~800 ms before the call ended, not at its end */
    cr_assert(t1 - s.at_ms[0] >= 600, "first line %lld ms before the end", (long long)(t1 - s.at_ms[0]));
    cr_assert(s.at_ms[0] - t0 < 500, "first line after %lld ms", (long long)(s.at_ms[0] - t0));
    hvd_agent_result_free(&res);
    seen_free(&s);
    unsetenv("HVD_TEST_STDERR_EVERY");
}

Test(agent_lines, crlf_last_line_and_long_lines)
{
    char *path = script("printf 'one\\r\\ntwo\\n\\n'\n"
                        "head -c 10000 /dev/zero | tr '\\0' x; printf '\\nafter\\n'\n"
                        "printf 'err-no-newline' >&2\n"
                        "printf '{\"status\":\"success\",\"message\":\"m\",\"data\":{},\"code\":null,\"logs\":[]}'");
    Seen s = {0};
    HvdAgentResult res;
    HvdOutcome o = run(path, &s, &res);
    cr_assert_eq(o, HVD_OUT_SUCCESS, "%s", res.detail);
    cr_assert_eq(s.n, 7, "lines seen: %zu", s.n);
    cr_assert_str_eq(s.text[0], "one");
    cr_assert_str_eq(s.text[1], "two");
    cr_assert_str_eq(s.text[2], "");
    cr_assert_eq(s.len[3], HVD_AGENT_LINE_MAX);
    cr_assert(s.cut[3]);
    cr_assert_not(s.cut[4]);
    cr_assert_str_eq(s.text[4], "after");
    /* the last stdout line without a newline, and stderr's, each at EOF (in either order) */
    bool env = false, err = false;
    for (size_t i = 5; i < 7; i++) {
        if (s.stream[i] == HVD_AGENT_STDERR && strcmp(s.text[i], "err-no-newline") == 0) err = true;
        if (s.stream[i] == HVD_AGENT_STDOUT && strstr(s.text[i], "\"status\"")) env = true;
    }
    cr_assert(env && err);
    hvd_agent_result_free(&res);
    seen_free(&s);
    unlink(path);
    free(path);
}

Test(agent_lines, no_callback_no_change)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    setenv("HVD_TEST_LINES", "3", 1);
    setenv("HVD_TEST_LINE_MS", "0", 1);
    cr_assert(hvd_agent_cfg_set_command(&cfg, HVD_TEST_AGENT_DIR "/agent_talky", err, sizeof err));
    HvdAgentResult res;
    HvdAgentCallOpts o = {0};
    cr_assert_eq(hvd_agent_call_opts(&cfg, &o, NULL, "vm.create", REQ, strlen(REQ), &res), HVD_OUT_SUCCESS);
    cr_assert_str_eq(res.message, "talked");
    hvd_agent_result_free(&res);
    hvd_agent_cfg_free(&cfg);
}
