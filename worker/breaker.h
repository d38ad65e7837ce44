/* The worker's side of the per-host circuit breaker (breaker.c). */
#ifndef HVD_W_BREAKER_H
#define HVD_W_BREAKER_H
#include "context.h"
#include "plan.h"

/* Whether a call to host may go now: CLOSED, TRIAL (this job is the one
 * trial call) or OPEN (wait *wait_ms without spending an attempt). */
HvdHostGate breaker_gate(Worker *w, const char *host, const char *job_id, int64_t *wait_ms);
/* Records a call's outcome for the host's circuit. */
void breaker_report(Worker *w, const char *host, HvdOutcome o, const char *agent_code, bool was_trial);

#endif
