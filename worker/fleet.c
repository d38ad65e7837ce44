/* The fleet-wide duties one worker at a time carries out, run by the
 * maintainer thread: it holds the fleet role (a PostgreSQL advisory lock on a
 * connection of its own), exports the fleet view in /metrics and prunes
 * finished jobs after HVD_JOB_RETENTION. A worker that does not hold the role
 * exports no hvdeploy_fleet_* series (so that sums over the fleet stay right)
 * and tries to take the role every few seconds: when the holder dies or loses
 * its database session, another worker carries on within that time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "store_fleet.h"
#include "fleet.h"

/* Periods in HVD_SWEEP_INTERVALs (5 s by default): the role is tried every
 * sweep, the view refreshed every 3 (15 s), pruning every 12 (a minute); the
 * finished jobs by status (an index scan that grows with the table) every 5
 * minutes. */
#define FLEET_VIEW_SWEEPS 3
#define FLEET_PRUNE_SWEEPS 12
#define FLEET_FINISHED_EVERY_MS 300000
#define FLEET_PRUNE_BATCH 500
#define FLEET_PRUNE_BUDGET_MS 2000 /* per round: the maintainer also renews leases */

struct Fleet {
    Worker *w;
    HvdStoreRole *role;
    int64_t next_role, next_view, next_finished, next_prune;
    HvdFleetView last; /* finished counts are kept between their refreshes */
};

static const char *const fleet_metrics[] = {
    HVD_M_FLEET_JOBS,          HVD_M_FLEET_OLDEST_QUEUED, HVD_M_FLEET_OLDEST_WAITING,
    HVD_M_FLEET_UNSENT,        HVD_M_FLEET_OLDEST_UNSENT, HVD_M_FLEET_EXPIRED_LEASES,
    HVD_M_FLEET_OPEN_CIRCUITS, HVD_M_FLEET_SECRETS,       HVD_M_FLEET_VIEW_SECONDS,
};
static const char *const statuses[] = {"queued", "running", "retrying", "succeeded", "failed", "cancelled"};
static const char *const reasons[] = {"retry", "host_busy", "circuit_open"};

static void clear_view(void)
{
    for (size_t i = 0; i < sizeof fleet_metrics / sizeof *fleet_metrics; i++) hvd_metric_clear(fleet_metrics[i]);
}

Fleet *fleet_new(Worker *w)
{
    Fleet *f = hvd_xcalloc(1, sizeof *f);
    f->w = w;
    f->role = hvd_store_role_new(w->store, HVD_STORE_ROLE_FLEET);
    clear_view();
    hvd_metric_gauge_set(HVD_M_FLEET_EXPORTER, NULL, NULL, 0);
    return f;
}

void fleet_free(Fleet *f)
{
    if (!f) return;
    hvd_store_role_free(f->role);
    free(f);
}

static int64_t sweep_ms(const Fleet *f)
{
    return f->w->cfg.sweep_interval * 1000;
}

static int64_t jobs_of(const HvdFleetView *v, const char *status, const char *reason)
{
    int64_t n = 0;
    for (size_t i = 0; i < v->n_states; i++)
        if (strcmp(v->by_state[i].status, status) == 0 && strcmp(v->by_state[i].waiting_reason, reason) == 0)
            n += v->by_state[i].jobs;
    return n;
}

/* Every (status, reason) pair a job can be in is exported, 0 when none, so
 * that a series does not vanish when its last job leaves it. */
static void export_view(Fleet *f, const HvdFleetView *v, double seconds)
{
    for (size_t s = 0; s < sizeof statuses / sizeof *statuses; s++) {
        bool live = s < 3;
        if (!live && !f->last.finished_counted) continue;
        const HvdFleetView *src = live ? v : &f->last;
        hvd_metric_gauge_set(HVD_M_FLEET_JOBS, statuses[s], "", (double)jobs_of(src, statuses[s], ""));
        if (!live) continue;
        for (size_t r = 0; r < sizeof reasons / sizeof *reasons; r++)
            hvd_metric_gauge_set(HVD_M_FLEET_JOBS, statuses[s], reasons[r],
                                 (double)jobs_of(v, statuses[s], reasons[r]));
    }
    for (size_t r = 0; r < sizeof reasons / sizeof *reasons; r++) {
        double secs = 0;
        for (size_t i = 0; i < v->n_waiting; i++)
            if (strcmp(v->waiting[i].waiting_reason, reasons[r]) == 0) secs = v->waiting[i].seconds;
        hvd_metric_gauge_set(HVD_M_FLEET_OLDEST_WAITING, reasons[r], NULL, secs);
    }
    hvd_metric_gauge_set(HVD_M_FLEET_OLDEST_QUEUED, NULL, NULL, v->oldest_queued_s);
    hvd_metric_gauge_set(HVD_M_FLEET_UNSENT, NULL, NULL, (double)v->unsent_envelopes);
    hvd_metric_gauge_set(HVD_M_FLEET_OLDEST_UNSENT, NULL, NULL, v->oldest_unsent_s);
    hvd_metric_gauge_set(HVD_M_FLEET_EXPIRED_LEASES, NULL, NULL, (double)v->expired_leases);
    hvd_metric_gauge_set(HVD_M_FLEET_OPEN_CIRCUITS, NULL, NULL, (double)v->open_circuits);
    hvd_metric_gauge_set(HVD_M_FLEET_SECRETS, "needed", NULL, (double)v->secrets_needed);
    hvd_metric_gauge_set(HVD_M_FLEET_SECRETS, "retained", NULL, (double)v->secrets_retained);
    hvd_metric_gauge_set(HVD_M_FLEET_VIEW_SECONDS, NULL, NULL, seconds);
}

static void view(Fleet *f, int64_t now)
{
    bool with_finished = now >= f->next_finished;
    HvdFleetView v;
    char err[512];
    int64_t t0 = hvd_mono_ms();
    if (hvd_store_fleet_view(f->w->store, with_finished, &v, err, sizeof err) != HVD_STORE_OK) {
        hvd_log_warn(NULL, "fleet view: %s", err);
        return;
    }
    if (with_finished) {
        f->last = v;
        f->next_finished = now + FLEET_FINISHED_EVERY_MS;
    }
    export_view(f, &v, (double)(hvd_mono_ms() - t0) / 1000.0);
}

static void prune(Fleet *f)
{
    HvdPruneOptions o = {
        .older_than_s = f->w->cfg.job_retention, .batch = FLEET_PRUNE_BATCH, .budget_ms = FLEET_PRUNE_BUDGET_MS};
    HvdPruneResult res;
    char err[512];
    HvdStoreStatus st = hvd_store_prune(f->w->store, &o, &res, err, sizeof err);
    if (res.jobs) {
        hvd_metric_add(HVD_M_JOBS_PRUNED, NULL, NULL, (double)res.jobs);
        hvd_log_info(NULL, "pruned %lld finished job(s) and %lld event(s) older than %lld s in %zu batch(es)%s",
                     (long long)res.jobs, (long long)res.events, (long long)o.older_than_s, res.batches,
                     res.more ? "; more next round" : "");
    }
    if (st != HVD_STORE_OK) hvd_log_warn(NULL, "pruning finished jobs: %s", err);
    /* more left: come back soon, but leave the database some air */
    f->next_prune = hvd_mono_ms() + (res.more ? FLEET_PRUNE_BUDGET_MS : FLEET_PRUNE_SWEEPS * sweep_ms(f));
}

void fleet_tick(Fleet *f, int64_t now)
{
    if (now >= f->next_role) {
        bool changed = false;
        char err[512] = "";
        bool held = hvd_store_role_hold(f->role, &changed, err, sizeof err);
        if (changed && held) {
            hvd_log_info(NULL, "this worker now exports the fleet view and prunes finished jobs");
            hvd_metric_gauge_set(HVD_M_FLEET_EXPORTER, NULL, NULL, 1);
            f->next_view = f->next_finished = now;
        } else if (changed) {
            hvd_log_warn(NULL, "this worker no longer holds the fleet role%s%s", err[0] ? ": " : "", err);
            hvd_metric_gauge_set(HVD_M_FLEET_EXPORTER, NULL, NULL, 0);
            clear_view();
            memset(&f->last, 0, sizeof f->last);
        }
        f->next_role = now + sweep_ms(f);
    }
    if (!hvd_store_role_held(f->role)) return;
    if (now >= f->next_view) {
        view(f, now);
        f->next_view = now + FLEET_VIEW_SWEEPS * sweep_ms(f);
    }
    if (f->w->cfg.job_retention > 0 && now >= f->next_prune) prune(f);
}
