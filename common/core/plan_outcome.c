/* What an agent call's outcome means (§6, §6a): transient or permanent,
 * known or unknown, its envelope code, whether it counts against the host;
 * the backoff of a retry; the envelope status of a failed job. */
#include <string.h>
#include <strings.h>
#include "plan.h"

bool hvd_outcome_transient(HvdOutcome o)
{
    switch (o) {
    case HVD_OUT_RETRYABLE:
    case HVD_OUT_TIMEOUT:
    case HVD_OUT_TRANSPORT:
    case HVD_OUT_UNREACHABLE:
    case HVD_OUT_CANCELLED:
    case HVD_OUT_NOT_SENT: return true;
    case HVD_OUT_SUCCESS:
    case HVD_OUT_AGENT_ERROR:
    case HVD_OUT_PROTOCOL_ERROR:
    case HVD_OUT_BAD_CALL: return false;
    }
    return false;
}

bool hvd_outcome_unknown(HvdOutcome o)
{
    return o == HVD_OUT_TIMEOUT || o == HVD_OUT_TRANSPORT || o == HVD_OUT_UNREACHABLE || o == HVD_OUT_CANCELLED;
}

const char *hvd_outcome_code(HvdOutcome o)
{
    switch (o) {
    case HVD_OUT_SUCCESS: return NULL;
    case HVD_OUT_PROTOCOL_ERROR: return "agent_protocol_error";
    case HVD_OUT_TIMEOUT: return "agent_timeout";
    case HVD_OUT_AGENT_ERROR:
    case HVD_OUT_RETRYABLE:
    case HVD_OUT_TRANSPORT:
    case HVD_OUT_UNREACHABLE:
    case HVD_OUT_CANCELLED:
    case HVD_OUT_NOT_SENT:
    case HVD_OUT_BAD_CALL: return "agent_error";
    }
    return "internal_error";
}

bool hvd_outcome_counts_against_host(HvdOutcome o, const char *agent_code)
{
    return o == HVD_OUT_UNREACHABLE || o == HVD_OUT_TIMEOUT || o == HVD_OUT_TRANSPORT ||
           (o == HVD_OUT_RETRYABLE && agent_code && strcmp(agent_code, "HOST_BUSY") == 0);
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

bool hvd_op_creates(const char *operation)
{
    return operation && (strcmp(operation, HVD_STAGE_VM_CREATE) == 0 || strcmp(operation, HVD_STAGE_DISK_CREATE) == 0 ||
                         strcmp(operation, HVD_STAGE_NIC_CREATE) == 0);
}

bool hvd_plan_delete_gone(HvdOutcome outcome, const char *message)
{
    static const char needle[] = "vm not found";
    if (outcome != HVD_OUT_AGENT_ERROR || !message) return false;
    for (const char *p = message; *p; p++)
        if (strncasecmp(p, needle, sizeof needle - 1) == 0) return true;
    return false;
}

HvdDeleteResult hvd_plan_delete_result(HvdOutcome outcome, const char *message)
{
    if (outcome == HVD_OUT_SUCCESS || hvd_plan_delete_gone(outcome, message)) return HVD_DELETE_DONE;
    return hvd_outcome_unknown(outcome) ? HVD_DELETE_UNKNOWN : HVD_DELETE_FAILED;
}
