/* A small thread-safe metrics registry (counters, gauges, histograms with up
 * to two labels), its Prometheus text rendering, and the HTTP endpoint
 * (libmicrohttpd) that serves /metrics and /healthz.
 *
 * Metrics are addressed by name: register once (hvd_metrics_register_worker
 * registers every metric the worker uses, see the table in metrics.c), then
 *   hvd_metric_inc("hvdeploy_jobs_total", "managed_deployment", "success");
 *   hvd_metric_observe("hvdeploy_stage_duration_seconds", "vm.create", NULL, 1.25);
 *   hvd_metric_gauge_set("hvdeploy_jobs_in_flight", NULL, NULL, 3);
 * Label values are given in the order of the label names at registration
 * (NULL for unused). Updating a name that is not registered does nothing
 * (and logs one warning per name). A label value series is created on first
 * use. Label values come only from fixed sets (issue 12: a job_type from a
 * message body became a label, and 4 000 values cost 128 MB): a label limited
 * with hvd_metric_limit_values counts a value outside its set as "other", and
 * a metric keeps at most HVD_METRIC_MAX_SERIES series, the rest counted
 * together as "other". Every label of the worker's metrics has its set. All
 * functions are safe from any thread.
 *
 * The worker's metrics (hvd_metrics_register_worker):
 *   hvdeploy_jobs_total{job_type,status}                counter, jobs by final status
 *   hvdeploy_stage_duration_seconds{stage}              histogram
 *   hvdeploy_agent_call_duration_seconds{stage}         histogram
 *   hvdeploy_retries_total{stage}                       counter
 *   hvdeploy_dead_letters_total{reason}                 counter
 *   hvdeploy_lease_takeovers_total                      counter
 *   hvdeploy_reconnects_total{target}                   counter, target amqp|postgres
 *   hvdeploy_jobs_in_flight                             gauge
 *   hvdeploy_consumer_utilisation                       gauge 0..1, in flight / HVD_CONCURRENCY
 *   hvdeploy_envelopes_published_total                  counter
 *   hvdeploy_pg_transactions_total                      counter
 *   hvdeploy_amqp_operations_total{op}                  counter
 *   hvdeploy_worker_ready                               gauge 1 while /healthz says ready
 *   hvdeploy_jobs_pruned_total                          counter, finished jobs deleted by retention
 * and the fleet view, exported by the one worker that holds the fleet role
 * (hvdeploy_fleet_exporter 1; the others have no hvdeploy_fleet_* series):
 *   hvdeploy_fleet_exporter                             gauge 1 on the exporting worker, 0 elsewhere
 *   hvdeploy_fleet_jobs{status,waiting_reason}          gauge, jobs in PostgreSQL
 *   hvdeploy_fleet_oldest_queued_job_seconds            gauge, age of the oldest queued job
 *   hvdeploy_fleet_oldest_waiting_job_seconds{waiting_reason} gauge, longest wait by reason
 *   hvdeploy_fleet_unsent_envelopes                     gauge, the outbox
 *   hvdeploy_fleet_oldest_unsent_envelope_seconds       gauge
 *   hvdeploy_fleet_expired_leases                       gauge, running jobs whose worker is gone
 *   hvdeploy_fleet_open_circuits                        gauge, hosts whose circuit is open
 *   hvdeploy_fleet_secrets{state}                       gauge, sealed secrets: needed, retained
 *   hvdeploy_fleet_view_seconds                         gauge, how long the view's query took
 * plus process_cpu_seconds_total, process_resident_memory_bytes and
 * process_resident_memory_peak_bytes, read when rendered. */
#ifndef HVD_METRICS_H
#define HVD_METRICS_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

/* Names of the worker's metrics, for callers that prefer constants. */
#define HVD_M_JOBS_TOTAL "hvdeploy_jobs_total"
#define HVD_M_STAGE_DURATION "hvdeploy_stage_duration_seconds"
#define HVD_M_AGENT_CALL_DURATION "hvdeploy_agent_call_duration_seconds"
#define HVD_M_RETRIES_TOTAL "hvdeploy_retries_total"
#define HVD_M_DEAD_LETTERS_TOTAL "hvdeploy_dead_letters_total"
#define HVD_M_LEASE_TAKEOVERS_TOTAL "hvdeploy_lease_takeovers_total"
#define HVD_M_RECONNECTS_TOTAL "hvdeploy_reconnects_total"
#define HVD_M_JOBS_IN_FLIGHT "hvdeploy_jobs_in_flight"
#define HVD_M_CONSUMER_UTILISATION "hvdeploy_consumer_utilisation"
#define HVD_M_ENVELOPES_PUBLISHED "hvdeploy_envelopes_published_total"
#define HVD_M_PG_TRANSACTIONS "hvdeploy_pg_transactions_total"
#define HVD_M_AMQP_OPERATIONS "hvdeploy_amqp_operations_total"
#define HVD_M_WORKER_READY "hvdeploy_worker_ready"
#define HVD_M_JOBS_PRUNED "hvdeploy_jobs_pruned_total"
#define HVD_M_FLEET_EXPORTER "hvdeploy_fleet_exporter"
#define HVD_M_FLEET_JOBS "hvdeploy_fleet_jobs"
#define HVD_M_FLEET_OLDEST_QUEUED "hvdeploy_fleet_oldest_queued_job_seconds"
#define HVD_M_FLEET_OLDEST_WAITING "hvdeploy_fleet_oldest_waiting_job_seconds"
#define HVD_M_FLEET_UNSENT "hvdeploy_fleet_unsent_envelopes"
#define HVD_M_FLEET_OLDEST_UNSENT "hvdeploy_fleet_oldest_unsent_envelope_seconds"
#define HVD_M_FLEET_EXPIRED_LEASES "hvdeploy_fleet_expired_leases"
#define HVD_M_FLEET_OPEN_CIRCUITS "hvdeploy_fleet_open_circuits"
#define HVD_M_FLEET_SECRETS "hvdeploy_fleet_secrets"
#define HVD_M_FLEET_VIEW_SECONDS "hvdeploy_fleet_view_seconds"

typedef enum {
    HVD_METRIC_COUNTER,
    HVD_METRIC_GAUGE,
    HVD_METRIC_HISTOGRAM,
} HvdMetricType;

#define HVD_METRIC_MAX_BUCKETS 32
#define HVD_METRIC_MAX_SERIES 64 /* series per metric; more are counted under "other" */
#define HVD_METRIC_OTHER "other" /* the label value of what is outside a label's set */

/* Default histogram buckets, seconds from 1 ms to 1 h (21 bounds + +Inf). */
extern const double hvd_metric_default_buckets[];
extern const size_t hvd_metric_default_nbuckets;

/* Registers a metric. label1/label2 are label names or NULL. buckets (upper
 * bounds, ascending, at most HVD_METRIC_MAX_BUCKETS) only for histograms;
 * NULL = the default buckets. Registering a name again with the same type and
 * labels is a no-op returning 0; with different ones returns -1. Also -1 for
 * a name or label that is not a valid Prometheus name. */
int hvd_metric_register(const char *name, HvdMetricType type, const char *help, const char *label1, const char *label2,
                        const double *buckets, size_t nbuckets);
/* Limits label 0 or 1 of a registered metric to values (NULL-terminated,
 * static storage; "other" need not be listed): anything else is counted as
 * "other". -1 when the metric or label does not exist. */
int hvd_metric_limit_values(const char *name, int label, const char *const *values);
/* Registers the worker's metrics listed above, each label limited to its
 * fixed set (job types, statuses, stages, envelope codes, targets, ops). Idempotent. */
void hvd_metrics_register_worker(void);

void hvd_metric_inc(const char *name, const char *lv1, const char *lv2); /* counter += 1 */
void hvd_metric_add(const char *name, const char *lv1, const char *lv2,
                    double v); /* counter/gauge += v (counter: v >= 0) */
void hvd_metric_gauge_set(const char *name, const char *lv1, const char *lv2, double v);
void hvd_metric_observe(const char *name, const char *lv1, const char *lv2, double v); /* histogram */
/* Drops every series of a metric (its HELP and TYPE stay): for gauges this
 * process stops reporting, such as the fleet view on a worker that lost the
 * fleet role. A later update creates the series again. */
void hvd_metric_clear(const char *name);

/* In-flight jobs: sets hvdeploy_jobs_in_flight and
 * hvdeploy_consumer_utilisation (in_flight / concurrency). */
void hvd_metrics_set_in_flight(int in_flight, int concurrency);

/* A series' value (counter/gauge) or count of observations (histogram), 0
 * when absent. For tests and the benchmark. */
double hvd_metric_value(const char *name, const char *lv1, const char *lv2);

/* Appends the Prometheus text exposition format (version 0.0.4) of every
 * registered metric to out. */
void hvd_metrics_render(HvdBuf *out);
/* Forgets every metric (tests). */
void hvd_metrics_reset(void);

/* ---- HTTP (metrics_http.c) ---- */

/* Readiness: return true when ready; otherwise false with a short reason in
 * reason (e.g. "broker not connected"). Called from the HTTP thread. */
typedef bool (*HvdReadyFn)(void *arg, char *reason, size_t reasonlen);

typedef struct HvdMetricsServer HvdMetricsServer;

/* Bounds against slow clients (metrics_http.c). */
#define HVD_METRICS_CONN_MAX_MS 5000 /* a connection's whole life, whatever it sends */
#define HVD_METRICS_PER_IP 8         /* connections one client address may hold */
#define HVD_METRICS_CONN_LIMIT 256   /* connections in all */

/* Serves GET /metrics (text/plain; version=0.0.4) and GET /healthz (200 "ok"
 * or 503 with the reason; ready == NULL means always ready) on addr
 * ("127.0.0.1:9464", "[::1]:9464", "localhost:9464"; port 0 picks a free
 * port), bound to that address only. Everything else is 404 (405 for a
 * method other than GET/HEAD on a known path). Returns NULL with err filled
 * ("HVD_METRICS_ADDR 127.0.0.1:9464: cannot bind: Address already in use"). */
HvdMetricsServer *hvd_metrics_server_start(const char *addr, HvdReadyFn ready, void *arg, char *err, size_t errlen);
/* GET /livez answers with live (same arg as ready) instead of ready: a process
 * that is not ready may still be alive and must not be restarted, e.g. one that
 * drains its running stages after SIGTERM. Without it /livez is /healthz. */
void hvd_metrics_server_set_live(HvdMetricsServer *s, HvdReadyFn live);
int hvd_metrics_server_port(const HvdMetricsServer *s); /* the bound port */
void hvd_metrics_server_stop(HvdMetricsServer *s);      /* NULL-safe */

#endif
