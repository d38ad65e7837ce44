/* The claim (§2): what a worker does with a job a doorbell, a redelivery or
 * a sweep brought it — from the facts the store read under the host's lock
 * and the job's row lock. */
#include "plan.h"

HvdClaimDecision hvd_plan_claim(const HvdClaimFacts *f)
{
    HvdClaimDecision d = {.verdict = HVD_CLAIM_NOT_FOUND};
    if (!f->found) return d;
    if (hvd_job_status_terminal(f->status)) {
        d.verdict = HVD_CLAIM_FINISHED;
        return d;
    }
    bool running = f->status == HVD_JOB_RUNNING;
    if (running && f->lease_live) {
        d.verdict = HVD_CLAIM_HELD;
        return d;
    }
    /* A retry or circuit wait that is not over; a job waiting for its host's
     * slot is asked again whenever its doorbell rings. */
    if (!running && f->not_due && f->waiting != HVD_WAIT_HOST_BUSY) {
        d.verdict = HVD_CLAIM_WAIT;
        d.wait = f->waiting == HVD_WAIT_NONE ? HVD_WAIT_RETRY : f->waiting;
        return d;
    }
    /* A slot: kept by a running job that holds one (its lease expired: a
     * takeover), else free when fewer than host_concurrency other jobs hold
     * one under a live lease and none that arrived earlier waits (arrival
     * order). */
    bool slot = running && f->holds_slot;
    if (!slot) {
        slot = f->host_live < f->host_concurrency && f->host_earlier == 0;
        d.free_expired_slots = slot && f->host_holders >= f->host_concurrency;
    }
    if (!slot) {
        d.verdict = HVD_CLAIM_WAIT;
        d.wait = HVD_WAIT_HOST_BUSY;
        d.record_host_busy = true;
        d.free_expired_slots = false;
        return d;
    }
    d.verdict = HVD_CLAIM_RUN;
    d.takeover = running && !f->lease_ours;
    return d;
}

const char *hvd_claim_verdict_name(HvdClaimVerdict v)
{
    static const char *const names[] = {"not_found", "finished", "held", "wait", "run", "duplicate_name"};
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}
