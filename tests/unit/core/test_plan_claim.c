/* Table tests of the claim (plan_claim.c, contract §2): each row is what the
 * store read about a job and its host, and the decision. */
#include <criterion/criterion.h>
#include "plan.h"

#define Q HVD_JOB_QUEUED
#define R HVD_JOB_RUNNING
#define T HVD_JOB_RETRYING
#define NONE HVD_WAIT_NONE
#define RETRY HVD_WAIT_RETRY
#define BUSY HVD_WAIT_HOST_BUSY
#define OPEN HVD_WAIT_CIRCUIT_OPEN

static const struct {
    const char *what;
    HvdClaimFacts f;
    HvdClaimVerdict verdict;
    HvdWaitReason wait;
    bool record_busy, takeover, free_expired;
} ROWS[] = {
    {"unknown job", {.found = false}, HVD_CLAIM_NOT_FOUND, NONE, false, false, false},
    {"succeeded", {.found = true, .status = HVD_JOB_SUCCEEDED}, HVD_CLAIM_FINISHED, NONE, false, false, false},
    {"failed", {.found = true, .status = HVD_JOB_FAILED}, HVD_CLAIM_FINISHED, NONE, false, false, false},
    {"cancelled", {.found = true, .status = HVD_JOB_CANCELLED}, HVD_CLAIM_FINISHED, NONE, false, false, false},
    {"running under another worker's live lease",
     {.found = true, .status = R, .lease_live = true, .holds_slot = true, .host_concurrency = 1},
     HVD_CLAIM_HELD,
     NONE,
     false,
     false,
     false},
    {"running under our own live lease",
     {.found = true, .status = R, .lease_live = true, .lease_ours = true, .holds_slot = true, .host_concurrency = 1},
     HVD_CLAIM_HELD,
     NONE,
     false,
     false,
     false},
    {"expired lease of another worker, slot kept: takeover",
     {.found = true, .status = R, .holds_slot = true, .host_live = 0, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     true,
     false},
    {"expired lease of another worker, slot kept though the host is full (the slot is its own)",
     {.found = true, .status = R, .holds_slot = true, .host_live = 3, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     true,
     false},
    {"our own expired lease: run again, no takeover",
     {.found = true, .status = R, .lease_ours = true, .holds_slot = true, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     false},
    {"expired lease, slot lost, host full: wait for it",
     {.found = true, .status = R, .holds_slot = false, .host_live = 1, .host_holders = 1, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     BUSY,
     true,
     false,
     false},
    {"expired lease, slot lost, host free: takeover",
     {.found = true, .status = R, .holds_slot = false, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     true,
     false},
    {"queued, host free",
     {.found = true, .status = Q, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     false},
    {"queued, host full",
     {.found = true, .status = Q, .host_live = 1, .host_holders = 1, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     BUSY,
     true,
     false,
     false},
    {"queued, host has room for 2 and one runs",
     {.found = true, .status = Q, .host_live = 1, .host_holders = 1, .host_concurrency = 2},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     false},
    {"queued, an earlier job waits: arrival order",
     {.found = true, .status = Q, .host_earlier = 1, .host_concurrency = 4},
     HVD_CLAIM_WAIT,
     BUSY,
     true,
     false,
     false},
    {"queued, slots held only by expired holders: freed, then run",
     {.found = true, .status = Q, .host_live = 0, .host_holders = 1, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     true},
    {"queued waiting for its host, not due: still asks for the slot",
     {.found = true, .status = Q, .not_due = true, .waiting = BUSY, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     false},
    {"retrying, not due",
     {.found = true, .status = T, .not_due = true, .waiting = RETRY, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     RETRY,
     false,
     false,
     false},
    {"retrying for an open circuit, not due",
     {.found = true, .status = T, .not_due = true, .waiting = OPEN, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     OPEN,
     false,
     false,
     false},
    {"not due without a recorded reason",
     {.found = true, .status = Q, .not_due = true, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     RETRY,
     false,
     false,
     false},
    {"retrying, due, host free",
     {.found = true, .status = T, .waiting = RETRY, .host_concurrency = 1},
     HVD_CLAIM_RUN,
     NONE,
     false,
     false,
     false},
    {"retrying, due, host full",
     {.found = true, .status = T, .waiting = RETRY, .host_live = 1, .host_holders = 1, .host_concurrency = 1},
     HVD_CLAIM_WAIT,
     BUSY,
     true,
     false,
     false},
};

Test(plan_claim, table)
{
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        HvdClaimDecision d = hvd_plan_claim(&ROWS[i].f);
        cr_assert_eq(d.verdict, ROWS[i].verdict, "%s: verdict %s", ROWS[i].what, hvd_claim_verdict_name(d.verdict));
        cr_assert_eq(d.wait, ROWS[i].wait, "%s: wait", ROWS[i].what);
        cr_assert_eq(d.record_host_busy, ROWS[i].record_busy, "%s: record host busy", ROWS[i].what);
        cr_assert_eq(d.takeover, ROWS[i].takeover, "%s: takeover", ROWS[i].what);
        cr_assert_eq(d.free_expired_slots, ROWS[i].free_expired, "%s: free expired slots", ROWS[i].what);
    }
}

Test(plan_claim, verdict_names)
{
    cr_assert_str_eq(hvd_claim_verdict_name(HVD_CLAIM_RUN), "run");
    cr_assert_str_eq(hvd_claim_verdict_name(HVD_CLAIM_DUPLICATE_NAME), "duplicate_name");
    cr_assert_str_eq(hvd_claim_verdict_name((HvdClaimVerdict)42), "unknown");
}
