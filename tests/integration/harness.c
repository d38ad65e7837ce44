/* Shared helpers of the integration tests: environment, prefixes, cleanup, commands. */
#include "harness.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <amqp_tcp_socket.h>
#include "buf.h"

const int hvd_it_delays[] = {1, 2};
const size_t hvd_it_ndelays = 2;

const char *hvd_it_env(const char *name)
{
    const char *v = getenv(name);
    if (v && *v) return v;
    if (strcmp(name, "HVD_DEV_SH") == 0) {
        static char path[4096];
        snprintf(path, sizeof path, "%s/deploy/dev.sh", HVD_SOURCE_DIR);
        return access(path, X_OK) == 0 ? path : NULL;
    }
    return NULL;
}

long long hvd_it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *hvd_it_prefix(void)
{
    static char prefixes[32][40]; /* a test takes one or two */
    static unsigned counter;
    char *p = prefixes[counter % 32];
    counter++;
    snprintf(p, sizeof prefixes[0], "it%ldx%u", (long)getpid(), counter);
    return p;
}

HvdBroker *hvd_it_broker(const char *what)
{
    char err[512];
    char name[128];
    snprintf(name, sizeof name, "hvd-it %s", what ? what : "");
    HvdBrokerOptions o = {
        .url = hvd_it_env("HVD_AMQP_URL"), .connection_name = name, .heartbeat_s = 10, .confirms = true};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    cr_assert_not_null(b, "cannot connect: %s", err);
    return b;
}

void hvd_it_declare(HvdBroker *b, const char *prefix)
{
    char err[512] = "";
    HvdBrokerStatus st = hvd_broker_declare_topology(b, prefix, hvd_it_delays, hvd_it_ndelays, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_OK, "declare %s: %s (%s)", prefix, hvd_broker_status_name(st), err);
}

void hvd_it_cleanup_prefix(const char *prefix, const int *delays, size_t n)
{
    static const char *const queues[] = {"jobs", "dead", "results"};
    static const char *const exchanges[] = {"jobs", "retry", "dead", "events"};
    char err[512], name[300], key[32];
    if (!delays) {
        delays = hvd_it_delays;
        n = hvd_it_ndelays;
    }
    HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"),
                          .connection_name = "hvd-it cleanup",
                          .heartbeat_s = 10,
                          .connect_timeout_ms = 5000,
                          .rpc_timeout_ms = 5000};
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    if (!b) {
        fprintf(stderr, "cleanup of %s: %s\n", prefix, err);
        return;
    }
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, queues[i]);
        (void)hvd_broker_queue_delete(b, name, err, sizeof err);
    }
    for (size_t i = 0; i < n; i++) {
        hvd_broker_retry_key(delays[i], key, sizeof key);
        snprintf(name, sizeof name, "%s.retry.%s", prefix, key);
        (void)hvd_broker_queue_delete(b, name, err, sizeof err);
    }
    for (size_t i = 0; i < sizeof exchanges / sizeof *exchanges; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, exchanges[i]);
        (void)hvd_broker_exchange_delete(b, name, err, sizeof err);
    }
    hvd_broker_close(b);
}

typedef struct {
    uint64_t seq;
    HvdConfirm status;
    bool seen;
} ItWait;

static void it_confirm(void *ctx, uint64_t seq, HvdConfirm status)
{
    ItWait *w = ctx;
    if (seq == w->seq) {
        w->status = status;
        w->seen = true;
    }
}

HvdConfirm hvd_it_publish(HvdBroker *b, const HvdPublish *p)
{
    char err[512] = "";
    ItWait w = {0};
    HvdBrokerStatus st = hvd_broker_publish(b, p, &w.seq, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_OK, "publish: %s (%s)", hvd_broker_status_name(st), err);
    long long deadline = hvd_it_now_ms() + 10000;
    while (!w.seen && hvd_it_now_ms() < deadline) {
        st = hvd_broker_wait_confirms(b, 1000, it_confirm, &w);
        if (st == HVD_BROKER_CLOSED) break;
    }
    cr_assert(w.seen, "no confirm for seq %llu within 10 s", (unsigned long long)w.seq);
    return w.status;
}

HvdBrokerStatus hvd_it_get(HvdBroker *b, const char *queue, int timeout_ms, HvdDelivery *d)
{
    char err[512] = "";
    long long deadline = hvd_it_now_ms() + timeout_ms;
    for (;;) {
        HvdBrokerStatus st = hvd_broker_get(b, queue, true, d, err, sizeof err);
        if (st != HVD_BROKER_EMPTY) return st;
        if (hvd_it_now_ms() >= deadline) return HVD_BROKER_EMPTY;
        (void)hvd_broker_service(b, 50);
    }
}

long hvd_it_queue_len(HvdBroker *b, const char *queue)
{
    char err[512];
    uint32_t n = 0;
    return hvd_broker_queue_info(b, queue, &n, NULL, err, sizeof err) == HVD_BROKER_OK ? (long)n : -1;
}

int hvd_it_run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    int rc = system(cmd);
    free(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

char *hvd_it_run_output(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    HvdBuf out = {0};
    hvd_buf_puts(&out, "");
    if (n < 0) return hvd_buf_steal(&out);
    FILE *f = popen(cmd, "r");
    free(cmd);
    if (!f) return hvd_buf_steal(&out);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) hvd_buf_append(&out, chunk, got);
    pclose(f);
    return hvd_buf_steal(&out);
}

long hvd_it_rmq_pid(void)
{
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) return 0;
    char *out = hvd_it_run_output("'%s' svc rmq-pid 2>/dev/null", dev);
    char *end;
    long pid = strtol(out, &end, 10);
    if (end == out || pid <= 0) pid = 0;
    free(out);
    return pid;
}

amqp_connection_state_t hvd_it_raw_conn(void)
{
    struct amqp_connection_info ci;
    char *url = hvd_xstrdup(hvd_it_env("HVD_AMQP_URL"));
    cr_assert_eq(amqp_parse_url(url, &ci), AMQP_STATUS_OK);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    cr_assert_eq(amqp_socket_open(s, ci.host, ci.port), AMQP_STATUS_OK);
    amqp_rpc_reply_t r = amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    cr_assert_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    free(url);
    return c;
}

void hvd_it_raw_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}
