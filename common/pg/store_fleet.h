/* The store's fleet-wide duties (issue 13): a role that one process of the
 * fleet holds at a time, retention (contract §8 v1.1: finished jobs whose
 * envelope was sent are deleted with their stages, secrets, events and
 * output), and the fleet view exported in /metrics.
 *
 * Return convention as store.h: HVD_STORE_RETRY for a lost connection or a
 * server that is no longer the primary, HVD_STORE_ERROR otherwise. */
#ifndef HVD_STORE_FLEET_H
#define HVD_STORE_FLEET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store.h"

/* ---- roles (store_fleet.c) ---------------------------------------------- */

/* A session advisory lock held on a connection of its own (outside the pool):
 * while this process holds it no other one does. The server lets it go when
 * the session ends (the process died, the connection broke, a failover), and
 * another process takes it at its next try. */
typedef struct HvdStoreRole HvdStoreRole;

/* key: the advisory lock's key (one per role). */
HvdStoreRole *hvd_store_role_new(HvdStore *s, int64_t key);
/* Tries to hold the role: when held, checks that its session is still alive
 * (one round trip); when not, (re)connects and tries the lock. Returns whether
 * it is held now; *changed (may be NULL) tells it was taken or lost by this
 * call. err gets why when the database could not be reached. */
bool hvd_store_role_hold(HvdStoreRole *r, bool *changed, char *err, size_t errlen);
bool hvd_store_role_held(const HvdStoreRole *r);
void hvd_store_role_free(HvdStoreRole *r); /* NULL-safe; lets the role go */

/* The one role of the workers: the fleet view and the pruner ("hvdfleet"). */
#define HVD_STORE_ROLE_FLEET INT64_C(7527314218264388980)

/* ---- retention (store_prune.c) ---------------------------------------------- */

typedef struct {
    int64_t older_than_s; /* finished at least this long ago; > 0 */
    size_t batch;         /* jobs deleted per transaction (1..100000) */
    size_t max_batches;   /* 0 = until none is left */
    int64_t budget_ms;    /* 0 = none; else no new batch starts after this long */
    bool dry_run;         /* count what would go, delete nothing */
} HvdPruneOptions;

typedef struct {
    int64_t jobs;   /* jobs deleted (dry run: that would be) */
    int64_t events; /* their job_events rows */
    size_t batches; /* transactions committed */
    bool more;      /* stopped by max_batches or the budget with jobs left to prune */
} HvdPruneResult;

/* Deletes finished jobs (succeeded, failed, cancelled) whose envelope was
 * sent and that finished at least older_than_s ago, oldest first, batch by
 * batch, each batch one transaction: the jobs (FOR UPDATE SKIP LOCKED, so a
 * job another transaction holds is left for the next round), their job_events
 * rows, and by ON DELETE CASCADE their stages, secrets and job output. A live
 * job or one whose envelope is unsent is never touched. A job id sent again
 * after its job was pruned is a new job. */
HvdStoreStatus hvd_store_prune(HvdStore *s, const HvdPruneOptions *o, HvdPruneResult *res, char *err, size_t errlen);

/* ---- the fleet view (store_fleet.c) ---------------------------------------- */

#define HVD_FLEET_MAX_ROWS 32

typedef struct {
    struct {
        char status[16];         /* queued, running, retrying, succeeded, failed, cancelled */
        char waiting_reason[16]; /* retry, host_busy, circuit_open, "" */
        int64_t jobs;
    } by_state[HVD_FLEET_MAX_ROWS];
    size_t n_states; /* only the (status, reason) pairs that have jobs */
    struct {
        char waiting_reason[16];
        double seconds; /* since the longest-waiting job of this reason last changed */
    } waiting[8];
    size_t n_waiting;
    double oldest_queued_s;   /* age (since created) of the oldest queued job; 0 when none */
    int64_t unsent_envelopes; /* terminal envelopes not yet confirmed by the broker */
    double oldest_unsent_s;   /* since the oldest of them finished; 0 when none */
    int64_t expired_leases;   /* running jobs whose lease expired (their worker died) */
    int64_t open_circuits;    /* hosts whose circuit is open now */
    int64_t secrets_needed;   /* sealed secrets of live jobs */
    int64_t secrets_retained; /* kept after a failure for a replay (HVD_SECRET_RETENTION) */
    bool finished_counted;    /* by_state holds the finished statuses too */
} HvdFleetView;

/* Live jobs and the rest of the view in one statement over small indexes
 * (under a millisecond with 10^6 finished jobs); with_finished adds the
 * finished jobs by status, an index-only scan that grows with the table
 * (about 50 ms per 10^6 jobs: docs/scaling.md has the measured figures). */
HvdStoreStatus hvd_store_fleet_view(HvdStore *s, bool with_finished, HvdFleetView *v, char *err, size_t errlen);

#endif
