/* Integration tests of the operator's subcommands of hvdeployctl (v1.1):
 * status --events and --follow, live output in submit --follow, the list
 * filters, hosts and retry, against a real worker (agent_talky in front of
 * the simhost), broker and database: output, JSON and exit codes. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(ctl_view, .fini = fini, .timeout = 180);

typedef struct {
    int rc;
    char *out, *err;
} Run;

static void run_free(Run *r)
{
    free(r->out);
    free(r->err);
}

static char *slurp(const char *path)
{
    char *s = wp_read_file(path);
    return s ? s : hvd_xstrdup("");
}

/* hvdeployctl ARGS (already shell-quoted) on this world's database and prefix. */
static Run ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static Run ctl(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args = NULL;
    cr_assert(vasprintf(&args, fmt, ap) >= 0);
    va_end(ap);
    char *out = hvd_xasprintf("%s/ctl.out", W->dir), *err = hvd_xasprintf("%s/ctl.err", W->dir);
    Run r = {0};
    r.rc = hvd_it_run("HVD_PG_DSN='%s' HVD_AMQP_PREFIX='%s' %s/hvdeployctl %s >'%s' 2>'%s' </dev/null", W->dsn,
                      W->prefix, HVD_BIN_DIR, args, out, err);
    r.out = slurp(out);
    r.err = slurp(err);
    cr_log_info("hvdeployctl %s -> %d\nstdout:\n%s\nstderr:\n%s", args, r.rc, r.out, r.err);
    free(args);
    free(out);
    free(err);
    return r;
}

static WpWorker *start(const char *const *extra)
{
    char *cmd =
        hvd_xasprintf("%s/agent_talky %s/hvdeploy-simhost --state-dir %s", HVD_TEST_AGENT_DIR, HVD_BIN_DIR, W->sim_dir);
    WpWorker *k = wp_start(W, &(WpOptions){.agent_cmd = cmd, .extra = extra, .host_concurrency = "1"});
    free(cmd);
    cr_assert(wp_wait_ready(k, 30000), "the worker did not start:\n%s", wp_log_tail(k));
    return k;
}

/* Publishes a job of file to the world (fresh id and VM name); returns it. */
static HvdNode *submit(const char *file, const char *reply, const char *host)
{
    HvdNode *job = wp_job_load(file, host);
    HvdNode *o = wp_job_at(job, "options");
    if (o) hvd_node_map_set_str(o, "on_failure", "keep");
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = reply, .correlation_id = "corr-view"});
    return job;
}

static void await_envelope(const char *reply, const char *want_status)
{
    WpMsg m[1];
    cr_assert_eq(wp_collect(W->broker, reply, 1, 60000, m), 1, "no envelope");
    cr_assert_str_eq(wp_str(m[0].body, "status"), want_status, "%s", wp_str(m[0].body, "message"));
    wp_msgs_free(m, 1);
}

Test(ctl_view, status_events_timeline)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=0", NULL};
    WpWorker *k = start(extra);
    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    HvdNode *job = submit("minimal.json", reply, NULL);
    await_envelope(reply, "success");
    const char *id = wp_job_id(job);

    Run r = ctl("status %s --events", id);
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "timeline ("));
    cr_assert(strstr(r.out, "(job)          queued -> running"), "the job's transitions");
    cr_assert(strstr(r.out, "vm.create      running -> succeeded"), "the stage's transitions");
    run_free(&r);

    r = ctl("status %s --events --output json", id);
    cr_assert_eq(r.rc, 0);
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK);
    const HvdNode *ev = hvd_node_get(n, "events");
    cr_assert(ev && ev->type == HVD_ARRAY && ev->u.arr.n >= 4);
    const HvdNode *last = ev->u.arr.items[ev->u.arr.n - 1];
    cr_assert_str_eq(hvd_node_get_str(last, "to_status"), "succeeded");
    cr_assert(hvd_node_get(last, "stage")->type == HVD_NIL, "the job's end is the last event");
    int64_t prev = 0, id_v;
    for (size_t i = 0; i < ev->u.arr.n; i++) {
        cr_assert(hvd_node_get_int(ev->u.arr.items[i], "id", &id_v) && id_v > prev, "oldest first");
        prev = id_v;
    }
    hvd_node_free(n);
    run_free(&r);

    r = ctl("status %s --events --follow", id);
    cr_assert_eq(r.rc, 2, "--events and --follow exclude each other");
    run_free(&r);
    r = ctl("status 6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11 --events");
    cr_assert_eq(r.rc, 1, "an unknown job");
    cr_assert(strstr(r.err, "not found"));
    run_free(&r);
    r = ctl("status --help");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "--follow") && strstr(r.out, "--events"));
    run_free(&r);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* Runs `hvdeployctl ARGS` in the background, stdout into path; returns its pid. */
static pid_t ctl_bg(const char *path, const char *args)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("HVD_PG_DSN", W->dsn, 1);
        setenv("HVD_AMQP_PREFIX", W->prefix, 1);
        char *cmd = hvd_xasprintf("exec %s/hvdeployctl %s", HVD_BIN_DIR, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid, int timeout_ms)
{
    long long end = hvd_it_now_ms() + timeout_ms;
    int st;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (hvd_it_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(50000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ctl_view, status_follow_prints_live_output_until_the_end)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=6", "HVD_TEST_LINE_MS=400", "HVD_TEST_ONLY_OP=disk.create",
                           "HVD_TEST_STDERR_EVERY=3", NULL};
    WpWorker *k = start(extra);
    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    HvdNode *job = submit("full-windows.json", reply, NULL);
    const char *id = wp_job_id(job);
    cr_assert(wp_wait_stage_status(W, id, "disk.create", "running", 30000), "%s", wp_log_tail(k));
    usleep(900 * 1000); /* some lines are stored before we start following */
    char *path = hvd_xasprintf("%s/follow.out", W->dir);
    char *args = hvd_xasprintf("status %s --follow", id);
    pid_t pid = ctl_bg(path, args);
    int rc = wait_rc(pid, 60000);
    char *out = slurp(path);
    cr_log_info("status --follow -> %d:\n%s", rc, out);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "following job "));
    for (int i = 1; i <= 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "disk.create    %s disk.create line %d\n", i % 3 == 0 ? "!" : "|", i);
        cr_assert(strstr(out, want), "line %d is printed (%s)", i, want);
    }
    cr_assert(strstr(out, "stage nic.create     running"), "later transitions come live");
    cr_assert(strstr(out, "job                  succeeded"));
    cr_assert(strstr(out, "status     succeeded"), "then the final status");
    free(out);
    free(args);
    await_envelope(reply, "success");

    /* a finished job: its stored output, then its status at once */
    Run r = ctl("status %s --follow --output json", id);
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "\"lines\":[\"disk.create line 1\"]"));
    cr_assert(strstr(r.out, "\"status\":\"succeeded\""));
    run_free(&r);
    free(path);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(ctl_view, submit_follow_shows_output_lines)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=3", "HVD_TEST_LINE_MS=300", "HVD_TEST_ONLY_OP=vm.create", NULL};
    WpWorker *k = start(extra);
    /* a body without a job_id: submit adds a fresh one each time */
    HvdNode *job = wp_job_load("minimal.json", NULL);
    hvd_node_map_remove(job, "job_id");
    char *body = hvd_node_to_json(job), *path = hvd_xasprintf("%s/job.json", W->dir);
    FILE *f = fopen(path, "w");
    fputs(body, f);
    fclose(f);
    Run r = ctl("submit %s --follow --timeout 60", path);
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "vm.create      | vm.create line 1\n"));
    cr_assert(strstr(r.out, "vm.create      | vm.create line 3\n"));
    cr_assert(strstr(r.out, "status    success"));
    run_free(&r);
    /* another VM name: the simulated host keeps the first VM */
    hvd_node_free(job);
    job = wp_job_load("minimal.json", NULL);
    hvd_node_map_remove(job, "job_id");
    free(body);
    body = hvd_node_to_json(job);
    f = fopen(path, "w");
    fputs(body, f);
    fclose(f);
    r = ctl("submit %s --follow --output json --timeout 60", path);
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "\"stream\":\"stdout\""));
    run_free(&r);
    free(body);
    free(path);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(ctl_view, list_filters)
{
    W = wp_world_new(NULL);
    char *flag = hvd_xasprintf("%s/fail-nic", W->dir);
    FILE *f = fopen(flag, "w");
    fclose(f);
    char *fw = hvd_xasprintf("HVD_TEST_FAIL_WHILE=%s", flag);
    const char *extra[] = {"HVD_TEST_LINES=0", "HVD_TEST_FAIL_OP=nic.create", fw, NULL};
    WpWorker *k = start(extra);
    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    HvdNode *ok = submit("minimal.json", reply, "hv-list-a.lab");
    await_envelope(reply, "success");
    HvdNode *bad = submit("full-windows.json", reply, "hv-list-b.lab");
    await_envelope(reply, "partial");

    Run r = ctl("list --vm-name '%s' --output json", wp_job_vm_name(ok));
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, wp_job_id(ok)) && !strstr(r.out, wp_job_id(bad)));
    run_free(&r);
    r = ctl("list --code agent_error");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, wp_job_id(bad)) && !strstr(r.out, wp_job_id(ok)));
    run_free(&r);
    r = ctl("list --stage nic.create");
    cr_assert(strstr(r.out, wp_job_id(bad)) && !strstr(r.out, wp_job_id(ok)), "the failed job stopped at nic.create");
    run_free(&r);
    r = ctl("list --correlation-id corr-view --since 1h");
    cr_assert(strstr(r.out, wp_job_id(bad)) && strstr(r.out, wp_job_id(ok)));
    run_free(&r);
    r = ctl("list --since 2099-01-01T00:00:00Z");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "no jobs match\n");
    run_free(&r);
    r = ctl("list --since yesterday");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--since must be"));
    run_free(&r);
    r = ctl("list --host hv-list-a.lab --status succeeded --output json");
    cr_assert(strstr(r.out, wp_job_id(ok)) && !strstr(r.out, wp_job_id(bad)));
    run_free(&r);

    /* retry: the failure is gone, the job resumes from nic.create and succeeds */
    r = ctl("retry %s", wp_job_id(ok));
    cr_assert_eq(r.rc, 1, "a job that succeeded is not retried");
    cr_assert(strstr(r.err, "not failed"));
    run_free(&r);
    unlink(flag);
    long effects_vm = wp_pg_long(W,
                                 "SELECT attempts FROM hvdeploy.job_stages WHERE job_id = '%s' AND stage = "
                                 "'vm.create'",
                                 wp_job_id(bad));
    r = ctl("retry %s", wp_job_id(bad));
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "resumes from nic.create"));
    run_free(&r);
    await_envelope(reply, "success");
    cr_assert(wp_wait_job_status(W, wp_job_id(bad), "succeeded", 30000));
    cr_assert_eq(wp_pg_long(W, "SELECT attempts FROM hvdeploy.job_stages WHERE job_id = '%s' AND stage = 'vm.create'",
                            wp_job_id(bad)),
                 effects_vm, "vm.create did not run again");
    r = ctl("retry %s --output json", wp_job_id(bad));
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.out, "\"retried\":false"));
    run_free(&r);
    r = ctl("retry 6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11");
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "not found"));
    run_free(&r);
    r = ctl("retry not-a-uuid");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
    free(fw);
    free(flag);
    hvd_node_free(ok);
    hvd_node_free(bad);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(ctl_view, hosts_slots_waiting_and_circuit)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=10", "HVD_TEST_LINE_MS=500", "HVD_TEST_ONLY_OP=vm.create", NULL};
    WpWorker *k = start(extra);
    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    HvdNode *a = submit("minimal.json", reply, "hv-busy.lab");
    HvdNode *b = submit("minimal.json", reply, "hv-busy.lab");
    cr_assert(wp_wait_stage_status(W, wp_job_id(a), "vm.create", "running", 30000) ||
              wp_wait_stage_status(W, wp_job_id(b), "vm.create", "running", 1000));
    /* an open circuit on another host, as the breaker records it */
    wp_pg_long(W, "INSERT INTO hvdeploy.host_health (target_host, consecutive_fails, open_until) VALUES"
                  " ('hv-down.lab', 3, now() + interval '1 hour') RETURNING 1");
    long long end = hvd_it_now_ms() + 10000;
    Run r = {0};
    for (;;) {
        r = ctl("hosts --waiting");
        if (strstr(r.out, "host_busy") || hvd_it_now_ms() > end) break;
        run_free(&r);
        usleep(200000);
    }
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "hv-busy.lab                  1/1     1       1       0        1/0/0"),
              "slots and waiting");
    cr_assert(strstr(r.out, "host_busy"), "the waiting job and why");
    cr_assert(strstr(r.out, "hv-down.lab") && strstr(r.out, "open"));
    run_free(&r);
    r = ctl("hosts --output json");
    cr_assert_eq(r.rc, 0);
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK);
    const HvdNode *hosts = hvd_node_get(n, "hosts");
    cr_assert(hosts && hosts->u.arr.n == 2);
    const HvdNode *busy = hosts->u.arr.items[0], *down = hosts->u.arr.items[1];
    cr_assert_str_eq(hvd_node_get_str(busy, "host"), "hv-busy.lab");
    cr_assert_str_eq(hvd_node_get_str(busy, "circuit"), "closed");
    int64_t v;
    cr_assert(hvd_node_get_int(busy, "slots_in_use", &v) && v == 1);
    cr_assert(hvd_node_get_int(hvd_node_get(busy, "waiting_by_reason"), "host_busy", &v) && v == 1);
    cr_assert_str_eq(hvd_node_get_str(down, "circuit"), "open");
    cr_assert(hvd_node_get_int(down, "consecutive_failures", &v) && v == 3);
    hvd_node_free(n);
    run_free(&r);
    r = ctl("hosts extra");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
    await_envelope(reply, "success");
    await_envelope(reply, "success");
    hvd_node_free(a);
    hvd_node_free(b);
    cr_assert_eq(wp_stop(k, 15000), 0);
}
