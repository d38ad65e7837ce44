/* Integration test of the direct reply-to refusal at intake: a job whose
 * reply_to is RabbitMQ's direct reply-to is refused as a validation error at
 * reply_to; its envelope can only be stored (visible in `hvdeployctl
 * status`), logged, and sent to <prefix>.results, never to the pseudo-queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

TestSuite(direct_reply, .fini = fini, .timeout = 120);

Test(direct_reply, refused_and_stored)
{
    W = wp_world_new(NULL);
    WpWorker *k = wp_start(W, NULL);
    cr_assert(wp_wait_ready(k, 30000), "%s", wp_log_tail(k));
    HvdNode *job = wp_job_load("minimal.json", NULL);
    /* the name RabbitMQ hands a consumer of amq.rabbitmq.reply-to */
    const char *direct = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUB2bTEAAAAAZ2JzLQ==.3zvZFXZ2xZ6M3jjtnuxYzQ==";
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = direct});
    char results[160];
    snprintf(results, sizeof results, "%s.results", W->prefix);
    WpMsg m[1];
    cr_assert_eq(wp_collect(W->broker, results, 1, 20000, m), 1, "the envelope goes to %s; log:\n%s", results,
                 wp_log_tail(k));
    cr_assert_str_eq(wp_str(m[0].body, "status"), "error");
    cr_assert_str_eq(wp_str(m[0].body, "code"), "validation_error");
    const HvdNode *errs = hvd_node_get(m[0].body, "errors");
    cr_assert(errs && errs->type == HVD_ARRAY && errs->u.arr.n == 1);
    cr_assert_str_eq(wp_str(errs->u.arr.items[0], "loc"), "reply_to");
    cr_assert_str_eq(wp_str(errs->u.arr.items[0], "type"), "direct_reply_to");
    wp_msgs_free(m, 1);
    cr_assert(wp_wait_job_status(W, wp_job_id(job), "failed", 10000));
    char *reply = wp_pg_value(W, "SELECT reply_to FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job));
    cr_assert_str_eq(reply, results, "recorded with the results queue, so the outbox never aims at the pseudo-queue");
    free(reply);
    char *out = hvd_it_run_output("HVD_PG_DSN='%s' %s/hvdeployctl status %s --output json", W->dsn, HVD_BIN_DIR,
                                  wp_job_id(job));
    cr_assert(strstr(out, "\"code\":\"validation_error\""), "%s", out);
    free(out);
    cr_assert(wp_wait_log(k, "direct reply-to", 5000), "the refusal is logged:\n%s", wp_log_tail(k));
    /* a job with a named reply queue still runs */
    HvdNode *ok = wp_job_load("minimal.json", NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    wp_publish_job(W, ok, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q});
    cr_assert_eq(wp_collect(W->broker, q, 1, 30000, m), 1);
    cr_assert_str_eq(wp_str(m[0].body, "status"), "success");
    wp_msgs_free(m, 1);
    hvd_node_free(ok);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}
