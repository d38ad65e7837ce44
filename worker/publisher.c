/* The publisher thread: owns one AMQP connection in confirm mode and sends
 * every outgoing message (envelopes, answers, doorbells, dead letters,
 * events) from a queue that any thread may fill. A message leaves the queue
 * for good only once the broker confirmed it; after a lost connection the
 * unconfirmed ones are sent again (consumers deduplicate by job id).
 * Confirmed envelopes are marked sent in PostgreSQL in one statement per
 * batch. Events are best effort: bounded, dropped rather than delaying jobs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker.h"
#include "clock.h"
#include "codec.h"
#include "envelope.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"

#define PUB_BATCH 128
#define PUB_MAX_EVENTS 10000
#define PUB_CONFIRM_TIMEOUT_MS 10000

struct PubDone {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished, ok;
    int refs; /* the waiting caller and the message */
};

struct Publisher {
    Worker *w;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PubMsg *head, *tail;
    size_t n, n_events;
    bool stop;
    bool running;
    /* watchdog: the connection in use and since when a batch is in the broker */
    pthread_mutex_t conn_mu;
    HvdBroker *conn;
    _Atomic int64_t busy_since; /* hvd_mono_ms() when send_batch began, 0 when idle */
    /* job ids of the envelopes in the batch being sent (under mu) */
    char batch_envelopes[PUB_BATCH][37];
    size_t n_batch_envelopes;
};

PubMsg *pubmsg_new(PubKind kind)
{
    PubMsg *m = hvd_xcalloc(1, sizeof *m);
    m->kind = kind;
    if (kind == PUB_DEAD_LETTER) hvd_time_rfc3339(hvd_now_ms(), m->at);
    return m;
}

static void done_unref(PubDone *d)
{
    pthread_mutex_lock(&d->mu);
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->mu);
    if (last) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
    }
}

static void done_signal(PubDone *d, bool ok)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    if (!d->finished) {
        d->finished = true;
        d->ok = ok;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void pubmsg_free(PubMsg *m)
{
    if (!m) return;
    if (m->done) {
        done_signal(m->done, false); /* no-op when it was signalled already */
        done_unref(m->done);
    }
    free(m->exchange);
    free(m->routing_key);
    hvd_buf_free(&m->body);
    free(m->content_type);
    free(m->message_id);
    free(m->correlation_id);
    free(m->expiration);
    free(m->reason);
    free(m->code);
    free(m);
}

/* Appends (or, for resends, prepends) m to the queue; caller holds mu. */
static void enqueue_locked(Publisher *p, PubMsg *m, bool front)
{
    m->next_ = NULL;
    if (front) {
        m->next_ = p->head;
        p->head = m;
        if (!p->tail) p->tail = m;
    } else {
        if (p->tail)
            p->tail->next_ = m;
        else
            p->head = m;
        p->tail = m;
    }
    p->n++;
    if (m->kind == PUB_EVENT) p->n_events++;
}

void publisher_send(Publisher *p, PubMsg *m)
{
    pthread_mutex_lock(&p->mu);
    if (m->kind == PUB_EVENT && p->n_events >= PUB_MAX_EVENTS) {
        pthread_mutex_unlock(&p->mu);
        pubmsg_free(m); /* best effort: never let events grow without bound */
        return;
    }
    enqueue_locked(p, m, false);
    pthread_cond_broadcast(&p->cv); /* the publisher, and a flush waiting */
    pthread_mutex_unlock(&p->mu);
}

bool publisher_send_wait(Publisher *p, PubMsg *m, int timeout_ms)
{
    PubDone *d = hvd_xcalloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->refs = 2;
    m->done = d;
    publisher_send(p, m);
    int64_t deadline = hvd_mono_ms() + timeout_ms;
    pthread_mutex_lock(&d->mu);
    while (!d->finished && hvd_mono_ms() < deadline) {
        hvd_cond_wait_ms(&d->cv, &d->mu, 50);
    }
    bool ok = d->finished && d->ok;
    pthread_mutex_unlock(&d->mu);
    done_unref(d);
    return ok;
}

bool publisher_has_envelope(Publisher *p, const char *job_id)
{
    bool found = false;
    pthread_mutex_lock(&p->mu);
    for (PubMsg *m = p->head; m && !found; m = m->next_)
        found = m->kind == PUB_ENVELOPE && strcmp(m->job_id, job_id) == 0;
    for (size_t i = 0; i < p->n_batch_envelopes && !found; i++) found = strcmp(p->batch_envelopes[i], job_id) == 0;
    pthread_mutex_unlock(&p->mu);
    return found;
}

/* ---- the thread ---- */

typedef struct {
    PubMsg *msgs[PUB_BATCH];
    uint64_t seqs[PUB_BATCH];
    HvdConfirm status[PUB_BATCH];
    bool settled[PUB_BATCH];
    size_t n;
} Batch;

static void on_confirm(void *ctx, uint64_t seq, HvdConfirm status)
{
    Batch *b = ctx;
    for (size_t i = 0; i < b->n; i++)
        if (b->seqs[i] == seq) {
            b->status[i] = status;
            b->settled[i] = true;
        }
}

static HvdBroker *connect_publisher(Publisher *p)
{
    Worker *w = p->w;
    char err[512];
    for (int attempt = 0;; attempt++) {
        HvdBrokerOptions o = worker_broker_options(w, w->pub_conn_name, true);
        HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
        if (b) {
            if (attempt > 0) hvd_log_info(NULL, "publisher reconnected to RabbitMQ");
            atomic_store(&w->pub_ready, true);
            return b;
        }
        atomic_store(&w->pub_ready, false);
        if (attempt == 0 || attempt % 10 == 0) hvd_log_warn(NULL, "publisher: %s (retrying)", err);
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop && p->n == 0;
        pthread_mutex_unlock(&p->mu);
        if (stop || (p->stop && attempt > 3)) return NULL;
        worker_backoff_sleep(w, attempt);
        hvd_metric_inc(HVD_M_RECONNECTS_TOTAL, "amqp", NULL);
    }
}

static void fill_publish(const PubMsg *m, HvdPublish *pub, HvdHeader *hdr, size_t *nh)
{
    *nh = 0;
    if (m->doorbell_header) hdr[(*nh)++] = (HvdHeader){.key = HVD_BROKER_DOORBELL_HEADER, .i = 1};
    if (m->reason) hdr[(*nh)++] = (HvdHeader){.key = "x-hvdeploy-reason", .str = m->reason};
    if (m->code) hdr[(*nh)++] = (HvdHeader){.key = "x-hvdeploy-code", .str = m->code};
    if (m->at[0]) hdr[(*nh)++] = (HvdHeader){.key = "x-hvdeploy-at", .str = m->at};
    *pub = (HvdPublish){
        .exchange = m->exchange,
        .routing_key = m->routing_key,
        .body = m->body.data ? m->body.data : "",
        .len = m->body.len,
        .content_type = m->content_type,
        .message_id = m->message_id,
        .correlation_id = m->correlation_id,
        .expiration = m->expiration,
        .persistent = m->kind != PUB_EVENT,
        .headers = hdr,
        .n_headers = *nh,
    };
}

/* Sends one batch and waits for its confirms. Returns false when the
 * connection was lost (unsettled messages are queued again). */
static bool send_batch(Publisher *p, HvdBroker *b, Batch *bt)
{
    Worker *w = p->w;
    bool alive = true;
    char err[256];
    for (size_t i = 0; i < bt->n && alive; i++) {
        HvdPublish pub;
        HvdHeader hdr[5];
        size_t nh;
        fill_publish(bt->msgs[i], &pub, hdr, &nh);
        HvdBrokerStatus st;
        while ((st = hvd_broker_publish(b, &pub, &bt->seqs[i], err, sizeof err)) == HVD_BROKER_BLOCKED) {
            hvd_log_warn(NULL, "RabbitMQ blocked publishing (resource alarm); waiting");
            if (hvd_broker_service(b, 1000) == HVD_BROKER_CLOSED) {
                st = HVD_BROKER_CLOSED;
                break;
            }
        }
        hvd_metric_inc(HVD_M_AMQP_OPERATIONS, "publish", NULL);
        if (st == HVD_BROKER_CLOSED)
            alive = false;
        else if (st != HVD_BROKER_OK) {
            hvd_log_error(NULL, "publish to '%s' refused: %s", pub.exchange ? pub.exchange : pub.routing_key, err);
            bt->settled[i] = true;
            bt->status[i] = HVD_CONFIRM_NACKED;
        }
    }
    if (alive) {
        HvdBrokerStatus st = hvd_broker_wait_confirms(b, PUB_CONFIRM_TIMEOUT_MS, on_confirm, bt);
        if (st == HVD_BROKER_CLOSED || st == HVD_BROKER_TIMEOUT) alive = false;
    }

    const char *sent_ids[PUB_BATCH];
    size_t n_sent = 0;
    PubMsg *again[PUB_BATCH];
    size_t n_again = 0;
    for (size_t i = 0; i < bt->n; i++) {
        PubMsg *m = bt->msgs[i];
        bool ok = bt->settled[i] && (bt->status[i] == HVD_CONFIRM_ACKED || bt->status[i] == HVD_CONFIRM_RETURNED);
        if (ok) {
            if (m->kind == PUB_ENVELOPE) {
                sent_ids[n_sent++] = m->job_id;
                hvd_metric_inc(HVD_M_ENVELOPES_PUBLISHED, NULL, NULL);
            }
            done_signal(m->done, true);
        } else if (m->kind != PUB_EVENT) {
            again[n_again++] = m;
            bt->msgs[i] = NULL;
        }
    }
    atomic_store(&p->busy_since, 0); /* out of the broker: the watchdog has nothing to cut */
    if (n_sent) {
        for (int attempt = 0;; attempt++) {
            HvdStoreStatus st = hvd_store_mark_sent(w->store, sent_ids, n_sent, err, sizeof err);
            if (st != HVD_STORE_RETRY || attempt >= 5) {
                /* Not marked: the outbox sweep sends it again later; consumers dedupe. */
                if (st != HVD_STORE_OK) hvd_log_warn(NULL, "cannot mark envelopes sent: %s", err);
                break;
            }
            worker_backoff_sleep(w, attempt);
        }
    }
    for (size_t i = 0; i < bt->n; i++) pubmsg_free(bt->msgs[i]);
    if (n_again) {
        pthread_mutex_lock(&p->mu);
        for (size_t i = n_again; i-- > 0;) enqueue_locked(p, again[i], true);
        pthread_mutex_unlock(&p->mu);
    }
    return alive;
}

static void publisher_forget_conn(Publisher *p)
{
    pthread_mutex_lock(&p->conn_mu);
    p->conn = NULL;
    pthread_mutex_unlock(&p->conn_mu);
}

void publisher_watchdog(Publisher *p, int64_t limit_ms)
{
    int64_t since = atomic_load(&p->busy_since);
    if (since == 0 || hvd_mono_ms() - since < limit_ms) return;
    pthread_mutex_lock(&p->conn_mu);
    if (p->conn) {
        hvd_log_warn(NULL, "publisher stuck in RabbitMQ for %lld ms: cutting the connection",
                     (long long)(hvd_mono_ms() - since));
        hvd_broker_interrupt(p->conn); /* thread-safe: the blocked call returns CLOSED */
        atomic_store(&p->busy_since, 0);
    }
    pthread_mutex_unlock(&p->conn_mu);
}

static void *publisher_main(void *arg)
{
    Publisher *p = arg;
    HvdBroker *b = NULL;
    for (;;) {
        if (!b) {
            b = connect_publisher(p);
            if (!b) break; /* stopping and the broker is away */
            pthread_mutex_lock(&p->conn_mu);
            p->conn = b;
            pthread_mutex_unlock(&p->conn_mu);
        }
        Batch bt;
        memset(&bt, 0, sizeof bt);
        pthread_mutex_lock(&p->mu);
        if (!p->head && !p->stop) {
            hvd_cond_wait_ms(&p->cv, &p->mu, 200);
        }
        p->n_batch_envelopes = 0;
        while (p->head && bt.n < PUB_BATCH) {
            PubMsg *m = p->head;
            p->head = m->next_;
            if (!p->head) p->tail = NULL;
            p->n--;
            if (m->kind == PUB_EVENT) p->n_events--;
            if (m->kind == PUB_ENVELOPE) memcpy(p->batch_envelopes[p->n_batch_envelopes++], m->job_id, 37);
            bt.msgs[bt.n++] = m;
        }
        bool stop = p->stop && bt.n == 0 && !p->head;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (bt.n == 0) {
            /* Idle: keep the heartbeats flowing. */
            if (hvd_broker_service(b, 0) == HVD_BROKER_CLOSED) {
                publisher_forget_conn(p);
                hvd_broker_close(b);
                b = NULL;
                atomic_store(&p->w->pub_ready, false);
            }
            continue;
        }
        atomic_store(&p->busy_since, hvd_mono_ms());
        bool alive = send_batch(p, b, &bt);
        pthread_mutex_lock(&p->mu);
        p->n_batch_envelopes = 0;
        pthread_mutex_unlock(&p->mu);
        atomic_store(&p->busy_since, 0);
        if (!alive) {
            hvd_log_warn(NULL, "publisher lost its RabbitMQ connection; reconnecting");
            publisher_forget_conn(p);
            hvd_broker_close(b);
            b = NULL;
            atomic_store(&p->w->pub_ready, false);
        }
    }
    publisher_forget_conn(p);
    hvd_broker_close(b);
    /* Whatever is left is lost only from memory: envelopes are in the outbox,
     * doorbells are replaced by the sweep. */
    pthread_mutex_lock(&p->mu);
    while (p->head) {
        PubMsg *m = p->head;
        p->head = m->next_;
        pubmsg_free(m);
    }
    p->tail = NULL;
    p->n = p->n_events = 0;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Publisher *publisher_start(Worker *w)
{
    Publisher *p = hvd_xcalloc(1, sizeof *p);
    p->w = w;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->conn_mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_create(&p->thread, NULL, publisher_main, p);
    return p;
}

bool publisher_flush(Publisher *p, int timeout_ms)
{
    int64_t deadline = hvd_mono_ms() + timeout_ms;
    pthread_mutex_lock(&p->mu);
    while ((p->n > 0 || p->n_batch_envelopes > 0) && hvd_mono_ms() < deadline) hvd_cond_wait_ms(&p->cv, &p->mu, 50);
    bool empty = p->n == 0;
    pthread_mutex_unlock(&p->mu);
    return empty;
}

void publisher_stop(Publisher *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* ---- the usual messages ---- */

void pub_doorbell(Worker *w, const char *job_id, int64_t delay_ms)
{
    PubMsg *m = pubmsg_new(PUB_DOORBELL);
    HvdNode *n = hvd_node_map();
    hvd_node_map_set_str(n, "job_id", job_id);
    hvd_node_map_set_str(n, "job_type", HVD_BROKER_JOB_KEY);
    hvd_node_map_set_bool(n, "doorbell", true);
    hvd_encode(HVD_CT_MSGPACK, n, &m->body);
    hvd_node_free(n);
    m->content_type = hvd_xstrdup("application/msgpack");
    m->message_id = hvd_xstrdup(job_id);
    m->doorbell_header = true;
    snprintf(m->job_id, sizeof m->job_id, "%s", job_id);
    if (delay_ms <= 0) {
        m->exchange = hvd_xstrdup(w->jobs_exchange);
        m->routing_key = hvd_xstrdup(HVD_BROKER_JOB_KEY);
    } else {
        /* The smallest bucket that is at least the delay; the message's own
         * expiration shortens it to the jittered delay. */
        size_t n_b = w->cfg.retry_delays.n, pick = n_b - 1;
        for (size_t i = 0; i < n_b; i++)
            if ((int64_t)w->retry_delays[i] * 1000 >= delay_ms &&
                (pick == n_b - 1 || w->retry_delays[i] < w->retry_delays[pick]))
                pick = i;
        char key[32];
        hvd_broker_retry_key(w->retry_delays[pick], key, sizeof key);
        m->exchange = hvd_xstrdup(w->retry_exchange);
        m->routing_key = hvd_xstrdup(key);
        int64_t exp =
            delay_ms < (int64_t)w->retry_delays[pick] * 1000 ? delay_ms : (int64_t)w->retry_delays[pick] * 1000;
        m->expiration = hvd_xasprintf("%lld", (long long)exp);
    }
    publisher_send(w->pub, m);
}

void pub_event(Worker *w, const char *job_id, const char *correlation_id, const char *content_type, const char *stage,
               const char *status, int64_t attempt, const char *message)
{
    char at[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), at);
    HvdEvent ev = {.job_id = job_id,
                   .correlation_id = correlation_id,
                   .stage = stage,
                   .status = status,
                   .attempt = attempt,
                   .at = at,
                   .message = message};
    HvdContentType ct = hvd_content_type_parse(content_type);
    if (ct == HVD_CT_UNKNOWN) ct = HVD_CT_MSGPACK;
    PubMsg *m = pubmsg_new(PUB_EVENT);
    HvdNode *n = hvd_event_to_node(&ev);
    hvd_encode(ct, n, &m->body);
    hvd_node_free(n);
    char key[128];
    hvd_event_routing_key(&ev, key, sizeof key);
    m->exchange = hvd_xstrdup(w->events_exchange);
    m->routing_key = hvd_xstrdup(key);
    m->content_type = hvd_xstrdup(hvd_content_type_name(ct));
    m->message_id = hvd_xstrdup(job_id);
    m->correlation_id = hvd_xstrdup(correlation_id);
    publisher_send(w->pub, m);
}
