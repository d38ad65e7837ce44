/* Table tests of what an agent call's outcome means (plan_outcome.c), the
 * retry backoff and the envelope status of a failed job. Each row is one
 * outcome and what the contract (§6, §6a) says of it. */
#include <criterion/criterion.h>
#include <string.h>
#include "plan.h"

static const struct {
    HvdOutcome o;
    bool transient, unknown;
    const char *code;
    bool against_host;
} OUTCOMES[] = {
    /* outcome                 transient unknown code                    counts against host */
    {HVD_OUT_SUCCESS, false, false, NULL, false},
    {HVD_OUT_AGENT_ERROR, false, false, "agent_error", false},
    {HVD_OUT_RETRYABLE, true, false, "agent_error", false},
    {HVD_OUT_PROTOCOL_ERROR, false, false, "agent_protocol_error", false},
    {HVD_OUT_TIMEOUT, true, true, "agent_timeout", true},
    {HVD_OUT_TRANSPORT, true, true, "agent_error", true},
    {HVD_OUT_UNREACHABLE, true, true, "agent_error", true},
    {HVD_OUT_CANCELLED, true, true, "agent_error", false},
    {HVD_OUT_NOT_SENT, true, false, "agent_error", false},
    {HVD_OUT_BAD_CALL, false, false, "agent_error", false},
};

Test(plan_outcome, table)
{
    cr_assert_eq(sizeof OUTCOMES / sizeof OUTCOMES[0], HVD_OUTCOME_COUNT, "every outcome has a row");
    for (size_t i = 0; i < sizeof OUTCOMES / sizeof OUTCOMES[0]; i++) {
        const char *name = hvd_outcome_name(OUTCOMES[i].o);
        cr_assert_eq(hvd_outcome_transient(OUTCOMES[i].o), OUTCOMES[i].transient, "%s transient", name);
        cr_assert_eq(hvd_outcome_unknown(OUTCOMES[i].o), OUTCOMES[i].unknown, "%s unknown", name);
        if (OUTCOMES[i].code)
            cr_assert_str_eq(hvd_outcome_code(OUTCOMES[i].o), OUTCOMES[i].code, "%s code", name);
        else
            cr_assert_null(hvd_outcome_code(OUTCOMES[i].o), "%s code", name);
        cr_assert_eq(hvd_outcome_counts_against_host(OUTCOMES[i].o, NULL), OUTCOMES[i].against_host, "%s host", name);
    }
    /* a busy host says so with its code */
    cr_assert(hvd_outcome_counts_against_host(HVD_OUT_RETRYABLE, "HOST_BUSY"));
    cr_assert_not(hvd_outcome_counts_against_host(HVD_OUT_RETRYABLE, "TRANSIENT"));
    cr_assert_not(hvd_outcome_counts_against_host(HVD_OUT_AGENT_ERROR, "HOST_BUSY"));
}

Test(plan_outcome, names_round_trip)
{
    for (int s = 0; s < HVD_JOB_STATUS_COUNT; s++) {
        HvdJobStatus back;
        cr_assert(hvd_job_status_parse(hvd_job_status_name((HvdJobStatus)s), &back));
        cr_assert_eq((int)back, s);
    }
    for (int s = 0; s < HVD_STAGE_STATUS_COUNT; s++) {
        HvdStageStatus back;
        cr_assert(hvd_stage_status_parse(hvd_stage_status_name((HvdStageStatus)s), &back));
        cr_assert_eq((int)back, s);
    }
    for (int s = 1; s < HVD_WAIT_REASON_COUNT; s++) {
        HvdWaitReason back;
        cr_assert(hvd_wait_reason_parse(hvd_wait_reason_name((HvdWaitReason)s), &back));
        cr_assert_eq((int)back, s);
    }
    HvdWaitReason none = HVD_WAIT_RETRY;
    cr_assert(hvd_wait_reason_parse(NULL, &none));
    cr_assert_eq(none, HVD_WAIT_NONE);
    HvdJobStatus js = HVD_JOB_RUNNING;
    cr_assert_not(hvd_job_status_parse("exploded", &js));
    cr_assert_eq(js, HVD_JOB_RUNNING, "an unknown name leaves the value");
    cr_assert_str_eq(hvd_outcome_name((HvdOutcome)99), "unknown");
}

Test(plan_outcome, creating_operations)
{
    cr_assert(hvd_op_creates("vm.create"));
    cr_assert(hvd_op_creates("disk.create"));
    cr_assert(hvd_op_creates("nic.create"));
    cr_assert_not(hvd_op_creates("vm.initialize"));
    cr_assert_not(hvd_op_creates("vm.delete"));
    cr_assert_not(hvd_op_creates("vm.find"));
    cr_assert_not(hvd_op_creates(NULL));
}

Test(plan_outcome, retry_delay_picks_the_bucket_and_jitters_down_at_most_20_percent)
{
    const int d[] = {5, 30, 120, 600};
    static const struct {
        int attempt;
        uint32_t random;
        int64_t ms;
        size_t bucket;
    } rows[] = {
        {1, 0, 5000, 0}, {2, 0, 30000, 1},   {3, 0, 120000, 2}, {4, 0, 600000, 3},   {9, 0, 600000, 3},
        {0, 0, 5000, 0}, {1, 1000, 4000, 0}, {1, 500, 4500, 0}, {2, 1000, 24000, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t b = 99;
        cr_assert_eq(hvd_plan_retry_delay_ms(d, 4, rows[i].attempt, rows[i].random, &b), rows[i].ms, "row %zu", i);
        cr_assert_eq(b, rows[i].bucket, "row %zu", i);
    }
    for (uint32_t r = 0; r < 5000; r += 7) {
        size_t b;
        int64_t ms = hvd_plan_retry_delay_ms(d, 4, 1, r, &b);
        cr_assert(ms >= 4000 && ms <= 5000, "delay %lld out of range", (long long)ms);
    }
    size_t b = 7;
    cr_assert_eq(hvd_plan_retry_delay_ms(d, 0, 1, 0, &b), 0, "no buckets: no delay");
    cr_assert_eq(b, 0);
}

Test(plan_outcome, failed_status)
{
    cr_assert_str_eq(hvd_plan_failed_status(true), "partial");
    cr_assert_str_eq(hvd_plan_failed_status(false), "error");
}

Test(plan_outcome, a_vm_delete_of_a_vm_not_there_is_done)
{
    static const struct {
        HvdOutcome o;
        const char *message;
        bool gone;
    } rows[] = {
        {HVD_OUT_AGENT_ERROR, "Operation error: VM not found: web01", true},
        {HVD_OUT_AGENT_ERROR, "VM not found: ", true},
        {HVD_OUT_AGENT_ERROR, "vm NOT FOUND", true},
        {HVD_OUT_AGENT_ERROR, "VM with ID 'x' not found on this host", false},
        {HVD_OUT_AGENT_ERROR, "Access is denied. (0x80070005)", false},
        {HVD_OUT_AGENT_ERROR, NULL, false},
        {HVD_OUT_RETRYABLE, "VM not found: web01", false},
        {HVD_OUT_SUCCESS, "VM not found", false},
        {HVD_OUT_TIMEOUT, "VM not found", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_eq(hvd_plan_delete_gone(rows[i].o, rows[i].message), rows[i].gone, "row %zu", i);
}

/* A rollback's vm.delete: its last call decides what the envelope may say. */
Test(plan_outcome, a_vm_delete_without_an_answer_is_unknown)
{
    static const struct {
        HvdOutcome o;
        const char *message;
        HvdDeleteResult want;
    } rows[] = {
        {HVD_OUT_SUCCESS, "VM deleted", HVD_DELETE_DONE},
        {HVD_OUT_AGENT_ERROR, "Operation error: VM not found: web01", HVD_DELETE_DONE},
        {HVD_OUT_AGENT_ERROR, "Access is denied. (0x80070005)", HVD_DELETE_FAILED},
        {HVD_OUT_PROTOCOL_ERROR, "no envelope", HVD_DELETE_FAILED},
        {HVD_OUT_RETRYABLE, "being used by another process", HVD_DELETE_FAILED},
        {HVD_OUT_TIMEOUT, "agent did not answer within 300000 ms", HVD_DELETE_UNKNOWN},
        {HVD_OUT_TRANSPORT, "agent exited with status 70 without an answer", HVD_DELETE_UNKNOWN},
        {HVD_OUT_UNREACHABLE, "ssh exited 255", HVD_DELETE_UNKNOWN},
        {HVD_OUT_CANCELLED, "stopped at the end of the shutdown grace", HVD_DELETE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_eq(hvd_plan_delete_result(rows[i].o, rows[i].message), rows[i].want, "row %zu", i);
}
