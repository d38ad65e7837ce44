/* The PostgreSQL edge: the one module that knows table names and SQL.
 *
 * A small pool of libpq connections shared by the worker's threads (a job
 * holds no connection while its agent runs). Every write a job's runner
 * makes is fenced: it names the lease epoch it holds and changes nothing when
 * another worker has taken the job since (HVD_STORE_FENCED). Each function
 * that writes is ONE transaction, and records its job_events rows inside it.
 * Times that belong to the database (leases, next_run_at) use now(); stage
 * timestamps too, so every worker shares one clock.
 *
 * Return convention: HvdStoreStatus. HVD_STORE_RETRY means a connection or
 * serialisation failure (SQLSTATE 08xxx, 40001, 40P01, 57P01...) — the caller
 * waits and tries again; HVD_STORE_ERROR is a bug or a constraint violation,
 * with the reason in err. */
#ifndef HVD_STORE_H
#define HVD_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "buf.h"
#include "plan.h"
#include "record.h"
#include "status.h"

typedef struct HvdStore HvdStore;

typedef enum {
    HVD_STORE_OK = 0,
    HVD_STORE_FENCED, /* our lease epoch is no longer current: stop touching the job */
    HVD_STORE_RETRY,  /* transient: connection lost, serialization failure; try again */
    HVD_STORE_ERROR,  /* permanent: see err */
} HvdStoreStatus;

typedef struct {
    const char *dsn;
    int pool_size;         /* connections, >= 1 */
    const char *worker_id; /* recorded as lease_owner and job_events.worker */
    int lease_ttl_s;
    int host_concurrency;   /* slots per host across the fleet */
    int secret_retention_s; /* how long a failed job's secrets are kept */
} HvdStoreOptions;

HvdStore *hvd_store_open(const HvdStoreOptions *opt, char *err, size_t errlen);
void hvd_store_close(HvdStore *s);   /* NULL-safe */
bool hvd_store_healthy(HvdStore *s); /* a connection answers SELECT 1 */
/* Transactions committed through this store since open (for metrics, bench). */
uint64_t hvd_store_tx_count(HvdStore *s);
/* Round trips to the server since open (a pipeline of statements is one). */
uint64_t hvd_store_round_trips(HvdStore *s);

/* Applies migrations/NNNN_*.sql in order, each once, in its own transaction,
 * under pg_advisory_lock so that many workers starting at once apply each once.
 * Records version, name and sha256 (libsodium crypto_hash_sha256) in
 * hvdeploy.schema_migrations; an applied migration whose file changed is an
 * error naming it. Prints one line per applied migration to report (nullable). */
HvdStoreStatus hvd_store_migrate(HvdStore *s, const char *migrations_dir, FILE *report, int *applied, char *err,
                                 size_t errlen);

/* ---- claiming ------------------------------------------------------------
 * A claim reads the facts of hvd_plan_claim under the host's advisory lock
 * and the job's row lock, lets the plan decide, and applies the decision in
 * the same transaction. */

typedef struct {
    HvdClaimDecision decision; /* what the plan decided (verdict RUN: rec holds our lease) */
    HvdClaimFacts facts;       /* what it decided on */
} HvdClaim;

/* One transaction for a new job message: INSERT the job (status queued), its
 * stages (pending, names from job->stages), its sealed secrets
 * (job->secret_blob, job->secret_key_id) and a job_events row (NULL ->
 * queued); then the claim as hvd_store_claim. When the job id exists already
 * nothing is inserted and it is a claim of that job. When the live-name
 * unique index refuses it, the verdict is HVD_CLAIM_DUPLICATE_NAME and
 * nothing is written. */
HvdStoreStatus hvd_store_claim_new(HvdStore *s, const HvdJobRecord *job, HvdClaim *out, HvdJobRecord *rec, char *err,
                                   size_t errlen);

/* One transaction for a doorbell, a redelivery or a sweep: the facts of the
 * job (hvd_plan_claim), the decision applied. RUN: lease_owner = us,
 * lease_epoch + 1, lease_expires_at = now() + ttl, status running, attempts + 1
 * (takeovers + 1 on a takeover), holds_slot, waiting cleared; a stage that
 * was running is pending again and in doubt; an event (old status ->
 * running, detail 'claimed' / 'takeover'); rec filled as the transaction
 * left it. WAIT for a slot: status queued, waiting_reason host_busy.
 * FINISHED: rec has the envelope. */
HvdStoreStatus hvd_store_claim(HvdStore *s, const char *job_id, HvdClaim *out, HvdJobRecord *rec, char *err,
                               size_t errlen);

/* Records a job that will never run (invalid request with a valid job id,
 * duplicate name, unsupported type) as failed with its envelope, or, when the
 * id exists already, leaves it. *existing is set when it existed; then
 * existing_envelope holds that job's stored envelope (if terminal). */
HvdStoreStatus hvd_store_record_rejected(HvdStore *s, const HvdJobRecord *job, const char *code, const void *envelope,
                                         size_t envelope_len, bool *existing, HvdBuf *existing_envelope, char *err,
                                         size_t errlen);

/* ---- running (all fenced by epoch) -----------------------------------------
 * The fence is: job_id, our epoch, lease_owner = this worker, status running,
 * and the job still holds its host slot (a holder whose lease expired and
 * whose slot went to another job of the host is fenced too; the job itself
 * is taken over later). A FENCED write changed nothing. */

/* One transaction: ends stage `ended` (NULL: none) as ended->status
 * (succeeded or failed) with its message, code, agent_code, agent_log and,
 * on success, output_json (merged into jobs.outputs); starts `next_stage`
 * (NULL: none: status running, attempts + 1, started_at); renews the lease;
 * writes the events. Reports whether a cancel was requested meanwhile and
 * the attempt number of next_stage. When a cancel was requested, next_stage
 * is NOT started (*next_attempt = 0). */
HvdStoreStatus hvd_store_step(HvdStore *s, const char *job_id, int64_t epoch, const HvdStage *ended,
                              const char *next_stage, bool *cancel_requested, int *next_attempt, char *err,
                              size_t errlen);

/* One transaction: `stage` (NULL: no stage changes) waits for a retry: its message, code, agent_code,
 * agent_log and in_doubt recorded (status back to pending, attempts kept),
 * job -> retrying (reason retry or circuit_open), next_run_at = now() +
 * delay_ms, lease and slot released. next_job receives (may be empty) the
 * oldest job of the host now waiting for a slot, whose doorbell the caller
 * rings. */
HvdStoreStatus hvd_store_wait_retry(HvdStore *s, const char *job_id, int64_t epoch, const HvdStage *stage,
                                    int64_t delay_ms, HvdWaitReason reason, char next_job[37], char *err,
                                    size_t errlen);

/* One transaction: lets a job go without ending it (shutdown): lease and slot
 * released, a running stage back to pending and in doubt (its call may have
 * reached the agent), status queued with next_run_at = now(). next_job as
 * above. */
HvdStoreStatus hvd_store_release(HvdStore *s, const char *job_id, int64_t epoch, char next_job[37], char *err,
                                 size_t errlen);

/* One transaction: the job's terminal state. Writes every given stage
 * (status: succeeded, failed, rolled_back or pending for not started; its
 * message, code, agent_code, agent_log, and output_json when it succeeded),
 * the job's status (succeeded, failed or cancelled), code, envelope bytes,
 * finished_at; releases lease and slot; erases secrets on success (or sets
 * erase_after = now() + retention on failure); events. next_job as above. */
HvdStoreStatus hvd_store_finish(HvdStore *s, const char *job_id, int64_t epoch, HvdJobStatus status, const char *code,
                                const HvdStage *stages, size_t n_stages, const void *envelope, size_t envelope_len,
                                char next_job[37], char *err, size_t errlen);

/* Marks envelopes confirmed by the broker (one statement for many jobs). */
HvdStoreStatus hvd_store_mark_sent(HvdStore *s, const char *const *job_ids, size_t n, char *err, size_t errlen);

/* Erases the secrets of a job once vm.initialize succeeded (fenced). */
HvdStoreStatus hvd_store_erase_secrets(HvdStore *s, const char *job_id, int64_t epoch, char *err, size_t errlen);

/* ---- maintenance -------------------------------------------------------- */

/* One statement: extends the leases this worker holds on the given jobs;
 * lost[i] is set for each job whose epoch is no longer ours. */
HvdStoreStatus hvd_store_renew(HvdStore *s, const char *const *job_ids, const int64_t *epochs, size_t n, bool *lost,
                               char *err, size_t errlen);

/* Finds up to max job ids that need a worker: running with an expired lease,
 * or queued/retrying with next_run_at <= now() (FOR UPDATE SKIP LOCKED on the
 * sweep index). The caller then calls hvd_store_claim on each. */
HvdStoreStatus hvd_store_sweep(HvdStore *s, size_t max, char (*job_ids)[37], size_t *n, char *err, size_t errlen);

typedef struct {
    char job_id[37];
    char *reply_to, *content_type, *correlation_id;
    HvdBuf envelope;
} HvdOutboxItem;
/* Terminal envelopes not yet confirmed and finished more than older_than_ms ago. */
HvdStoreStatus hvd_store_outbox(HvdStore *s, int64_t older_than_ms, size_t max, HvdOutboxItem *items, size_t *n,
                                char *err, size_t errlen);
void hvd_outbox_item_free(HvdOutboxItem *it);

/* Erases secrets whose retention passed. */
HvdStoreStatus hvd_store_purge_secrets(HvdStore *s, size_t *purged, char *err, size_t errlen);

/* ---- operator queries (hvdeployctl) -------------------------------------- */

/* cancel_requested = true on a live job; *found false when unknown,
 * *already_finished when terminal. */
HvdStoreStatus hvd_store_request_cancel(HvdStore *s, const char *job_id, bool *found, bool *already_finished, char *err,
                                        size_t errlen);
/* Loads a job without claiming it (status queries, replay). */
HvdStoreStatus hvd_store_get(HvdStore *s, const char *job_id, bool *found, HvdJobRecord *rec, char *err, size_t errlen);

/* Recent jobs, newest first; status and host filter when not NULL. *out is a
 * new array of *n records with their stages' names, statuses and attempts
 * (no request, secrets or envelope); free with hvd_job_records_free. */
HvdStoreStatus hvd_store_list(HvdStore *s, const char *status, const char *host, size_t limit, HvdJobRecord **out,
                              size_t *n, char *err, size_t errlen);
void hvd_job_records_free(HvdJobRecord *v, size_t n); /* NULL-safe */

/* The migrations directory: $HVD_MIGRATIONS_DIR, else `migrations` found
 * next to the running binary (build/bin/../../migrations, or an install's
 * ../share/hvdeploy/migrations), else the source tree's, else
 * /usr/share/hvdeploy/migrations. Static storage. */
const char *hvd_store_default_migrations_dir(void);

/* Copies dsn to out with any password replaced by "***" (URI user:password@,
 * ?password=, or password=... in key=value form), for error messages. */
void hvd_store_mask_dsn(const char *dsn, char *out, size_t outlen);

/* ---- per-host circuit breaker (store_host.c) ------------------------------ */

/* Reads the host's circuit (one statement; takes the trial for job_id, for
 * trial_ms, when the cooldown is over and no live trial exists). *fails is
 * the host's consecutive failures (0 when it has no record). */
HvdStoreStatus hvd_store_host_gate(HvdStore *s, const char *host, const char *job_id, int64_t trial_ms,
                                   HvdHostGate *gate, int *fails, int64_t *wait_ms, char *err, size_t errlen);
/* Records the outcome of a call to the host: host_failed counts toward
 * threshold (or, after a trial, reopens at once); a success closes it.
 * *open tells whether the circuit is open afterwards. */
HvdStoreStatus hvd_store_host_report(HvdStore *s, const char *host, bool host_failed, int threshold,
                                     int64_t cooldown_ms, bool *open, char *err, size_t errlen);

/* Records what a host's agent answered to agent.hello (§6a): its name, its
 * capabilities and the profile the worker uses with it (for `hvdeployctl
 * hosts`). */
HvdStoreStatus hvd_store_host_agent(HvdStore *s, const char *host, const char *agent, const char *const *caps,
                                    size_t n_caps, const char *profile, char *err, size_t errlen);

/* (added, common/store_replay.c) One transaction for `hvdeployctl dead replay`:
 * puts a failed job back in the queue to resume from its failed stage. The job
 * must exist (*found), be failed, not have been refused before it ran nor
 * rolled back, and still have its secrets when vm.initialize is still to run;
 * its VM name must not be taken by another live job of its host. Then: status
 * queued, next_run_at now(), finished_at/envelope/envelope_sent_at/code
 * cleared, every stage not succeeded back to pending with 0 attempts, the
 * retained secrets kept (erase_after cleared), job_events rows (detail
 * 'replay'). The caller rings the job's doorbell afterwards.
 * Returns OK with why empty when the job was reset; OK with a sentence in why
 * when it was refused (nothing changed); *found false for an unknown job. */
HvdStoreStatus hvd_store_replay(HvdStore *s, const char *job_id, bool *found, char *why, size_t whylen, char *err,
                                size_t errlen);

#endif
