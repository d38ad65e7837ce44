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

/* GET path on 127.0.0.1:port with a plain socket: returns the HTTP status
 * and the body in *body (caller frees), or -1 when nothing answered. */
static int http_get(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    HvdBuf b = {0};
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0) hvd_buf_append(&b, chunk, (size_t)r);
    close(fd);
    int status = -1;
    if (b.data) sscanf(b.data, "HTTP/1.%*d %d", &status);
    const char *sep = b.data ? strstr(b.data, "\r\n\r\n") : NULL;
    *body = hvd_xstrdup(sep ? sep + 4 : "");
    hvd_buf_free(&b);
    return status;
}

/* Parses the text format: every sample line is NAME{labels} VALUE or NAME VALUE,
 * every # line is HELP or TYPE. Returns the sum of the samples whose series
 * starts with `series` (a name, optionally with the opening of its labels). */
static double sample_sum(const char *text, const char *series, bool *well_formed)
{
    double sum = 0;
    *well_formed = true;
    char *copy = hvd_xstrdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (strncmp(line, "# HELP ", 7) != 0 && strncmp(line, "# TYPE ", 7) != 0) *well_formed = false;
            continue;
        }
        char *sp = strrchr(line, ' ');
        char *end = NULL;
        double v = sp ? strtod(sp + 1, &end) : 0;
        if (!sp || !end || *end != '\0') {
            *well_formed = false;
            continue;
        }
        if (strncmp(line, series, strlen(series)) == 0) sum += v;
    }
    free(copy);
    return sum;
}

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
