/* The worker's metrics: every name the worker reports, its help text and
 * labels, and the fixed sets of label values (anything else counts as
 * "other"), registered in one call. */
#include "metrics.h"

/* The fixed sets of the worker's labels ("other" is always a value too). */
static const char *const JOB_TYPES[] = {"managed_deployment", HVD_METRIC_OTHER, NULL};
static const char *const JOB_STATUSES[] = {"success", "partial", "error", HVD_METRIC_OTHER, NULL};
static const char *const STAGES[] = {"vm.create", "disk.create",    "nic.create", "vm.initialize",
                                     "vm.delete", HVD_METRIC_OTHER, NULL};
static const char *const CODES[] = {"validation_error",
                                    "malformed_message",
                                    "unsupported_content_type",
                                    "unsupported_job_type",
                                    "message_too_large",
                                    "host_not_allowed",
                                    "duplicate_vm_name",
                                    "agent_error",
                                    "agent_protocol_error",
                                    "agent_timeout",
                                    "retries_exhausted",
                                    "deadline_exceeded",
                                    "cancelled",
                                    "internal_error",
                                    "outcome_unknown",
                                    HVD_METRIC_OTHER,
                                    NULL};
static const char *const TARGETS[] = {"amqp", "postgres", HVD_METRIC_OTHER, NULL};
static const char *const FLEET_STATUSES[] = {"queued", "running",   "retrying",       "succeeded",
                                             "failed", "cancelled", HVD_METRIC_OTHER, NULL};
static const char *const WAIT_REASONS[] = {"", "retry", "host_busy", "circuit_open", HVD_METRIC_OTHER, NULL};
static const char *const SECRET_STATES[] = {"needed", "retained", HVD_METRIC_OTHER, NULL};
static const char *const AMQP_OPS[] = {"consume", "cancel", "ack", "publish", HVD_METRIC_OTHER, NULL};

void hvd_metrics_register_worker(void)
{
    static const struct {
        const char *name;
        HvdMetricType type;
        const char *l1, *l2, *help;
        const char *const *v1, *const *v2;
    } w[] = {
        {HVD_M_JOBS_TOTAL, HVD_METRIC_COUNTER, "job_type", "status", "Jobs finished, by job type and final status.",
         JOB_TYPES, JOB_STATUSES},
        {HVD_M_STAGE_DURATION, HVD_METRIC_HISTOGRAM, "stage", NULL, "Duration of stage runs in seconds, by stage.",
         STAGES, NULL},
        {HVD_M_AGENT_CALL_DURATION, HVD_METRIC_HISTOGRAM, "stage", NULL,
         "Duration of host agent calls in seconds, by stage.", STAGES, NULL},
        {HVD_M_RETRIES_TOTAL, HVD_METRIC_COUNTER, "stage", NULL, "Stage retries scheduled after a transient failure.",
         STAGES, NULL},
        {HVD_M_DEAD_LETTERS_TOTAL, HVD_METRIC_COUNTER, "reason", NULL, "Messages dead-lettered, by reason.", CODES,
         NULL},
        {HVD_M_LEASE_TAKEOVERS_TOTAL, HVD_METRIC_COUNTER, NULL, NULL,
         "Jobs taken over from a worker whose lease expired.", NULL, NULL},
        {HVD_M_RECONNECTS_TOTAL, HVD_METRIC_COUNTER, "target", NULL, "Reconnections, by target (amqp or postgres).",
         TARGETS, NULL},
        {HVD_M_JOBS_IN_FLIGHT, HVD_METRIC_GAUGE, NULL, NULL, "Jobs this worker is running now.", NULL, NULL},
        {HVD_M_CONSUMER_UTILISATION, HVD_METRIC_GAUGE, NULL, NULL,
         "Jobs in flight divided by HVD_CONCURRENCY (0 to 1).", NULL, NULL},
        {HVD_M_ENVELOPES_PUBLISHED, HVD_METRIC_COUNTER, NULL, NULL, "Result envelopes published and confirmed.", NULL,
         NULL},
        {HVD_M_PG_TRANSACTIONS, HVD_METRIC_COUNTER, NULL, NULL, "PostgreSQL transactions committed.", NULL, NULL},
        {HVD_M_AMQP_OPERATIONS, HVD_METRIC_COUNTER, "op", NULL, "Broker operations, by operation.", AMQP_OPS, NULL},
        {HVD_M_WORKER_READY, HVD_METRIC_GAUGE, NULL, NULL, "1 while the worker is ready (/healthz), else 0.", NULL,
         NULL},
        {HVD_M_JOBS_PRUNED, HVD_METRIC_COUNTER, NULL, NULL,
         "Finished jobs deleted with their stages and events after HVD_JOB_RETENTION.", NULL, NULL},
        {HVD_M_FLEET_EXPORTER, HVD_METRIC_GAUGE, NULL, NULL,
         "1 on the one worker that exports the hvdeploy_fleet_* view (and prunes), 0 on the others.", NULL, NULL},
        {HVD_M_FLEET_JOBS, HVD_METRIC_GAUGE, "status", "waiting_reason",
         "Jobs in PostgreSQL, by status and waiting reason (fleet-wide).", FLEET_STATUSES, WAIT_REASONS},
        {HVD_M_FLEET_OLDEST_QUEUED, HVD_METRIC_GAUGE, NULL, NULL,
         "Age in seconds of the oldest queued job: claimed, not yet running (fleet-wide).", NULL, NULL},
        {HVD_M_FLEET_OLDEST_WAITING, HVD_METRIC_GAUGE, "waiting_reason", NULL,
         "Seconds the longest-waiting job of each waiting reason has waited (fleet-wide).", WAIT_REASONS, NULL},
        {HVD_M_FLEET_UNSENT, HVD_METRIC_GAUGE, NULL, NULL,
         "Terminal envelopes stored but not yet confirmed by the broker: the outbox (fleet-wide).", NULL, NULL},
        {HVD_M_FLEET_OLDEST_UNSENT, HVD_METRIC_GAUGE, NULL, NULL,
         "Seconds since the oldest unsent envelope's job finished (fleet-wide).", NULL, NULL},
        {HVD_M_FLEET_EXPIRED_LEASES, HVD_METRIC_GAUGE, NULL, NULL,
         "Running jobs whose lease expired, waiting to be taken over (fleet-wide).", NULL, NULL},
        {HVD_M_FLEET_OPEN_CIRCUITS, HVD_METRIC_GAUGE, NULL, NULL, "Hosts whose circuit breaker is open (fleet-wide).",
         NULL, NULL},
        {HVD_M_FLEET_SECRETS, HVD_METRIC_GAUGE, "state", NULL,
         "Sealed secrets in PostgreSQL: needed by live jobs, or retained after a failure (fleet-wide).", SECRET_STATES,
         NULL},
        {HVD_M_FLEET_VIEW_SECONDS, HVD_METRIC_GAUGE, NULL, NULL, "Duration of the last fleet view query in seconds.",
         NULL, NULL},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        (void)hvd_metric_register(w[i].name, w[i].type, w[i].help, w[i].l1, w[i].l2, NULL, 0);
        if (w[i].v1) (void)hvd_metric_limit_values(w[i].name, 0, w[i].v1);
        if (w[i].v2) (void)hvd_metric_limit_values(w[i].name, 1, w[i].v2);
    }
}
