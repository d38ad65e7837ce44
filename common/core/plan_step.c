/* The next step of a running job (§6, §6a, §9): what an observation means
 * for its stage — succeeded, adopted, pending a retry, failed — and what the
 * runner does next — call a stage, ask vm.find, wait, finish, release. */
#include <string.h>
#include "plan.h"

static bool any_succeeded(const HvdStageStatus *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (st[i] == HVD_STAGE_SUCCEEDED) return true;
    return false;
}

static HvdStepDecision finish(const HvdStepFacts *f, const HvdStageStatus *st, HvdJobStatus status, const char *code,
                              int failed_stage, HvdStepDecision d)
{
    d.verdict = HVD_STEP_FINISH;
    d.job_status = status;
    d.code = code;
    d.failed_stage = failed_stage;
    /* Something to undo: a stage that made something, or a vm.create whose
     * outcome is unknown (its VM may exist). */
    bool vm_in_doubt =
        d.maybe_made && failed_stage >= 0 && strcmp(f->job->stages[failed_stage].name, HVD_STAGE_VM_CREATE) == 0;
    d.rollback = status != HVD_JOB_SUCCEEDED && f->rollback && (any_succeeded(st, f->job->n_stages) || vm_in_doubt);
    d.dead_letter = code && (strcmp(code, "retries_exhausted") == 0 || strcmp(code, "outcome_unknown") == 0 ||
                             strcmp(code, "takeovers_exhausted") == 0);
    return d;
}

/* The observed stage fails for good with code; maybe_made: it creates, and
 * its last call got no answer (what it makes may exist). */
static HvdStepDecision fail_made(const HvdStepFacts *f, HvdStageStatus *st, int i, const char *code, bool maybe_made,
                                 HvdStepDecision d)
{
    d.maybe_made = maybe_made && hvd_op_creates(f->job->stages[i].name);
    d.settle = HVD_SETTLE_FAILED;
    d.settle_stage = i;
    d.settle_code = code;
    st[i] = HVD_STAGE_FAILED;
    return finish(f, st, HVD_JOB_FAILED, code, i, d);
}

static HvdStepDecision fail(const HvdStepFacts *f, HvdStageStatus *st, int i, const char *code, HvdStepDecision d)
{
    return fail_made(f, st, i, code, false, d);
}

/* The observed stage failed transiently: it waits for a retry, unless that
 * was its last attempt. unknown: the failure left its effect in doubt. */
static HvdStepDecision retry(const HvdStepFacts *f, HvdStageStatus *st, int i, const char *code, bool keep_doubt,
                             bool unknown, HvdStepDecision d)
{
    int attempt = f->job->stages[i].attempts;
    if (attempt >= f->max_attempts) {
        /* out of attempts, the last one's effect in doubt: vm.find tells
         * whether it was made after all (then it is adopted) */
        if (unknown && !keep_doubt && f->caps.probe && hvd_op_creates(f->job->stages[i].name)) {
            d.verdict = HVD_STEP_PROBE;
            d.stage = i;
            return d;
        }
        return fail_made(f, st, i, keep_doubt ? "outcome_unknown" : "retries_exhausted", keep_doubt || unknown, d);
    }
    d.settle = HVD_SETTLE_PENDING;
    d.settle_stage = i;
    d.settle_code = code;
    d.keep_doubt = keep_doubt;
    d.verdict = HVD_STEP_RETRY;
    d.attempt = attempt;
    return d;
}

/* A creating stage whose outcome is unknown: re-send only to an agent that
 * honours idempotency keys; ask vm.find where it can; else it is unknown. */
static bool resend_safe(const HvdStepFacts *f, int i)
{
    return f->caps.idempotency || !hvd_op_creates(f->job->stages[i].name);
}

static HvdStepDecision probe_or_unknown(const HvdStepFacts *f, HvdStageStatus *st, int i, HvdStepDecision d)
{
    if (f->caps.probe) {
        d.verdict = HVD_STEP_PROBE;
        d.stage = i;
        return d;
    }
    return fail_made(f, st, i, "outcome_unknown", true, d);
}

/* Nothing pending: the first stage not yet succeeded runs, unless the job
 * must stop, end or wait first. */
static HvdStepDecision next(const HvdStepFacts *f, HvdStageStatus *st, HvdStepDecision d)
{
    size_t n = f->job->n_stages, i = 0;
    while (i < n && st[i] == HVD_STAGE_SUCCEEDED) i++;
    if (!f->job_valid) return finish(f, st, HVD_JOB_FAILED, "internal_error", -1, d);
    if (i == n) return finish(f, st, HVD_JOB_SUCCEEDED, NULL, -1, d);
    if (f->stopping) {
        d.verdict = HVD_STEP_RELEASE;
        return d;
    }
    if (f->deadline_passed) return finish(f, st, HVD_JOB_FAILED, "deadline_exceeded", -1, d);
    if (f->cancel_requested) return finish(f, st, HVD_JOB_CANCELLED, "cancelled", -1, d);
    if (f->secrets_gone && strcmp(f->job->stages[i].name, HVD_STAGE_VM_INITIALIZE) == 0)
        return fail(f, st, (int)i, "internal_error", d);
    if (f->gate == HVD_HOST_OPEN) {
        d.verdict = HVD_STEP_WAIT_HOST;
        return d;
    }
    /* before the first vm.create, a host that can say so is asked whether it
     * has the job's storage class, network and image */
    if (!f->preflight_done && f->caps.probe && strcmp(f->job->stages[i].name, HVD_STAGE_VM_CREATE) == 0 &&
        f->job->stages[i].attempts == 0) {
        d.verdict = HVD_STEP_PREFLIGHT;
        d.stage = (int)i;
        return d;
    }
    d.verdict = HVD_STEP_CALL;
    d.stage = (int)i;
    return d;
}

HvdStepDecision hvd_plan_step(const HvdStepFacts *f)
{
    HvdStepDecision d = {.settle = HVD_SETTLE_NONE, .settle_stage = -1, .stage = -1, .failed_stage = -1};
    HvdStageStatus st[HVD_MAX_STAGES];
    size_t n = f->job->n_stages < HVD_MAX_STAGES ? f->job->n_stages : HVD_MAX_STAGES;
    for (size_t k = 0; k < n; k++) st[k] = f->job->stages[k].status;
    const HvdObservation *o = &f->obs;
    int i = o->stage;
    if (o->kind != HVD_OBS_NONE && (i < 0 || (size_t)i >= n))
        return finish(f, st, HVD_JOB_FAILED, "internal_error", -1, d);

    /* A job that keeps losing its worker mid-stage stops being taken over. */
    if ((o->kind == HVD_OBS_NONE || o->kind == HVD_OBS_IN_DOUBT) && f->max_takeovers > 0 &&
        f->job->takeovers > f->max_takeovers) {
        size_t open = 0;
        while (open < n && st[open] == HVD_STAGE_SUCCEEDED) open++;
        if (open < n) return fail_made(f, st, (int)open, "takeovers_exhausted", f->job->stages[open].in_doubt, d);
    }

    switch (o->kind) {
    case HVD_OBS_NONE: break;
    case HVD_OBS_CALL:
        if (o->outcome == HVD_OUT_SUCCESS) {
            if (!o->output_ok) return fail(f, st, i, "agent_protocol_error", d);
            d.settle = HVD_SETTLE_SUCCEEDED;
            d.settle_stage = i;
            st[i] = HVD_STAGE_SUCCEEDED;
            break;
        }
        /* A stage sent again after an unknown outcome, to an agent that
         * does not replay answers: its refusal may only mean the first call
         * did it (Aether-V's vm.initialize a second time: the guest took its
         * key already). */
        bool doubted = f->job->stages[i].in_doubt && !f->caps.idempotency;
        if (!hvd_outcome_transient(o->outcome)) {
            if (doubted) return fail_made(f, st, i, "outcome_unknown", true, d);
            return fail(f, st, i, hvd_outcome_code(o->outcome), d);
        }
        /* Stopped by the end of the shutdown grace: the next owner decides,
         * with the stage in doubt. */
        if (o->outcome == HVD_OUT_CANCELLED) {
            d.verdict = HVD_STEP_RELEASE;
            return d;
        }
        if (hvd_outcome_unknown(o->outcome) && !resend_safe(f, i)) return probe_or_unknown(f, st, i, d);
        /* sent again without idempotency (vm.initialize), an unknown outcome stays in doubt until an answer */
        bool doubt = !f->caps.idempotency && (doubted || hvd_outcome_unknown(o->outcome));
        return retry(f, st, i, hvd_outcome_code(o->outcome), doubt, hvd_outcome_unknown(o->outcome), d);
    case HVD_OBS_IN_DOUBT:
        if (!resend_safe(f, i)) return probe_or_unknown(f, st, i, d);
        break; /* sent again with the same idempotency key */
    case HVD_OBS_PROBE:
        if (o->outcome == HVD_OUT_SUCCESS) {
            if (o->found == HVD_FOUND_IT) {
                d.settle = HVD_SETTLE_ADOPTED;
                d.settle_stage = i;
                st[i] = HVD_STAGE_SUCCEEDED;
                break;
            }
            if (o->found == HVD_FOUND_AMBIGUOUS) return fail_made(f, st, i, "outcome_unknown", true, d);
            /* Nothing was made: the stage can be sent again, no longer in doubt. */
            if (o->after_failure) return retry(f, st, i, NULL, false, false, d);
            d.settle = HVD_SETTLE_PENDING;
            d.settle_stage = i;
            break;
        }
        if (o->outcome == HVD_OUT_CANCELLED) {
            d.verdict = HVD_STEP_RELEASE;
            return d;
        }
        if (hvd_outcome_transient(o->outcome)) return retry(f, st, i, hvd_outcome_code(o->outcome), true, true, d);
        return fail_made(f, st, i, "outcome_unknown", true, d);
    case HVD_OBS_PREFLIGHT:
        /* a host without what the job names fails it as invalid; a preflight
         * that could not be answered leaves the check to the agent */
        if (o->outcome == HVD_OUT_SUCCESS && !o->preflight_ok)
            return finish(f, st, HVD_JOB_FAILED, "validation_error", -1, d);
        HvdStepFacts asked = *f;
        asked.preflight_done = true;
        return next(&asked, st, d);
    }
    return next(f, st, d);
}

const char *hvd_step_verdict_name(HvdStepVerdict v)
{
    static const char *const names[] = {"call", "probe", "preflight", "retry", "wait_host", "finish", "release"};
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}

HvdRollbackPlan hvd_plan_rollback(bool vm_known, bool vm_in_doubt, const HvdAgentCaps *caps)
{
    if (vm_known) return HVD_ROLLBACK_DELETE_VM;
    if (!vm_in_doubt) return HVD_ROLLBACK_NOTHING;
    return caps->probe ? HVD_ROLLBACK_FIND_THEN_DELETE : HVD_ROLLBACK_CANNOT;
}
