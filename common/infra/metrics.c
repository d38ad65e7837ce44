/* Metrics registry and Prometheus text rendering (the worker's metrics are
 * metrics_worker.c, the HTTP endpoint metrics_http.c). Label values come
 * only from fixed sets: a value outside a label's set is counted as "other",
 * and a metric without sets keeps at most HVD_METRIC_MAX_SERIES series (the
 * rest go to "other") — a label fed from a message body cannot grow the
 * registry without bound. */
#include "metrics.h"
#include "log.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const double hvd_metric_default_buckets[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
};
const size_t hvd_metric_default_nbuckets = sizeof hvd_metric_default_buckets / sizeof hvd_metric_default_buckets[0];

typedef struct Series {
    char *lv[2];
    double value;      /* counter/gauge; histogram: sum */
    uint64_t count;    /* histogram: observations */
    uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts */
    struct Series *next;
} Series;

typedef struct Metric {
    char *name, *help;
    char *label[2];
    int nlabels;
    HvdMetricType type;
    double bounds[HVD_METRIC_MAX_BUCKETS];
    size_t nbounds;
    Series *series, **tail;
    size_t nseries;
    const char *const *allowed[2]; /* per label: the fixed set of values (NULL-terminated), or NULL */
    struct Metric *next;
} Metric;

typedef struct Warned {
    char *name;
    struct Warned *next;
} Warned;

static pthread_mutex_t m_lock = PTHREAD_MUTEX_INITIALIZER;
static Metric *m_head, **m_tail = &m_head;
static Warned *m_warned;

/* ---- registry ---- */

static bool prom_name_ok(const char *s, bool label)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (!label && *p == ':');
        bool digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != s)) return false;
    }
    return !(label && strncmp(s, "__", 2) == 0);
}

static Metric *find_locked(const char *name)
{
    for (Metric *m = m_head; m; m = m->next)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The value a series is kept under: v when the label has no fixed set or v
 * is in it, else "other". */
static const char *bounded(const Metric *m, int label, const char *v)
{
    const char *const *set = m->allowed[label];
    if (!set) return v;
    for (size_t i = 0; set[i]; i++)
        if (strcmp(set[i], v) == 0) return v;
    return HVD_METRIC_OTHER;
}

static Series *series_locked(Metric *m, const char *lv1, const char *lv2)
{
    const char *lv[2] = {m->nlabels > 0 ? bounded(m, 0, lv1 ? lv1 : "") : NULL,
                         m->nlabels > 1 ? bounded(m, 1, lv2 ? lv2 : "") : NULL};
    for (Series *s = m->series; s; s = s->next)
        if (same_str(s->lv[0], lv[0]) && same_str(s->lv[1], lv[1])) return s;
    if (m->nseries >= HVD_METRIC_MAX_SERIES && m->nlabels > 0) {
        /* full: whatever is new is counted together */
        const char *other[2] = {HVD_METRIC_OTHER, m->nlabels > 1 ? HVD_METRIC_OTHER : NULL};
        for (Series *s = m->series; s; s = s->next)
            if (same_str(s->lv[0], other[0]) && same_str(s->lv[1], other[1])) return s;
        lv[0] = other[0];
        lv[1] = other[1];
    }
    m->nseries++;
    Series *s = hvd_xcalloc(1, sizeof *s);
    s->lv[0] = hvd_xstrdup(lv[0]);
    s->lv[1] = hvd_xstrdup(lv[1]);
    if (m->type == HVD_METRIC_HISTOGRAM) s->buckets = hvd_xcalloc(m->nbounds + 1, sizeof *s->buckets);
    *m->tail = s;
    m->tail = &s->next;
    return s;
}

int hvd_metric_register(const char *name, HvdMetricType type, const char *help, const char *label1, const char *label2,
                        const double *buckets, size_t nbuckets)
{
    if (!prom_name_ok(name, false) || (label1 && !prom_name_ok(label1, true)) ||
        (label2 && (!label1 || !prom_name_ok(label2, true))) || (label1 && strcmp(label1, "le") == 0) ||
        (label2 && strcmp(label2, "le") == 0))
        return -1;
    if (type == HVD_METRIC_HISTOGRAM && !buckets) {
        buckets = hvd_metric_default_buckets;
        nbuckets = hvd_metric_default_nbuckets;
    }
    if (type == HVD_METRIC_HISTOGRAM) {
        if (nbuckets == 0 || nbuckets > HVD_METRIC_MAX_BUCKETS) return -1;
        for (size_t i = 1; i < nbuckets; i++)
            if (!(buckets[i] > buckets[i - 1])) return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&m_lock);
    Metric *m = find_locked(name);
    if (m) {
        rc = m->type == type && same_str(m->label[0], label1) && same_str(m->label[1], label2) ? 0 : -1;
        goto out;
    }
    m = hvd_xcalloc(1, sizeof *m);
    m->name = hvd_xstrdup(name);
    m->help = hvd_xstrdup(help ? help : "");
    m->label[0] = hvd_xstrdup(label1);
    m->label[1] = hvd_xstrdup(label2);
    m->nlabels = label2 ? 2 : label1 ? 1 : 0;
    m->type = type;
    m->tail = &m->series;
    if (type == HVD_METRIC_HISTOGRAM) {
        memcpy(m->bounds, buckets, nbuckets * sizeof *buckets);
        m->nbounds = nbuckets;
    }
    if (m->nlabels == 0) series_locked(m, NULL, NULL); /* unlabelled: shown as 0 from the start */
    *m_tail = m;
    m_tail = &m->next;
out:
    pthread_mutex_unlock(&m_lock);
    return rc;
}

int hvd_metric_limit_values(const char *name, int label, const char *const *values)
{
    if (!name || label < 0 || label > 1) return -1;
    int rc = -1;
    pthread_mutex_lock(&m_lock);
    Metric *m = find_locked(name);
    if (m && label < m->nlabels) {
        m->allowed[label] = values;
        rc = 0;
    }
    pthread_mutex_unlock(&m_lock);
    return rc;
}

/* Runs fn on the named metric under the lock; warns once for an unknown one. */
typedef enum { OP_ADD, OP_SET, OP_OBSERVE } MetricOp;

static void update(const char *name, const char *lv1, const char *lv2, MetricOp op, double v)
{
    if (!name) return;
    bool warn = false;
    pthread_mutex_lock(&m_lock);
    Metric *m = find_locked(name);
    if (!m) {
        Warned *w = m_warned;
        while (w && strcmp(w->name, name) != 0) w = w->next;
        if (!w) {
            w = hvd_xcalloc(1, sizeof *w);
            w->name = hvd_xstrdup(name);
            w->next = m_warned;
            m_warned = w;
            warn = true;
        }
        goto out;
    }
    Series *s = series_locked(m, lv1, lv2);
    switch (op) {
    case OP_ADD:
        if (m->type == HVD_METRIC_HISTOGRAM || (m->type == HVD_METRIC_COUNTER && !(v >= 0))) break;
        s->value += v;
        break;
    case OP_SET:
        if (m->type == HVD_METRIC_GAUGE) s->value = v;
        break;
    case OP_OBSERVE:
        if (m->type != HVD_METRIC_HISTOGRAM || isnan(v)) break;
        size_t b = 0;
        while (b < m->nbounds && v > m->bounds[b]) b++;
        s->buckets[b]++;
        s->count++;
        s->value += v;
        break;
    }
out:
    pthread_mutex_unlock(&m_lock);
    if (warn) hvd_log_warn(NULL, "metric %s is not registered; its updates are dropped", name);
}

void hvd_metric_inc(const char *name, const char *lv1, const char *lv2)
{
    update(name, lv1, lv2, OP_ADD, 1);
}

void hvd_metric_add(const char *name, const char *lv1, const char *lv2, double v)
{
    update(name, lv1, lv2, OP_ADD, v);
}

void hvd_metric_gauge_set(const char *name, const char *lv1, const char *lv2, double v)
{
    update(name, lv1, lv2, OP_SET, v);
}

void hvd_metric_observe(const char *name, const char *lv1, const char *lv2, double v)
{
    update(name, lv1, lv2, OP_OBSERVE, v);
}

static void series_free_locked(Metric *m)
{
    for (Series *s = m->series, *sn; s; s = sn) {
        sn = s->next;
        free(s->lv[0]);
        free(s->lv[1]);
        free(s->buckets);
        free(s);
    }
    m->series = NULL;
    m->tail = &m->series;
}

void hvd_metric_clear(const char *name)
{
    pthread_mutex_lock(&m_lock);
    Metric *m = name ? find_locked(name) : NULL;
    if (m) series_free_locked(m);
    pthread_mutex_unlock(&m_lock);
}

void hvd_metrics_set_in_flight(int in_flight, int concurrency)
{
    hvd_metric_gauge_set(HVD_M_JOBS_IN_FLIGHT, NULL, NULL, in_flight);
    hvd_metric_gauge_set(HVD_M_CONSUMER_UTILISATION, NULL, NULL,
                         concurrency > 0 ? (double)in_flight / (double)concurrency : 0);
}

double hvd_metric_value(const char *name, const char *lv1, const char *lv2)
{
    double v = 0;
    pthread_mutex_lock(&m_lock);
    Metric *m = name ? find_locked(name) : NULL;
    if (m) {
        const char *lv[2] = {m->nlabels > 0 ? bounded(m, 0, lv1 ? lv1 : "") : NULL,
                             m->nlabels > 1 ? bounded(m, 1, lv2 ? lv2 : "") : NULL};
        for (Series *s = m->series; s; s = s->next)
            if (same_str(s->lv[0], lv[0]) && same_str(s->lv[1], lv[1]))
                v = m->type == HVD_METRIC_HISTOGRAM ? (double)s->count : s->value;
    }
    pthread_mutex_unlock(&m_lock);
    return v;
}

void hvd_metrics_reset(void)
{
    pthread_mutex_lock(&m_lock);
    for (Metric *m = m_head, *mn; m; m = mn) {
        mn = m->next;
        series_free_locked(m);
        free(m->name);
        free(m->help);
        free(m->label[0]);
        free(m->label[1]);
        free(m);
    }
    m_head = NULL;
    m_tail = &m_head;
    for (Warned *w = m_warned, *wn; w; w = wn) {
        wn = w->next;
        free(w->name);
        free(w);
    }
    m_warned = NULL;
    pthread_mutex_unlock(&m_lock);
}

/* ---- rendering ---- */

/* Shortest text that reads back as the same double; Prometheus spellings
 * for infinities and NaN. */
static void put_double(HvdBuf *b, double v)
{
    if (isnan(v)) {
        hvd_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        hvd_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        hvd_buf_printf(b, "%.0f", v);
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    hvd_buf_puts(b, tmp);
}

static void put_escaped(HvdBuf *b, const char *s, bool label_value)
{
    for (; *s; s++) {
        if (*s == '\\')
            hvd_buf_puts(b, "\\\\");
        else if (*s == '\n')
            hvd_buf_puts(b, "\\n");
        else if (*s == '"' && label_value)
            hvd_buf_puts(b, "\\\"");
        else
            hvd_buf_append(b, s, 1);
    }
}

/* name{l1="v1",l2="v2"[,le="x"]} */
static void put_labels(HvdBuf *b, const Metric *m, const Series *s, const char *le)
{
    if (m->nlabels == 0 && !le) return;
    hvd_buf_puts(b, "{");
    for (int i = 0; i < m->nlabels; i++) {
        hvd_buf_printf(b, "%s%s=\"", i ? "," : "", m->label[i]);
        put_escaped(b, s->lv[i], true);
        hvd_buf_puts(b, "\"");
    }
    if (le) hvd_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    hvd_buf_puts(b, "}");
}

static void render_process(HvdBuf *b)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    hvd_buf_puts(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    put_double(b, cpu);
    hvd_buf_puts(b, "\n");
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    hvd_buf_printf(b,
                   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
                   (long long)rss * (long long)sysconf(_SC_PAGESIZE));
    hvd_buf_printf(b,
                   "# HELP process_resident_memory_peak_bytes Peak resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_peak_bytes gauge\nprocess_resident_memory_peak_bytes %lld\n",
                   (long long)ru.ru_maxrss * 1024);
}

void hvd_metrics_render(HvdBuf *b)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    hvd_buf_puts(b, "");
    pthread_mutex_lock(&m_lock);
    for (const Metric *m = m_head; m; m = m->next) {
        hvd_buf_printf(b, "# HELP %s ", m->name);
        put_escaped(b, m->help, false);
        hvd_buf_printf(b, "\n# TYPE %s %s\n", m->name, types[m->type]);
        for (const Series *s = m->series; s; s = s->next) {
            if (m->type != HVD_METRIC_HISTOGRAM) {
                hvd_buf_puts(b, m->name);
                put_labels(b, m, s, NULL);
                hvd_buf_puts(b, " ");
                put_double(b, s->value);
                hvd_buf_puts(b, "\n");
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i <= m->nbounds; i++) {
                HvdBuf le = {0};
                if (i < m->nbounds)
                    put_double(&le, m->bounds[i]);
                else
                    hvd_buf_puts(&le, "+Inf");
                cum += s->buckets[i];
                hvd_buf_printf(b, "%s_bucket", m->name);
                put_labels(b, m, s, le.data);
                hvd_buf_printf(b, " %llu\n", (unsigned long long)cum);
                hvd_buf_free(&le);
            }
            hvd_buf_printf(b, "%s_sum", m->name);
            put_labels(b, m, s, NULL);
            hvd_buf_puts(b, " ");
            put_double(b, s->value);
            hvd_buf_printf(b, "\n%s_count", m->name);
            put_labels(b, m, s, NULL);
            hvd_buf_printf(b, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m_lock);
    render_process(b);
}
