/* Live agent output: lines of running stages, cleaned (outline.h), batched
 * per stage and flushed by one background thread every OUTPUT_FLUSH_MS (and
 * at the stage's end by the runner) as stage.<stage>.output events and rows
 * of hvdeploy.job_output. Lines over a window's budget are dropped and
 * counted; the next flush carries a marker line saying how many. */
#include "output.h"
#include "publisher.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "codec.h"
#include "log.h"
#include "outline.h"
#include "store_view.h"

#define OUTPUT_TICK_MS 100 /* how often the flusher looks for due stages */

typedef struct {
    HvdAgentStream stream;
    char *text;
} OutLine;

struct OutputStage {
    Worker *w;
    char job_id[37];
    char *correlation_id, *content_type, *stage;
    int attempt;
    char **secrets;
    size_t n_secrets;

    pthread_mutex_t mu; /* guards the pending batch */
    OutLine *lines;
    size_t n, cap, bytes;
    uint64_t dropped;       /* in the current window */
    uint64_t dropped_total; /* over the call, for the log */
    int64_t window_start;   /* mono ms of the last flush */

    pthread_mutex_t flush_mu; /* one flush at a time, in order */
    int refs;                 /* flusher's references (registry lock) */
    bool closing;             /* output_flush was called: the flusher leaves it */
    OutputStage *next;        /* registry */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv = PTHREAD_COND_INITIALIZER;
static OutputStage *reg_head;
static pthread_once_t flusher_once = PTHREAD_ONCE_INIT;

static const char *stream_name(HvdAgentStream s)
{
    return s == HVD_AGENT_STDERR ? "stderr" : "stdout";
}

/* Takes the pending batch (and the drop count) out of o under its lock. */
static void take_batch(OutputStage *o, OutLine **lines, size_t *n, uint64_t *dropped)
{
    pthread_mutex_lock(&o->mu);
    *lines = o->lines;
    *n = o->n;
    *dropped = o->dropped;
    o->lines = NULL;
    o->n = o->cap = o->bytes = 0;
    o->dropped = 0;
    o->window_start = hvd_mono_ms();
    pthread_mutex_unlock(&o->mu);
}

/* One event with the lines of one stream. */
static void publish_lines(OutputStage *o, const char *stream, const char *const *texts, size_t n)
{
    if (n == 0) return;
    char at[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), at);
    HvdNode *ev = hvd_node_map();
    hvd_node_map_set_str(ev, "job_id", o->job_id);
    hvd_node_map_set_str(ev, "stage", o->stage);
    hvd_node_map_set_int(ev, "attempt", o->attempt);
    hvd_node_map_set_str(ev, "at", at);
    hvd_node_map_set_str(ev, "stream", stream);
    HvdNode *arr = hvd_node_array();
    for (size_t i = 0; i < n; i++) hvd_node_array_push(arr, hvd_node_str(texts[i]));
    hvd_node_map_set(ev, "lines", arr);
    HvdContentType ct = hvd_content_type_parse(o->content_type);
    if (ct == HVD_CT_UNKNOWN) ct = HVD_CT_MSGPACK;
    PubMsg *m = pubmsg_new(PUB_EVENT);
    hvd_encode(ct, ev, &m->body);
    hvd_node_free(ev);
    char key[96];
    snprintf(key, sizeof key, "stage.%s.output", o->stage);
    m->exchange = hvd_xstrdup(o->w->events_exchange);
    m->routing_key = hvd_xstrdup(key);
    m->content_type = hvd_xstrdup(hvd_content_type_name(ct));
    m->message_id = hvd_xstrdup(o->job_id);
    m->correlation_id = hvd_xstrdup(o->correlation_id);
    publisher_send(o->w->pub, m);
}

/* Publishes and stores the pending batch (flush_mu held). */
static void flush_locked(OutputStage *o)
{
    OutLine *lines;
    size_t n;
    uint64_t dropped;
    take_batch(o, &lines, &n, &dropped);
    if (n == 0 && dropped == 0) return;
    char marker[160];
    snprintf(marker, sizeof marker, "[hvdeploy] %llu line%s dropped (live output is limited to %d lines every %d ms)",
             (unsigned long long)dropped, dropped == 1 ? "" : "s", OUTPUT_BATCH_LINES, OUTPUT_FLUSH_MS);
    size_t total = n + (dropped ? 1 : 0);
    HvdOutputLine *rows = hvd_xcalloc(total, sizeof *rows);
    const char **out = hvd_xcalloc(total, sizeof *out), **err = hvd_xcalloc(total, sizeof *err);
    size_t n_out = 0, n_err = 0;
    for (size_t i = 0; i < n; i++) {
        rows[i] = (HvdOutputLine){.stream = stream_name(lines[i].stream), .line = lines[i].text};
        if (lines[i].stream == HVD_AGENT_STDERR)
            err[n_err++] = lines[i].text;
        else
            out[n_out++] = lines[i].text;
    }
    if (dropped) {
        rows[n] = (HvdOutputLine){.stream = "stderr", .line = marker};
        err[n_err++] = marker;
    }
    publish_lines(o, "stdout", out, n_out);
    publish_lines(o, "stderr", err, n_err);
    int keep = (int)o->w->cfg.output_keep;
    if (keep > 0 && o->w->store) {
        char why[256] = "";
        HvdStoreStatus st =
            hvd_store_output_append(o->w->store, o->job_id, o->stage, o->attempt, rows, total, keep, why, sizeof why);
        if (st != HVD_STORE_OK) {
            HvdLogCtx lc = {.job_id = o->job_id, .stage = o->stage, .attempt = o->attempt};
            hvd_log_kv(HVD_LOG_DEBUG, &lc, "live output not stored", "reason", why, NULL);
        }
    }
    for (size_t i = 0; i < n; i++) free(lines[i].text);
    free(lines);
    free(rows);
    free(out);
    free(err);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, OUTPUT_TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = hvd_mono_ms();
        static OutputStage **due;
        static size_t due_cap;
        size_t n_due = 0;
        pthread_mutex_lock(&reg_mu);
        for (OutputStage *o = reg_head; o; o = o->next) {
            if (o->closing) continue;
            pthread_mutex_lock(&o->mu);
            bool pending = (o->n || o->dropped) && now - o->window_start >= OUTPUT_FLUSH_MS;
            pthread_mutex_unlock(&o->mu);
            if (!pending) continue;
            if (n_due == due_cap) {
                due_cap = due_cap ? due_cap * 2 : 64;
                due = hvd_xrealloc(due, due_cap * sizeof *due);
            }
            o->refs++;
            due[n_due++] = o;
        }
        pthread_mutex_unlock(&reg_mu);
        for (size_t i = 0; i < n_due; i++) {
            pthread_mutex_lock(&due[i]->flush_mu);
            flush_locked(due[i]);
            pthread_mutex_unlock(&due[i]->flush_mu);
            pthread_mutex_lock(&reg_mu);
            due[i]->refs--;
            pthread_cond_broadcast(&reg_cv);
            pthread_mutex_unlock(&reg_mu);
        }
    }
    return NULL;
}

static void flusher_start(void)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, flusher_main, NULL) != 0)
        hvd_log_error(NULL, "cannot start the live output thread: lines go out at the end of each stage");
    pthread_attr_destroy(&a);
}

OutputStage *output_begin(Worker *w, const char *job_id, const char *correlation_id, const char *content_type,
                          const char *stage, int attempt, char *const *secrets, size_t n_secrets)
{
    pthread_once(&flusher_once, flusher_start);
    OutputStage *o = hvd_xcalloc(1, sizeof *o);
    o->w = w;
    snprintf(o->job_id, sizeof o->job_id, "%s", job_id ? job_id : "");
    o->correlation_id = hvd_xstrdup(correlation_id ? correlation_id : job_id);
    o->content_type = hvd_xstrdup(content_type);
    o->stage = hvd_xstrdup(stage);
    o->attempt = attempt;
    o->secrets = hvd_xcalloc(n_secrets + 1, sizeof *o->secrets);
    for (size_t i = 0; i < n_secrets; i++)
        if (secrets[i]) o->secrets[o->n_secrets++] = hvd_xstrdup(secrets[i]);
    pthread_mutex_init(&o->mu, NULL);
    pthread_mutex_init(&o->flush_mu, NULL);
    o->window_start = hvd_mono_ms();
    pthread_mutex_lock(&reg_mu);
    o->next = reg_head;
    reg_head = o;
    pthread_mutex_unlock(&reg_mu);
    return o;
}

void output_line(void *arg, HvdAgentStream stream, const char *line, size_t len, bool truncated)
{
    OutputStage *o = arg;
    if (stream == HVD_AGENT_STDOUT && hvd_outline_is_answer(line, len)) return;
    pthread_mutex_lock(&o->mu);
    bool full = o->n >= OUTPUT_BATCH_LINES || o->bytes + len > OUTPUT_BATCH_BYTES;
    if (full) {
        o->dropped++;
        o->dropped_total++;
        pthread_mutex_unlock(&o->mu);
        return;
    }
    pthread_mutex_unlock(&o->mu);
    /* cleaned outside the lock; the line is added even if the window filled meanwhile */
    char *text = hvd_outline_clean(line, len, truncated, o->secrets, o->n_secrets);
    pthread_mutex_lock(&o->mu);
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->lines = hvd_xrealloc(o->lines, o->cap * sizeof *o->lines);
    }
    o->lines[o->n++] = (OutLine){.stream = stream, .text = text};
    o->bytes += strlen(text);
    pthread_mutex_unlock(&o->mu);
}

void output_flush(OutputStage *o)
{
    if (!o) return;
    pthread_mutex_lock(&reg_mu);
    o->closing = true;
    while (o->refs > 0) pthread_cond_wait(&reg_cv, &reg_mu);
    for (OutputStage **p = &reg_head; *p; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    pthread_mutex_lock(&o->flush_mu);
    flush_locked(o);
    pthread_mutex_unlock(&o->flush_mu);
    if (o->dropped_total) {
        HvdLogCtx lc = {.job_id = o->job_id, .stage = o->stage, .attempt = o->attempt};
        char n[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)o->dropped_total);
        hvd_log_kv(HVD_LOG_INFO, &lc, "live output rate-limited", "lines_dropped", n, NULL);
    }
    pthread_mutex_destroy(&o->mu);
    pthread_mutex_destroy(&o->flush_mu);
    for (size_t i = 0; i < o->n_secrets; i++) {
        /* the values are passwords: wipe them */
        memset(o->secrets[i], 0, strlen(o->secrets[i]));
        free(o->secrets[i]);
    }
    free(o->secrets);
    free(o->correlation_id);
    free(o->content_type);
    free(o->stage);
    free(o);
}
