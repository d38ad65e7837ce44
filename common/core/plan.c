/* The pure decisions of a job's life: outcome meaning, retry and backoff. */
#include "plan.h"

bool hvd_outcome_transient(HvdOutcome o)
{
    return o == HVD_OUT_RETRYABLE || o == HVD_OUT_TIMEOUT || o == HVD_OUT_TRANSPORT || o == HVD_OUT_UNREACHABLE;
}

const char *hvd_outcome_code(HvdOutcome o)
{
    switch (o) {
    case HVD_OUT_SUCCESS: return NULL;
    case HVD_OUT_AGENT_ERROR:
    case HVD_OUT_RETRYABLE: return "agent_error";
    case HVD_OUT_PROTOCOL_ERROR: return "agent_protocol_error";
    case HVD_OUT_TIMEOUT: return "agent_timeout";
    case HVD_OUT_TRANSPORT:
    case HVD_OUT_UNREACHABLE: return "agent_error";
    }
    return "internal_error";
}

const char *hvd_outcome_name(HvdOutcome o)
{
    static const char *const names[] = {"success", "agent_error", "retryable",  "protocol_error",
                                        "timeout", "transport",   "unreachable"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

HvdNextStep hvd_plan_after(HvdOutcome o, int attempt, int max_attempts, const char **code)
{
    *code = NULL;
    if (o == HVD_OUT_SUCCESS) return HVD_NEXT_CONTINUE;
    if (!hvd_outcome_transient(o)) {
        *code = hvd_outcome_code(o);
        return HVD_NEXT_FAIL;
    }
    if (attempt >= max_attempts) {
        *code = "retries_exhausted";
        return HVD_NEXT_FAIL;
    }
    return HVD_NEXT_RETRY;
}

int64_t hvd_plan_retry_delay_ms(const int *delays_s, size_t n, int attempt, uint32_t random, size_t *bucket)
{
    if (n == 0) {
        if (bucket) *bucket = 0;
        return 0;
    }
    size_t i = attempt < 1 ? 0 : (size_t)attempt - 1;
    if (i >= n) i = n - 1;
    if (bucket) *bucket = i;
    int64_t full = (int64_t)delays_s[i] * 1000;
    /* jitter: shorten by 0..20 % so doorbells of a burst spread out */
    int64_t jitter = full / 5 * (int64_t)(random % 1001) / 1000;
    return full - jitter;
}

const char *hvd_plan_failed_status(bool resources_left)
{
    return resources_left ? "partial" : "error";
}

bool hvd_plan_deadline_passed(bool has_deadline, int64_t deadline_ms, int64_t now_ms)
{
    return has_deadline && now_ms > deadline_ms;
}
