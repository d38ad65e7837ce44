/* Unit tests of the pure job decisions (common/plan.c). */
#include <criterion/criterion.h>
#include <string.h>
#include "plan.h"

Test(plan, success_continues)
{
    const char *code = "x";
    cr_assert_eq(hvd_plan_after(HVD_OUT_SUCCESS, 1, 5, &code), HVD_NEXT_CONTINUE);
    cr_assert_null(code);
}

Test(plan, permanent_failures_fail_at_once_with_their_code)
{
    const char *code;
    cr_assert_eq(hvd_plan_after(HVD_OUT_AGENT_ERROR, 1, 5, &code), HVD_NEXT_FAIL);
    cr_assert_str_eq(code, "agent_error");
    cr_assert_eq(hvd_plan_after(HVD_OUT_PROTOCOL_ERROR, 1, 5, &code), HVD_NEXT_FAIL);
    cr_assert_str_eq(code, "agent_protocol_error");
}

Test(plan, transient_failures_retry_until_the_last_attempt)
{
    const HvdOutcome transient[] = {HVD_OUT_RETRYABLE, HVD_OUT_TIMEOUT, HVD_OUT_TRANSPORT, HVD_OUT_UNREACHABLE};
    for (size_t i = 0; i < 4; i++) {
        const char *code;
        cr_assert(hvd_outcome_transient(transient[i]));
        cr_assert_eq(hvd_plan_after(transient[i], 4, 5, &code), HVD_NEXT_RETRY);
        cr_assert_null(code);
        cr_assert_eq(hvd_plan_after(transient[i], 5, 5, &code), HVD_NEXT_FAIL);
        cr_assert_str_eq(code, "retries_exhausted");
    }
}

Test(plan, retry_delay_picks_the_bucket_and_jitters_down_at_most_20_percent)
{
    const int d[] = {5, 30, 120, 600};
    size_t b;
    cr_assert_eq(hvd_plan_retry_delay_ms(d, 4, 1, 0, &b), 5000);
    cr_assert_eq(b, 0);
    cr_assert_eq(hvd_plan_retry_delay_ms(d, 4, 2, 0, &b), 30000);
    cr_assert_eq(b, 1);
    cr_assert_eq(hvd_plan_retry_delay_ms(d, 4, 9, 0, &b), 600000);
    cr_assert_eq(b, 3);
    for (uint32_t r = 0; r < 5000; r += 7) {
        int64_t ms = hvd_plan_retry_delay_ms(d, 4, 1, r, &b);
        cr_assert(ms >= 4000 && ms <= 5000, "delay %lld out of range", (long long)ms);
    }
}

Test(plan, failed_status_and_deadline)
{
    cr_assert_str_eq(hvd_plan_failed_status(true), "partial");
    cr_assert_str_eq(hvd_plan_failed_status(false), "error");
    cr_assert_not(hvd_plan_deadline_passed(false, 0, 100));
    cr_assert_not(hvd_plan_deadline_passed(true, 100, 100));
    cr_assert(hvd_plan_deadline_passed(true, 100, 101));
}
