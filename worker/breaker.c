/* The worker's side of the per-host circuit breaker (state in PostgreSQL,
 * store_host.c). A host known healthy a moment ago is not asked about again
 * for BREAKER_CACHE_MS, so the happy path costs no database round trip;
 * a host with failures on record is checked before every call. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "clock.h"
#include "log.h"
#include "breaker.h"
#include "context.h"

#define BREAKER_CACHE_MS 2000
#define BREAKER_HOSTS 256

typedef struct {
    char host[256];
    int fails;
    int64_t checked;
} HostEntry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static HostEntry hosts[BREAKER_HOSTS];
static size_t n_hosts;

static HostEntry *entry_locked(const char *host)
{
    for (size_t i = 0; i < n_hosts; i++)
        if (strcmp(hosts[i].host, host) == 0) return &hosts[i];
    size_t i = n_hosts < BREAKER_HOSTS ? n_hosts++ : (size_t)(hvd_mono_ms() % BREAKER_HOSTS);
    snprintf(hosts[i].host, sizeof hosts[i].host, "%s", host);
    hosts[i].fails = 0;
    hosts[i].checked = 0;
    return &hosts[i];
}

static void remember(const char *host, int fails)
{
    pthread_mutex_lock(&mu);
    HostEntry *e = entry_locked(host);
    e->fails = fails;
    e->checked = hvd_mono_ms();
    pthread_mutex_unlock(&mu);
}

HvdHostGate breaker_gate(Worker *w, const char *host, const char *job_id, int64_t *wait_ms)
{
    *wait_ms = 0;
    if (w->cfg.breaker_threshold <= 0) return HVD_HOST_CLOSED;
    pthread_mutex_lock(&mu);
    HostEntry *e = entry_locked(host);
    bool fresh_and_healthy = e->fails == 0 && hvd_mono_ms() - e->checked < BREAKER_CACHE_MS;
    pthread_mutex_unlock(&mu);
    if (fresh_and_healthy) return HVD_HOST_CLOSED;

    HvdHostGate gate;
    int fails;
    char err[256];
    /* the trial lasts as long as the slowest stage may run */
    if (hvd_store_host_gate(w->store, host, job_id, w->breaker_trial_ms, &gate, &fails, wait_ms, err, sizeof err) !=
        HVD_STORE_OK)
        return HVD_HOST_CLOSED; /* the database decides nothing now: do not block work on it */
    remember(host, fails);
    return gate;
}

/* Failures that speak of the host, not of the request. */
static bool host_failure(HvdOutcome o, const char *agent_code)
{
    return o == HVD_OUT_UNREACHABLE || o == HVD_OUT_TIMEOUT || o == HVD_OUT_TRANSPORT ||
           (o == HVD_OUT_RETRYABLE && agent_code && strcmp(agent_code, "HOST_BUSY") == 0);
}

void breaker_report(Worker *w, const char *host, HvdOutcome o, const char *agent_code, bool was_trial)
{
    if (w->cfg.breaker_threshold <= 0) return;
    bool failed = host_failure(o, agent_code);
    pthread_mutex_lock(&mu);
    int known = entry_locked(host)->fails;
    pthread_mutex_unlock(&mu);
    if (!failed && known == 0 && !was_trial) return; /* healthy and known healthy: nothing to write */
    bool open = false;
    char err[256];
    if (hvd_store_host_report(w->store, host, failed, (int)w->cfg.breaker_threshold, w->cfg.breaker_cooldown * 1000,
                              &open, err, sizeof err) != HVD_STORE_OK) {
        hvd_log_warn(NULL, "cannot record the health of host %s: %s", host, err);
        return;
    }
    remember(host, failed ? known + 1 : 0);
    if (open && failed) {
        HvdLogCtx lc = {.host = host};
        hvd_log_warn(&lc, "host circuit open: its jobs wait without spending attempts until a trial call succeeds");
    } else if (!failed && (known > 0 || was_trial)) {
        HvdLogCtx lc = {.host = host};
        hvd_log_info(&lc, "host circuit closed: the host answers again");
    }
}
