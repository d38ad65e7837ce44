/* The leases this worker holds on running jobs: renewed together in one
 * statement by the maintainer thread; a lease found lost makes its runner
 * stop touching the job (its writes would be fenced anyway). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "leases.h"

typedef struct {
    char job_id[37];
    int64_t epoch;
    bool lost;
} Lease;

struct LeaseSet {
    pthread_mutex_t mu;
    Lease *v;
    size_t n, cap;
};

LeaseSet *leases_new(void)
{
    LeaseSet *l = hvd_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void leases_free(LeaseSet *l)
{
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    free(l->v);
    free(l);
}

static Lease *find_locked(LeaseSet *l, const char *job_id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].job_id, job_id) == 0) return &l->v[i];
    return NULL;
}

void leases_add(LeaseSet *l, const char *job_id, int64_t epoch)
{
    pthread_mutex_lock(&l->mu);
    Lease *e = find_locked(l, job_id);
    if (!e) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->v = hvd_xrealloc(l->v, l->cap * sizeof *l->v);
        }
        e = &l->v[l->n++];
        snprintf(e->job_id, sizeof e->job_id, "%s", job_id);
    }
    e->epoch = epoch;
    e->lost = false;
    pthread_mutex_unlock(&l->mu);
}

void leases_remove(LeaseSet *l, const char *job_id)
{
    pthread_mutex_lock(&l->mu);
    Lease *e = find_locked(l, job_id);
    if (e) *e = l->v[--l->n];
    pthread_mutex_unlock(&l->mu);
}

bool leases_lost(LeaseSet *l, const char *job_id)
{
    pthread_mutex_lock(&l->mu);
    Lease *e = find_locked(l, job_id);
    bool lost = e && e->lost;
    pthread_mutex_unlock(&l->mu);
    return lost;
}

size_t leases_snapshot(LeaseSet *l, char (*ids)[37], int64_t *epochs, size_t max)
{
    pthread_mutex_lock(&l->mu);
    size_t n = 0;
    for (size_t i = 0; i < l->n && n < max; i++) {
        if (l->v[i].lost) continue;
        memcpy(ids[n], l->v[i].job_id, 37);
        epochs[n] = l->v[i].epoch;
        n++;
    }
    pthread_mutex_unlock(&l->mu);
    return n;
}

void leases_renew(LeaseSet *l, HvdStore *s)
{
    enum { MAX = 1024 };
    static char ids[MAX][37]; /* only the maintainer thread renews */
    static int64_t epochs[MAX];
    const char *ptrs[MAX];
    bool lost[MAX];
    size_t n = leases_snapshot(l, ids, epochs, MAX);
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) ptrs[i] = ids[i];
    char err[256];
    if (hvd_store_renew(s, ptrs, epochs, n, lost, err, sizeof err) != HVD_STORE_OK) {
        hvd_log_warn(NULL, "cannot renew leases: %s", err);
        return;
    }
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        if (!lost[i]) continue;
        Lease *e = find_locked(l, ids[i]);
        if (e && e->epoch == epochs[i]) {
            e->lost = true;
            HvdLogCtx lc = {.job_id = ids[i]};
            hvd_log_warn(&lc, "lease lost: another worker took the job over");
        }
    }
    pthread_mutex_unlock(&l->mu);
}
