/* Integration tests of common/broker against the private RabbitMQ of deploy/dev.sh:
 * topology, conflicts, confirms, returns, consume/ack/reject, dead letters, retry TTL,
 * capabilities, consumer cancel, and a frozen broker (kill -STOP) not hanging us. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"

static const char *prefix;
static HvdBroker *tb;

static void setup(void)
{
    if (!hvd_it_env("HVD_AMQP_URL")) return;
    prefix = hvd_it_prefix();
    tb = hvd_it_broker("test");
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

/* ---- connecting ---- */

Test(broker_connect, refused_port_is_one_clear_line)
{
    char err[512] = "";
    HvdBrokerOptions o = {.url = "amqp://guest:s3cretpw@127.0.0.1:1/%2f", .connect_timeout_ms = 3000};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_null(b);
    cr_assert_str_eq(err, "cannot connect to RabbitMQ at 127.0.0.1:1: connection refused");
}

Test(broker_connect, bad_url_is_masked)
{
    char err[512] = "";
    HvdBrokerOptions o = {.url = "http://user:s3cretpw@host:99999/x"};
    cr_assert_null(hvd_broker_connect(&o, err, sizeof err));
    cr_assert(strstr(err, "not a valid URL"), "%s", err);
    cr_assert(strstr(err, "user:***@host"), "%s", err);
    cr_assert_null(strstr(err, "s3cretpw"), "%s", err);
}

Test(broker_connect, mask_url)
{
    char *m = hvd_broker_mask_url("amqps://bob:p%40ss:w@rd@mq.example:5671/vh");
    cr_assert_str_eq(m, "amqps://bob:***@mq.example:5671/vh");
    free(m);
    m = hvd_broker_mask_url("amqp://localhost/%2f");
    cr_assert_str_eq(m, "amqp://localhost/%2f");
    free(m);
    m = hvd_broker_mask_url("amqp://bob@localhost/");
    cr_assert_str_eq(m, "amqp://bob@localhost/");
    free(m);
    cr_assert_null(hvd_broker_mask_url(NULL));
}

Test(broker_connect, wrong_password_is_refused_without_leaking_it)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char *url = hvd_xstrdup(hvd_it_env("HVD_AMQP_URL"));
    /* amqp://user:pass@host...: swap the password for a wrong one */
    char *scheme_end = strstr(url, "://");
    cr_assert_not_null(scheme_end);
    char *at = strchr(scheme_end + 3, '@');
    cr_assert_not_null(at, "HVD_AMQP_URL has no credentials");
    char *colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
    cr_assert_not_null(colon);
    char *bad = hvd_xasprintf("%.*s:Wr0ngPassw0rd%s", (int)(colon - url), url, at);
    char user[128];
    snprintf(user, sizeof user, "%.*s", (int)(colon - scheme_end - 3), scheme_end + 3);

    char err[512] = "";
    HvdBrokerOptions o = {.url = bad, .connect_timeout_ms = 5000};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_null(b);
    char *want = hvd_xasprintf("RabbitMQ refused login for user '%s'", user);
    cr_assert(strstr(err, want), "got: %s", err);
    cr_assert(strstr(err, "ACCESS_REFUSED"), "got: %s", err);
    cr_assert_null(strstr(err, "Wr0ngPassw0rd"), "password leaked: %s", err);
    free(want);
    free(bad);
    free(url);
}

/* TLS: only with a broker that listens for amqps (the private one of dev.sh does not):
 * HVD_IT_AMQPS_URL (e.g. amqps://guest:guest@localhost:5671/%2f) and HVD_IT_TLS_CA,
 * optionally HVD_IT_TLS_CERT and HVD_IT_TLS_KEY for a client certificate. */
Test(broker_connect, tls)
{
    HVD_IT_NEED("HVD_IT_AMQPS_URL");
    HVD_IT_NEED("HVD_IT_TLS_CA");
    char err[512] = "";
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_IT_AMQPS_URL"),
                          .tls_ca_file = hvd_it_env("HVD_IT_TLS_CA"),
                          .tls_cert_file = hvd_it_env("HVD_IT_TLS_CERT"),
                          .tls_key_file = hvd_it_env("HVD_IT_TLS_KEY"),
                          .confirms = true,
                          .connect_timeout_ms = 5000};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    const char *pfx = hvd_it_prefix();
    char err2[512] = "";
    cr_assert_eq(hvd_broker_declare_topology(b, pfx, NULL, 0, err2, sizeof err2), HVD_BROKER_OK, "%s", err2);
    char *results = hvd_xasprintf("%s.results", pfx);
    HvdPublish p = {.routing_key = results, .body = "tls", .len = 3};
    cr_assert_eq(hvd_it_publish(b, &p), HVD_CONFIRM_ACKED);
    HvdDelivery d;
    cr_assert_eq(hvd_it_get(b, results, 5000, &d), HVD_BROKER_DELIVERY);
    cr_assert_eq(d.len, 3);
    hvd_delivery_free(&d);
    hvd_broker_close(b);
    hvd_it_cleanup_prefix(pfx, NULL, 0);
    free(results);

    /* a CA that did not sign the server's certificate: verification fails, clearly */
    o.tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
    o.tls_cert_file = o.tls_key_file = NULL;
    cr_assert_null(hvd_broker_connect(&o, err, sizeof err));
    cr_assert(strstr(err, "TLS"), "%s", err);
    cr_assert_null(strstr(err, ":guest@"), "%s", err);
    fprintf(stderr, "untrusted server: %s\n", err);
    /* a missing CA file is named */
    o.tls_ca_file = "/nonexistent/ca.pem";
    cr_assert_null(hvd_broker_connect(&o, err, sizeof err));
    cr_assert(strstr(err, "cannot load the CA file '/nonexistent/ca.pem'"), "%s", err);
}

/* ---- topology ---- */

Test(broker_topology, declare_twice_is_idempotent, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    hvd_it_declare(tb, prefix);
    const char *names[] = {"jobs", "dead", "results", "retry.1s", "retry.2s"};
    for (size_t i = 0; i < 5; i++) {
        char *q = name_of(names[i]);
        cr_assert_eq(hvd_it_queue_len(tb, q), 0, "queue %s", q);
        free(q);
    }
    char err[512] = "";
    uint32_t n;
    cr_assert_eq(hvd_broker_queue_info(tb, "no-such-queue-hvd", &n, NULL, err, sizeof err), HVD_BROKER_ERROR);
    cr_assert(strstr(err, "queue 'no-such-queue-hvd' does not exist"), "%s", err);
    /* the connection survived the refused passive declare */
    hvd_it_declare(tb, prefix);
}

Test(broker_topology, conflicting_queue_is_named, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char *jobs = name_of("jobs");
    /* a classic queue without arguments: not the quorum queue of §2 */
    amqp_connection_state_t rc = hvd_it_raw_conn();
    amqp_queue_declare(rc, 1, amqp_cstring_bytes(jobs), 0, 1, 0, 0, amqp_empty_table);
    cr_assert_eq(amqp_get_rpc_reply(rc).reply_type, AMQP_RESPONSE_NORMAL);
    hvd_it_raw_close(rc);
    char err[512] = "";
    HvdBrokerStatus st = hvd_broker_declare_topology(tb, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_ERROR, "%s", hvd_broker_status_name(st));
    char *want = hvd_xasprintf("queue '%s' exists with different arguments: PRECONDITION_FAILED", jobs);
    cr_assert(strstr(err, want), "got: %s", err);
    cr_assert(strstr(err, "inequivalent arg"), "got: %s", err);
    /* the connection is still usable */
    cr_assert(hvd_broker_is_open(tb));
    cr_assert_eq(hvd_it_queue_len(tb, jobs), 0);
    HvdPublish p = {.routing_key = jobs, .body = "x", .len = 1};
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    free(want);
    free(jobs);
}

Test(broker_topology, conflicting_exchange_is_named, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *dead = name_of("dead");
    char err[512] = "";
    cr_assert_eq(hvd_broker_exchange_delete(tb, dead, err, sizeof err), HVD_BROKER_OK, "%s", err);
    /* re-create <prefix>.dead as a topic exchange: the topology wants fanout */
    amqp_connection_state_t c = hvd_it_raw_conn();
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(dead), amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
    cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    hvd_it_raw_close(c);

    HvdBrokerStatus st = hvd_broker_declare_topology(tb, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_ERROR);
    char *want = hvd_xasprintf("exchange '%s' exists with a different type or arguments", dead);
    cr_assert(strstr(err, want), "got: %s", err);
    cr_assert(strstr(err, "PRECONDITION_FAILED"), "got: %s", err);
    free(want);
    free(dead);
}

/* deploy/rabbitmq/definitions.json, renamed to our prefix and imported, is the very
 * topology the worker declares: declaring over it succeeds and adds nothing. */
static const int def_delays[] = {5, 30, 120, 600};

static void def_cleanup(void)
{
    hvd_broker_close(tb);
    tb = NULL;
    if (prefix && hvd_it_env("HVD_AMQP_URL")) hvd_it_cleanup_prefix(prefix, def_delays, 4);
}

static long count_lines_with_prefix(const char *dev, const char *what)
{
    char *out = hvd_it_run_output("'%s' svc rmqctl %s -q 2>/dev/null | grep -c '^%s\\.'", dev, what, prefix);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

Test(broker_topology, definitions_file_matches, .init = setup, .fini = def_cleanup, .timeout = 120)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) cr_skip_test("no deploy/dev.sh to run rabbitmqctl with");
    char tmp[] = "/tmp/hvd-it-defs-XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(hvd_it_run("sed 's/\"hvdeploy\\./\"%s./g' '%s/deploy/rabbitmq/definitions.json' > '%s'", prefix,
                            HVD_SOURCE_DIR, tmp),
                 0);
    cr_assert_eq(hvd_it_run("'%s' svc rmqctl import_definitions '%s' >/dev/null 2>&1", dev, tmp), 0);
    unlink(tmp);
    /* the import is asynchronous */
    char *results = name_of("results");
    long long deadline = hvd_it_now_ms() + 30000;
    while (hvd_it_queue_len(tb, results) < 0 && hvd_it_now_ms() < deadline) usleep(200000);
    cr_assert_eq(hvd_it_queue_len(tb, results), 0, "definitions not imported");
    while (count_lines_with_prefix(dev, "list_bindings source_name") < 6 && hvd_it_now_ms() < deadline) usleep(200000);
    cr_assert_eq(count_lines_with_prefix(dev, "list_queues name"), 7);
    cr_assert_eq(count_lines_with_prefix(dev, "list_exchanges name"), 4);
    cr_assert_eq(count_lines_with_prefix(dev, "list_bindings source_name"), 6);

    char err[512] = "";
    HvdBrokerStatus st = hvd_broker_declare_topology(tb, prefix, def_delays, 4, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_OK, "declare over the definitions: %s", err);
    cr_assert_eq(count_lines_with_prefix(dev, "list_queues name"), 7);
    cr_assert_eq(count_lines_with_prefix(dev, "list_exchanges name"), 4);
    cr_assert_eq(count_lines_with_prefix(dev, "list_bindings source_name"), 6);
    free(results);
}

/* ---- publishing ---- */

typedef struct {
    uint64_t seq[8];
    HvdConfirm st[8];
    int n;
} Confirms;

static void collect(void *ctx, uint64_t seq, HvdConfirm status)
{
    Confirms *c = ctx;
    if (c->n < 8) {
        c->seq[c->n] = seq;
        c->st[c->n] = status;
        c->n++;
    }
}

static HvdConfirm status_of(const Confirms *c, uint64_t seq)
{
    for (int i = 0; i < c->n; i++)
        if (c->seq[i] == seq) return c->st[i];
    cr_assert_fail("seq %llu was not reported", (unsigned long long)seq);
    return HVD_CONFIRM_LOST;
}

Test(broker_publish, confirmed_with_properties_and_headers, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    HvdHeader h[] = {{.key = HVD_BROKER_DOORBELL_HEADER, .i = 1}, {.key = "x-note", .str = "hello"}};
    HvdPublish p = {.routing_key = results,
                    .body = "{\"a\":1}",
                    .len = 7,
                    .content_type = "application/json",
                    .message_id = "m-1",
                    .correlation_id = "c-1",
                    .reply_to = "somewhere",
                    .persistent = true,
                    .mandatory = true,
                    .headers = h,
                    .n_headers = 2};
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    cr_assert_eq(hvd_broker_unconfirmed(tb), 0);

    HvdDelivery d;
    cr_assert_eq(hvd_it_get(tb, results, 5000, &d), HVD_BROKER_DELIVERY);
    cr_assert_eq(d.len, 7);
    cr_assert(memcmp(d.body, "{\"a\":1}", 7) == 0);
    cr_assert_str_eq(d.exchange, "");
    cr_assert_str_eq(d.routing_key, results);
    cr_assert_str_eq(d.content_type, "application/json");
    cr_assert_str_eq(d.message_id, "m-1");
    cr_assert_str_eq(d.correlation_id, "c-1");
    cr_assert_str_eq(d.reply_to, "somewhere");
    cr_assert_eq(d.delivery_mode, 2);
    cr_assert(d.doorbell);
    cr_assert_str_eq(hvd_delivery_header_str(&d, "x-note"), "hello");
    cr_assert_null(hvd_delivery_header_str(&d, "x-missing"));
    HvdNode *hn = hvd_delivery_headers(&d);
    int64_t one = 0;
    cr_assert(hvd_node_get_int(hn, HVD_BROKER_DOORBELL_HEADER, &one) && one == 1);
    hvd_node_free(hn);
    hvd_delivery_free(&d);
    free(results);
}

Test(broker_publish, doorbell_header_forms, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    HvdHeader forms[][1] = {{{.key = HVD_BROKER_DOORBELL_HEADER, .str = "1"}},
                            {{.key = HVD_BROKER_DOORBELL_HEADER, .i = 0}},
                            {{.key = HVD_BROKER_DOORBELL_HEADER, .str = "yes"}}};
    bool want[] = {true, false, false};
    for (int i = 0; i < 3; i++) {
        HvdPublish p = {.routing_key = results, .body = "x", .len = 1, .headers = forms[i], .n_headers = 1};
        cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
        HvdDelivery d;
        cr_assert_eq(hvd_it_get(tb, results, 5000, &d), HVD_BROKER_DELIVERY);
        cr_assert_eq(d.doorbell, want[i], "form %d", i);
        hvd_delivery_free(&d);
    }
    /* no header at all */
    HvdPublish p = {.routing_key = results, .body = "x", .len = 1};
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    HvdDelivery d;
    cr_assert_eq(hvd_it_get(tb, results, 5000, &d), HVD_BROKER_DELIVERY);
    cr_assert_not(d.doorbell);
    cr_assert_null(d.content_type);
    HvdNode *hn = hvd_delivery_headers(&d);
    cr_assert_eq(hn->type, HVD_MAP);
    /* a quorum queue may add x-delivery-count; nothing else is there */
    for (size_t i = 0; i < hn->u.map.n; i++) cr_assert_str_eq(hn->u.map.keys[i], "x-delivery-count");
    hvd_node_free(hn);
    hvd_delivery_free(&d);
    free(results);
}

Test(broker_publish, unroutable_mandatory_is_returned, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *jobs = name_of("jobs");
    char err[512] = "";
    uint64_t s1, s2, s3, s4;
    HvdPublish ok = {.exchange = jobs,
                     .routing_key = HVD_BROKER_JOB_KEY,
                     .body = "a",
                     .len = 1,
                     .persistent = true,
                     .mandatory = true};
    HvdPublish lost = {.exchange = jobs,
                       .routing_key = "no_such_job_type",
                       .body = "b",
                       .len = 1,
                       .persistent = true,
                       .mandatory = true};
    HvdPublish quiet = lost;
    quiet.mandatory = false; /* unroutable but not mandatory: simply acked */
    cr_assert_eq(hvd_broker_publish(tb, &ok, &s1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(hvd_broker_publish(tb, &lost, &s2, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(hvd_broker_publish(tb, &ok, &s3, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(hvd_broker_publish(tb, &quiet, &s4, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert(s1 == 1 && s2 == 2 && s3 == 3 && s4 == 4);
    Confirms c = {0};
    cr_assert_eq(hvd_broker_wait_confirms(tb, 10000, collect, &c), HVD_BROKER_OK);
    cr_assert_eq(c.n, 4);
    cr_assert_eq(status_of(&c, s1), HVD_CONFIRM_ACKED);
    cr_assert_eq(status_of(&c, s2), HVD_CONFIRM_RETURNED);
    cr_assert_eq(status_of(&c, s3), HVD_CONFIRM_ACKED);
    cr_assert_eq(status_of(&c, s4), HVD_CONFIRM_ACKED);
    cr_assert_eq(hvd_it_queue_len(tb, jobs), 2);
    free(jobs);
}

Test(broker_publish, missing_exchange_loses_seq_and_recovers, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char err[512] = "";
    uint64_t s;
    char *nowhere = name_of("nowhere");
    HvdPublish p = {.exchange = nowhere, .routing_key = "k", .body = "x", .len = 1};
    cr_assert_eq(hvd_broker_publish(tb, &p, &s, err, sizeof err), HVD_BROKER_OK, "%s", err);
    Confirms c = {0};
    cr_assert_eq(hvd_broker_wait_confirms(tb, 10000, collect, &c), HVD_BROKER_OK);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.st[0], HVD_CONFIRM_LOST);
    cr_assert(hvd_broker_is_open(tb));
    /* channel 1 was reopened in confirm mode: seqs start again at 1 */
    char *results = name_of("results");
    HvdPublish q = {.routing_key = results, .body = "y", .len = 1};
    cr_assert_eq(hvd_broker_publish(tb, &q, &s, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(s, 1);
    c.n = 0;
    cr_assert_eq(hvd_broker_wait_confirms(tb, 10000, collect, &c), HVD_BROKER_OK);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.st[0], HVD_CONFIRM_ACKED);
    free(results);
    free(nowhere);
}

/* ---- consuming ---- */

static void publish_job(const char *jobs, const char *body, const HvdHeader *h, size_t nh)
{
    HvdPublish p = {.exchange = jobs,
                    .routing_key = HVD_BROKER_JOB_KEY,
                    .body = body,
                    .len = strlen(body),
                    .content_type = "application/json",
                    .message_id = body,
                    .persistent = true,
                    .mandatory = true,
                    .headers = h,
                    .n_headers = nh};
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
}

Test(broker_consume, consume_and_ack, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *jobs = name_of("jobs");
    publish_job(jobs, "job-1", NULL, 0);
    publish_job(jobs, "job-2", NULL, 0);

    HvdBroker *c = hvd_it_broker("consumer");
    char err[512] = "";
    cr_assert_eq(hvd_broker_consume(c, jobs, 4, err, sizeof err), HVD_BROKER_OK, "%s", err);
    HvdDelivery d1, d2, d3;
    cr_assert_eq(hvd_broker_next(c, 5000, &d1), HVD_BROKER_DELIVERY);
    cr_assert_eq(hvd_broker_next(c, 5000, &d2), HVD_BROKER_DELIVERY);
    cr_assert_str_eq(d1.message_id, "job-1");
    cr_assert_str_eq(d2.message_id, "job-2");
    cr_assert_str_eq(d1.exchange, jobs);
    cr_assert_str_eq(d1.routing_key, HVD_BROKER_JOB_KEY);
    cr_assert_not(d1.redelivered);
    cr_assert_not(d1.doorbell);
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_broker_next(c, 300, &d3), HVD_BROKER_TIMEOUT);
    cr_assert_geq(hvd_it_now_ms() - t0, 250);
    cr_assert_eq(hvd_broker_ack(c, d1.delivery_tag), HVD_BROKER_OK);
    /* d2 stays unacked: closing the connection requeues it */
    hvd_broker_close(c);
    hvd_delivery_free(&d1);
    hvd_delivery_free(&d2);
    HvdDelivery again;
    cr_assert_eq(hvd_it_get(tb, jobs, 5000, &again), HVD_BROKER_DELIVERY);
    cr_assert_str_eq(again.message_id, "job-2");
    cr_assert(again.redelivered);
    cr_assert_eq(again.delivery_count, 1, "x-delivery-count %lld", (long long)again.delivery_count);
    hvd_delivery_free(&again);
    cr_assert_eq(hvd_it_queue_len(tb, jobs), 0);
    free(jobs);
}

Test(broker_consume, missing_queue_is_named, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char err[512] = "";
    char *q = name_of("absent");
    cr_assert_eq(hvd_broker_consume(tb, q, 1, err, sizeof err), HVD_BROKER_ERROR);
    char *want = hvd_xasprintf("cannot consume from queue '%s': it does not exist", q);
    cr_assert(strstr(err, want), "got: %s", err);
    cr_assert(hvd_broker_is_open(tb));
    free(want);
    free(q);
}

Test(broker_consume, reject_dead_letters_with_x_death, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *jobs = name_of("jobs"), *dead = name_of("dead");
    publish_job(jobs, "poison", NULL, 0);
    HvdBroker *c = hvd_it_broker("consumer");
    char err[512] = "";
    cr_assert_eq(hvd_broker_consume(c, jobs, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    HvdDelivery d;
    cr_assert_eq(hvd_broker_next(c, 5000, &d), HVD_BROKER_DELIVERY);
    cr_assert_eq(hvd_broker_reject(c, d.delivery_tag, false), HVD_BROKER_OK);
    hvd_delivery_free(&d);

    HvdDelivery x;
    cr_assert_eq(hvd_it_get(tb, dead, 10000, &x), HVD_BROKER_DELIVERY, "nothing in %s", dead);
    cr_assert_eq(x.len, 6);
    cr_assert(memcmp(x.body, "poison", 6) == 0);
    cr_assert_str_eq(x.message_id, "poison");
    HvdNode *h = hvd_delivery_headers(&x);
    const HvdNode *deaths = hvd_node_get(h, "x-death");
    cr_assert_not_null(deaths, "no x-death header");
    cr_assert_eq(deaths->type, HVD_ARRAY);
    cr_assert_geq(deaths->u.arr.n, 1);
    cr_assert_str_eq(hvd_node_get_str(deaths->u.arr.items[0], "reason"), "rejected");
    cr_assert_str_eq(hvd_node_get_str(deaths->u.arr.items[0], "queue"), jobs);
    hvd_node_free(h);

    /* a dead-letter copy published by us keeps the original headers and adds a reason */
    HvdHeader why = {.key = "x-hvdeploy-reason", .str = "malformed_message"};
    HvdPublish again = {.routing_key = dead,
                        .body = x.body,
                        .len = x.len,
                        .message_id = x.message_id,
                        .persistent = true,
                        .headers = &why,
                        .n_headers = 1,
                        .copy_headers_from = &x};
    cr_assert_eq(hvd_it_publish(tb, &again), HVD_CONFIRM_ACKED);
    hvd_delivery_free(&x);
    HvdDelivery y;
    cr_assert_eq(hvd_it_get(tb, dead, 5000, &y), HVD_BROKER_DELIVERY);
    cr_assert_str_eq(hvd_delivery_header_str(&y, "x-hvdeploy-reason"), "malformed_message");
    h = hvd_delivery_headers(&y);
    cr_assert_not_null(hvd_node_get(h, "x-death"));
    hvd_node_free(h);
    hvd_delivery_free(&y);
    hvd_broker_close(c);
    free(jobs);
    free(dead);
}

Test(broker_consume, retry_bucket_dead_letters_back_to_jobs, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *retry = name_of("retry"), *jobs = name_of("jobs");
    char key[16];
    hvd_broker_retry_key(1, key, sizeof key);
    cr_assert_str_eq(key, "1s");
    HvdHeader bell = {.key = HVD_BROKER_DOORBELL_HEADER, .i = 1};
    const char *body = "{\"job_id\":\"x\",\"job_type\":\"managed_deployment\",\"doorbell\":true}";
    HvdPublish p = {.exchange = retry,
                    .routing_key = key,
                    .body = body,
                    .len = strlen(body),
                    .content_type = "application/json",
                    .persistent = true,
                    .mandatory = true,
                    .headers = &bell,
                    .n_headers = 1};
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    char *bucket = name_of("retry.1s");
    cr_assert_eq(hvd_it_queue_len(tb, bucket), 1);
    HvdDelivery d;
    cr_assert_eq(hvd_it_get(tb, jobs, 10000, &d), HVD_BROKER_DELIVERY);
    cr_assert_geq(hvd_it_now_ms() - t0, 900, "came back too early");
    cr_assert(d.doorbell);
    cr_assert_str_eq(d.routing_key, HVD_BROKER_JOB_KEY);
    cr_assert_str_eq(d.exchange, jobs);
    cr_assert_eq(d.len, strlen(body));
    hvd_delivery_free(&d);
    cr_assert_eq(hvd_it_queue_len(tb, bucket), 0);
    free(bucket);
    free(retry);
    free(jobs);
}

Test(broker_consume, queue_deleted_cancels_consumer, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    HvdBroker *c = hvd_it_broker("consumer");
    char err[512] = "";
    cr_assert_eq(hvd_broker_consume(c, results, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    HvdDelivery d;
    cr_assert_eq(hvd_broker_next(c, 200, &d), HVD_BROKER_TIMEOUT);
    cr_assert_eq(hvd_broker_queue_delete(tb, results, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(hvd_broker_next(c, 5000, &d), HVD_BROKER_CANCELLED);
    cr_assert(hvd_broker_is_open(c));
    cr_assert_eq(hvd_broker_next(c, 100, &d), HVD_BROKER_TIMEOUT);
    hvd_broker_close(c);
    free(results);
}

Test(broker_consume, stale_tag_is_refused_locally, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *jobs = name_of("jobs");
    publish_job(jobs, "j", NULL, 0);
    HvdBroker *c = hvd_it_broker("consumer");
    char err[512] = "";
    cr_assert_eq(hvd_broker_consume(c, jobs, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    HvdDelivery d;
    cr_assert_eq(hvd_broker_next(c, 5000, &d), HVD_BROKER_DELIVERY);
    /* ack it twice: the broker closes channel 1 on the second (unknown delivery tag) */
    cr_assert_eq(hvd_broker_ack(c, d.delivery_tag), HVD_BROKER_OK);
    cr_assert_eq(hvd_broker_ack(c, d.delivery_tag), HVD_BROKER_OK);
    HvdDelivery e;
    cr_assert_eq(hvd_broker_next(c, 5000, &e), HVD_BROKER_CANCELLED);
    cr_assert(hvd_broker_is_open(c));
    /* the old tag belongs to the closed channel: refused here, the channel stays up */
    cr_assert_eq(hvd_broker_ack(c, d.delivery_tag), HVD_BROKER_ERROR);
    cr_assert_eq(hvd_broker_consume(c, jobs, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    cr_assert_eq(hvd_broker_next(c, 300, &e), HVD_BROKER_TIMEOUT);
    hvd_delivery_free(&d);
    hvd_broker_close(c);
    free(jobs);
}

/* ---- the connection's properties, as the broker sees them ---- */

Test(broker_connect, capabilities_announced, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) cr_skip_test("no deploy/dev.sh to run rabbitmqctl with");
    char name[64];
    snprintf(name, sizeof name, "hvd-caps-%ld", (long)getpid());
    char err[512];
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"), .connection_name = name};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    char *out = NULL;
    char *line = NULL;
    for (int i = 0; i < 20 && !line; i++) { /* the connection list is eventually consistent */
        free(out);
        out = hvd_it_run_output("'%s' svc rmqctl list_connections client_properties -q 2>&1", dev);
        line = strstr(out, name);
        if (!line) usleep(250000);
    }
    cr_assert_not_null(line, "connection %s not listed:\n%s", name, out);
    /* the properties of one connection are one line */
    while (line > out && line[-1] != '\n') line--;
    char *eol = strchr(line, '\n');
    if (eol) *eol = '\0';
    const char *caps[] = {"connection.blocked", "consumer_cancel_notify", "publisher_confirms", "basic.nack",
                          "authentication_failure_close"};
    for (size_t i = 0; i < 5; i++) {
        /* rabbitmqctl prints {"name",true}; older versions {<<"name">>,bool,true} */
        char *want = hvd_xasprintf("{\"%s\",true}", caps[i]);
        char *want2 = hvd_xasprintf("{<<\"%s\">>,bool,true}", caps[i]);
        cr_assert(strstr(line, want) || strstr(line, want2), "%s missing in: %s", caps[i], line);
        free(want);
        free(want2);
    }
    free(out);
    hvd_broker_close(b);
}

Test(broker_consume, connection_closed_by_broker, .init = setup, .fini = teardown, .timeout = 60)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) cr_skip_test("no deploy/dev.sh to run rabbitmqctl with");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    char name[64], err[512] = "";
    snprintf(name, sizeof name, "hvd-close-%ld", (long)getpid());
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"), .connection_name = name};
    HvdBroker *c = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(hvd_broker_consume(c, results, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    char *pid = NULL;
    for (int i = 0; i < 20 && !pid; i++) {
        char *out = hvd_it_run_output("'%s' svc rmqctl list_connections pid client_properties -q 2>/dev/null"
                                      " | grep -F '\"%s\"' | cut -f1",
                                      dev, name);
        char *nl = strchr(out, '\n');
        if (nl && nl > out) {
            *nl = '\0';
            pid = out;
        } else {
            free(out);
            usleep(250000);
        }
    }
    cr_assert_not_null(pid, "connection %s not listed", name);
    cr_assert_eq(hvd_it_run("'%s' svc rmqctl close_connection '%s' 'hvd test closes you' >/dev/null 2>&1", dev, pid),
                 0);
    HvdDelivery d;
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_broker_next(c, 10000, &d), HVD_BROKER_CLOSED);
    cr_assert_lt(hvd_it_now_ms() - t0, 5000);
    cr_assert(strstr(hvd_broker_last_error(c), "closed the connection: CONNECTION_FORCED - hvd test closes you"), "%s",
              hvd_broker_last_error(c));
    cr_assert_not(hvd_broker_is_open(c));
    hvd_broker_close(c);
    free(pid);
    free(results);
}

/* ---- a frozen broker must not hang us ---- */

static long frozen_pid;

static void thaw(void)
{
    if (frozen_pid > 0) kill((pid_t)frozen_pid, SIGCONT);
    frozen_pid = 0;
    teardown();
}

typedef struct {
    HvdBroker *b;
    HvdBrokerStatus st;
    long long ms;
} NextArg;

static void *next_thread(void *p)
{
    NextArg *a = p;
    HvdDelivery d;
    long long t0 = hvd_it_now_ms();
    a->st = hvd_broker_next(a->b, 60000, &d);
    a->ms = hvd_it_now_ms() - t0;
    if (a->st == HVD_BROKER_DELIVERY) hvd_delivery_free(&d);
    return NULL;
}

typedef struct {
    HvdBroker *b;
    char err[512];
    long long ms;
} ConnArg;

static void *connect_thread(void *p)
{
    ConnArg *a = p;
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"), .connect_timeout_ms = 3000, .heartbeat_s = 2};
    long long t0 = hvd_it_now_ms();
    a->b = hvd_broker_connect(&o, a->err, sizeof a->err);
    a->ms = hvd_it_now_ms() - t0;
    return NULL;
}

Test(broker_heartbeat, frozen_broker_is_detected, .init = setup, .fini = thaw, .timeout = 120)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    long pid = hvd_it_rmq_pid();
    if (pid <= 0) cr_skip_test("the broker's pid is unknown (deploy/dev.sh svc rmq-pid)");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    char err[512] = "";
    HvdBrokerOptions o = {
        .url = hvd_it_env("HVD_AMQP_URL"), .heartbeat_s = 2, .confirms = true, .connection_name = "hvd-it frozen"};
    HvdBroker *cons = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(cons, "%s", err);
    HvdBroker *pub = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(pub, "%s", err);
    cr_assert_eq(hvd_broker_consume(cons, results, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    HvdDelivery d;
    cr_assert_eq(hvd_broker_next(cons, 100, &d), HVD_BROKER_TIMEOUT);

    frozen_pid = pid;
    cr_assert_eq(kill((pid_t)pid, SIGSTOP), 0);
    NextArg na = {.b = cons};
    ConnArg ca = {0};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, next_thread, &na);
    pthread_create(&t2, NULL, connect_thread, &ca);

    /* publishing succeeds into the socket buffer; the confirm never comes */
    uint64_t seq;
    HvdPublish p = {.routing_key = results, .body = "x", .len = 1, .persistent = true};
    HvdBrokerStatus st = hvd_broker_publish(pub, &p, &seq, err, sizeof err);
    cr_assert(st == HVD_BROKER_OK || st == HVD_BROKER_CLOSED, "%s", hvd_broker_status_name(st));
    Confirms c = {0};
    long long t0 = hvd_it_now_ms();
    st = hvd_broker_wait_confirms(pub, 60000, collect, &c);
    long long waited = hvd_it_now_ms() - t0;
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    kill((pid_t)pid, SIGCONT);
    frozen_pid = 0;

    cr_assert_eq(st, HVD_BROKER_CLOSED, "wait_confirms: %s", hvd_broker_status_name(st));
    cr_assert_lt(waited, 15000, "wait_confirms took %lld ms", waited);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.st[0], HVD_CONFIRM_LOST);
    cr_assert_eq(na.st, HVD_BROKER_CLOSED, "next: %s", hvd_broker_status_name(na.st));
    cr_assert_lt(na.ms, 15000, "next took %lld ms", na.ms);
    cr_assert_not(hvd_broker_is_open(cons));
    cr_assert(strstr(hvd_broker_last_error(cons), "missed heartbeats"), "%s", hvd_broker_last_error(cons));
    cr_assert(strstr(hvd_broker_last_error(pub), "missed heartbeats"), "%s", hvd_broker_last_error(pub));
    cr_assert_null(ca.b, "connected to a frozen broker?");
    cr_assert_lt(ca.ms, 10000, "connect took %lld ms", ca.ms);
    cr_assert(strstr(ca.err, "RabbitMQ"), "%s", ca.err);
    /* every call on a lost connection returns at once */
    t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_broker_publish(pub, &p, &seq, err, sizeof err), HVD_BROKER_CLOSED);
    cr_assert_eq(hvd_broker_next(cons, 5000, &d), HVD_BROKER_CLOSED);
    cr_assert_eq(hvd_broker_service(pub, 5000), HVD_BROKER_CLOSED);
    cr_assert_lt(hvd_it_now_ms() - t0, 100);
    hvd_broker_close(cons);
    hvd_broker_close(pub);
    fprintf(stderr, "frozen broker: next %lld ms, wait_confirms %lld ms, connect %lld ms (%s)\n", na.ms, waited, ca.ms,
            ca.err);
    free(results);
}

Test(broker_heartbeat, publish_into_frozen_broker_fails, .init = setup, .fini = thaw, .timeout = 120)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    long pid = hvd_it_rmq_pid();
    if (pid <= 0) cr_skip_test("the broker's pid is unknown (deploy/dev.sh svc rmq-pid)");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    char err[512] = "";
    /* Long heartbeats: here TCP_USER_TIMEOUT must end the write that cannot progress
     * (rabbitmq-c waits for a writable socket without a deadline). */
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"),
                          .heartbeat_s = 60,
                          .confirms = true,
                          .tcp_user_timeout_ms = 3000,
                          .connection_name = "hvd-it big publish"};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    size_t len = 64u << 20; /* far more than the socket buffers hold */
    char *big = hvd_xcalloc(1, len);
    frozen_pid = pid;
    cr_assert_eq(kill((pid_t)pid, SIGSTOP), 0);
    HvdPublish p = {.routing_key = results, .body = big, .len = len};
    uint64_t seq;
    long long t0 = hvd_it_now_ms();
    HvdBrokerStatus st = hvd_broker_publish(b, &p, &seq, err, sizeof err);
    long long took = hvd_it_now_ms() - t0;
    kill((pid_t)pid, SIGCONT);
    frozen_pid = 0;
    fprintf(stderr, "publish into a frozen broker: %s after %lld ms: %s\n", hvd_broker_status_name(st), took, err);
    cr_assert_eq(st, HVD_BROKER_CLOSED);
    cr_assert_lt(took, 30000);
    cr_assert_not(hvd_broker_is_open(b));
    hvd_broker_close(b);
    free(big);
    free(results);
}

static void *interrupt_later(void *p)
{
    usleep(300000);
    hvd_broker_interrupt(p);
    return NULL;
}

Test(broker_heartbeat, interrupt_from_another_thread, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    char err[512] = "";
    HvdBroker *c = hvd_it_broker("interrupted");
    cr_assert_eq(hvd_broker_consume(c, results, 1, err, sizeof err), HVD_BROKER_OK, "%s", err);
    pthread_t t;
    pthread_create(&t, NULL, interrupt_later, c);
    HvdDelivery d;
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_broker_next(c, 30000, &d), HVD_BROKER_CLOSED);
    cr_assert_lt(hvd_it_now_ms() - t0, 3000);
    pthread_join(t, NULL);
    hvd_broker_close(c);
    free(results);
}

Test(broker_heartbeat, idle_connection_stays_up_when_serviced, .init = setup, .fini = teardown)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    char err[512] = "";
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"), .heartbeat_s = 1, .confirms = true};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    /* 5 s at 1 s heartbeats: the broker would close us after 2 missed ones */
    long long end = hvd_it_now_ms() + 5000;
    while (hvd_it_now_ms() < end) cr_assert_neq(hvd_broker_service(b, 200), HVD_BROKER_CLOSED, "%s", err);
    hvd_it_declare(b, prefix);
    hvd_broker_close(b);
}

/* ---- connection.blocked (memory alarm) ---- */

static char saved_watermark[64];

static void restore_watermark(void)
{
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (dev && saved_watermark[0])
        (void)hvd_it_run("'%s' svc rmqctl set_vm_memory_high_watermark %s >/dev/null 2>&1", dev, saved_watermark);
    saved_watermark[0] = '\0';
    teardown();
}

Test(broker_blocked, memory_alarm_blocks_publish, .init = setup, .fini = restore_watermark, .timeout = 120)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) cr_skip_test("no deploy/dev.sh to run rabbitmqctl with");
    char *cur =
        hvd_it_run_output("'%s' svc rmqctl eval 'vm_memory_monitor:get_vm_memory_high_watermark().' 2>/dev/null", dev);
    char *end;
    double wm = strtod(cur, &end);
    if (end == cur || wm <= 0 || wm >= 1) {
        free(cur);
        cr_skip_test("cannot read the relative memory watermark");
    }
    snprintf(saved_watermark, sizeof saved_watermark, "%.4f", wm);
    free(cur);

    hvd_it_declare(tb, prefix);
    char *results = name_of("results");
    cr_assert_eq(hvd_it_run("'%s' svc rmqctl set_vm_memory_high_watermark 0.0000001 >/dev/null 2>&1", dev), 0);
    /* A connection is blocked (and told so, having announced connection.blocked) when it
     * publishes while the alarm is on: this first message waits in the broker. */
    uint64_t first;
    char err[512] = "";
    HvdPublish p = {.routing_key = results, .body = "x", .len = 1, .persistent = true};
    usleep(500000);
    cr_assert_eq(hvd_broker_publish(tb, &p, &first, err, sizeof err), HVD_BROKER_OK, "%s", err);
    long long deadline = hvd_it_now_ms() + 20000;
    const char *reason = NULL;
    while (!hvd_broker_is_blocked(tb, &reason) && hvd_it_now_ms() < deadline) {
        cr_assert_neq(hvd_broker_service(tb, 500), HVD_BROKER_CLOSED);
    }
    cr_assert(hvd_broker_is_blocked(tb, &reason), "no connection.blocked within 20 s");
    uint64_t seq;
    long long t0 = hvd_it_now_ms();
    cr_assert_eq(hvd_broker_publish(tb, &p, &seq, err, sizeof err), HVD_BROKER_BLOCKED);
    cr_assert_lt(hvd_it_now_ms() - t0, 1000);
    cr_assert(strstr(err, "blocks publishing"), "%s", err);
    fprintf(stderr, "blocked: %s\n", err);

    cr_assert_eq(hvd_it_run("'%s' svc rmqctl set_vm_memory_high_watermark %s >/dev/null 2>&1", dev, saved_watermark),
                 0);
    saved_watermark[0] = '\0';
    deadline = hvd_it_now_ms() + 20000;
    while (hvd_broker_is_blocked(tb, NULL) && hvd_it_now_ms() < deadline)
        cr_assert_neq(hvd_broker_service(tb, 500), HVD_BROKER_CLOSED);
    cr_assert_not(hvd_broker_is_blocked(tb, NULL), "still blocked 20 s after the alarm cleared");
    Confirms c = {0};
    cr_assert_eq(hvd_broker_wait_confirms(tb, 10000, collect, &c), HVD_BROKER_OK);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.seq[0], first);
    cr_assert_eq(c.st[0], HVD_CONFIRM_ACKED);
    cr_assert_eq(hvd_it_publish(tb, &p), HVD_CONFIRM_ACKED);
    free(results);
}
