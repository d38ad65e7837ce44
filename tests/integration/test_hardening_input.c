/* Issue 12 through the path a user's message takes: a real hvdeploy-worker
 * against the private RabbitMQ and PostgreSQL, messages published as upstream
 * would. This file: what comes in (the body and its properties): NUL in a
 * body and properties that are not UTF-8 (item 3), job_type labels (item 2),
 * oversized bodies (item 6), repeated keys, big msgpack integers, Windows
 * names, and the secrets of dead-lettered undecodable bodies. */
#include <arpa/inet.h>
#include <msgpack.h>
#include <sodium.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

#define WAIT_MS 30000

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(hardening_input, .fini = fini, .timeout = 240);

static WpWorker *start(const WpOptions *o)
{
    W = wp_world_new(NULL);
    WpWorker *k = wp_start(W, o);
    cr_assert(wp_wait_ready(k, 30000), "the worker did not start:\n%s", wp_log_tail(k));
    return k;
}

static void one(const char *queue, WpWorker *k, WpMsg *m, const char *what)
{
    cr_assert_eq(wp_collect(W->broker, queue, 1, WAIT_MS, m), 1, "no answer to %s within %d ms; worker log:\n%s", what,
                 WAIT_MS, wp_log_tail(k));
    cr_assert_not_null(m->body, "the answer to %s is not decodable", what);
}

/* The envelope's error at loc (NULL when none). */
static const HvdNode *error_at(const HvdNode *env, const char *loc)
{
    const HvdNode *errs = hvd_node_get(env, "errors");
    for (size_t i = 0; errs && errs->type == HVD_ARRAY && i < errs->u.arr.n; i++)
        if (wp_str(errs->u.arr.items[i], "loc") && strcmp(wp_str(errs->u.arr.items[i], "loc"), loc) == 0)
            return errs->u.arr.items[i];
    return NULL;
}

/* The message was acked once answered: nothing waits in the job queue, and the
 * worker never had to give it back (no redelivery, no dead letter). */
static void assert_settled(WpWorker *k)
{
    char jobs[200], dead[200];
    snprintf(jobs, sizeof jobs, "%s.jobs", W->prefix);
    snprintf(dead, sizeof dead, "%s.dead", W->prefix);
    usleep(1500 * 1000);
    cr_assert_eq(hvd_it_queue_len(W->broker, jobs), 0, "a message came back to %s; log:\n%s", jobs, wp_log_tail(k));
    cr_assert_eq(hvd_it_queue_len(W->broker, dead), 0, "a message was dead-lettered");
    cr_assert_eq(wp_log_count(k, "cannot record"), 0, "the worker failed to record:\n%s", wp_log_tail(k));
    cr_assert_eq(wp_log_count(k, "22P05") + wp_log_count(k, "22021"), 0, "PostgreSQL refused text:\n%s",
                 wp_log_tail(k));
}

/* Item 3: a \u0000 anywhere in the request passed validation and failed the
 * jsonb insert (22P05); the message was never acked. */
Test(hardening_input, nul_in_the_body_is_an_invalid_job)
{
    WpWorker *k = start(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    for (int fmt = 0; fmt < 2; fmt++) {
        HvdNode *job = wp_job_load("minimal.json", NULL);
        hvd_node_map_set(wp_job_at(job, "request.vm_spec"), "notes", hvd_node_strn("a\0b", 3));
        wp_publish_job(W, job, &(WpSend){.ct = fmt ? HVD_CT_JSON : HVD_CT_MSGPACK, .reply_to = q});
        WpMsg m[1];
        one(q, k, m, "a body holding NUL");
        cr_assert_str_eq(wp_str(m->body, "code"), "validation_error", "%s", wp_str(m->body, "message"));
        cr_assert_str_eq(wp_str(m->body, "job_id"), wp_job_id(job));
        const HvdNode *e = error_at(m->body, "request.vm_spec.notes");
        cr_assert_not_null(e, "no error at request.vm_spec.notes");
        cr_assert_str_eq(wp_str(e, "msg"), "Value error, strings must not contain NUL characters (\\u0000)");
        char *st = wp_pg_value(W, "SELECT status FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job));
        cr_assert_str_eq(st ? st : "(no row)", "failed", "the invalid job is recorded");
        free(st);
        wp_msgs_free(m, 1);
        hvd_node_free(job);
    }
    assert_settled(k);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* Item 3: a correlation_id or reply_to property that is not UTF-8 failed a
 * text insert (22021). It is an invalid job too, answered and acked. */
Test(hardening_input, properties_not_in_utf8_are_an_invalid_job)
{
    WpWorker *k = start(NULL);
    char q[128], results[200];
    wp_private_queue(W, q, sizeof q);
    snprintf(results, sizeof results, "%s.results", W->prefix);
    HvdNode *job = wp_job_load("minimal.json", NULL);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q, .correlation_id = "corr-\xff\xfe"});
    WpMsg m[1];
    one(q, k, m, "a correlation_id in Latin-1");
    cr_assert_str_eq(wp_str(m->body, "code"), "validation_error");
    const HvdNode *e = error_at(m->body, "properties.correlation_id");
    cr_assert_not_null(e, "no error at properties.correlation_id");
    cr_assert_str_eq(wp_str(e, "type"), "string_unicode");
    cr_assert_str_eq(wp_str(m->body, "correlation_id"), "corr-\xef\xbf\xbd\xef\xbf\xbd", "echoed, made UTF-8");
    wp_msgs_free(m, 1);
    hvd_node_free(job);

    /* a reply_to that is no queue name RabbitMQ could have: answered on <prefix>.results */
    job = wp_job_load("minimal.json", NULL);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = "replies.\xe9t\xe9"});
    one(results, k, m, "a reply_to in Latin-1");
    cr_assert_str_eq(wp_str(m->body, "job_id"), wp_job_id(job));
    cr_assert_not_null(error_at(m->body, "properties.reply_to"));
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    assert_settled(k);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

static char *http_metrics(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    HvdBuf b = {0};
    char chunk[8192];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0) hvd_buf_append(&b, chunk, (size_t)r);
    close(fd);
    return hvd_buf_steal(&b);
}

/* Item 2: job_type from the body became a Prometheus label (4 000 values: 128 MB). */
Test(hardening_input, job_types_from_bodies_do_not_become_labels)
{
    WpWorker *k = start(&(WpOptions){.metrics_addr = "127.0.0.1:19479"});
    char q[128];
    wp_private_queue(W, q, sizeof q);
    const int N = 40;
    for (int i = 0; i < N; i++) {
        HvdNode *job = wp_job_load("minimal.json", NULL);
        char jt[64];
        snprintf(jt, sizeof jt, "jt-%d-%s", i, wp_job_id(job));
        hvd_node_map_set_str(job, "job_type", jt);
        wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
        hvd_node_free(job);
    }
    WpMsg m[40];
    cr_assert_eq(wp_collect(W->broker, q, N, WAIT_MS, m), (size_t)N, "%s", wp_log_tail(k));
    for (int i = 0; i < N; i++) cr_assert_str_eq(wp_str(m[i].body, "code"), "unsupported_job_type");
    wp_msgs_free(m, N);
    char *text = http_metrics(19479);
    cr_assert_null(strstr(text, "jt-"), "a job_type from a body is a label:\n%.2000s", text);
    char want[128];
    snprintf(want, sizeof want, "hvdeploy_jobs_total{job_type=\"other\",status=\"error\"} %d\n", N);
    cr_assert_not_null(strstr(text, want), "no line '%s' in:\n%.3000s", want, text);
    free(text);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* The test side's publish of len bytes on a connection of its own (the broker
 * may close the channel): what the publisher sees. */
static HvdConfirm publish_size(size_t len, char *err, size_t errlen, long long *ms)
{
    HvdBroker *b = hvd_it_broker("big publisher");
    char *body = malloc(len);
    memset(body, 'x', len);
    memcpy(body, "{\"pad\":\"", 8);
    char exchange[200];
    snprintf(exchange, sizeof exchange, "%s.jobs", W->prefix);
    HvdPublish p = {.exchange = exchange,
                    .routing_key = HVD_BROKER_JOB_KEY,
                    .body = body,
                    .len = len,
                    .content_type = "application/json",
                    .persistent = true,
                    .mandatory = true};
    long long t0 = hvd_it_now_ms();
    HvdConfirm c = hvd_it_publish(b, &p);
    *ms = hvd_it_now_ms() - t0;
    snprintf(err, errlen, "%s", hvd_broker_last_error(b));
    free(body);
    hvd_broker_close(b);
    return c;
}

/* Item 6: bodies were read whole before the 256 KiB check, and no broker
 * config limited them. The broker refuses over 4 MiB (the publisher sees its
 * channel closed); the worker refuses over 256 KiB before copying. */
Test(hardening_input, oversized_bodies_are_refused_early)
{
    WpWorker *k = start(NULL);
    char q[128], dead[200], err[512];
    wp_private_queue(W, q, sizeof q);
    snprintf(dead, sizeof dead, "%s.dead", W->prefix);
    static const size_t sizes[] = {10u << 20, 100u << 20};
    for (size_t i = 0; i < 2; i++) {
        long long ms;
        HvdConfirm c = publish_size(sizes[i], err, sizeof err, &ms);
        fprintf(stderr, "[hardening] a %zu MiB publish: confirm %s after %lld ms; the publisher sees: %s\n",
                sizes[i] >> 20, hvd_confirm_name(c), ms, err);
        cr_assert_neq(c, HVD_CONFIRM_ACKED, "the broker took a %zu MiB message", sizes[i] >> 20);
        cr_assert_not_null(strstr(err, "larger than configured max size"), "%s", err);
    }
    cr_assert_eq(hvd_it_queue_len(W->broker, dead), 0, "nothing reached the worker");

    /* 1 MiB passes the broker: the worker answers message_too_large without copying it */
    HvdBuf big = {0};
    hvd_buf_puts(&big, "{\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"guest_la_pw\":\"S3cret!pw\",\"pad\":\"");
    while (big.len < (1u << 20)) hvd_buf_puts(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    hvd_buf_puts(&big, "\"}");
    char id[37];
    wp_uuid(id);
    wp_publish_job(W, NULL,
                   &(WpSend){.ct = HVD_CT_JSON, .raw = big.data, .raw_len = big.len, .reply_to = q, .message_id = id});
    WpMsg m[1];
    one(q, k, m, "a 1 MiB body");
    cr_assert_str_eq(wp_str(m->body, "code"), "message_too_large");
    char want[128];
    snprintf(want, sizeof want, "body is %zu bytes, over the 262144-byte limit", big.len);
    cr_assert_not_null(strstr(wp_str(m->body, "message"), want), "%s", wp_str(m->body, "message"));
    wp_msgs_free(m, 1);
    WpMsg d[1];
    cr_assert_eq(wp_collect(W->broker, dead, 1, 10000, d), 1, "the message is dead-lettered");
    /* its first 256 KiB as received, but the password's 9 bytes became 3 */
    cr_assert_eq(d->d.len, (size_t)HVD_MAX_BODY - 6, "only its first 256 KiB were kept (%zu bytes)", d->d.len);
    cr_assert_not(wp_contains(d->d.body, d->d.len, "S3cret!pw"), "the dead letter keeps the password");
    cr_assert(wp_contains(d->d.body, d->d.len, "\"guest_la_pw\":\"***\""), "masked in place");
    cr_assert_not_null(wp_msg_header(d, "x-hvdeploy-reason"));
    wp_msgs_free(d, 1);
    hvd_buf_free(&big);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* Repeated keys (last-wins here, first-wins upstream could disagree) and a
 * msgpack integer above INT64_MAX (clamped, where JSON refused it). */
Test(hardening_input, repeated_keys_and_big_integers_are_malformed)
{
    WpWorker *k = start(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    static const char dup_json[] =
        "{\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"job_type\":"
        "\"managed_deployment\",\"request\":{\"target_host\":\"hv01\",\"target_host\":\"hv02\"}}";
    wp_publish_job(W, NULL, &(WpSend){.ct = HVD_CT_JSON, .raw = dup_json, .raw_len = strlen(dup_json), .reply_to = q});
    WpMsg m[1];
    one(q, k, m, "a JSON body with two target_host");
    cr_assert_str_eq(wp_str(m->body, "code"), "malformed_message");
    cr_assert_not_null(strstr(wp_str(m->body, "message"), "duplicate key 'target_host'"), "%s",
                       wp_str(m->body, "message"));
    wp_msgs_free(m, 1);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "target_host", 11);
    msgpack_pack_str_with_body(&pk, "hv01", 4);
    msgpack_pack_str_with_body(&pk, "target_host", 11);
    msgpack_pack_str_with_body(&pk, "hv02", 4);
    wp_publish_job(W, NULL, &(WpSend){.ct = HVD_CT_MSGPACK, .raw = sb.data, .raw_len = sb.size, .reply_to = q});
    one(q, k, m, "a msgpack body with two target_host");
    cr_assert_str_eq(wp_str(m->body, "message"), "The message could not be read: invalid msgpack: duplicate key "
                                                 "'target_host'");
    wp_msgs_free(m, 1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "gb_ram", 6);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    wp_publish_job(W, NULL, &(WpSend){.ct = HVD_CT_MSGPACK, .raw = sb.data, .raw_len = sb.size, .reply_to = q});
    one(q, k, m, "a msgpack uint64 above INT64_MAX");
    cr_assert_str_eq(wp_str(m->body, "code"), "malformed_message");
    cr_assert_not_null(strstr(wp_str(m->body, "message"), "too big integer"), "%s", wp_str(m->body, "message"));
    wp_msgs_free(m, 1);
    msgpack_sbuffer_destroy(&sb);

    /* a name Windows treats as a device */
    HvdNode *job = wp_job_load("minimal.json", NULL);
    hvd_node_map_set_str(wp_job_at(job, "request.vm_spec"), "vm_name", "CON");
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    one(q, k, m, "vm_name CON");
    cr_assert_str_eq(wp_str(m->body, "code"), "validation_error");
    cr_assert_not_null(error_at(m->body, "request.vm_spec.vm_name"));
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* `hvdeployctl dead show ID --output json` of an undecodable dead letter: its
 * body as the command shows it (decoded from body_base64; caller frees). */
static char *dead_show_body(const char *id, size_t *len)
{
    char *out = hvd_it_run_output("HVD_AMQP_PREFIX=%s HVD_PG_DSN='%s' %s/hvdeployctl dead show %s --output json",
                                  W->prefix, W->dsn, HVD_BIN_DIR, id);
    HvdNode *n = NULL;
    char why[256];
    cr_assert_eq(hvd_json_to_node(out, strlen(out), 0, &n, why, sizeof why), HVD_DECODE_OK, "%s: %s", why, out);
    const char *b64 = hvd_node_get_str(n, "body_base64");
    cr_assert_not_null(b64, "no body_base64 in %s", out);
    size_t cap = strlen(b64) + 1;
    unsigned char *bin = malloc(cap);
    cr_assert_eq(sodium_base642bin(bin, cap, b64, strlen(b64), NULL, len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    bin[*len] = '\0';
    hvd_node_free(n);
    free(out);
    return (char *)bin;
}

/* Dead letters of undecodable messages kept secrets in clear; `dead show`
 * masked up to the next ',' (a password holding one leaked its rest). */
Test(hardening_input, undecodable_dead_letters_mask_the_secret_values)
{
    WpWorker *k = start(NULL);
    char q[128], dead[200], id[37];
    wp_private_queue(W, q, sizeof q);
    snprintf(dead, sizeof dead, "%s.dead", W->prefix);
    const char *pw = "Pa,ss}w0rd-Z9";
    char body[512];
    snprintf(body, sizeof body,
             "{\"job_id\":\"x\",\"request\":{\"guest_config\":{\"guest_la_uid\":\"Administrator\","
             "\"guest_la_pw\":\"%s\",\"guest_domain_join_pw\":\"%s",
             pw, pw); /* truncated inside the second password */
    wp_uuid(id);
    wp_publish_job(W, NULL,
                   &(WpSend){.ct = HVD_CT_JSON, .raw = body, .raw_len = strlen(body), .reply_to = q, .message_id = id});
    WpMsg m[1];
    one(q, k, m, "a truncated body holding passwords");
    cr_assert_str_eq(wp_str(m->body, "code"), "malformed_message");
    wp_msgs_free(m, 1);
    size_t blen;
    char *shown = dead_show_body(id, &blen);
    cr_assert_null(memmem(shown, blen, "w0rd", 4), "dead show printed a piece of the password: %s", shown);
    free(shown);
    WpMsg d[1];
    cr_assert_eq(wp_collect(W->broker, dead, 1, 10000, d), 1);
    cr_assert_not(wp_contains(d->d.body, d->d.len, "w0rd"), "the dead letter keeps the password");
    char want[512];
    snprintf(want, sizeof want,
             "{\"job_id\":\"x\",\"request\":{\"guest_config\":{\"guest_la_uid\":\"Administrator\","
             "\"guest_la_pw\":\"***\",\"guest_domain_join_pw\":\"***");
    cr_assert_eq(d->d.len, strlen(want), "the rest is kept as received");
    cr_assert_eq(memcmp(d->d.body, want, d->d.len), 0, "%.*s", (int)d->d.len, (const char *)d->d.body);
    wp_msgs_free(d, 1);

    /* a dead letter an older worker wrote, the password in clear: `dead show` masks it whole */
    char exchange[200], id2[37];
    snprintf(exchange, sizeof exchange, "%s.dead", W->prefix);
    wp_uuid(id2);
    HvdPublish p = {.exchange = exchange,
                    .routing_key = "",
                    .body = body,
                    .len = strlen(body),
                    .content_type = "application/json",
                    .message_id = id2,
                    .persistent = true};
    cr_assert_eq(hvd_it_publish(W->broker, &p), HVD_CONFIRM_ACKED);
    shown = dead_show_body(id2, &blen);
    cr_assert_null(memmem(shown, blen, "w0rd", 4), "dead show printed a piece of the password: %s", shown);
    cr_assert_null(memmem(shown, blen, "ss}", 3), "dead show printed a piece of the password: %s", shown);
    cr_assert_eq(blen, strlen(want), "the rest is shown as received: %s", shown);
    cr_assert_eq(memcmp(shown, want, blen), 0, "%s", shown);
    free(shown);
    cr_assert_eq(wp_stop(k, 15000), 0);
}
