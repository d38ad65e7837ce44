/* Metrics: registry semantics, Prometheus text rendered and parsed back,
 * threads, and the HTTP endpoint (/metrics, /healthz, 404) over a raw socket. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "metrics.h"

static void setup(void)
{
    int devnull = open("/dev/null", O_WRONLY);
    hvd_log_set_fd(devnull);
    hvd_metrics_reset();
}

TestSuite(metrics, .init = setup);

/* ---- a small parser of the text format ---- */

typedef struct {
    char name[128];
    char labels[4][2][128]; /* name, unescaped value */
    int nlabels;
    double value;
} Sample;

typedef struct {
    Sample s[512];
    size_t n;
    char types[64][2][64]; /* metric, type */
    size_t ntypes;
    char helps[64][2][160];
    size_t nhelps;
} Parsed;

static void parse_text(const char *text, Parsed *p)
{
    memset(p, 0, sizeof *p);
    char *copy = strdup(text), *save = NULL;
    cr_assert(strlen(text) == 0 || text[strlen(text) - 1] == '\n', "exposition must end with a newline");
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            cr_assert_eq(sscanf(line + 7, "%63s %63s", p->types[p->ntypes][0], p->types[p->ntypes][1]), 2);
            p->ntypes++;
            continue;
        }
        if (strncmp(line, "# HELP ", 7) == 0) {
            char *sp = strchr(line + 7, ' ');
            cr_assert_not_null(sp);
            snprintf(p->helps[p->nhelps][0], 160, "%.*s", (int)(sp - line - 7), line + 7);
            snprintf(p->helps[p->nhelps][1], 160, "%s", sp + 1);
            p->nhelps++;
            continue;
        }
        cr_assert_neq(line[0], '#', "unexpected comment: %s", line);
        Sample *s = &p->s[p->n++];
        const char *c = line;
        size_t k = 0;
        while (*c && *c != '{' && *c != ' ') s->name[k++] = *c++;
        if (*c == '{') {
            c++;
            while (*c != '}') {
                cr_assert_lt(s->nlabels, 4);
                k = 0;
                while (*c != '=') s->labels[s->nlabels][0][k++] = *c++;
                c++;
                cr_assert_eq(*c, '"', "label value must be quoted: %s", line);
                c++;
                k = 0;
                while (*c != '"') {
                    cr_assert_neq(*c, '\0', "unterminated label value: %s", line);
                    if (*c == '\\') {
                        c++;
                        s->labels[s->nlabels][1][k++] = *c == 'n' ? '\n' : *c;
                        cr_assert(*c == 'n' || *c == '\\' || *c == '"', "bad escape in %s", line);
                        c++;
                    } else {
                        s->labels[s->nlabels][1][k++] = *c++;
                    }
                }
                c++;
                s->nlabels++;
                if (*c == ',') c++;
            }
            c++;
        }
        cr_assert_eq(*c, ' ', "no space before the value: %s", line);
        char *end;
        s->value = strtod(c + 1, &end);
        cr_assert_eq(*end, '\0', "bad value in: %s", line);
    }
    free(copy);
}

static const char *label(const Sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i][0], name) == 0) return s->labels[i][1];
    return NULL;
}

/* The value of name{l1=v1[,l2=v2]}; NAN when absent. */
static double find(const Parsed *p, const char *name, const char *l1, const char *v1, const char *l2, const char *v2)
{
    for (size_t i = 0; i < p->n; i++) {
        const Sample *s = &p->s[i];
        if (strcmp(s->name, name) != 0) continue;
        if (l1 && (!label(s, l1) || strcmp(label(s, l1), v1) != 0)) continue;
        if (l2 && (!label(s, l2) || strcmp(label(s, l2), v2) != 0)) continue;
        return s->value;
    }
    return NAN;
}

static const char *type_of(const Parsed *p, const char *name)
{
    for (size_t i = 0; i < p->ntypes; i++)
        if (strcmp(p->types[i][0], name) == 0) return p->types[i][1];
    return NULL;
}

static void render_parse(Parsed *p)
{
    HvdBuf b = {0};
    hvd_metrics_render(&b);
    parse_text(b.data, p);
    hvd_buf_free(&b);
}

static Parsed P;

Test(metrics, worker_metrics_render_and_move)
{
    hvd_metrics_register_worker();
    hvd_metrics_register_worker(); /* idempotent */
    render_parse(&P);
    static const char *const names[][2] = {
        {"hvdeploy_jobs_total", "counter"},
        {"hvdeploy_stage_duration_seconds", "histogram"},
        {"hvdeploy_agent_call_duration_seconds", "histogram"},
        {"hvdeploy_retries_total", "counter"},
        {"hvdeploy_dead_letters_total", "counter"},
        {"hvdeploy_lease_takeovers_total", "counter"},
        {"hvdeploy_reconnects_total", "counter"},
        {"hvdeploy_jobs_in_flight", "gauge"},
        {"hvdeploy_consumer_utilisation", "gauge"},
        {"hvdeploy_envelopes_published_total", "counter"},
        {"hvdeploy_pg_transactions_total", "counter"},
        {"hvdeploy_amqp_operations_total", "counter"},
        {"process_cpu_seconds_total", "counter"},
        {"process_resident_memory_bytes", "gauge"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *t = type_of(&P, names[i][0]);
        cr_assert_not_null(t, "%s has no # TYPE", names[i][0]);
        cr_assert_str_eq(t, names[i][1], "%s", names[i][0]);
    }
    cr_assert_eq(P.nhelps, P.ntypes);
    /* unlabelled ones show 0 from the start; labelled ones appear when used */
    cr_assert_eq(find(&P, "hvdeploy_lease_takeovers_total", NULL, NULL, NULL, NULL), 0);
    cr_assert(isnan(find(&P, "hvdeploy_jobs_total", NULL, NULL, NULL, NULL)));
    cr_assert_gt(find(&P, "process_resident_memory_bytes", NULL, NULL, NULL, NULL), 0);

    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "success");
    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "success");
    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "error");
    hvd_metric_inc(HVD_M_LEASE_TAKEOVERS_TOTAL, NULL, NULL);
    hvd_metric_add(HVD_M_PG_TRANSACTIONS, NULL, NULL, 7);
    hvd_metric_inc(HVD_M_RECONNECTS_TOTAL, "amqp", NULL);
    hvd_metric_inc(HVD_M_AMQP_OPERATIONS, "publish", NULL);
    hvd_metrics_set_in_flight(6, 8);
    hvd_metric_observe(HVD_M_STAGE_DURATION, "vm.create", NULL, 0.0004);
    hvd_metric_observe(HVD_M_STAGE_DURATION, "vm.create", NULL, 0.001); /* le is inclusive */
    hvd_metric_observe(HVD_M_STAGE_DURATION, "vm.create", NULL, 2);
    hvd_metric_observe(HVD_M_STAGE_DURATION, "vm.create", NULL, 5000); /* above the last bound */
    render_parse(&P);
    cr_assert_eq(find(&P, "hvdeploy_jobs_total", "job_type", "managed_deployment", "status", "success"), 2);
    cr_assert_eq(find(&P, "hvdeploy_jobs_total", "job_type", "managed_deployment", "status", "error"), 1);
    cr_assert_eq(find(&P, "hvdeploy_lease_takeovers_total", NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(find(&P, "hvdeploy_pg_transactions_total", NULL, NULL, NULL, NULL), 7);
    cr_assert_eq(find(&P, "hvdeploy_reconnects_total", "target", "amqp", NULL, NULL), 1);
    cr_assert_eq(find(&P, "hvdeploy_jobs_in_flight", NULL, NULL, NULL, NULL), 6);
    cr_assert_eq(find(&P, "hvdeploy_consumer_utilisation", NULL, NULL, NULL, NULL), 0.75);
    const char *h = "hvdeploy_stage_duration_seconds_bucket";
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "0.001"), 2);
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "0.0025"), 2);
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "1"), 2);
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "2.5"), 3);
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "3600"), 3);
    cr_assert_eq(find(&P, h, "stage", "vm.create", "le", "+Inf"), 4);
    cr_assert_eq(find(&P, "hvdeploy_stage_duration_seconds_count", "stage", "vm.create", NULL, NULL), 4);
    cr_assert_float_eq(find(&P, "hvdeploy_stage_duration_seconds_sum", "stage", "vm.create", NULL, NULL), 5002.0014,
                       1e-9);
    cr_assert_eq(hvd_metric_value(HVD_M_STAGE_DURATION, "vm.create", NULL), 4);
    cr_assert_eq(hvd_metric_value(HVD_M_JOBS_TOTAL, "managed_deployment", "success"), 2);
    cr_assert_eq(hvd_metric_value(HVD_M_JOBS_TOTAL, "managed_deployment", "nope"), 0);
    /* buckets: 1 ms to 1 h, ascending, cumulative counts never decrease */
    double prev_le = 0, prev = 0;
    size_t nb = 0;
    for (size_t i = 0; i < P.n; i++) {
        if (strcmp(P.s[i].name, h) != 0) continue;
        const char *le = label(&P.s[i], "le");
        double v = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
        cr_assert_gt(v, prev_le);
        cr_assert_geq(P.s[i].value, prev);
        prev_le = v;
        prev = P.s[i].value;
        nb++;
    }
    cr_assert_eq(nb, hvd_metric_default_nbuckets + 1);
    cr_assert_eq(hvd_metric_default_buckets[0], 0.001);
    cr_assert_eq(hvd_metric_default_buckets[hvd_metric_default_nbuckets - 1], 3600);
}

Test(metrics, label_and_help_escaping)
{
    cr_assert_eq(hvd_metric_register("t_total", HVD_METRIC_COUNTER, "help with \\ and\nnewline", "a", "b", NULL, 0), 0);
    hvd_metric_inc("t_total", "q\"uote", "back\\slash\nnl");
    HvdBuf b = {0};
    hvd_metrics_render(&b);
    cr_assert_not_null(strstr(b.data, "# HELP t_total help with \\\\ and\\nnewline\n"));
    cr_assert_not_null(strstr(b.data, "t_total{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 1\n"));
    parse_text(b.data, &P);
    cr_assert_eq(find(&P, "t_total", "a", "q\"uote", "b", "back\\slash\nnl"), 1);
    hvd_buf_free(&b);
}

Test(metrics, registry_rules)
{
    cr_assert_eq(hvd_metric_register("x_total", HVD_METRIC_COUNTER, "x", "l", NULL, NULL, 0), 0);
    cr_assert_eq(hvd_metric_register("x_total", HVD_METRIC_COUNTER, "x again", "l", NULL, NULL, 0), 0);
    cr_assert_eq(hvd_metric_register("x_total", HVD_METRIC_GAUGE, "x", "l", NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("x_total", HVD_METRIC_COUNTER, "x", "other", NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("bad-name", HVD_METRIC_COUNTER, "x", NULL, NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("9lives", HVD_METRIC_COUNTER, "x", NULL, NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("ok", HVD_METRIC_COUNTER, "x", "bad label", NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("ok", HVD_METRIC_HISTOGRAM, "x", "le", NULL, NULL, 0), -1);
    cr_assert_eq(hvd_metric_register("ok", HVD_METRIC_COUNTER, "x", NULL, "l2", NULL, 0), -1);
    double unsorted[] = {1, 0.5};
    cr_assert_eq(hvd_metric_register("h", HVD_METRIC_HISTOGRAM, "x", NULL, NULL, unsorted, 2), -1);
    double custom[] = {0.5, 1};
    cr_assert_eq(hvd_metric_register("h", HVD_METRIC_HISTOGRAM, "x", NULL, NULL, custom, 2), 0);
    hvd_metric_observe("h", NULL, NULL, 0.7);
    /* wrong operations for the type are ignored; counters never go down */
    hvd_metric_add("x_total", "a", NULL, -5);
    hvd_metric_gauge_set("x_total", "a", NULL, 100);
    hvd_metric_observe("x_total", "a", NULL, 1);
    hvd_metric_add("x_total", "a", NULL, 2.5);
    cr_assert_eq(hvd_metric_value("x_total", "a", NULL), 2.5);
    /* unknown names: dropped, no crash */
    hvd_metric_inc("never_registered_total", NULL, NULL);
    hvd_metric_inc("never_registered_total", NULL, NULL);
    hvd_metric_inc(NULL, NULL, NULL);
    cr_assert_eq(hvd_metric_value("never_registered_total", NULL, NULL), 0);
    render_parse(&P);
    cr_assert_eq(find(&P, "h_bucket", "le", "0.5", NULL, NULL), 0);
    cr_assert_eq(find(&P, "h_bucket", "le", "1", NULL, NULL), 1);
    cr_assert_eq(find(&P, "h_bucket", "le", "+Inf", NULL, NULL), 1);
    cr_assert_float_eq(find(&P, "x_total", "l", "a", NULL, NULL), 2.5, 1e-12);
    cr_assert(isnan(find(&P, "never_registered_total", NULL, NULL, NULL, NULL)));
    /* gauges go both ways */
    hvd_metric_register("g", HVD_METRIC_GAUGE, "g", NULL, NULL, NULL, 0);
    hvd_metric_gauge_set("g", NULL, NULL, 0.1);
    hvd_metric_add("g", NULL, NULL, -1);
    render_parse(&P);
    cr_assert_float_eq(find(&P, "g", NULL, NULL, NULL, NULL), -0.9, 1e-12);
}

static void *incer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        hvd_metric_inc(HVD_M_AMQP_OPERATIONS, (i & 1) ? "publish" : "ack", NULL);
        hvd_metric_observe(HVD_M_AGENT_CALL_DURATION, "vm.create", NULL, 0.01);
    }
    return NULL;
}

Test(metrics, threads)
{
    hvd_metrics_register_worker();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, incer, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(hvd_metric_value(HVD_M_AMQP_OPERATIONS, "publish", NULL), 40000);
    cr_assert_eq(hvd_metric_value(HVD_M_AMQP_OPERATIONS, "ack", NULL), 40000);
    cr_assert_eq(hvd_metric_value(HVD_M_AGENT_CALL_DURATION, "vm.create", NULL), 80000);
}

/* ---- HTTP ---- */

typedef struct {
    int status;
    char headers[2048];
    char *body;
} Resp;

static Resp http(const char *ip, int port, const char *method, const char *path)
{
    Resp r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, path, ip);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    HvdBuf b = {0};
    char chunk[4096];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0) hvd_buf_append(&b, chunk, (size_t)got);
    close(fd);
    cr_assert_not_null(b.data, "no response");
    cr_assert_eq(sscanf(b.data, "HTTP/1.1 %d", &r.status), 1, "bad status line: %.40s", b.data);
    char *sep = strstr(b.data, "\r\n\r\n");
    cr_assert_not_null(sep);
    snprintf(r.headers, sizeof r.headers, "%.*s", (int)(sep - b.data), b.data);
    r.body = strdup(sep + 4);
    hvd_buf_free(&b);
    return r;
}

static atomic_bool ready_flag;

static bool ready(void *arg, char *reason, size_t len)
{
    cr_assert_str_eq((const char *)arg, "ctx");
    if (atomic_load(&ready_flag)) return true;
    snprintf(reason, len, "broker not connected");
    return false;
}

Test(metrics, http_metrics_healthz_404)
{
    hvd_metrics_register_worker();
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", ready, "ctx", err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = hvd_metrics_server_port(s);
    cr_assert_gt(port, 0);

    Resp r = http("127.0.0.1", port, "GET", "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strcasestr(r.headers, "Content-Type: text/plain; version=0.0.4"), "%s", r.headers);
    parse_text(r.body, &P);
    double before = find(&P, "hvdeploy_envelopes_published_total", NULL, NULL, NULL, NULL);
    cr_assert_eq(before, 0);
    free(r.body);
    hvd_metric_inc(HVD_M_ENVELOPES_PUBLISHED, NULL, NULL);
    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "success");
    r = http("127.0.0.1", port, "GET", "/metrics");
    parse_text(r.body, &P);
    cr_assert_eq(find(&P, "hvdeploy_envelopes_published_total", NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(find(&P, "hvdeploy_jobs_total", "job_type", "managed_deployment", "status", "success"), 1);
    free(r.body);

    atomic_store(&ready_flag, false);
    r = http("127.0.0.1", port, "GET", "/healthz");
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "broker not connected\n");
    free(r.body);
    atomic_store(&ready_flag, true);
    r = http("127.0.0.1", port, "GET", "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    free(r.body);

    r = http("127.0.0.1", port, "GET", "/");
    cr_assert_eq(r.status, 404);
    free(r.body);
    r = http("127.0.0.1", port, "GET", "/metrics/extra");
    cr_assert_eq(r.status, 404);
    free(r.body);
    r = http("127.0.0.1", port, "POST", "/metrics");
    cr_assert_eq(r.status, 405);
    free(r.body);
    r = http("127.0.0.1", port, "HEAD", "/healthz");
    cr_assert_eq(r.status, 200);
    free(r.body);

    /* the port is taken: a second server says so */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    HvdMetricsServer *s2 = hvd_metrics_server_start(addr, NULL, NULL, err, sizeof err);
    cr_assert_null(s2);
    char want[128];
    snprintf(want, sizeof want, "HVD_METRICS_ADDR %s: cannot bind: Address already in use", addr);
    cr_assert_str_eq(err, want);

    hvd_metrics_server_stop(s);
    hvd_metrics_server_stop(NULL);
    /* stopped: the port is free again */
    s = hvd_metrics_server_start(addr, NULL, NULL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    r = http("127.0.0.1", port, "GET", "/healthz");
    cr_assert_eq(r.status, 200); /* no readiness callback: ready */
    free(r.body);
    hvd_metrics_server_stop(s);
}

Test(metrics, http_binds_only_the_given_address)
{
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", NULL, NULL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = hvd_metrics_server_port(s);
    /* another address of this machine must not answer */
    struct ifaddrs *ifs = NULL, *i;
    char other[INET_ADDRSTRLEN] = "";
    if (getifaddrs(&ifs) == 0) {
        for (i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
            struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
            if ((ntohl(a.s_addr) >> 24) == 127) continue;
            inet_ntop(AF_INET, &a, other, sizeof other);
            break;
        }
        freeifaddrs(ifs);
    }
    if (!*other) {
        /* no other IPv4 address here: 127.0.0.2 is loopback too but a different address */
        snprintf(other, sizeof other, "127.0.0.2");
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, other, &sa.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    cr_assert_eq(rc, -1, "%s:%d answered", other, port);
    cr_assert_eq(e, ECONNREFUSED);
    hvd_metrics_server_stop(s);
}

Test(metrics, http_bad_addresses)
{
    char err[256] = "";
    cr_assert_null(hvd_metrics_server_start("nonsense", NULL, NULL, err, sizeof err));
    cr_assert_str_eq(err, "HVD_METRICS_ADDR 'nonsense': expected HOST:PORT");
    cr_assert_null(hvd_metrics_server_start("192.0.2.1:9464", NULL, NULL, err, sizeof err));
    cr_assert_str_eq(err, "HVD_METRICS_ADDR 192.0.2.1:9464: cannot bind: Cannot assign requested address");
}

/* ---- issue 12: labels only from fixed sets ---- */

static size_t series_of(const Parsed *p, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) n += strcmp(p->s[i].name, name) == 0;
    return n;
}

/* 4 000 distinct job_type values (from message bodies) added 128 MB and a
 * 65 MB /metrics: now they are one series, "other". */
Test(metrics, labels_come_only_from_fixed_sets)
{
    hvd_metrics_register_worker();
    char jt[64];
    for (int i = 0; i < 4000; i++) {
        snprintf(jt, sizeof jt, "job-type-%d", i);
        hvd_metric_inc(HVD_M_JOBS_TOTAL, jt, "error");
        hvd_metric_inc(HVD_M_DEAD_LETTERS_TOTAL, jt, NULL);
        hvd_metric_observe(HVD_M_STAGE_DURATION, jt, NULL, 1);
    }
    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "success");
    hvd_metric_inc(HVD_M_JOBS_TOTAL, "managed_deployment", "weird-status");
    HvdBuf b = {0};
    hvd_metrics_render(&b);
    cr_assert_lt(b.len, 16 * 1024, "/metrics is %zu bytes", b.len);
    cr_assert_null(strstr(b.data, "job-type-"), "a body's value became a label");
    parse_text(b.data, &P);
    hvd_buf_free(&b);
    cr_assert_eq(series_of(&P, "hvdeploy_jobs_total"), 3);
    cr_assert_eq(find(&P, "hvdeploy_jobs_total", "job_type", "other", "status", "error"), 4000);
    cr_assert_eq(find(&P, "hvdeploy_jobs_total", "job_type", "managed_deployment", "status", "other"), 1);
    cr_assert_eq(find(&P, "hvdeploy_dead_letters_total", "reason", "other", NULL, NULL), 4000);
    cr_assert_eq(hvd_metric_value(HVD_M_STAGE_DURATION, "other", NULL), 4000);
    cr_assert_eq(hvd_metric_value(HVD_M_JOBS_TOTAL, "job-type-7", "error"), 4000, "looked up the same way");
}

/* A metric without sets keeps HVD_METRIC_MAX_SERIES series; the rest is "other". */
Test(metrics, series_per_metric_are_capped)
{
    cr_assert_eq(hvd_metric_register("free_total", HVD_METRIC_COUNTER, "h", "k", NULL, NULL, 0), 0);
    char v[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "v%d", i);
        hvd_metric_inc("free_total", v, NULL);
    }
    render_parse(&P);
    cr_assert_eq(series_of(&P, "free_total"), HVD_METRIC_MAX_SERIES + 1);
    cr_assert_eq(find(&P, "free_total", "k", "v0", NULL, NULL), 1);
    cr_assert_eq(find(&P, "free_total", "k", "other", NULL, NULL), 1000 - HVD_METRIC_MAX_SERIES);
    cr_assert_eq(hvd_metric_limit_values("free_total", 1, NULL), -1, "no second label");
    cr_assert_eq(hvd_metric_limit_values("nope_total", 0, NULL), -1);
}

/* ---- issue 12: slow clients ---- */

/* A connection from src (127.x.y.z) to port; -1 when refused. */
static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0, "bind %s: %s", src, strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct {
    int fds[80];
    int n;
    int interval_ms;
    atomic_bool stop;
} Trickle;

/* Sends one byte of a never-ending request header on every connection each interval. */
static void *trickle(void *arg)
{
    Trickle *t = arg;
    static const char req[] =
        "GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t k = 0; !atomic_load(&t->stop); k++) {
        for (int i = 0; i < t->n; i++)
            if (t->fds[i] >= 0) (void)send(t->fds[i], req + (k % (sizeof req - 1)), 1, MSG_NOSIGNAL);
        for (int ms = 0; ms < t->interval_ms && !atomic_load(&t->stop); ms += 10) usleep(10 * 1000);
    }
    return NULL;
}

/* 70 connections trickling a byte a second (from another client address, as
 * another pod would) kept /healthz unanswered: the 64 connections of the old
 * global limit were all taken and each byte renewed the idle timeout. */
Test(metrics, health_answers_under_70_trickling_connections, .timeout = 30)
{
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", NULL, NULL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = hvd_metrics_server_port(s);
    Trickle *t = calloc(1, sizeof *t);
    t->interval_ms = 1000;
    for (int i = 0; i < 70; i++) t->fds[t->n++] = connect_from("127.0.0.2", port);
    pthread_t th;
    pthread_create(&th, NULL, trickle, t);
    usleep(1500 * 1000); /* the server has taken in what it will */
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    Resp r = http("127.0.0.1", port, "GET", "/healthz");
    clock_gettime(CLOCK_MONOTONIC, &z);
    double took = (double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "[metrics] /healthz under 70 trickling connections: %d after %.3f s\n", r.status, took);
    cr_assert_eq(r.status, 200);
    cr_assert_lt(took, 1.0, "/healthz took %.2f s under 70 slow connections", took);
    free(r.body);
    atomic_store(&t->stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < t->n; i++)
        if (t->fds[i] >= 0) close(t->fds[i]);
    free(t);
    hvd_metrics_server_stop(s);
}

/* Each byte renewed the idle timeout, so a trickling connection lived for
 * ever: now it is closed HVD_METRICS_CONN_MAX_MS after it was accepted. */
Test(metrics, connection_life_is_bounded_whatever_it_sends, .timeout = 30)
{
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", NULL, NULL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    Trickle *t = calloc(1, sizeof *t);
    t->interval_ms = 300;
    t->fds[t->n++] = connect_from("127.0.0.3", hvd_metrics_server_port(s));
    cr_assert_geq(t->fds[0], 0);
    int fd = t->fds[0];
    struct timeval tv = {0, 200 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_t th;
    pthread_create(&th, NULL, trickle, t);
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    double took = 0;
    bool closed = false;
    while (!closed && took < 3 * HVD_METRICS_CONN_MAX_MS / 1000.0) {
        char c;
        ssize_t n = recv(fd, &c, 1, 0);
        closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        clock_gettime(CLOCK_MONOTONIC, &z);
        took = (double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9;
    }
    atomic_store(&t->stop, true);
    pthread_join(th, NULL);
    close(fd);
    free(t);
    hvd_metrics_server_stop(s);
    fprintf(stderr, "[metrics] a connection trickling a byte every 300 ms was %s after %.1f s\n",
            closed ? "closed" : "still open", took);
    cr_assert(closed, "the trickling connection was still open after %.1f s", took);
    cr_assert_lt(took, HVD_METRICS_CONN_MAX_MS / 1000.0 + 1.5, "closed after %.1f s", took);
}

/* One client address holds at most HVD_METRICS_PER_IP connections. */
Test(metrics, one_client_holds_few_connections, .timeout = 30)
{
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", NULL, NULL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = hvd_metrics_server_port(s), fds[20];
    for (int i = 0; i < 20; i++) fds[i] = connect_from("127.0.0.4", port);
    usleep(500 * 1000);
    int open_ = 0;
    for (int i = 0; i < 20; i++) {
        if (fds[i] < 0) continue;
        char c;
        ssize_t n = recv(fds[i], &c, 1, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) open_++; /* still held by the server */
        close(fds[i]);
    }
    hvd_metrics_server_stop(s);
    cr_assert_eq(open_, HVD_METRICS_PER_IP, "%d connections of one client were kept", open_);
}

static atomic_bool draining_flag;

/* alive while ready or draining */
static bool alive(void *arg, char *reason, size_t len)
{
    return atomic_load(&draining_flag) || ready(arg, reason, len);
}

/* /livez (issue 13): the liveness probe of a draining worker stays 200, so that
 * Kubernetes never restarts a pod whose stages are finishing after SIGTERM. */
Test(metrics, http_livez_separates_alive_from_ready)
{
    char err[256] = "";
    HvdMetricsServer *s = hvd_metrics_server_start("127.0.0.1:0", ready, "ctx", err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = hvd_metrics_server_port(s);
    atomic_store(&ready_flag, false);
    Resp r = http("127.0.0.1", port, "GET", "/livez");
    cr_assert_eq(r.status, 503, "without a live callback /livez is /healthz");
    free(r.body);
    hvd_metrics_server_set_live(s, alive);
    atomic_store(&draining_flag, true);
    r = http("127.0.0.1", port, "GET", "/livez");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    free(r.body);
    r = http("127.0.0.1", port, "GET", "/healthz");
    cr_assert_eq(r.status, 503, "draining is not ready");
    free(r.body);
    atomic_store(&draining_flag, false);
    r = http("127.0.0.1", port, "GET", "/livez");
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "broker not connected\n");
    free(r.body);
    hvd_metrics_server_stop(s);
}

/* hvd_metric_clear: a gauge this process stops reporting has no series left. */
Test(metrics, clear_drops_every_series_until_the_next_update)
{
    hvd_metrics_register_worker();
    hvd_metric_gauge_set(HVD_M_FLEET_JOBS, "queued", "host_busy", 3);
    hvd_metric_gauge_set(HVD_M_FLEET_UNSENT, NULL, NULL, 2);
    HvdBuf b = {0};
    hvd_metrics_render(&b);
    cr_assert(strstr(b.data, "hvdeploy_fleet_jobs{status=\"queued\",waiting_reason=\"host_busy\"} 3\n"), "%s", b.data);
    hvd_buf_free(&b);
    hvd_metric_clear(HVD_M_FLEET_JOBS);
    hvd_metric_clear(HVD_M_FLEET_UNSENT);
    hvd_metric_clear("no_such_metric");
    hvd_metrics_render(&b);
    cr_assert_null(strstr(b.data, "hvdeploy_fleet_jobs{"), "%s", b.data);
    cr_assert_null(strstr(b.data, "\nhvdeploy_fleet_unsent_envelopes "), "%s", b.data);
    cr_assert(strstr(b.data, "# TYPE hvdeploy_fleet_unsent_envelopes gauge\n"), "%s", b.data);
    hvd_buf_free(&b);
    hvd_metric_gauge_set(HVD_M_FLEET_UNSENT, NULL, NULL, 5);
    cr_assert_eq(hvd_metric_value(HVD_M_FLEET_UNSENT, NULL, NULL), 5);
}
