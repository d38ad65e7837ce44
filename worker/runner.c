/* The runner pool: HVD_CONCURRENCY threads, each running one claimed job's
 * stages in order through the host agent, writing every transition through
 * the store (fenced by the lease epoch) and ending with one envelope. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "codec.h"
#include "envelope.h"
#include "guestcfg.h"
#include "jobrun.h"
#include "runner.h"
#include "log.h"
#include "metrics.h"

typedef struct RunItem {
    HvdJobRecord *rec;
    bool takeover;
    struct RunItem *next;
} RunItem;

struct Runners {
    Worker *w;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued (one runner woken) or the pool stops (all) */
    pthread_cond_t done; /* a runner was given back: runners_stop waits on it */
    RunItem *head, *tail;
    size_t n_threads;
    size_t reserved; /* runners promised to jobs being claimed or queued */
    size_t busy;     /* runners executing a job */
    bool stop;
    pthread_t *threads;
};

static void *runner_main(void *arg)
{
    Runners *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->head && !r->stop) pthread_cond_wait(&r->work, &r->mu);
        if (!r->head) { /* stopping and nothing queued */
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        RunItem *it = r->head;
        r->head = it->next;
        if (!r->head) r->tail = NULL;
        r->busy++;
        pthread_mutex_unlock(&r->mu);

        jobrun_execute(r->w, it->rec, it->takeover);
        hvd_job_record_free(it->rec);
        free(it->rec);
        free(it);

        pthread_mutex_lock(&r->mu);
        r->busy--;
        r->reserved--;
        hvd_metrics_set_in_flight((int)r->reserved, (int)r->n_threads);
        if (r->stop) pthread_cond_broadcast(&r->done); /* only runners_stop waits for runners back */
        pthread_mutex_unlock(&r->mu);
    }
}

Runners *runners_start(Worker *w, int n)
{
    Runners *r = hvd_xcalloc(1, sizeof *r);
    r->w = w;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->done, NULL);
    r->n_threads = (size_t)n;
    r->threads = hvd_xcalloc((size_t)n, sizeof *r->threads);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Runners mostly wait on an agent process: a small stack keeps memory flat at 64 in flight. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < n; i++) pthread_create(&r->threads[i], &attr, runner_main, r);
    pthread_attr_destroy(&attr);
    return r;
}

bool runners_reserve(Runners *r)
{
    pthread_mutex_lock(&r->mu);
    bool ok = !r->stop && r->reserved < r->n_threads;
    if (ok) r->reserved++;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void runners_unreserve(Runners *r)
{
    pthread_mutex_lock(&r->mu);
    r->reserved--;
    if (r->stop) pthread_cond_broadcast(&r->done);
    pthread_mutex_unlock(&r->mu);
}

void runners_submit(Runners *r, HvdJobRecord *rec, bool takeover)
{
    RunItem *it = hvd_xcalloc(1, sizeof *it);
    it->rec = rec;
    it->takeover = takeover;
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    hvd_metrics_set_in_flight((int)r->reserved, (int)r->n_threads);
    pthread_cond_signal(&r->work); /* one job, one runner: waking them all cost half the worker's CPU */
    pthread_mutex_unlock(&r->mu);
}

size_t runners_free(Runners *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->stop ? 0 : r->n_threads - r->reserved;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool runners_stop(Runners *r, int grace_s)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->work);
    int64_t deadline = hvd_mono_ms() + (int64_t)grace_s * 1000;
    while (r->reserved > 0 && hvd_mono_ms() < deadline) {
        hvd_cond_wait_ms(&r->done, &r->mu, 100);
    }
    if (r->reserved > 0) {
        /* Grace over: stop the agents; their runners release their jobs. */
        atomic_store(&r->w->agent_cancel, 1);
        deadline = hvd_mono_ms() + r->w->agent.kill_grace_ms + 3000;
        while (r->reserved > 0 && hvd_mono_ms() < deadline) {
            hvd_cond_wait_ms(&r->done, &r->mu, 100);
        }
    }
    size_t left = r->reserved;
    pthread_mutex_unlock(&r->mu);
    if (left == 0) {
        for (size_t i = 0; i < r->n_threads; i++) pthread_join(r->threads[i], NULL);
        free(r->threads);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->work);
        pthread_cond_destroy(&r->done);
        free(r);
        return true;
    }
    /* Grace is over with stages still running: let their jobs go so that
     * another worker resumes them (same idempotency key), and leave the
     * threads behind; the process is about to exit and their late writes
     * are fenced by the epoch we give up here. */
    hvd_log_warn(NULL, "shutdown grace of %d s over with %zu job(s) still running: releasing them", grace_s, left);
    jobrun_release_all(r->w);
    return false;
}
