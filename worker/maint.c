/* The maintainer thread: renews this worker's leases, sweeps PostgreSQL for
 * jobs that need a worker (expired leases, due retries, lost doorbells),
 * resends envelopes the broker never confirmed (the outbox) and purges
 * secrets whose retention passed, and carries the fleet's duties when this
 * worker holds the fleet role (fleet.c). It runs until the very end of shutdown:
 * leases must stay renewed while runners finish their stages in the grace. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "answer.h"
#include "fleet.h"
#include "intake.h"
#include "leases.h"
#include "maint.h"
#include "publisher.h"
#include "runner.h"
#include "log.h"
#include "metrics.h"

#define OUTBOX_AGE_MS 5000
#define OUTBOX_BATCH 64

static void sweep(Worker *w)
{
    size_t room = runners_free(w->runners);
    if (room == 0) return;
    char(*ids)[37] = hvd_xcalloc(room, sizeof *ids);
    size_t n = 0;
    char err[256];
    if (hvd_store_sweep(w->store, room, ids, &n, err, sizeof err) == HVD_STORE_OK) {
        for (size_t i = 0; i < n && !atomic_load(&w->stopping); i++) {
            bool ran;
            intake_claim_existing(w, ids[i], &ran);
        }
    }
    free(ids);
}

static void outbox(Worker *w)
{
    HvdOutboxItem items[OUTBOX_BATCH];
    size_t n = 0;
    char err[256];
    if (hvd_store_outbox(w->store, OUTBOX_AGE_MS, OUTBOX_BATCH, items, &n, err, sizeof err) != HVD_STORE_OK) return;
    for (size_t i = 0; i < n; i++) {
        if (publisher_has_envelope(w->pub, items[i].job_id)) { /* on its way already */
            hvd_outbox_item_free(&items[i]);
            continue;
        }
        HvdLogCtx lc = {.job_id = items[i].job_id};
        hvd_log_info(&lc, "resending an envelope the broker never confirmed");
        answer_publish(w, items[i].job_id, items[i].reply_to, items[i].correlation_id, items[i].content_type,
                       &items[i].envelope);
        hvd_outbox_item_free(&items[i]);
    }
}

void *maint_main(void *arg)
{
    Worker *w = arg;
    int64_t now = hvd_mono_ms();
    int64_t renew_every = w->cfg.lease_ttl * 1000 / 3;
    if (renew_every < 500) renew_every = 500;
    int64_t next_renew = now + renew_every, next_sweep = now + 1000, next_outbox = now + OUTBOX_AGE_MS,
            next_purge = now + 60000, next_health = now;
    uint64_t tx_seen = 0;
    Fleet *fleet = fleet_new(w);
    while (!atomic_load(&w->maint_stop)) {
        usleep(100 * 1000);
        now = hvd_mono_ms();
        /* confirms are awaited 10 s per batch; a batch stuck three times that long is a dead socket */
        publisher_watchdog(w->pub, 45000);
        if (now >= next_health) {
            atomic_store(&w->pg_ready, hvd_store_healthy(w->store));
            bool ready = atomic_load(&w->pg_ready) && atomic_load(&w->amqp_ready) && atomic_load(&w->pub_ready) &&
                         !atomic_load(&w->stopping);
            hvd_metric_gauge_set(HVD_M_WORKER_READY, NULL, NULL, ready ? 1 : 0);
            next_health = now + 2000;
        }
        if (now >= next_renew) {
            leases_renew(w->leases, w->store);
            next_renew = now + renew_every;
        }
        if (now >= next_sweep && !atomic_load(&w->stopping)) {
            sweep(w);
            next_sweep = now + w->cfg.sweep_interval * 1000;
        }
        if (now >= next_outbox) {
            outbox(w);
            next_outbox = now + OUTBOX_AGE_MS;
        }
        if (now >= next_purge) {
            size_t purged = 0;
            char err[256];
            if (hvd_store_purge_secrets(w->store, &purged, err, sizeof err) == HVD_STORE_OK && purged)
                hvd_log_info(NULL, "erased the secrets of %zu failed job(s) whose retention passed", purged);
            next_purge = now + 60000;
        }
        hvd_agent_reap_orphans_now_and_then(); /* leftovers of agents whose own parent died after the call */
        if (!atomic_load(&w->stopping)) fleet_tick(fleet, now);
        uint64_t tx = hvd_store_tx_count(w->store);
        if (tx > tx_seen) hvd_metric_add(HVD_M_PG_TRANSACTIONS, NULL, NULL, (double)(tx - tx_seen));
        tx_seen = tx;
    }
    fleet_free(fleet);
    return NULL;
}
