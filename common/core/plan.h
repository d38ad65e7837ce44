/* The pure decisions of a job's life: what a stage outcome means, when to
 * retry and how long to wait, and how a failed job answers. No I/O, no clock:
 * the worker passes in what it observed and carries out the answer. */
#ifndef HVD_PLAN_H
#define HVD_PLAN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an agent call ended in, as the transport classifies it (§6). */
typedef enum {
    HVD_OUT_SUCCESS,
    HVD_OUT_AGENT_ERROR,    /* error envelope, permanent agent code */
    HVD_OUT_RETRYABLE,      /* error envelope with a retryable agent code */
    HVD_OUT_PROTOCOL_ERROR, /* no valid envelope on exit 0, or output over 1 MiB: permanent */
    HVD_OUT_TIMEOUT,        /* transient */
    HVD_OUT_TRANSPORT,      /* spawn failure, non-zero exit without envelope: transient */
    HVD_OUT_UNREACHABLE,    /* ssh exit 255: transient, counts against the host */
} HvdOutcome;

typedef enum {
    HVD_NEXT_CONTINUE, /* stage done: go on to the next stage or finish */
    HVD_NEXT_RETRY,    /* wait for the retry delay, then run the stage again */
    HVD_NEXT_FAIL,     /* the job fails with the returned code */
} HvdNextStep;

bool hvd_outcome_transient(HvdOutcome o);
/* The envelope code for a failed outcome: agent_error, agent_protocol_error,
 * agent_timeout (timeouts that exhausted retries report retries_exhausted). */
const char *hvd_outcome_code(HvdOutcome o);
const char *hvd_outcome_name(HvdOutcome o);

/* Decides after a stage's attempt number `attempt` (1-based) ended in `o`.
 * Sets *code for HVD_NEXT_FAIL: the outcome's code for a permanent failure,
 * "retries_exhausted" when a transient failure used the last attempt. */
HvdNextStep hvd_plan_after(HvdOutcome o, int attempt, int max_attempts, const char **code);

/* The retry delay after failed attempt `attempt` (1-based): bucket
 * delays[min(attempt, n) - 1] in seconds, shortened by up to 20 % of jitter
 * drawn from `random` (any 32-bit value). *bucket gets the bucket's index. */
int64_t hvd_plan_retry_delay_ms(const int *delays_s, size_t n, int attempt, uint32_t random, size_t *bucket);

/* Envelope status of a job that did not succeed: "partial" when resources it
 * made are left behind, "error" when none are (nothing made, or rolled back). */
const char *hvd_plan_failed_status(bool resources_left);

/* True when an RFC 3339 deadline (as epoch ms) has passed at now_ms. */
bool hvd_plan_deadline_passed(bool has_deadline, int64_t deadline_ms, int64_t now_ms);

#endif
