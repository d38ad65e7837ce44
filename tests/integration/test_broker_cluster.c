/* Integration tests of the broker edge past one node (issue 13): HVD_AMQP_URL as a
 * list of nodes tried in turn, the comma form refused, every queue quorum (also the
 * retry buckets, whose TTL still returns doorbells to the jobs queue), and the
 * classic queues of an earlier version explained with the command to run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "harness.h"

static const char *prefix;
static HvdBroker *tb;

static void setup(void)
{
    if (!hvd_it_env("HVD_AMQP_URL")) return;
    prefix = hvd_it_prefix();
    tb = hvd_it_broker("cluster test");
}

static void teardown(void)
{
    hvd_broker_close(tb);
    tb = NULL;
    if (prefix && hvd_it_env("HVD_AMQP_URL")) hvd_it_cleanup_prefix(prefix, NULL, 0);
}

static char *name_of(const char *suffix)
{
    return hvd_xasprintf("%s.%s", prefix, suffix);
}

Test(broker_cluster, a_dead_node_first_in_the_list_is_skipped)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char *urls = hvd_xasprintf("amqp://guest:s3cretpw@127.0.0.1:1/%%2f\n  %s", hvd_it_env("HVD_AMQP_URL"));
    char err[512] = "";
    HvdBrokerOptions o = {.url = urls, .connect_timeout_ms = 3000, .confirms = true};
    /* every connect finds the live node, whichever the process tried first */
    for (int i = 0; i < 3; i++) {
        HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
        cr_assert_not_null(b, "connect %d: %s", i, err);
        cr_assert_null(strstr(hvd_broker_describe(b), ":1"), "connected to %s", hvd_broker_describe(b));
        hvd_broker_close(b);
    }
    free(urls);
}

Test(broker_cluster, no_node_answering_names_each_without_passwords)
{
    char err[1024] = "";
    HvdBrokerOptions o = {.url = "amqp://guest:s3cretpw@127.0.0.1:1/%2f amqp://guest:s3cretpw@127.0.0.1:2/%2f",
                          .connect_timeout_ms = 3000};
    cr_assert_null(hvd_broker_connect(&o, err, sizeof err));
    cr_assert(strstr(err, "no RabbitMQ node of 2 answered: "), "%s", err);
    cr_assert(strstr(err, "cannot connect to RabbitMQ at 127.0.0.1:1: connection refused"), "%s", err);
    cr_assert(strstr(err, "cannot connect to RabbitMQ at 127.0.0.1:2: connection refused"), "%s", err);
    cr_assert_null(strstr(err, "s3cretpw"), "%s", err);
}

Test(broker_cluster, comma_separated_hosts_are_refused_not_truncated)
{
    char err[512] = "";
    HvdBrokerOptions o = {.url = "amqp://guest:s3cretpw@127.0.0.1,127.0.0.2:5672/%2f"};
    cr_assert_null(hvd_broker_connect(&o, err, sizeof err));
    cr_assert(strstr(err, "names several hosts with ','"), "%s", err);
    cr_assert(strstr(err, "amqp://guest:***@127.0.0.1,127.0.0.2:5672/%2f"), "%s", err);
    cr_assert_null(strstr(err, "s3cretpw"), "%s", err);
    /* a comma in the password is no list */
    HvdBrokerOptions o2 = {.url = "amqp://guest:pa,ss@127.0.0.1:1/%2f", .connect_timeout_ms = 2000};
    cr_assert_null(hvd_broker_connect(&o2, err, sizeof err));
    cr_assert(strstr(err, "connection refused"), "%s", err);
}

/* The queue types, from rabbitmqctl: "name<TAB>type" lines of our prefix. */
static char *queue_types(void)
{
    return hvd_it_run_output("'%s' svc rmqctl list_queues -q --no-table-headers name type | grep '^%s\\.' | sort",
                             hvd_it_env("HVD_DEV_SH"), prefix);
}

Test(broker_cluster, every_queue_is_quorum, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    HVD_IT_NEED("HVD_DEV_SH");
    hvd_it_declare(tb, prefix);
    char *types = queue_types();
    char *want = hvd_xasprintf("%s.dead\tquorum\n%s.jobs\tquorum\n%s.results\tquorum\n%s.retry.1s\tquorum\n"
                               "%s.retry.2s\tquorum\n",
                               prefix, prefix, prefix, prefix, prefix);
    cr_assert_str_eq(types, want);
    free(want);
    free(types);
}

Test(broker_cluster, quorum_retry_bucket_returns_doorbells_after_their_ttl, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *retry = name_of("retry"), *jobs = name_of("jobs");
    /* one at the bucket's TTL (2 s), one with a shorter per-message expiration (jittered) */
    HvdPublish p = {.exchange = retry, .routing_key = "2s", .body = "full", .len = 4, .persistent = true};
    HvdPublish q = {.exchange = retry, .routing_key = "1s", .body = "short", .len = 5, .expiration = "600"};
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_it_publish(tb, &q), HVD_CONFIRM_ACKED);
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    HvdDelivery d;
    cr_assert_eq(hvd_it_get(tb, jobs, 5000, &d), HVD_BROKER_DELIVERY);
    long long t1 = hvd_it_now_ms() - t0;
    cr_assert_eq(d.len, 5);
    cr_assert(t1 >= 500 && t1 < 1900, "short doorbell after %lld ms", t1);
    cr_assert_str_eq(d.routing_key, HVD_BROKER_JOB_KEY);
    hvd_delivery_free(&d);
    cr_assert_eq(hvd_it_get(tb, jobs, 5000, &d), HVD_BROKER_DELIVERY);
    long long t2 = hvd_it_now_ms() - t0;
    cr_assert_eq(d.len, 4);
    cr_assert(t2 >= 1900, "bucket doorbell after %lld ms", t2);
    hvd_delivery_free(&d);
    free(retry);
    free(jobs);
}

/* Declares queue name as the classic queue an earlier version made (args may be empty). */
static void declare_classic(const char *name, amqp_table_t args)
{
    amqp_connection_state_t c = hvd_it_raw_conn();
    amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    hvd_it_raw_close(c);
}

Test(broker_cluster, classic_retry_bucket_of_an_earlier_version_says_what_to_run, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char *bucket = name_of("retry.1s"), *jobs = name_of("jobs");
    amqp_table_entry_t old[3] = {
        {.key = amqp_cstring_bytes("x-message-ttl"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1000}},
        {.key = amqp_cstring_bytes("x-dead-letter-exchange"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(jobs)}},
        {.key = amqp_cstring_bytes("x-dead-letter-routing-key"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(HVD_BROKER_JOB_KEY)}},
    };
    declare_classic(bucket, (amqp_table_t){3, old});
    char err[1024] = "";
    cr_assert_eq(hvd_broker_declare_topology(tb, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err),
                 HVD_BROKER_ERROR);
    char *want = hvd_xasprintf("queue '%s' is the classic queue of an earlier hvdeploy; this version declares it a "
                               "quorum queue",
                               bucket);
    cr_assert(strstr(err, want), "%s", err);
    char *cmd = hvd_xasprintf("Run: rabbitmqctl delete_queue '%s' (the doorbells it holds are rung again", bucket);
    cr_assert(strstr(err, cmd), "%s", err);
    fprintf(stderr, "classic retry bucket: %s\n", err);
    /* doing what it says is enough */
    cr_assert_eq(hvd_broker_queue_delete(tb, bucket, err, sizeof err), HVD_BROKER_OK, "%s", err);
    hvd_it_declare(tb, prefix);
    free(cmd);
    free(want);
    free(bucket);
    free(jobs);
}

Test(broker_cluster, classic_dead_letter_queue_of_an_earlier_version_says_what_to_run, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char *dead = name_of("dead");
    declare_classic(dead, amqp_empty_table);
    char err[1024] = "";
    cr_assert_eq(hvd_broker_declare_topology(tb, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err),
                 HVD_BROKER_ERROR);
    char *want = hvd_xasprintf("then run: rabbitmqctl delete_queue '%s' --if-empty", dead);
    cr_assert(strstr(err, want), "%s", err);
    cr_assert(strstr(err, "hvdeployctl dead list"), "%s", err);
    /* a quorum queue with other arguments is no earlier version: the plain conflict */
    cr_assert_eq(hvd_broker_queue_delete(tb, dead, err, sizeof err), HVD_BROKER_OK, "%s", err);
    amqp_table_entry_t other[2] = {
        {.key = amqp_cstring_bytes("x-queue-type"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}},
        {.key = amqp_cstring_bytes("x-max-length"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 7}},
    };
    declare_classic(dead, (amqp_table_t){2, other});
    cr_assert_eq(hvd_broker_declare_topology(tb, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err),
                 HVD_BROKER_ERROR);
    char *plain = hvd_xasprintf("queue '%s' exists with different arguments: PRECONDITION_FAILED", dead);
    cr_assert(strstr(err, plain), "%s", err);
    cr_assert(hvd_broker_is_open(tb));
    free(plain);
    free(want);
    free(dead);
}
