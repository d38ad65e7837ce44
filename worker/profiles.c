/* The agent profile of each host (§6a): HVD_AGENT_PROFILE raw, hvdeploy or
 * a capability list fixes it (recorded as "<profile> (fixed)"); auto asks the host's agent with agent.hello before its first use
 * and caches the answer for PROFILE_TTL_MS, or until a call to the host
 * fails at the transport. Answers are recorded in host_agents for
 * `hvdeployctl hosts`. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "agent.h"
#include "agentproto.h"
#include "clock.h"
#include "log.h"
#include "profiles.h"

#define PROFILE_TTL_MS (10 * 60 * 1000)
#define PROFILE_HOSTS 1024

typedef struct {
    char host[256];
    HvdAgentCaps caps;
    int64_t until; /* monotonic ms; 0 = empty */
} Entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Entry cache[PROFILE_HOSTS];

/* The entry of host (locked), or a slot to reuse. */
static Entry *slot_locked(const char *host)
{
    Entry *free_slot = NULL, *oldest = &cache[0];
    for (size_t i = 0; i < PROFILE_HOSTS; i++) {
        if (cache[i].until && strcmp(cache[i].host, host) == 0) return &cache[i];
        if (!cache[i].until && !free_slot) free_slot = &cache[i];
        if (cache[i].until < oldest->until) oldest = &cache[i];
    }
    return free_slot ? free_slot : oldest;
}

static bool cached(const char *host, HvdAgentCaps *caps)
{
    pthread_mutex_lock(&mu);
    Entry *e = slot_locked(host);
    bool hit = e->until && strcmp(e->host, host) == 0 && hvd_mono_ms() < e->until;
    if (hit) *caps = e->caps;
    pthread_mutex_unlock(&mu);
    return hit;
}

static void remember(const char *host, const HvdAgentCaps *caps)
{
    pthread_mutex_lock(&mu);
    Entry *e = slot_locked(host);
    snprintf(e->host, sizeof e->host, "%s", host);
    e->caps = *caps;
    e->until = hvd_mono_ms() + PROFILE_TTL_MS;
    pthread_mutex_unlock(&mu);
}

void profile_forget(const char *host)
{
    pthread_mutex_lock(&mu);
    Entry *e = slot_locked(host);
    if (strcmp(e->host, host) == 0) e->until = 0;
    pthread_mutex_unlock(&mu);
}

void profile_no_session(const char *host)
{
    pthread_mutex_lock(&mu);
    Entry *e = slot_locked(host);
    if (e->until && strcmp(e->host, host) == 0) e->caps.session = e->caps.output = false;
    pthread_mutex_unlock(&mu);
}

/* fixed: HVD_AGENT_PROFILE chose the capabilities, the host was not asked. */
static void record(Worker *w, const char *host, const char *agent, const HvdAgentCaps *caps, bool fixed)
{
    const char *names[4];
    size_t n = 0;
    if (caps->idempotency) names[n++] = "idempotency";
    if (caps->probe) names[n++] = "probe";
    if (caps->session) names[n++] = "session";
    if (caps->output) names[n++] = "output";
    char err[256], profile[32];
    snprintf(profile, sizeof profile, "%s%s", hvd_plan_profile_name(caps), fixed ? " (fixed)" : "");
    if (hvd_store_host_agent(w->store, host, agent, names, n, profile, err, sizeof err) != HVD_STORE_OK) {
        HvdLogCtx lc = {.host = host};
        hvd_log_warn(&lc, "cannot record the host's agent profile: %s", err);
    }
}

bool profile_caps(Worker *w, const char *host, const char *job_id, int64_t timeout_ms, HvdAgentCaps *caps,
                  HvdOutcome *hello, char *why, size_t whylen)
{
    *hello = HVD_OUT_SUCCESS;
    if (hvd_plan_profile_fixed(w->cfg.agent_profile, caps)) {
        /* recorded once a while, so that `hvdeployctl hosts` shows what is used */
        HvdAgentCaps seen;
        if (!cached(host, &seen)) {
            remember(host, caps);
            record(w, host, NULL, caps, true);
        }
        return true;
    }
    if (cached(host, caps)) return true;

    HvdNode *spec = hvd_node_map();
    char ts[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), ts);
    HvdAgentRequest req = {.operation = HVD_OP_AGENT_HELLO,
                           .resource_spec = spec,
                           .correlation_id = job_id,
                           .timestamp = ts,
                           .host = host,
                           .job_id = job_id,
                           .attempt = 1};
    HvdBuf line = {0};
    hvd_agent_request_encode(&req, &line);
    hvd_node_free(spec);
    HvdAgentResult res;
    HvdAgentCallOpts opts = {.cancel = &w->agent_cancel, .timeout_ms = timeout_ms};
    hvd_agent_call_opts(&w->agent, &opts, host, HVD_OP_AGENT_HELLO, line.data, line.len, &res);
    *hello = res.outcome;
    hvd_buf_free(&line);
    bool known = hvd_plan_profile_from_hello(res.outcome, res.data, caps);
    HvdLogCtx lc = {.host = host, .job_id = job_id};
    if (known) {
        const char *agent = hvd_node_get_str(res.data, "agent");
        remember(host, caps);
        record(w, host, res.outcome == HVD_OUT_SUCCESS ? agent : NULL, caps, false);
        hvd_log_kv(HVD_LOG_INFO, &lc, "agent profile", "profile", hvd_plan_profile_name(caps), "agent",
                   res.outcome == HVD_OUT_SUCCESS ? agent : "(no agent.hello)", NULL);
    } else {
        snprintf(why, whylen, "agent.hello got no answer from %s: %s", host, res.detail);
        hvd_log_kv(HVD_LOG_WARN, &lc, "agent profile unknown", "reason", res.detail, NULL);
    }
    hvd_agent_result_free(&res);
    return known;
}
