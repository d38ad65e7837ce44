/* The one name table of each status enum (status.h). */
#include <string.h>
#include "status.h"

static const char *const JOB_STATUS[HVD_JOB_STATUS_COUNT] = {"queued",    "running", "retrying",
                                                             "succeeded", "failed",  "cancelled"};
static const char *const STAGE_STATUS[HVD_STAGE_STATUS_COUNT] = {"pending", "running", "succeeded", "failed",
                                                                 "rolled_back"};
static const char *const WAIT_REASON[HVD_WAIT_REASON_COUNT] = {NULL, "retry", "host_busy", "circuit_open"};
static const char *const OUTCOME[HVD_OUTCOME_COUNT] = {"success",  "agent_error", "retryable",   "protocol_error",
                                                       "timeout",  "transport",   "unreachable", "cancelled",
                                                       "not_sent", "bad_call"};

static const char *name_of(const char *const *table, unsigned n, unsigned v)
{
    return v < n ? table[v] : "unknown";
}

static bool parse(const char *const *table, unsigned n, const char *name, int *out)
{
    if (!name) return false;
    for (unsigned i = 0; i < n; i++)
        if (table[i] && strcmp(table[i], name) == 0) {
            *out = (int)i;
            return true;
        }
    return false;
}

const char *hvd_job_status_name(HvdJobStatus s)
{
    return name_of(JOB_STATUS, HVD_JOB_STATUS_COUNT, (unsigned)s);
}

const char *hvd_stage_status_name(HvdStageStatus s)
{
    return name_of(STAGE_STATUS, HVD_STAGE_STATUS_COUNT, (unsigned)s);
}

const char *hvd_wait_reason_name(HvdWaitReason r)
{
    return (unsigned)r < HVD_WAIT_REASON_COUNT ? WAIT_REASON[r] : NULL;
}

const char *hvd_outcome_name(HvdOutcome o)
{
    return name_of(OUTCOME, HVD_OUTCOME_COUNT, (unsigned)o);
}

bool hvd_job_status_parse(const char *name, HvdJobStatus *out)
{
    int v;
    if (!parse(JOB_STATUS, HVD_JOB_STATUS_COUNT, name, &v)) return false;
    *out = (HvdJobStatus)v;
    return true;
}

bool hvd_stage_status_parse(const char *name, HvdStageStatus *out)
{
    int v;
    if (!parse(STAGE_STATUS, HVD_STAGE_STATUS_COUNT, name, &v)) return false;
    *out = (HvdStageStatus)v;
    return true;
}

bool hvd_wait_reason_parse(const char *name, HvdWaitReason *out)
{
    if (!name || !*name) {
        *out = HVD_WAIT_NONE;
        return true;
    }
    int v;
    if (!parse(WAIT_REASON, HVD_WAIT_REASON_COUNT, name, &v)) return false;
    *out = (HvdWaitReason)v;
    return true;
}

bool hvd_job_status_terminal(HvdJobStatus s)
{
    return s == HVD_JOB_SUCCEEDED || s == HVD_JOB_FAILED || s == HVD_JOB_CANCELLED;
}
