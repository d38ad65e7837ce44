/* Unit tests of the agent transport (common/agent.c): configuration, argv
 * templates, and every misbehaving agent of tests/agents classified as §6
 * says, with timeouts honoured, and no descriptor, child or memory growth
 * over ten thousand calls. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "agentproto.h"
#include "buf.h"
#include "codec.h"
#include "utf8.h"

static const char REQ[] = "{\"operation\":\"noop-test\",\"resource_spec\":{},\"correlation_id\":\"corr-1\","
                          "\"metadata\":{\"host\":\"hv01\",\"attempt\":1,\"idempotency_key\":\"k:noop-test\"}}\n";

static char *agent_path(const char *name)
{
    char *p = hvd_xasprintf("%s/%s", HVD_TEST_AGENT_DIR, name);
    cr_assert(access(p, X_OK) == 0, "test agent %s is not built (run a full cmake --build)", p);
    return p;
}

/* Runs "<agent> args" with timeout_ms for every operation. */
static HvdOutcome run_agent(const char *name, const char *args, int64_t timeout_ms, int64_t grace_ms,
                            HvdAgentResult *res)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *path = agent_path(name);
    char *cmd = hvd_xasprintf("%s %s", path, args ? args : "");
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    cr_assert(hvd_agent_cfg_set_timeout(&cfg, "*", timeout_ms));
    if (grace_ms > 0) cfg.kill_grace_ms = grace_ms;
    HvdOutcome o = hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), res);
    free(cmd);
    free(path);
    hvd_agent_cfg_free(&cfg);
    return o;
}

#define ASSERT_OUTCOME(res, want)                                                                                    \
    cr_assert_eq((res).outcome, (want), "outcome %s (%s), want %s; stderr: %.300s", hvd_outcome_name((res).outcome), \
                 (res).detail, hvd_outcome_name(want), (res).stderr_tail ? (res).stderr_tail : "")

/* ---- configuration ---- */

Test(agent_cfg, defaults)
{
    HvdAgentCfg cfg;
    hvd_agent_cfg_init(&cfg);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "vm.create"), 300000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "disk.create"), 1800000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "nic.create"), 120000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "vm.initialize"), 2400000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "vm.delete"), 300000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "noop-test"), 60000);
    cr_assert(hvd_agent_code_retryable(&cfg, "HOST_BUSY"));
    cr_assert(hvd_agent_code_retryable(&cfg, "TRANSIENT"));
    cr_assert_not(hvd_agent_code_retryable(&cfg, "OPERATION_ERROR"));
    cr_assert_not(hvd_agent_code_retryable(&cfg, NULL));
    cr_assert_eq(cfg.kill_grace_ms, 2000);
    cr_assert_eq(cfg.stderr_cap, 4096);
    hvd_agent_cfg_free(&cfg);
    hvd_agent_cfg_free(&cfg); /* twice is fine */
    hvd_agent_cfg_free(NULL);
}

Test(agent_cfg, settable)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    cr_assert(hvd_agent_cfg_parse_timeouts(&cfg, "vm.create=10, disk.create=2.5,*=500ms,custom.op=7", err, sizeof err),
              "%s", err);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "vm.create"), 10000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "disk.create"), 2500);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "custom.op"), 7000);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "anything"), 500);
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "nic.create"), 120000);
    cr_assert_not(hvd_agent_cfg_parse_timeouts(&cfg, "vm.create=abc", err, sizeof err));
    cr_assert_not(hvd_agent_cfg_parse_timeouts(&cfg, "vm.create=0", err, sizeof err));
    cr_assert_not(hvd_agent_cfg_parse_timeouts(&cfg, "=5", err, sizeof err));
    cr_assert_not(hvd_agent_cfg_parse_timeouts(&cfg, "nic.create=3,vm.create", err, sizeof err));
    cr_assert_eq(hvd_agent_timeout_ms(&cfg, "nic.create"), 120000, "a bad list changes nothing");
    hvd_agent_cfg_set_retryable(&cfg, "BUSY, LATER");
    cr_assert(hvd_agent_code_retryable(&cfg, "LATER"));
    cr_assert_not(hvd_agent_code_retryable(&cfg, "HOST_BUSY"));
    hvd_agent_cfg_set_retryable(&cfg, "");
    cr_assert_not(hvd_agent_code_retryable(&cfg, "BUSY"));
    hvd_agent_cfg_free(&cfg);
}

Test(agent_cfg, template_split_and_host_substitution)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    cr_assert_not(hvd_agent_cfg_set_command(&cfg, "", err, sizeof err));
    cr_assert_not(hvd_agent_cfg_set_command(&cfg, "  \t ", err, sizeof err));
    cr_assert_not(hvd_agent_cfg_set_command(&cfg, NULL, err, sizeof err));
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
    cr_assert(hvd_agent_cfg_set_command(&cfg, "  ssh -T  admin@{host} pwsh -File {host}/x.ps1 ", err, sizeof err));
    cr_assert_eq(cfg.argc, 6);
    char **argv = hvd_agent_argv(&cfg, "hv01.lab.example", err, sizeof err);
    cr_assert_not_null(argv, "%s", err);
    cr_assert_str_eq(argv[0], "ssh");
    cr_assert_str_eq(argv[1], "-T");
    cr_assert_str_eq(argv[2], "admin@hv01.lab.example");
    cr_assert_str_eq(argv[5], "hv01.lab.example/x.ps1");
    cr_assert_null(argv[6]);
    hvd_agent_argv_free(argv);
    /* Hosts that would smuggle options or shell syntax are refused before anything runs. */
    const char *bad[] = {"-oProxyCommand=x", "hv01;rm", "hv 01", "", "a/b", "$(id)", NULL};
    for (size_t i = 0; bad[i]; i++) cr_assert_null(hvd_agent_argv(&cfg, bad[i], err, sizeof err), "%s", bad[i]);
    cr_assert_null(hvd_agent_argv(&cfg, NULL, err, sizeof err));
    HvdAgentResult res;
    cr_assert_eq(hvd_agent_call(&cfg, "-oProxyCommand=touch /tmp/x", "noop-test", REQ, strlen(REQ), &res),
                 HVD_OUT_BAD_CALL);
    cr_assert_not(hvd_outcome_transient(res.outcome));
    hvd_agent_result_free(&res);
    hvd_agent_cfg_free(&cfg);

    HvdAgentCfg none;
    hvd_agent_cfg_init(&none);
    cr_assert_eq(hvd_agent_call(&none, "hv01", "noop-test", REQ, strlen(REQ), &res), HVD_OUT_BAD_CALL);
    hvd_agent_result_free(&res);
    hvd_agent_cfg_free(&none);
}

Test(agent_cfg, outcome_names_and_transience)
{
    cr_assert_str_eq(hvd_outcome_name(HVD_OUT_SUCCESS), "success");
    cr_assert_str_eq(hvd_outcome_name(HVD_OUT_UNREACHABLE), "unreachable");
    cr_assert(hvd_outcome_transient(HVD_OUT_TIMEOUT));
    cr_assert(hvd_outcome_transient(HVD_OUT_TRANSPORT));
    cr_assert(hvd_outcome_transient(HVD_OUT_UNREACHABLE));
    cr_assert(hvd_outcome_transient(HVD_OUT_RETRYABLE));
    cr_assert_not(hvd_outcome_transient(HVD_OUT_SUCCESS));
    cr_assert_not(hvd_outcome_transient(HVD_OUT_AGENT_ERROR));
    cr_assert_not(hvd_outcome_transient(HVD_OUT_PROTOCOL_ERROR));
}

/* ---- well-behaved agents ---- */

Test(agent_call, echo_success)
{
    HvdAgentResult res;
    run_agent("agent_echo", NULL, 5000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert_str_eq(res.correlation_id, "corr-1");
    cr_assert_str_eq(hvd_node_get_str(res.data, "operation"), "noop-test");
    cr_assert(res.exited);
    cr_assert_eq(res.exit_code, 0);
    cr_assert_not(res.timed_out);
    hvd_agent_result_free(&res);
}

Test(agent_call, simhost_null_and_real)
{
    char dir[] = "/tmp/hvd-agent-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *sim = hvd_xasprintf("%s/hvdeploy-simhost", HVD_BIN_DIR);
    cr_assert(access(sim, X_OK) == 0, "%s is not built", sim);
    char *cmds[2] = {hvd_xasprintf("%s --null", sim), hvd_xasprintf("%s --state-dir %s --host {host}", sim, dir)};
    for (int i = 0; i < 2; i++) {
        HvdAgentCfg cfg;
        char err[256];
        hvd_agent_cfg_init(&cfg);
        cr_assert(hvd_agent_cfg_set_command(&cfg, cmds[i], err, sizeof err));
        HvdAgentResult res;
        hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), &res);
        ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
        cr_assert_str_eq(res.correlation_id, "corr-1");
        hvd_agent_result_free(&res);
        const char *bad = "{\"operation\":\"nope\",\"resource_spec\":{},\"correlation_id\":\"c\"}\n";
        hvd_agent_call(&cfg, "hv01", "nope", bad, strlen(bad), &res);
        ASSERT_OUTCOME(res, HVD_OUT_AGENT_ERROR);
        cr_assert_str_eq(res.code, "UNSUPPORTED_OPERATION");
        hvd_agent_result_free(&res);
        hvd_agent_cfg_free(&cfg);
        free(cmds[i]);
    }
    free(sim);
    char *rm = hvd_xasprintf("rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
    free(rm);
}

Test(agent_call, clixml_and_noise_around_the_envelope)
{
    HvdAgentResult res;
    run_agent("agent_clixml", NULL, 5000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert_str_eq(res.correlation_id, "corr-clixml");
    cr_assert_str_eq(hvd_node_get_str(res.data, "vm_id"), "0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f");
    hvd_agent_result_free(&res);
}

/* ---- exit statuses ---- */

Test(agent_call, exit_status_matrix)
{
    static const struct {
        const char *args;
        HvdOutcome want;
    } cases[] = {
        {"3 none", HVD_OUT_TRANSPORT},
        {"1 none", HVD_OUT_TRANSPORT},
        {"0 none", HVD_OUT_PROTOCOL_ERROR},
        {"255 none", HVD_OUT_UNREACHABLE},
        {"3 envelope error OPERATION_ERROR", HVD_OUT_AGENT_ERROR},
        {"255 envelope error OPERATION_ERROR", HVD_OUT_AGENT_ERROR}, /* the envelope wins */
        {"1 envelope error HOST_BUSY", HVD_OUT_RETRYABLE},
        {"0 envelope error TRANSIENT", HVD_OUT_RETRYABLE},
        {"0 envelope partial DISK_FAILED", HVD_OUT_AGENT_ERROR},
        {"2 envelope success none", HVD_OUT_SUCCESS},
        {"0 envelope bogus X", HVD_OUT_PROTOCOL_ERROR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        HvdAgentResult res;
        run_agent("agent_exit", cases[i].args, 5000, 0, &res);
        cr_assert_eq(res.outcome, cases[i].want, "agent_exit %s: got %s (%s), want %s", cases[i].args,
                     hvd_outcome_name(res.outcome), res.detail, hvd_outcome_name(cases[i].want));
        cr_assert(res.exited);
        cr_assert_eq(res.exit_code, atoi(cases[i].args));
        cr_assert(strstr(res.stderr_tail, "agent_exit: exiting") != NULL);
        if (cases[i].want == HVD_OUT_AGENT_ERROR && strstr(cases[i].args, "OPERATION_ERROR")) {
            cr_assert_str_eq(res.code, "OPERATION_ERROR");
            cr_assert_str_eq(res.message, "Operation error: simulated");
        }
        hvd_agent_result_free(&res);
    }
}

Test(agent_call, spawn_failure_is_not_sent_and_transient)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    cr_assert(hvd_agent_cfg_set_command(&cfg, "/nonexistent/hvd-agent {host}", err, sizeof err));
    HvdAgentResult res;
    hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), &res);
    ASSERT_OUTCOME(res, HVD_OUT_NOT_SENT);
    cr_assert(strstr(res.detail, "cannot run") != NULL, "%s", res.detail);
    cr_assert(hvd_outcome_transient(res.outcome));
    hvd_agent_result_free(&res);
    hvd_agent_cfg_free(&cfg);
}

/* ---- timeouts ---- */

Test(agent_call, hang_times_out_within_a_second)
{
    HvdAgentResult res;
    run_agent("agent_hang", NULL, 500, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_TIMEOUT);
    cr_assert(res.timed_out);
    cr_assert_geq(res.elapsed_ms, 500);
    cr_assert_leq(res.elapsed_ms, 1500, "took %lld ms", (long long)res.elapsed_ms);
    cr_assert_eq(res.term_signal, SIGTERM);
    cr_assert_not(res.killed);
    hvd_agent_result_free(&res);
}

Test(agent_call, sigterm_ignored_then_sigkill_after_grace)
{
    HvdAgentResult res;
    run_agent("agent_hang", "--ignore-term", 500, 300, &res);
    ASSERT_OUTCOME(res, HVD_OUT_TIMEOUT);
    cr_assert(res.killed);
    cr_assert_eq(res.term_signal, SIGKILL);
    cr_assert_geq(res.elapsed_ms, 800);
    cr_assert_leq(res.elapsed_ms, 1800, "took %lld ms", (long long)res.elapsed_ms);
    hvd_agent_result_free(&res);
}

Test(agent_call, never_reads_stdin_with_a_large_request)
{
    /* 512 KiB: far more than a pipe holds, so a blocking write would deadlock. */
    HvdBuf big = {0};
    hvd_buf_puts(&big, "{\"operation\":\"noop-test\",\"resource_spec\":{\"pad\":\"");
    for (int i = 0; i < 512 * 1024; i++) hvd_buf_append(&big, "a", 1);
    hvd_buf_puts(&big, "\"},\"correlation_id\":\"c\"}\n");
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *path = agent_path("agent_nostdin");
    char *cmd = hvd_xasprintf("%s 300", path);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err));
    cr_assert(hvd_agent_cfg_set_timeout(&cfg, "*", 5000));
    HvdAgentResult res;
    hvd_agent_call(&cfg, "hv01", "noop-test", big.data, big.len, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert_lt(res.elapsed_ms, 3000);
    hvd_agent_result_free(&res);
    /* A child that exits at once without reading: EPIPE, and SIGPIPE must not kill us. */
    cr_assert(hvd_agent_cfg_set_command(&cfg, "/bin/true", err, sizeof err));
    hvd_agent_call(&cfg, "hv01", "noop-test", big.data, big.len, &res);
    ASSERT_OUTCOME(res, HVD_OUT_PROTOCOL_ERROR);
    hvd_agent_result_free(&res);
    free(cmd);
    free(path);
    hvd_buf_free(&big);
    hvd_agent_cfg_free(&cfg);
}

/* ---- caps ---- */

Test(agent_call, stdout_flood_is_a_protocol_error)
{
    HvdAgentResult res;
    run_agent("agent_flood_stdout", NULL, 10000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_PROTOCOL_ERROR);
    cr_assert(res.output_overflow);
    cr_assert(res.killed);
    cr_assert_eq(res.stdout_bytes, (size_t)HVD_AGENT_MAX_OUTPUT + 1);
    cr_assert_lt(res.elapsed_ms, 5000);
    cr_assert_not(hvd_outcome_transient(res.outcome));
    hvd_agent_result_free(&res);
    /* Over the cap, then a valid envelope: still refused. */
    run_agent("agent_flood_stdout", "1100000", 10000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_PROTOCOL_ERROR);
    hvd_agent_result_free(&res);
    /* Under the cap, then a valid envelope: fine. */
    run_agent("agent_flood_stdout", "900000", 10000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    hvd_agent_result_free(&res);
}

Test(agent_call, stderr_flood_keeps_only_the_tail)
{
    HvdAgentResult res;
    run_agent("agent_flood_stderr", "8", 10000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    size_t n = strlen(res.stderr_tail);
    cr_assert_leq(n, 4096);
    cr_assert_geq(n, 4000);
    cr_assert(n >= 12 && strcmp(res.stderr_tail + n - 12, "TAIL-MARKER\n") == 0);
    hvd_agent_result_free(&res);
}

/* ---- children that linger ---- */

Test(agent_call, closes_stdout_early_then_exits)
{
    HvdAgentResult res;
    run_agent("agent_early_close", "answer 1000", 5000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert(res.exited);
    cr_assert_geq(res.elapsed_ms, 1000, "waits for the exit");
    cr_assert_lt(res.elapsed_ms, 2500);
    hvd_agent_result_free(&res);
}

Test(agent_call, closes_stdout_early_and_keeps_running)
{
    HvdAgentResult res;
    run_agent("agent_early_close", "silent", 500, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_TIMEOUT);
    cr_assert_geq(res.elapsed_ms, 500);
    cr_assert_leq(res.elapsed_ms, 1500, "took %lld ms", (long long)res.elapsed_ms);
    hvd_agent_result_free(&res);
    /* Answered, then kept running past the deadline: the answer wins, the call ends at the deadline. */
    run_agent("agent_early_close", "answer 30000", 500, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert(res.timed_out);
    cr_assert_leq(res.elapsed_ms, 1500, "took %lld ms", (long long)res.elapsed_ms);
    hvd_agent_result_free(&res);
}

static bool pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X'; /* a zombie is dead */
}

Test(agent_call, grandchild_holding_the_pipes_is_killed)
{
    char pidfile[] = "/tmp/hvd-orphan-XXXXXX";
    int fd = mkstemp(pidfile);
    cr_assert_geq(fd, 0);
    close(fd);
    HvdAgentResult res;
    run_agent("agent_orphan", pidfile, 10000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    cr_assert_lt(res.elapsed_ms, 2000, "did not wait for the grandchild: %lld ms", (long long)res.elapsed_ms);
    cr_assert(res.killed);
    FILE *f = fopen(pidfile, "r");
    int gpid = 0;
    cr_assert(f && fscanf(f, "%d", &gpid) == 1);
    fclose(f);
    unlink(pidfile);
    for (int i = 0; i < 100 && pid_alive(gpid); i++) usleep(10000);
    cr_assert_not(pid_alive(gpid), "grandchild %d still alive", gpid);
    hvd_agent_result_free(&res);
}

/* ---- cancellation ---- */

static atomic_int cancel_flag;

static void *raise_cancel(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    atomic_store(&cancel_flag, 1);
    return NULL;
}

Test(agent_call, cancel_stops_the_call)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *path = agent_path("agent_hang");
    cr_assert(hvd_agent_cfg_set_command(&cfg, path, err, sizeof err));
    HvdAgentCallOpts opts = {.timeout_ms = 20000, .cancel = &cancel_flag};
    pthread_t t;
    pthread_create(&t, NULL, raise_cancel, NULL);
    HvdAgentResult res;
    hvd_agent_call_opts(&cfg, &opts, "hv01", "noop-test", REQ, strlen(REQ), &res);
    pthread_join(t, NULL);
    ASSERT_OUTCOME(res, HVD_OUT_CANCELLED);
    cr_assert_lt(res.elapsed_ms, 1500);
    hvd_agent_result_free(&res);
    free(path);
    hvd_agent_cfg_free(&cfg);
}

/* ---- many calls ---- */

static HvdAgentCfg shared_cfg;

typedef struct {
    int n, failures, id;
    char first_error[512];
} Worker;

static void *call_many(void *arg)
{
    Worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        char req[256];
        char corr[64];
        snprintf(corr, sizeof corr, "corr-%d-%d", w->id, i);
        int len = snprintf(req, sizeof req,
                           "{\"operation\":\"noop-test\",\"resource_spec\":{},"
                           "\"correlation_id\":\"%s\"}\n",
                           corr);
        HvdAgentResult res;
        hvd_agent_call(&shared_cfg, "hv01", "noop-test", req, (size_t)len, &res);
        if (res.outcome != HVD_OUT_SUCCESS || !res.correlation_id || strcmp(res.correlation_id, corr) != 0) {
            if (!w->failures++)
                snprintf(w->first_error, sizeof w->first_error, "%s: %.400s", hvd_outcome_name(res.outcome),
                         res.detail);
        }
        hvd_agent_result_free(&res);
    }
    return NULL;
}

static void run_threads(int threads, int per_thread)
{
    pthread_t t[8];
    Worker w[8];
    for (int i = 0; i < threads; i++) {
        w[i] = (Worker){.n = per_thread, .id = i};
        pthread_create(&t[i], NULL, call_many, &w[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].failures, 0, "thread %d: %d failures, first: %s", i, w[i].failures, w[i].first_error);
    }
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    cr_assert(f && fscanf(f, "%ld %ld", &size, &res) == 2);
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static bool has_children(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0; /* -1/ECHILD: none at all */
}

Test(agent_call, ten_thousand_calls_without_leaks, .timeout = 240)
{
    char err[256];
    hvd_agent_cfg_init(&shared_cfg);
    char *path = agent_path("agent_echo");
    cr_assert(hvd_agent_cfg_set_command(&shared_cfg, path, err, sizeof err));
    cr_assert(hvd_agent_cfg_set_timeout(&shared_cfg, "*", 10000));
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's quarantine holds freed memory, so RSS grows by design; LeakSanitizer
     * checks the memory instead, over fewer calls (ASan makes each much slower). */
    const int per_thread = 250;
    const long rss_slack_kib = 1L << 30;
#else
    const int per_thread = 2500; /* 4 x 2500 = 10 000 calls */
    const long rss_slack_kib = 2048;
#endif
    run_threads(4, 100); /* warm up the allocator and the thread stacks */
    int fds0 = count_fds();
    long rss0 = rss_kib();
    cr_assert_not(has_children());
    run_threads(4, per_thread);
    int fds1 = count_fds();
    long rss1 = rss_kib();
    cr_assert_eq(fds1, fds0, "descriptors grew from %d to %d", fds0, fds1);
    cr_assert_not(has_children(), "a child was left unreaped");
    cr_assert_leq(rss1 - rss0, rss_slack_kib, "RSS grew from %ld KiB to %ld KiB", rss0, rss1);
    free(path);
    hvd_agent_cfg_free(&shared_cfg);
}

Test(agent_call, output_buffered_before_exit_is_kept_without_eof_grace)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *path = agent_path("agent_orphan");
    cr_assert(hvd_agent_cfg_set_command(&cfg, path, err, sizeof err));
    cfg.eof_grace_ms = 0;
    for (int i = 0; i < 20; i++) {
        HvdAgentResult res;
        hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), &res);
        ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
        cr_assert_lt(res.elapsed_ms, 1000);
        hvd_agent_result_free(&res);
    }
    free(path);
    hvd_agent_cfg_free(&cfg);
}

Test(agent_call, the_agent_inherits_only_stdio_and_default_sigpipe)
{
    /* A descriptor opened without O_CLOEXEC, and SIGPIPE ignored, as a careless
     * library or the worker itself might leave them. */
    int leaky = open("/dev/null", O_RDONLY);
    cr_assert_geq(leaky, 3);
    signal(SIGPIPE, SIG_IGN);
    HvdAgentResult res;
    run_agent("agent_fds", NULL, 5000, 0, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    const HvdNode *fds = hvd_node_get(res.data, "fds");
    cr_assert(fds && fds->type == HVD_ARRAY);
    cr_assert_eq(fds->u.arr.n, 3, "the agent got %zu descriptors", fds->u.arr.n);
    for (size_t i = 0; i < 3; i++) cr_assert_eq(fds->u.arr.items[i]->u.i, (int64_t)i);
    const HvdNode *sp = hvd_node_get(res.data, "sigpipe_default");
    cr_assert(sp && sp->type == HVD_BOOL && sp->u.b, "SIGPIPE must be default and unblocked in the agent");
    hvd_agent_result_free(&res);
    close(leaky);
}

/* ---- issue 12 ---- */

static char *leaky_cmd(const char *mode)
{
    char *path = agent_path("agent_leaky");
    char *cmd = hvd_xasprintf("%s %s", path, mode);
    free(path);
    return cmd;
}

static const char INIT_REQ[] = "{\"operation\":\"vm.initialize\",\"resource_spec\":{\"guest_la_pw\":\"S3cret!pw\"},"
                               "\"correlation_id\":\"corr-1\",\"metadata\":{\"attempt\":1}}\n";

static HvdOutcome call_leaky(const char *mode, const char *op, const char *req, const HvdAgentCallOpts *opts,
                                  HvdAgentResult *res)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *cmd = leaky_cmd(mode);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    HvdOutcome o = hvd_agent_call_opts(&cfg, opts, "hv01", op, req, strlen(req), res);
    free(cmd);
    hvd_agent_cfg_free(&cfg);
    return o;
}

static bool node_contains(const HvdNode *n, const char *needle)
{
    char *j = hvd_node_to_json(n);
    bool hit = strstr(j, needle) != NULL;
    free(j);
    return hit;
}

/* Item 4: the agent's message, logs and stderr tail went unmasked into
 * envelopes, events, job_stages, dead letters and headers. They are masked
 * where they enter: the call's result. */
Test(agent_issue12, secrets_in_agent_output_are_masked_at_the_call)
{
    const char *const secrets[] = {"S3cret!pw"};
    HvdAgentCallOpts opts = {.secrets = secrets, .n_secrets = 1};
    HvdAgentResult res;
    call_leaky("leak", "vm.initialize", INIT_REQ, &opts, &res);
    ASSERT_OUTCOME(res, HVD_OUT_AGENT_ERROR);
    cr_assert_str_eq(res.message, "Set-LocalUser failed: the password *** does not meet the policy");
    cr_assert_not(node_contains(res.envelope, "S3cret"), "the answer still holds the password");
    cr_assert(node_contains(res.logs, "$env:GuestLaPw = '***'"));
    cr_assert_null(strstr(res.stderr_tail, "S3cret"), "stderr: %s", res.stderr_tail);
    cr_assert_not_null(strstr(res.stderr_tail, "$env:GuestLaPw = '***'"), "stderr: %s", res.stderr_tail);
    cr_assert_null(strstr(res.detail, "S3cret"), "%s", res.detail);
    hvd_agent_result_free(&res);
    /* without the secrets given nothing is masked: the masking is the call's */
    call_leaky("leak", "vm.initialize", INIT_REQ, NULL, &res);
    cr_assert_str_eq(res.message, "Set-LocalUser failed: the password S3cret!pw does not meet the policy");
    hvd_agent_result_free(&res);
}

/* The stderr tail is the last bytes: a password cut by its start is masked too. */
Test(agent_issue12, a_secret_cut_by_the_stderr_tail_is_masked)
{
    const char *const secrets[] = {"S3cret!pw"};
    HvdAgentCallOpts opts = {.secrets = secrets, .n_secrets = 1};
    HvdAgentResult res;
    call_leaky("longerr", "vm.initialize", INIT_REQ, &opts, &res);
    cr_assert_eq(strncmp(res.stderr_tail, "***...", 6), 0, "tail starts: %.20s", res.stderr_tail);
    cr_assert_null(strstr(res.stderr_tail, "ret!pw"), "a piece of the password leaked");
    hvd_agent_result_free(&res);
}

/* Item 1: stderr in a Windows code page and a message that is not UTF-8 (or
 * holds NUL) reached text columns (22021); the answer itself was lost. */
Test(agent_issue12, output_not_in_utf8_is_read_and_made_utf8)
{
    HvdAgentResult res;
    const char req[] = "{\"operation\":\"vm.create\",\"resource_spec\":{},\"correlation_id\":\"c\"}\n";
    call_leaky("cp1252", "vm.create", req, NULL, &res);
    ASSERT_OUTCOME(res, HVD_OUT_AGENT_ERROR);
    cr_assert_str_eq(res.message, "Acc\xef\xbf\xbds refus\xef\xbf\xbd \xef\xbf\xbd New-VM");
    cr_assert_str_eq(res.code,
                     "OPERATION_\xef\xbf\xbd"
                     "ERROR",
                     "NUL replaced");
    cr_assert(hvd_utf8_valid(res.stderr_tail, strlen(res.stderr_tail)), "stderr: %s", res.stderr_tail);
    cr_assert_not_null(strstr(res.stderr_tail, "\xef\xbf\xbd"
                                               "chec: acc\xef\xbf\xbds"),
                       "%s", res.stderr_tail);
    cr_assert(hvd_utf8_valid(res.detail, strlen(res.detail)));
    hvd_agent_result_free(&res);
}

/* Item 10: an answer for another request, or a vm.create without a GUID. */
Test(agent_issue12, answers_are_bound_to_their_request)
{
    const char req[] = "{\"operation\":\"vm.create\",\"resource_spec\":{},\"correlation_id\":\"corr-1\"}\n";
    HvdAgentCallOpts opts = {.correlation_id = "corr-1"};
    HvdAgentResult res;
    call_leaky("leak", "vm.create", req, &opts, &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    hvd_agent_result_free(&res);
    call_leaky("wrongcorr", "vm.create", req, &opts, &res);
    ASSERT_OUTCOME(res, HVD_OUT_PROTOCOL_ERROR);
    cr_assert_str_eq(res.detail, "the agent's answer carries another request's correlation_id");
    cr_assert_null(res.envelope, "nothing of it is used");
    hvd_agent_result_free(&res);
    call_leaky("badvmid", "vm.create", req, &opts, &res);
    ASSERT_OUTCOME(res, HVD_OUT_PROTOCOL_ERROR);
    cr_assert_not_null(strstr(res.detail, "GUID in data.vm_id"), "%s", res.detail);
    hvd_agent_result_free(&res);
}

static const char *env_value(const HvdNode *env, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; env && i < env->u.arr.n; i++) {
        const char *e = env->u.arr.items[i]->u.s.ptr;
        if (strncmp(e, name, nl) == 0 && e[nl] == '=') return e + nl + 1;
    }
    return NULL;
}

/* Item 8: the agent inherited the worker's whole environment, database and
 * broker passwords included. */
Test(agent_issue12, the_agent_gets_an_explicit_environment)
{
    setenv("HVD_PG_DSN", "postgresql://app:dbpass@db/hvdeploy", 1);
    setenv("HVD_AMQP_URL", "amqp://u:mqpass@mq/", 1);
    setenv("HVD_AMQP_URL_FILE", "/run/secrets/url", 1);
    setenv("PGPASSWORD", "pgpass", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws", 1);
    setenv("SOME_OTHER", "x", 1);
    setenv("MY_TOOL_HOME", "/opt/tool", 1);
    setenv("HVD_SIM_LATENCY_MS", "*=1", 1);
    setenv("HOME", "/home/hv", 1);
    setenv("SSH_AUTH_SOCK", "/run/ssh.sock", 1);
    setenv("LANG", "de_DE.ISO-8859-1", 1);
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *cmd = leaky_cmd("env");
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    cr_assert(hvd_agent_cfg_set_env_pass(&cfg, "MY_TOOL_HOME", err, sizeof err), "%s", err);
    static const char *const refused[] = {"HVD_PG_DSN",   "HVD_AMQP_URL_FILE", "PGPASSWORD", "MY_API_TOKEN",
                                          "SSH_KEY_PATH", "A_SECRET",          "bad-name",   "1X"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert_not(hvd_agent_cfg_set_env_pass(&cfg, refused[i], err, sizeof err), "%s was accepted", refused[i]);
    cr_assert_not(hvd_agent_cfg_set_env_pass(&cfg, "MY_TOOL_HOME,HVD_PG_DSN", err, sizeof err));
    cr_assert_str_eq(err, "HVD_AGENT_ENV_PASS: 'HVD_PG_DSN' may not be passed to the agent (credentials: HVD_PG_DSN*, "
                          "HVD_AMQP_URL*, names with PASS, SECRET, KEY, TOKEN or CREDENTIAL)");
    HvdAgentResult res;
    hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), &res);
    ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
    const HvdNode *env = hvd_node_get(res.data, "env");
    cr_assert(env && env->type == HVD_ARRAY);
    cr_assert_not_null(env_value(env, "PATH"));
    cr_assert_str_eq(env_value(env, "HOME"), "/home/hv");
    cr_assert_str_eq(env_value(env, "SSH_AUTH_SOCK"), "/run/ssh.sock");
    cr_assert_str_eq(env_value(env, "LANG"), "C.UTF-8");
    cr_assert_str_eq(env_value(env, "LC_ALL"), "C.UTF-8");
    cr_assert_str_eq(env_value(env, "HVD_SIM_LATENCY_MS"), "*=1");
    cr_assert_str_eq(env_value(env, "MY_TOOL_HOME"), "/opt/tool", "listed in HVD_AGENT_ENV_PASS");
    static const char *const absent[] = {"HVD_PG_DSN", "HVD_AMQP_URL",          "HVD_AMQP_URL_FILE",
                                         "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "SOME_OTHER"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_assert_null(env_value(env, absent[i]), "%s reached the agent", absent[i]);
    cr_assert_not(node_contains(env, "dbpass") || node_contains(env, "mqpass"));
    hvd_agent_result_free(&res);
    free(cmd);
    hvd_agent_cfg_free(&cfg);
}

/* "setsid" agent leftovers, from PIDFILE; counts those still running. */
static int survivors(const char *pidfile, int *n_listed)
{
    FILE *f = fopen(pidfile, "r");
    int pid, alive = 0, n = 0;
    while (f && fscanf(f, "%d", &pid) == 1) {
        n++;
        alive += pid_alive(pid);
    }
    if (f) fclose(f);
    *n_listed = n;
    return alive;
}

static int run_orphans(int calls, char *pidfile)
{
    int fd = mkstemp(pidfile);
    cr_assert_geq(fd, 0);
    close(fd);
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *path = agent_path("agent_orphan");
    char *cmd = hvd_xasprintf("%s %s setsid", path, pidfile);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    for (int i = 0; i < calls; i++) {
        HvdAgentResult res;
        hvd_agent_call(&cfg, "hv01", "noop-test", REQ, strlen(REQ), &res);
        ASSERT_OUTCOME(res, HVD_OUT_SUCCESS);
        hvd_agent_result_free(&res);
    }
    free(cmd);
    free(path);
    hvd_agent_cfg_free(&cfg);
    int listed = 0, alive = 0;
    for (int i = 0; i < 100 && (alive = survivors(pidfile, &listed)) > 0; i++) {
        usleep(20 * 1000);
        hvd_agent_reap_orphans();
    }
    cr_assert_eq(listed, calls, "each call left one process behind");
    return alive;
}

/* The problem, as it was: a child in its own session outlives the group kill. */
Test(agent_issue12, without_a_subreaper_setsid_leftovers_survive)
{
    char pidfile[] = "/tmp/hvd-orphans-XXXXXX";
    int alive = run_orphans(4, pidfile);
    int listed;
    FILE *f = fopen(pidfile, "r");
    for (int pid; f && fscanf(f, "%d", &pid) == 1;) kill(pid, SIGKILL); /* clean up */
    if (f) fclose(f);
    (void)survivors(pidfile, &listed);
    unlink(pidfile);
    cr_assert_eq(alive, 4, "%d of 4 survived", alive);
}

/* The fix: as a subreaper the leftovers come back to us and are killed. */
Test(agent_issue12, a_subreaper_leaves_no_survivor)
{
    cr_assert_eq(hvd_agent_become_subreaper(), 0);
    char pidfile[] = "/tmp/hvd-orphans-XXXXXX";
    int alive = run_orphans(8, pidfile);
    unlink(pidfile);
    cr_assert_eq(alive, 0, "%d of 8 leftovers survived", alive);
    cr_assert_eq(hvd_agent_reap_orphans(), 0, "nothing left to reap");
}
