/* The statuses of jobs and stages, the reasons a job waits and what an agent
 * call ended in, as enums with one name table each. Names are what the
 * database columns, envelopes, events and the CLI carry (contract §4, §5, §8);
 * only the store and the codecs turn them into text and back. */
#ifndef HVD_STATUS_H
#define HVD_STATUS_H
#include <stdbool.h>

/* jobs.status (§8). */
typedef enum {
    HVD_JOB_QUEUED,
    HVD_JOB_RUNNING,
    HVD_JOB_RETRYING,
    HVD_JOB_SUCCEEDED,
    HVD_JOB_FAILED,
    HVD_JOB_CANCELLED,
} HvdJobStatus;
#define HVD_JOB_STATUS_COUNT 6

/* job_stages.status (§8). */
typedef enum {
    HVD_STAGE_PENDING,
    HVD_STAGE_RUNNING,
    HVD_STAGE_SUCCEEDED,
    HVD_STAGE_FAILED,
    HVD_STAGE_ROLLED_BACK,
} HvdStageStatus;
#define HVD_STAGE_STATUS_COUNT 5

/* jobs.waiting_reason: why a live job is not running now. */
typedef enum {
    HVD_WAIT_NONE,
    HVD_WAIT_RETRY,        /* a transient failure's backoff */
    HVD_WAIT_HOST_BUSY,    /* every slot of its host is taken */
    HVD_WAIT_CIRCUIT_OPEN, /* its host keeps failing */
} HvdWaitReason;
#define HVD_WAIT_REASON_COUNT 4

/* What one agent call ended in, as the transport classifies it (§6, §6a). */
typedef enum {
    HVD_OUT_SUCCESS,        /* envelope status success */
    HVD_OUT_AGENT_ERROR,    /* error envelope with a permanent (or no) code */
    HVD_OUT_RETRYABLE,      /* error envelope with a retryable code or message: the agent answered */
    HVD_OUT_PROTOCOL_ERROR, /* exit 0 without a valid envelope, over 1 MiB, or an answer not for this request */
    HVD_OUT_TIMEOUT,        /* the deadline passed without an answer */
    HVD_OUT_TRANSPORT,      /* non-zero exit or a signal without an answer */
    HVD_OUT_UNREACHABLE,    /* exit 255 without an answer (ssh could not reach the host) */
    HVD_OUT_CANCELLED,      /* we stopped the call (end of the shutdown grace) */
    HVD_OUT_NOT_SENT,       /* the agent could not be started: the request reached no one */
    HVD_OUT_BAD_CALL,       /* invalid host or no command: nothing was run; permanent */
} HvdOutcome;
#define HVD_OUTCOME_COUNT 10

const char *hvd_job_status_name(HvdJobStatus s);
const char *hvd_stage_status_name(HvdStageStatus s);
const char *hvd_wait_reason_name(HvdWaitReason r); /* NULL for HVD_WAIT_NONE */
/* "success", "agent_error", "retryable", "protocol_error", "timeout",
 * "transport", "unreachable", "cancelled", "not_sent", "bad_call". */
const char *hvd_outcome_name(HvdOutcome o);

/* Text to enum; false (and *out untouched) for an unknown or NULL name.
 * hvd_wait_reason_parse maps NULL and "" to HVD_WAIT_NONE. */
bool hvd_job_status_parse(const char *name, HvdJobStatus *out);
bool hvd_stage_status_parse(const char *name, HvdStageStatus *out);
bool hvd_wait_reason_parse(const char *name, HvdWaitReason *out);

/* succeeded, failed, cancelled. */
bool hvd_job_status_terminal(HvdJobStatus s);

#endif
