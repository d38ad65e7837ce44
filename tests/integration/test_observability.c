/* Integration tests of what operators watch (issue 6): the worker's /metrics
 * in Prometheus text format, parsed, with counters moving as jobs run, and
 * /healthz going unready while the broker is stopped and ready again after.
 * Stopping the shared broker affects other tests: ctest runs these serially. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"
#include "it_http.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

#define METRICS_PORT 19473

static WpWorld *W;

static void fini(void)
{
    if (hvd_it_env("HVD_DEV_SH") && wp_svc("rmq-start") != 0) fprintf(stderr, "rmq-start failed\n");
    wp_world_free(W);
    W = NULL;
}

TestSuite(observability, .fini = fini, .timeout = 180);

static double scrape(const char *series)
{
    char *body;
    cr_assert_eq(http_get(METRICS_PORT, "/metrics", &body), 200);
    bool ok;
    double v = sample_sum(body, series, &ok);
    cr_assert(ok, "the /metrics text is not in the Prometheus format:\n%s", body);
    free(body);
    return v;
}

static void run_job(WpWorld *w)
{
    char reply[128];
    wp_private_queue(w, reply, sizeof reply);
    HvdNode *job = wp_job_load("full-windows.json", "hv01.lab.example");
    wp_publish_job(w, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = reply, .message_id = WP_JOB_ID});
    WpMsg m[1];
    cr_assert_eq(wp_collect(w->broker, reply, 1, 30000, m), 1, "no envelope");
    cr_assert_str_eq(wp_str(m[0].body, "status"), "success");
    wp_msgs_free(m, 1);
    hvd_node_free(job);
}

Test(observability, metrics_move_as_jobs_run_and_healthz_follows_the_broker)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    HVD_IT_NEED("HVD_DEV_SH");
    W = wp_world_new(NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", METRICS_PORT);
    WpWorker *k = wp_start(W, &(WpOptions){.metrics_addr = addr});
    cr_assert(wp_wait_ready(k, 30000), "worker did not start:\n%s", wp_log_tail(k));

    char *body;
    int st = 0;
    for (int i = 0; i < 50 && (st = http_get(METRICS_PORT, "/healthz", &body)) != 200; i++) {
        free(body);
        usleep(200 * 1000);
    }
    cr_assert_eq(st, 200, "healthz not ready with both services up");
    free(body);

    double jobs0 = scrape("hvdeploy_jobs_total{");
    double stages0 = scrape("hvdeploy_stage_duration_seconds_count{");
    double publish0 = scrape("hvdeploy_amqp_operations_total{op=\"publish\"}");
    run_job(W);
    run_job(W);
    /* the envelope reaches us before the publisher's counters are bumped: let them settle */
    usleep(500 * 1000);
    cr_assert_eq(scrape("hvdeploy_jobs_total{job_type=\"managed_deployment\",status=\"success\"}") - 0, jobs0 + 2,
                 "jobs_total did not count two successes");
    cr_assert_eq(scrape("hvdeploy_stage_duration_seconds_count{") - stages0, 8, "8 stages expected");
    cr_assert_gt(scrape("hvdeploy_amqp_operations_total{op=\"publish\"}"), publish0);
    cr_assert_gt(scrape("hvdeploy_envelopes_published_total"), 0);
    cr_assert_gt(scrape("hvdeploy_pg_transactions_total"), 0);
    cr_assert_gt(scrape("process_resident_memory_bytes"), 0);

    /* The broker goes away: the worker is no longer ready, then ready again. */
    cr_assert_eq(wp_svc("rmq-stop"), 0);
    long long t0 = hvd_it_now_ms();
    for (;;) {
        st = http_get(METRICS_PORT, "/healthz", &body);
        if (st == 503) break;
        free(body);
        cr_assert_lt(hvd_it_now_ms() - t0, 30000, "healthz stayed %d with the broker stopped", st);
        usleep(200 * 1000);
    }
    cr_assert(strstr(body, "broker"), "503 without the reason: %s", body);
    free(body);
    cr_assert_eq(wp_svc("rmq-start"), 0);
    t0 = hvd_it_now_ms();
    while ((st = http_get(METRICS_PORT, "/healthz", &body)) != 200) {
        free(body);
        cr_assert_lt(hvd_it_now_ms() - t0, 60000, "healthz did not recover after the broker came back");
        usleep(500 * 1000);
    }
    free(body);
    cr_assert_geq(scrape("hvdeploy_reconnects_total{target=\"amqp\"}"), 1);
    cr_assert(wp_world_reconnect(W, 30000));
    run_job(W); /* and it still works */
    cr_assert_eq(wp_stop(k, 20000), 0);
}
