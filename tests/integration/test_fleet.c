/* Integration tests of the fleet duties of real workers (issue 13): of two workers
 * exactly one exports the hvdeploy_fleet_* view (the other has no such series), the
 * view follows the jobs, the exporter prunes finished jobs after HVD_JOB_RETENTION
 * (hvdeploy_jobs_pruned_total), and when it dies the other takes over. Also
 * hvdeployctl prune: its output, exit codes and errors. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"
#include "it_http.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

#define PORT_A 19481
#define PORT_B 19482

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(fleet_worker, .fini = fini, .timeout = 240);

/* The sum of the samples of series on port, or -1 when nothing answered; *has
 * tells whether any sample of it was there. */
static double metric(int port, const char *series, bool *has)
{
    char *body = NULL;
    if (http_get(port, "/metrics", &body) != 200) {
        free(body);
        if (has) *has = false;
        return -1;
    }
    bool ok;
    double v = sample_sum(body, series, &ok);
    cr_assert(ok, "not the Prometheus text format:\n%s", body);
    if (has) {
        /* a sample line starts with the series at the start of a line */
        char *needle = hvd_xasprintf("\n%s", series);
        *has = strstr(body, needle) != NULL;
        free(needle);
    }
    free(body);
    return v;
}

/* Waits until series on port reaches want (>=); returns the last value. */
static double wait_metric(int port, const char *series, double want, int timeout_ms)
{
    long long until = hvd_it_now_ms() + timeout_ms;
    double v;
    while ((v = metric(port, series, NULL)) < want && hvd_it_now_ms() < until) usleep(250 * 1000);
    return v;
}

/* Waits until port exports a sample of series; whether it did. */
static bool wait_has(int port, const char *series, int timeout_ms)
{
    long long until = hvd_it_now_ms() + timeout_ms;
    bool has = false;
    while (metric(port, series, &has), !has && hvd_it_now_ms() < until) usleep(100 * 1000);
    return has;
}

static WpWorker *start(const char *name, int port)
{
    static const char *const extra[] = {"HVD_SWEEP_INTERVAL=1", "HVD_JOB_RETENTION=2", NULL};
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    WpWorker *k = wp_start(
        W, &(WpOptions){.name = name, .metrics_addr = addr, .sim_latency_ms = "vm.create=6000", .extra = extra});
    cr_assert(wp_wait_ready(k, 30000), "worker %s did not start:\n%s", name, wp_log_tail(k));
    return k;
}

Test(fleet_worker, one_exporter_its_view_its_pruner_and_a_successor)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    HVD_IT_NEED("HVD_PG_DSN");
    W = wp_world_new(NULL);
    WpWorker *a = start("fa", PORT_A), *b = start("fb", PORT_B);
    /* within a few sweeps one of them holds the role */
    long long until = hvd_it_now_ms() + 15000;
    double ea = 0, eb = 0;
    while (hvd_it_now_ms() < until && ea + eb != 1) {
        usleep(250 * 1000);
        ea = metric(PORT_A, "hvdeploy_fleet_exporter", NULL);
        eb = metric(PORT_B, "hvdeploy_fleet_exporter", NULL);
    }
    cr_assert_eq(ea + eb, 1, "exporters: a %g, b %g", ea, eb);
    int exp_port = ea == 1 ? PORT_A : PORT_B, other_port = ea == 1 ? PORT_B : PORT_A;
    WpWorker *exporter = ea == 1 ? a : b, *other = ea == 1 ? b : a;
    cr_assert_eq(wait_metric(exp_port, "hvdeploy_worker_ready", 1, 10000), 1);
    bool has;
    metric(other_port, "hvdeploy_fleet_jobs", &has);
    cr_assert_not(has, "the other worker exports the fleet view too");
    cr_assert(wait_has(exp_port, "hvdeploy_fleet_jobs{status=\"queued\",waiting_reason=\"host_busy\"}", 5000),
              "every state is exported, 0 when empty");

    /* a job runs (vm.create takes 6 s): the view shows it running */
    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    HvdNode *job = wp_job_load("minimal.json", "hv01.lab.example");
    const char *id = wp_job_id(job);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = reply, .message_id = WP_JOB_ID});
    cr_assert_eq(wait_metric(exp_port, "hvdeploy_fleet_jobs{status=\"running\",waiting_reason=\"\"}", 1, 8000), 1,
                 "the running job is not in the view");
    WpMsg m[1];
    cr_assert_eq(wp_collect(W->broker, reply, 1, 30000, m), 1, "no envelope");
    cr_assert_str_eq(wp_str(m[0].body, "status"), "success");
    wp_msgs_free(m, 1);

    /* 2 s after it ended, the exporter's next pruning round (12 sweeps) deletes it and its events */
    cr_assert_eq(wait_metric(exp_port, "hvdeploy_jobs_pruned_total", 1, 30000), 1, "not pruned:\n%s",
                 wp_log_tail(exporter));
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s'", id), 0);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_events WHERE job_id = '%s'", id), 0);
    cr_assert(wp_wait_log(exporter, "pruned 1 finished job(s)", 1000), "%s", wp_log_tail(exporter));
    cr_assert_eq(metric(other_port, "hvdeploy_jobs_pruned_total", NULL), 0, "the other pruned too");
    hvd_node_free(job);

    /* the exporter dies: the other one carries on */
    wp_kill9(exporter);
    cr_assert(wp_wait_log(other, "this worker now exports the fleet view and prunes finished jobs", 15000), "%s",
              wp_log_tail(other));
    cr_assert_eq(wait_metric(other_port, "hvdeploy_fleet_exporter", 1, 5000), 1);
    /* its first view follows at once (the role is logged just before it) */
    cr_assert(wait_has(other_port, "hvdeploy_fleet_oldest_queued_job_seconds", 5000),
              "the successor exports no fleet view");
    cr_assert_eq(wp_stop(other, 20000), 0);
}

/* ---- hvdeployctl prune ---- */

static char *ctl(int *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ctl(int *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args = NULL;
    if (vasprintf(&args, fmt, ap) < 0) abort();
    va_end(ap);
    char *out_path = hvd_xasprintf("%s/ctl.out", W->dir);
    *rc = hvd_it_run("HVD_PG_DSN='%s' %s/hvdeployctl %s >%s 2>&1", W->dsn, HVD_BIN_DIR, args, out_path);
    char *out = wp_read_file(out_path);
    free(out_path);
    free(args);
    return out;
}

Test(fleet_worker, ctl_prune_dry_run_then_prune_and_its_errors)
{
    HVD_IT_NEED("HVD_PG_DSN");
    W = wp_world_new(&(WpWorldOptions){.no_topology = true});
    int rc;
    free(ctl(&rc, "migrate"));
    cr_assert_eq(rc, 0);
    /* three finished jobs 40 days ago (one with its envelope unsent), one yesterday */
    PGresult *r = wp_pg_query(
        W, "INSERT INTO hvdeploy.jobs (job_id, job_type, status, correlation_id, reply_to, content_type, envelope,"
           " envelope_sent_at, finished_at) SELECT ('00000000-0000-4000-8000-00000000000' || i)::uuid,"
           " 'managed_deployment', 'succeeded', 'c', 'q', 'application/json', '\\x00',"
           " CASE WHEN i = 3 THEN NULL ELSE now() END, now() - (CASE WHEN i = 4 THEN 1 ELSE 40 END) * interval '1 day'"
           " FROM generate_series(1, 4) i");
    PQclear(r);
    PQclear(wp_pg_query(W, "INSERT INTO hvdeploy.job_events (job_id, to_status) SELECT job_id, 'succeeded'"
                           " FROM hvdeploy.jobs"));
    char *out = ctl(&rc, "prune --dry-run");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "would prune 2 finished jobs (2 events) that ended more than 30d ago\n");
    free(out);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs"), 4);
    out = ctl(&rc, "prune --batch 1 --output json");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "{\"dry_run\":false,\"older_than_s\":2592000,\"jobs\":2,\"events\":2,\"batches\":3}\n");
    free(out);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs"), 2, "the unsent one and yesterday's stay");
    out = ctl(&rc, "prune --older-than 12h");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "pruned 1 finished job (1 event) that ended more than 12h ago, in 1 batch\n");
    free(out);
    /* HVD_JOB_RETENTION is the default age; 0 keeps everything */
    out = ctl(&rc, "prune --job-retention 0");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "HVD_JOB_RETENTION is 0 (finished jobs are kept): nothing pruned"), "%s", out);
    free(out);
    /* errors: exit 2 and one line */
    out = ctl(&rc, "prune --older-than 0");
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "hvdeployctl prune: --older-than must be a duration of 1 s to 10 years"), "%s", out);
    free(out);
    out = ctl(&rc, "prune --older-than 3x");
    cr_assert_eq(rc, 2);
    free(out);
    out = ctl(&rc, "prune --batch 0");
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "--batch must be a whole number from 1 to 100000, not '0'"), "%s", out);
    free(out);
    out = ctl(&rc, "prune extra");
    cr_assert_eq(rc, 2);
    free(out);
    out = ctl(&rc, "prune --pg-dsn postgresql://hvdeploy:S3cr3tPw@127.0.0.1:1/x");
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "hvdeployctl prune: cannot connect to PostgreSQL"), "%s", out);
    cr_assert_null(strstr(out, "S3cr3tPw"), "%s", out);
    free(out);
}
