/* Integration tests of `hvdeployctl dead` against a real worker (simhost agent,
 * fresh database, private prefix): undecodable messages dead-lettered by the
 * worker (list, show without secrets, non-destructive reads, purge, raw
 * replay), a message dead-lettered by RabbitMQ itself (x-death reason), and a
 * job whose retries ran out, replayed after the fault is gone: it resumes from
 * its failed stage and succeeds. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it_ctl.h"
#include "store.h"

#define JOBS HVD_SOURCE_DIR "/tests/data/jobs"
#define SECRET1 "S3cret!pw-TEST"
#define SECRET2 "J0in!pw-TEST"
#define FULL_ID "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11"

static const char *prefix;
static const char *dsn;
static char *tmp;
static ItWorker worker;
static char dead_queue[256], jobs_exchange[256], results_queue[256];
static const int delays[] = {1, 2};

static void setup(void)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    HVD_IT_NEED("HVD_PG_DSN");
    HVD_IT_NEED("HVD_SECRET_KEY_FILE");
    prefix = hvd_it_prefix();
    tmp = it_tmpdir("dead");
    setenv("HVD_AMQP_PREFIX", prefix, 1);
    snprintf(dead_queue, sizeof dead_queue, "%s.dead", prefix);
    snprintf(jobs_exchange, sizeof jobs_exchange, "%s.jobs", prefix);
    snprintf(results_queue, sizeof results_queue, "%s.results", prefix);
    dsn = it_pg_create();
    setenv("HVD_PG_DSN", dsn, 1);
}

static void teardown(void)
{
    if (!prefix) return;
    it_worker_stop(&worker);
    it_pg_drop();
    hvd_it_cleanup_prefix(prefix, delays, 2);
    it_rmtree(tmp);
}

TestSuite(ctl_dead, .init = setup, .fini = teardown, .timeout = 300);

static void assert_no_secrets(const ItCtl *r)
{
    cr_assert_null(strstr(r->out, SECRET1), "a password was printed on stdout:\n%s", r->out);
    cr_assert_null(strstr(r->out, SECRET2), "a password was printed on stdout:\n%s", r->out);
    cr_assert_null(strstr(r->err, SECRET1), "a password was printed on stderr");
    cr_assert_null(strstr(r->err, SECRET2), "a password was printed on stderr");
}

/* Waits until queue holds n ready messages. */
static void wait_queue_len(HvdBroker *b, const char *queue, long n, int timeout_ms)
{
    long long deadline = hvd_it_now_ms() + timeout_ms;
    long len = -1;
    while ((len = hvd_it_queue_len(b, queue)) != n && hvd_it_now_ms() < deadline) usleep(100000);
    cr_assert_eq(len, n, "%s holds %ld messages, not %ld", queue, len, n);
}

static void publish_raw(HvdBroker *b, const char *body, const char *content_type, const char *message_id)
{
    HvdPublish p = {.exchange = jobs_exchange,
                    .routing_key = HVD_BROKER_JOB_KEY,
                    .body = body,
                    .len = strlen(body),
                    .content_type = content_type,
                    .message_id = message_id,
                    .persistent = true};
    cr_assert_eq(hvd_it_publish(b, &p), HVD_CONFIRM_ACKED);
}

static json_t *json_out(const ItCtl *r)
{
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %s", e.text, r->out);
    return j;
}

Test(ctl_dead, undecodable_messages_list_show_purge)
{
    worker = it_worker_start(prefix, dsn, tmp, NULL);
    HvdBroker *b = hvd_it_broker("dead raw");
    /* truncated JSON that holds a password; garbage "msgpack" with a message id */
    publish_raw(b,
                "{\"job_type\": \"managed_deployment\", \"request\": {\"guest_config\": {\"guest_la_pw\": \"" SECRET1,
                "application/json", NULL);
    publish_raw(b, "\xc1\xc1 not msgpack", "application/msgpack", "garbage-2");
    wait_queue_len(b, dead_queue, 2, 30000);

    ItCtl r = it_ctl(tmp, "dead list");
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "ID") && strstr(r.out, "REASON"), "no table header");
    cr_assert_eq(it_count(r.out, "malformed_message"), 2);
    cr_assert(strstr(r.out, "raw-"), "no raw- id for the message without a message id");
    cr_assert(strstr(r.out, "garbage-2"));
    cr_assert(strstr(r.out, "The message could not be read"), "no reason");
    cr_assert(strstr(r.out, "2 dead letters in"));
    assert_no_secrets(&r);
    it_ctl_free(&r);
    /* reading is non-destructive, and keeps the order */
    wait_queue_len(b, dead_queue, 2, 5000);

    r = it_ctl(tmp, "dead list --output json");
    cr_assert_eq(r.rc, 0);
    json_t *list = json_out(&r);
    cr_assert_eq(json_integer_value(json_object_get(list, "count")), 2);
    json_t *arr = json_object_get(list, "dead_letters");
    cr_assert_eq(json_array_size(arr), 2);
    const char *raw_id = json_string_value(json_object_get(json_array_get(arr, 0), "id"));
    cr_assert(strncmp(raw_id, "raw-", 4) == 0, "first is %s", raw_id);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "id")), "garbage-2");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "source")), "worker");
    cr_assert(json_integer_value(json_object_get(json_array_get(arr, 0), "size")) > 80);
    char *rid = hvd_xstrdup(raw_id);
    json_decref(list);
    it_ctl_free(&r);

    /* show: the raw body as received (hex), the password masked */
    r = it_ctl(tmp, "dead show %s", rid);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "code            malformed_message"));
    cr_assert(strstr(r.out, "could not be decoded"));
    cr_assert(strstr(r.out, "|{\"job_type\": \"ma|"), "no hex dump of the body:\n%s", r.out);
    cr_assert(strstr(r.out, "guest_la_pw"), "the body is not shown as received");
    cr_assert_null(strstr(r.out, "S3cret"), "the password shows in the dump");
    assert_no_secrets(&r);
    it_ctl_free(&r);

    r = it_ctl(tmp, "dead show %s --output json", rid);
    cr_assert_eq(r.rc, 0);
    assert_no_secrets(&r);
    json_t *one = json_out(&r);
    const char *b64 = json_string_value(json_object_get(one, "body_base64"));
    cr_assert_not_null(b64);
    unsigned char raw[1024];
    size_t rawlen = 0;
    cr_assert_eq(
        sodium_base642bin(raw, sizeof raw - 1, b64, strlen(b64), NULL, &rawlen, NULL, sodium_base64_VARIANT_ORIGINAL),
        0);
    raw[rawlen] = '\0';
    cr_assert(strstr((char *)raw, "{\"job_type\": \"managed_deployment\""), "body: %s", raw);
    cr_assert_null(strstr((char *)raw, "S3cret"), "the password is in body_base64");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(one, "headers"), "x-hvdeploy-code")),
                     "malformed_message");
    json_decref(one);
    it_ctl_free(&r);

    r = it_ctl(tmp, "dead show no-such-id");
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "no dead letter with ID 'no-such-id'"));
    it_ctl_free(&r);

    /* replay of a message that never became a job: published again as it came; the
     * worker dead-letters it again */
    r = it_ctl(tmp, "dead replay garbage-2");
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "replayed") && strstr(r.out, "published again to"), "%s", r.out);
    it_ctl_free(&r);
    long long deadline = hvd_it_now_ms() + 30000;
    for (;;) {
        r = it_ctl(tmp, "dead list --output json");
        list = json_out(&r);
        arr = json_object_get(list, "dead_letters");
        bool back = json_array_size(arr) == 2 &&
                    strcmp(json_string_value(json_object_get(json_array_get(arr, 1), "id")), "garbage-2") == 0;
        json_decref(list);
        it_ctl_free(&r);
        if (back) break;
        cr_assert(hvd_it_now_ms() < deadline, "the replayed message did not come back");
        usleep(200000);
    }

    /* replay --all: both, at most one per second */
    long long t0 = hvd_it_now_ms();
    r = it_ctl(tmp, "dead replay --all --rate 1 --output json");
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    json_t *res = json_out(&r);
    cr_assert_eq(json_integer_value(json_object_get(res, "replayed")), 2);
    cr_assert_eq(json_integer_value(json_object_get(res, "refused")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(res, "results"), 0), "outcome")),
                     "replayed");
    cr_assert_geq(hvd_it_now_ms() - t0, 900, "--rate 1 did not space the replays");
    json_decref(res);
    it_ctl_free(&r);
    wait_queue_len(b, dead_queue, 2, 30000);

    /* purge one, then all */
    r = it_ctl(tmp, "dead purge %s", rid);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "purged 1 dead letter from"));
    it_ctl_free(&r);
    wait_queue_len(b, dead_queue, 1, 5000);
    r = it_ctl(tmp, "dead show %s", rid);
    cr_assert_eq(r.rc, 1);
    it_ctl_free(&r);
    r = it_ctl(tmp, "dead purge --all");
    cr_assert_eq(r.rc, 2, "purge --all without --yes must refuse");
    cr_assert(strstr(r.err, "--yes"));
    it_ctl_free(&r);
    wait_queue_len(b, dead_queue, 1, 5000);
    r = it_ctl(tmp, "dead purge --all --yes --output json");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "{\"purged\":1}\n");
    it_ctl_free(&r);
    r = it_ctl(tmp, "dead list");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "no dead letters in"));
    it_ctl_free(&r);
    free(rid);
    hvd_broker_close(b);
}

/* A message RabbitMQ dead-letters itself (here: expired in a queue whose dead-letter
 * exchange is <prefix>.dead): its reason comes from x-death. */
Test(ctl_dead, broker_dead_letter_reason_and_refused_replay)
{
    HvdBroker *b = hvd_it_broker("dead x-death");
    hvd_it_declare(b, prefix);
    const char *id = "0b5e8f52-7d1a-4c3e-9f00-1234567890ab";
    char *script = hvd_xasprintf(
        "import pika, sys\n"
        "c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n"
        "ch = c.channel()\n"
        "q = sys.argv[2] + '.ttl'\n"
        "ch.queue_declare(q, arguments={'x-message-ttl': 1, 'x-dead-letter-exchange': sys.argv[2] + '.dead'})\n"
        "body = '{\"job_id\": \"%s\", \"job_type\": \"managed_deployment\", "
        "\"request\": {\"guest_config\": {\"guest_la_pw\": \"%s\"}}}'\n"
        "ch.basic_publish('', q, body, pika.BasicProperties(content_type='application/json', "
        "message_id='%s', delivery_mode=2))\n"
        "c.close()\n",
        id, SECRET1, id);
    char *path = hvd_xasprintf("%s/ttl.py", tmp);
    it_write_file(path, script);
    cr_assert_eq(hvd_it_run("/usr/bin/python3 %s '%s' %s", path, hvd_it_env("HVD_AMQP_URL"), prefix), 0);
    wait_queue_len(b, dead_queue, 1, 15000);

    ItCtl r = it_ctl(tmp, "dead list --output json");
    cr_assert_eq(r.rc, 0);
    json_t *list = json_out(&r);
    json_t *it = json_array_get(json_object_get(list, "dead_letters"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(it, "id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(it, "job_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(it, "code")), "expired");
    char *want = hvd_xasprintf("dead-lettered by RabbitMQ: expired in queue %s.ttl", prefix);
    cr_assert_str_eq(json_string_value(json_object_get(it, "reason")), want);
    cr_assert(json_integer_value(json_object_get(it, "age_s")) >= 0, "no age from x-death");
    json_decref(list);
    it_ctl_free(&r);

    /* a decodable body is shown pretty, with its secret masked */
    r = it_ctl(tmp, "dead show %s", id);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "\"guest_la_pw\": \"***\""), "%s", r.out);
    cr_assert(strstr(r.out, "source          rabbitmq (expired)"));
    assert_no_secrets(&r);
    it_ctl_free(&r);

    /* replay: the job is not in the database, so the message goes back as first
     * published, with routing key <prefix>.ttl, which <prefix>.jobs does not route:
     * refused, and the dead letter stays */
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "it"};
    char err[512];
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int applied = 0;
    cr_assert_eq(hvd_store_migrate(s, HVD_SOURCE_DIR "/migrations", NULL, &applied, err, sizeof err), HVD_STORE_OK,
                 "%s", err);
    hvd_store_close(s);
    r = it_ctl(tmp, "dead replay %s", id);
    cr_assert_eq(r.rc, 1, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "refused") && strstr(r.out, "no fleet handles routing key"), "%s", r.out);
    it_ctl_free(&r);
    wait_queue_len(b, dead_queue, 1, 5000);
    char ttl[300];
    snprintf(ttl, sizeof ttl, "%s.ttl", prefix);
    (void)hvd_broker_queue_delete(b, ttl, err, sizeof err);
    free(want);
    free(path);
    free(script);
    hvd_broker_close(b);
}

/* The envelope of job id on <prefix>.results within timeout_ms (caller frees). */
static json_t *next_envelope(HvdBroker *b, int timeout_ms)
{
    HvdDelivery d;
    HvdBrokerStatus st = hvd_it_get(b, results_queue, timeout_ms, &d);
    cr_assert_eq(st, HVD_BROKER_DELIVERY, "no envelope on %s", results_queue);
    json_t *env = json_loadb(d.body, d.len, 0, NULL);
    cr_assert_not_null(env, "the envelope is not JSON");
    hvd_delivery_free(&d);
    return env;
}

static const char *stage_field(json_t *env, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(env, "stages"), i), key));
}

static long effects(const char *op)
{
    char *path = hvd_xasprintf("%s/hv01.lab.example/effects.jsonl", tmp);
    char *text = it_slurp(path);
    char *needle = hvd_xasprintf("\"op\":\"%s\"", op);
    long n = (long)it_count(text, needle);
    free(needle);
    free(text);
    free(path);
    return n;
}

Test(ctl_dead, exhausted_job_replays_from_its_failed_stage)
{
    static const char *const faulty[] = {"HVD_SIM_FAIL=nic.create=1:TRANSIENT", "HVD_MAX_ATTEMPTS=2",
                                         "HVD_RETRY_DELAYS=1", NULL};
    worker = it_worker_start(prefix, dsn, tmp, faulty);
    HvdBroker *b = hvd_it_broker("dead exhausted");
    char *body = it_slurp(JOBS "/full-windows.json");
    /* keep what was made on failure, so that there is something to resume */
    char *keep = strstr(body, "\"rollback\"");
    cr_assert_not_null(keep);
    memcpy(keep, "\"keep\"    ", 10);
    HvdPublish p = {.exchange = jobs_exchange,
                    .routing_key = HVD_BROKER_JOB_KEY,
                    .body = body,
                    .len = strlen(body),
                    .content_type = "application/json",
                    .message_id = FULL_ID,
                    .persistent = true};
    cr_assert_eq(hvd_it_publish(b, &p), HVD_CONFIRM_ACKED);
    free(body);

    json_t *env = next_envelope(b, 90000);
    cr_assert_str_eq(json_string_value(json_object_get(env, "status")), "partial");
    cr_assert_str_eq(json_string_value(json_object_get(env, "code")), "retries_exhausted");
    cr_assert_str_eq(stage_field(env, 2, "name"), "nic.create");
    cr_assert_str_eq(stage_field(env, 2, "status"), "failed");
    json_decref(env);
    wait_queue_len(b, dead_queue, 1, 30000);

    ItCtl r = it_ctl(tmp, "dead list --output json");
    cr_assert_eq(r.rc, 0);
    json_t *list = json_out(&r);
    json_t *it = json_array_get(json_object_get(list, "dead_letters"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(it, "id")), FULL_ID);
    cr_assert_str_eq(json_string_value(json_object_get(it, "code")), "retries_exhausted");
    cr_assert_str_eq(json_string_value(json_object_get(it, "stage")), "nic.create");
    cr_assert(json_is_true(json_object_get(it, "replayable_job")));
    json_decref(list);
    it_ctl_free(&r);

    r = it_ctl(tmp, "dead show %s", FULL_ID);
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "failed stage    nic.create on hv01.lab.example"), "%s", r.out);
    cr_assert(strstr(r.out, "\"guest_la_pw\": \"***\""), "the redacted request is not shown");
    assert_no_secrets(&r);
    it_ctl_free(&r);

    /* the fault is gone: a worker without it */
    it_worker_stop(&worker);
    static const char *const healthy[] = {"HVD_MAX_ATTEMPTS=2", "HVD_RETRY_DELAYS=1", NULL};
    worker = it_worker_start(prefix, dsn, tmp, healthy);
    long vm_creates = effects("vm.create");
    cr_assert_eq(vm_creates, 1);

    /* the same dead letter twice (the job failed twice, say): one replay, the other removed */
    HvdDelivery d;
    cr_assert_eq(hvd_it_get(b, dead_queue, 5000, &d), HVD_BROKER_DELIVERY);
    char dead_exchange[256];
    snprintf(dead_exchange, sizeof dead_exchange, "%s.dead", prefix);
    for (int i = 0; i < 2; i++) {
        HvdPublish dp = {.exchange = dead_exchange,
                         .routing_key = "",
                         .body = d.body,
                         .len = d.len,
                         .content_type = d.content_type,
                         .message_id = d.message_id,
                         .correlation_id = d.correlation_id,
                         .persistent = true,
                         .copy_headers_from = &d};
        cr_assert_eq(hvd_it_publish(b, &dp), HVD_CONFIRM_ACKED);
    }
    hvd_delivery_free(&d);
    wait_queue_len(b, dead_queue, 2, 5000);

    r = it_ctl(tmp, "dead replay %s", FULL_ID);
    cr_assert_eq(r.rc, 0, "exit %d: %s\n%s", r.rc, r.out, r.err);
    cr_assert(strstr(r.out, "job resumes from nic.create"), "%s", r.out);
    cr_assert(strstr(r.out, "1 replayed, 0 refused, 1 removed (same job)"), "%s", r.out);
    it_ctl_free(&r);

    /* the replay's own answer: success, for the same job id */
    env = next_envelope(b, 60000);
    cr_assert_str_eq(json_string_value(json_object_get(env, "job_id")), FULL_ID);
    cr_assert_str_eq(json_string_value(json_object_get(env, "status")), "success", "%s",
                     json_string_value(json_object_get(env, "message")));
    for (size_t i = 0; i < 4; i++) cr_assert_str_eq(stage_field(env, i, "status"), "succeeded");
    json_decref(env);
    /* it resumed: vm.create and disk.create did not run again */
    cr_assert_eq(effects("vm.create"), 1);
    cr_assert_eq(effects("disk.create"), 1);
    wait_queue_len(b, dead_queue, 0, 5000);

    PGconn *c = it_pg_connect(dsn);
    char *status = it_pg_value(c, "SELECT status FROM hvdeploy.jobs WHERE job_id = $1::uuid", FULL_ID);
    cr_assert_str_eq(status, "succeeded");
    free(status);
    cr_assert_eq(it_pg_long(c,
                            "SELECT count(*) FROM hvdeploy.job_events WHERE job_id = $1::uuid AND detail LIKE "
                            "'replay%'",
                            FULL_ID),
                 2, "one job and one stage event of the replay");

    /* refusals, straight from the store: a job that succeeded, and one whose secrets are gone */
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "it"};
    char err[512], why[512];
    bool found = false;
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(hvd_store_replay(s, FULL_ID, &found, why, sizeof why, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert(found);
    cr_assert(strstr(why, "is succeeded, not failed"), "why: %s", why);
    PQclear(it_pg_q(c, "UPDATE hvdeploy.jobs SET status = 'failed' WHERE job_id = $1::uuid", FULL_ID, NULL));
    PQclear(it_pg_q(c,
                    "UPDATE hvdeploy.job_stages SET status = 'failed' WHERE job_id = $1::uuid "
                    "AND stage = 'vm.initialize'",
                    FULL_ID, NULL));
    PQclear(it_pg_q(c, "DELETE FROM hvdeploy.job_secrets WHERE job_id = $1::uuid", FULL_ID, NULL));
    cr_assert_eq(hvd_store_replay(s, FULL_ID, &found, why, sizeof why, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert(found);
    cr_assert(strstr(why, "secrets"), "why: %s", why);
    cr_assert_eq(hvd_store_replay(s, "00000000-0000-4000-8000-000000000000", &found, why, sizeof why, err, sizeof err),
                 HVD_STORE_OK);
    cr_assert_not(found);
    hvd_store_close(s);
    PQfinish(c);
    hvd_broker_close(b);
}
