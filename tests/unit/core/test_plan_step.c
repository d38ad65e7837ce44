/* Table tests of the next step of a running job (plan_step.c, contract §6,
 * §6a, §9). A row is a job's stages (statuses as letters: P pending,
 * R running, S succeeded, F failed; attempts as digits; '?' marks a stage
 * in doubt; stages are vm.create, disk.create, nic.create, vm.initialize in
 * order unless `kinds` names them: C D N I), the situation, an observation, and the decision: what the
 * observation means for its stage (settle) and what the runner does next. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "plan.h"

/* clang-format off */
#define IDEM {.idempotency = true}
#define PROBE {.probe = true}
#define RAW {0}
#define FULL {.idempotency = true, .probe = true}
/* clang-format on */

typedef struct {
    const char *what;
    const char *stages;   /* e.g. "SP", one letter per planned stage (vm.create, disk.create, ...) */
    const char *attempts; /* e.g. "11" */
    const char *doubt;    /* e.g. "-?" : '?' = in doubt */
    const char *kinds;    /* the stages when not the first n of the four: C, D, N, I */
    /* situation */
    bool invalid, secrets_gone, rollback, stopping, late, cancel;
    HvdHostGate gate;
    HvdAgentCaps caps;
    int takeovers;
    bool preflight_done;
    HvdObservation obs;
    /* decision */
    HvdSettle settle;
    int settle_stage;
    const char *settle_code;
    bool keep_doubt;
    HvdStepVerdict verdict;
    int stage;
    int attempt;
    HvdJobStatus job_status;
    const char *code;
    int failed_stage;
    bool do_rollback, dead_letter;
    bool maybe_made; /* FINISH: what the failed stage makes may exist */
} Row;

#define NOOBS                             \
    {                                     \
        .kind = HVD_OBS_NONE, .stage = -1 \
    }
#define CALL(i, o)                                                            \
    {                                                                         \
        .kind = HVD_OBS_CALL, .stage = (i), .outcome = (o), .output_ok = true \
    }
#define CALL_NO_OUTPUT(i)                                                                  \
    {                                                                                      \
        .kind = HVD_OBS_CALL, .stage = (i), .outcome = HVD_OUT_SUCCESS, .output_ok = false \
    }
#define DOUBT(i)                               \
    {                                          \
        .kind = HVD_OBS_IN_DOUBT, .stage = (i) \
    }
#define PREFLIGHTED(i, o, ok)                                                         \
    {                                                                                 \
        .kind = HVD_OBS_PREFLIGHT, .stage = (i), .outcome = (o), .preflight_ok = (ok) \
    }
#define PROBED(i, o, f, after)                                                                      \
    {                                                                                               \
        .kind = HVD_OBS_PROBE, .stage = (i), .outcome = (o), .found = (f), .after_failure = (after) \
    }

#define S_NONE HVD_SETTLE_NONE, -1, NULL, false
#define S_OK(i) HVD_SETTLE_SUCCEEDED, i, NULL, false
#define S_ADOPT(i) HVD_SETTLE_ADOPTED, i, NULL, false
#define S_PEND(i, c) HVD_SETTLE_PENDING, i, c, false
#define S_PEND_DOUBT(i, c) HVD_SETTLE_PENDING, i, c, true
#define S_FAIL(i, c) HVD_SETTLE_FAILED, i, c, false

#define V_CALL(i) HVD_STEP_CALL, i, 0, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_PREFLIGHT(i) HVD_STEP_PREFLIGHT, i, 0, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_PROBE(i) HVD_STEP_PROBE, i, 0, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_RETRY(a) HVD_STEP_RETRY, -1, a, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_WAIT HVD_STEP_WAIT_HOST, -1, 0, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_RELEASE HVD_STEP_RELEASE, -1, 0, HVD_JOB_QUEUED, NULL, -1, false, false
#define V_DONE HVD_STEP_FINISH, -1, 0, HVD_JOB_SUCCEEDED, NULL, -1, false, false
#define V_FAIL(c, i, rb, dl) HVD_STEP_FINISH, -1, 0, HVD_JOB_FAILED, c, i, rb, dl
#define V_CANCEL(rb) HVD_STEP_FINISH, -1, 0, HVD_JOB_CANCELLED, "cancelled", -1, rb, false

#define O_OK HVD_OUT_SUCCESS
#define O_ERR HVD_OUT_AGENT_ERROR
#define O_BUSY HVD_OUT_RETRYABLE
#define O_PROTO HVD_OUT_PROTOCOL_ERROR
#define O_TIMEOUT HVD_OUT_TIMEOUT
#define O_CRASH HVD_OUT_TRANSPORT
#define O_UNREACH HVD_OUT_UNREACHABLE
#define O_CANCEL HVD_OUT_CANCELLED
#define O_NOSPAWN HVD_OUT_NOT_SENT
#define O_BAD HVD_OUT_BAD_CALL

static const Row ROWS[] = {
    /* ---- starting and resuming ---- */
    {"fresh job: the first stage runs", "PPPP", "0000", "----", .caps = IDEM, .obs = NOOBS, S_NONE, V_CALL(0)},
    {"resumed after two stages: the third runs", "SSPP", "1100", "----", .caps = IDEM, .obs = NOOBS, S_NONE, V_CALL(2)},
    {"every stage succeeded already: finish", "SS", "11", "--", .caps = IDEM, .obs = NOOBS, S_NONE, V_DONE},
    {"the stored request no longer validates", "PP", "00", "--", .invalid = true, .caps = IDEM, .obs = NOOBS, S_NONE,
     V_FAIL("internal_error", -1, false, false)},
    {"stopping: released before the next stage", "SP", "10", "--", .stopping = true, .caps = IDEM, .obs = NOOBS, S_NONE,
     V_RELEASE},
    {"deadline passed before the next stage", "SP", "10", "--", .late = true, .caps = IDEM, .obs = NOOBS, S_NONE,
     V_FAIL("deadline_exceeded", -1, false, false)},
    {"deadline passed, rollback asked, something made", "SP", "10", "--", .late = true, .rollback = true, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_FAIL("deadline_exceeded", -1, true, false)},
    {"cancelled before the first stage: nothing to roll back", "PP", "00", "--", .cancel = true, .rollback = true,
     .caps = IDEM, .obs = NOOBS, S_NONE, V_CANCEL(false)},
    {"cancelled after vm.create, rollback asked", "SP", "10", "--", .cancel = true, .rollback = true, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_CANCEL(true)},
    {"stopping wins over a deadline", "SP", "10", "--", .stopping = true, .late = true, .caps = IDEM, .obs = NOOBS,
     S_NONE, V_RELEASE},
    {"a deadline wins over a cancel", "SP", "10", "--", .late = true, .cancel = true, .caps = IDEM, .obs = NOOBS,
     S_NONE, V_FAIL("deadline_exceeded", -1, false, false)},
    {"vm.initialize next but its secrets were erased", "SSSP", "1110", "----", .kinds = "CDNI", .secrets_gone = true,
     .caps = IDEM, .obs = NOOBS, S_FAIL(3, "internal_error"), V_FAIL("internal_error", 3, false, false)},
    {"erased secrets do not matter before vm.initialize", "SPPP", "1000", "----", .secrets_gone = true, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_CALL(1)},
    {"host circuit open: wait without spending an attempt", "SP", "10", "--", .gate = HVD_HOST_OPEN, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_WAIT},
    {"host circuit trial: this job calls", "SP", "10", "--", .gate = HVD_HOST_TRIAL, .caps = IDEM, .obs = NOOBS, S_NONE,
     V_CALL(1)},
    {"cancel wins over an open circuit", "SP", "10", "--", .cancel = true, .gate = HVD_HOST_OPEN, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_CANCEL(false)},
    {"taken over more than max_takeovers times", "SPP", "110", "---", .takeovers = 6, .caps = IDEM, .obs = NOOBS,
     S_FAIL(1, "takeovers_exhausted"), V_FAIL("takeovers_exhausted", 1, false, true)},
    {"taken over exactly max_takeovers times: still runs", "SPP", "110", "---", .takeovers = 5, .caps = IDEM,
     .obs = NOOBS, S_NONE, V_CALL(1)},

    /* ---- a call answered ---- */
    {"vm.create succeeded: disk.create next", "RPP", "100", "---", .caps = IDEM, .obs = CALL(0, O_OK), S_OK(0),
     V_CALL(1)},
    {"the last stage succeeded: finish", "SSR", "111", "---", .caps = IDEM, .obs = CALL(2, O_OK), S_OK(2), V_DONE},
    {"success while stopping: recorded, then released", "RP", "10", "--", .stopping = true, .caps = IDEM,
     .obs = CALL(0, O_OK), S_OK(0), V_RELEASE},
    {"success, then the host's circuit is open", "RP", "10", "--", .gate = HVD_HOST_OPEN, .caps = IDEM,
     .obs = CALL(0, O_OK), S_OK(0), V_WAIT},
    {"vm.create success without a vm_id", "RP", "10", "--", .caps = IDEM, .obs = CALL_NO_OUTPUT(0),
     S_FAIL(0, "agent_protocol_error"), V_FAIL("agent_protocol_error", 0, false, false)},
    {"permanent agent error", "SRP", "110", "---", .caps = IDEM, .obs = CALL(1, O_ERR), S_FAIL(1, "agent_error"),
     V_FAIL("agent_error", 1, false, false)},
    {"permanent agent error, rollback asked", "SRP", "110", "---", .rollback = true, .caps = IDEM,
     .obs = CALL(1, O_ERR), S_FAIL(1, "agent_error"), V_FAIL("agent_error", 1, true, false)},
    {"protocol error is permanent", "R", "1", "-", .caps = IDEM, .obs = CALL(0, O_PROTO),
     S_FAIL(0, "agent_protocol_error"), V_FAIL("agent_protocol_error", 0, false, false)},
    {"bad call is permanent", "R", "1", "-", .caps = IDEM, .obs = CALL(0, O_BAD), S_FAIL(0, "agent_error"),
     V_FAIL("agent_error", 0, false, false)},
    {"retryable error: retry", "SR", "12", "--", .caps = IDEM, .obs = CALL(1, O_BUSY), S_PEND(1, "agent_error"),
     V_RETRY(2)},
    {"retryable error on the last attempt: retries exhausted", "SR", "15", "--", .caps = IDEM, .obs = CALL(1, O_BUSY),
     S_FAIL(1, "retries_exhausted"), V_FAIL("retries_exhausted", 1, false, true)},
    {"retryable error of a raw agent: known outcome, retried", "R", "1", "-", .caps = RAW, .obs = CALL(0, O_BUSY),
     S_PEND(0, "agent_error"), V_RETRY(1)},
    {"agent could not be started: nothing sent, retried even for raw", "R", "1", "-", .caps = RAW,
     .obs = CALL(0, O_NOSPAWN), S_PEND(0, "agent_error"), V_RETRY(1)},
    {"timeout with idempotency: retried with the same key", "R", "1", "-", .caps = IDEM, .obs = CALL(0, O_TIMEOUT),
     S_PEND(0, "agent_timeout"), V_RETRY(1)},
    {"timeout on the last attempt with idempotency", "R", "5", "-", .caps = IDEM, .obs = CALL(0, O_TIMEOUT),
     S_FAIL(0, "retries_exhausted"), V_FAIL("retries_exhausted", 0, false, true), .maybe_made = true},
    {"crash during vm.create, probe agent: ask vm.find", "R", "1", "-", .caps = PROBE, .obs = CALL(0, O_CRASH), S_NONE,
     V_PROBE(0)},
    {"unreachable during disk.create, probe agent: ask vm.find", "SR", "11", "--", .caps = PROBE,
     .obs = CALL(1, O_UNREACH), S_NONE, V_PROBE(1)},
    {"timeout during vm.create, raw agent: outcome unknown", "R", "1", "-", .caps = RAW, .obs = CALL(0, O_TIMEOUT),
     S_FAIL(0, "outcome_unknown"), V_FAIL("outcome_unknown", 0, false, true), .maybe_made = true},
    {"timeout during vm.create, raw agent, rollback asked: rollback decides", "R", "1", "-", .rollback = true,
     .caps = RAW, .obs = CALL(0, O_TIMEOUT), S_FAIL(0, "outcome_unknown"), V_FAIL("outcome_unknown", 0, true, true),
     .maybe_made = true},
    {"crash during nic.create, raw agent, rollback asked", "SSR", "111", "---", .rollback = true, .caps = RAW,
     .obs = CALL(2, O_CRASH), S_FAIL(2, "outcome_unknown"), V_FAIL("outcome_unknown", 2, true, true),
     .maybe_made = true},
    {"timeout during vm.initialize, raw agent: repeatable, retried, in doubt", "SR", "11", "--", .kinds = "CI",
     .caps = RAW, .obs = CALL(1, O_TIMEOUT), S_PEND_DOUBT(1, "agent_timeout"), V_RETRY(1)},
    {"timeout during vm.initialize, idempotent agent: retried with the same key", "SR", "11", "--", .kinds = "CI",
     .caps = IDEM, .obs = CALL(1, O_TIMEOUT), S_PEND(1, "agent_timeout"), V_RETRY(1)},
    {"vm.initialize sent again after an unknown outcome succeeds", "SR", "12", "-?", .kinds = "CI", .caps = RAW,
     .obs = CALL(1, O_OK), S_OK(1), V_DONE},
    {"vm.initialize sent again after an unknown outcome, refused by a raw agent: outcome unknown", "SR", "12", "-?",
     .kinds = "CI", .rollback = true, .caps = RAW, .obs = CALL(1, O_ERR), S_FAIL(1, "outcome_unknown"),
     V_FAIL("outcome_unknown", 1, true, true)},
    {"vm.initialize sent again, refused by an idempotent agent: a real refusal", "SR", "12", "-?", .kinds = "CI",
     .caps = IDEM, .obs = CALL(1, O_ERR), S_FAIL(1, "agent_error"), V_FAIL("agent_error", 1, false, false)},
    {"vm.initialize sent again, busy answer, raw agent: retried, still in doubt", "SR", "12", "-?", .kinds = "CI",
     .caps = RAW, .obs = CALL(1, O_BUSY), S_PEND_DOUBT(1, "agent_error"), V_RETRY(2)},
    {"vm.initialize in doubt, busy on the last attempt, raw agent: outcome unknown", "SR", "15", "-?", .kinds = "CI",
     .caps = RAW, .obs = CALL(1, O_BUSY), S_FAIL(1, "outcome_unknown"), V_FAIL("outcome_unknown", 1, false, true)},
    {"vm.initialize not in doubt, busy on the last attempt, raw agent: retries exhausted", "SR", "15", "--",
     .kinds = "CI", .caps = RAW, .obs = CALL(1, O_BUSY), S_FAIL(1, "retries_exhausted"),
     V_FAIL("retries_exhausted", 1, false, true)},
    {"cut by the end of the shutdown grace: released", "SR", "11", "--", .stopping = true, .caps = RAW,
     .obs = CALL(1, O_CANCEL), S_NONE, V_RELEASE},
    {"cut by the end of the grace, idempotent agent: released", "R", "1", "-", .stopping = true, .caps = IDEM,
     .obs = CALL(0, O_CANCEL), S_NONE, V_RELEASE},

    /* ---- resumed with a stage in doubt (its worker died mid-call) ---- */
    {"in doubt, idempotent agent: sent again", "SP", "11", "-?", .caps = IDEM, .obs = DOUBT(1), S_NONE, V_CALL(1)},
    {"in doubt, probe agent: ask vm.find first", "SP", "11", "-?", .caps = PROBE, .obs = DOUBT(1), S_NONE, V_PROBE(1)},
    {"in doubt, raw agent: outcome unknown", "P", "1", "?", .caps = RAW, .obs = DOUBT(0), S_FAIL(0, "outcome_unknown"),
     V_FAIL("outcome_unknown", 0, false, true), .maybe_made = true},
    {"in doubt vm.initialize, raw agent: repeatable, sent again", "SP", "11", "-?", .kinds = "CI", .caps = RAW,
     .obs = DOUBT(1), S_NONE, V_CALL(1)},
    {"in doubt and taken over too often", "P", "1", "?", .takeovers = 9, .caps = PROBE, .obs = DOUBT(0),
     S_FAIL(0, "takeovers_exhausted"), V_FAIL("takeovers_exhausted", 0, false, true), .maybe_made = true},

    /* ---- vm.find answered ---- */
    {"vm.find found the job's VM: adopted, next stage", "PP", "10", "?-", .caps = PROBE,
     .obs = PROBED(0, O_OK, HVD_FOUND_IT, false), S_ADOPT(0), V_CALL(1)},
    {"vm.find found it after a failure in this run", "SP", "11", "--", .caps = PROBE,
     .obs = PROBED(1, O_OK, HVD_FOUND_IT, true), S_ADOPT(1), V_DONE},
    {"vm.find found nothing after a takeover: sent again, no longer in doubt", "P", "1", "?", .caps = PROBE,
     .obs = PROBED(0, O_OK, HVD_FOUND_NOTHING, false), S_PEND(0, NULL), V_CALL(0)},
    {"vm.find found nothing after a failed call: retried later", "P", "2", "-", .caps = PROBE,
     .obs = PROBED(0, O_OK, HVD_FOUND_NOTHING, true), S_PEND(0, NULL), V_RETRY(2)},
    {"vm.find found nothing after the last attempt", "P", "5", "-", .caps = PROBE,
     .obs = PROBED(0, O_OK, HVD_FOUND_NOTHING, true), S_FAIL(0, "retries_exhausted"),
     V_FAIL("retries_exhausted", 0, false, true)},
    {"vm.find ambiguous", "P", "1", "?", .caps = PROBE, .obs = PROBED(0, O_OK, HVD_FOUND_AMBIGUOUS, false),
     S_FAIL(0, "outcome_unknown"), V_FAIL("outcome_unknown", 0, false, true), .maybe_made = true},
    {"vm.find timed out: asked again later, still in doubt", "P", "1", "?", .caps = PROBE,
     .obs = PROBED(0, O_TIMEOUT, HVD_FOUND_NOTHING, false), S_PEND_DOUBT(0, "agent_timeout"), V_RETRY(1)},
    {"vm.find timed out on the last attempt: outcome unknown", "P", "5", "?", .caps = PROBE,
     .obs = PROBED(0, O_TIMEOUT, HVD_FOUND_NOTHING, false), S_FAIL(0, "outcome_unknown"),
     V_FAIL("outcome_unknown", 0, false, true), .maybe_made = true},
    {"vm.find refused: outcome unknown", "P", "1", "?", .caps = PROBE,
     .obs = PROBED(0, O_ERR, HVD_FOUND_NOTHING, false), S_FAIL(0, "outcome_unknown"),
     V_FAIL("outcome_unknown", 0, false, true), .maybe_made = true},
    {"vm.find cut by the shutdown: released", "P", "1", "?", .stopping = true, .caps = PROBE,
     .obs = PROBED(0, O_CANCEL, HVD_FOUND_NOTHING, false), S_NONE, V_RELEASE},

    /* ---- the preflight (host.resources before the first vm.create) ---- */
    {"fresh job, probe agent: preflight first", "PP", "00", "--", .caps = PROBE, .obs = NOOBS, S_NONE, V_PREFLIGHT(0)},
    {"preflight already done in this run: vm.create runs", "PP", "00", "--", .caps = PROBE, .preflight_done = true,
     .obs = NOOBS, S_NONE, V_CALL(0)},
    {"vm.create retried: no second preflight", "PP", "10", "--", .caps = PROBE, .obs = NOOBS, S_NONE, V_CALL(0)},
    {"no probe capability: no preflight", "PP", "00", "--", .caps = IDEM, .obs = NOOBS, S_NONE, V_CALL(0)},
    {"preflight passed: vm.create runs", "PP", "00", "--", .caps = PROBE, .obs = PREFLIGHTED(0, O_OK, true), S_NONE,
     V_CALL(0)},
    {"preflight: the host lacks what the job names", "PP", "00", "--", .rollback = true, .caps = PROBE,
     .obs = PREFLIGHTED(0, O_OK, false), S_NONE, V_FAIL("validation_error", -1, false, false)},
    {"preflight could not be answered: the agent checks", "PP", "00", "--", .caps = PROBE,
     .obs = PREFLIGHTED(0, O_TIMEOUT, false), S_NONE, V_CALL(0)},
    {"preflight refused: the agent checks", "PP", "00", "--", .caps = PROBE, .obs = PREFLIGHTED(0, O_ERR, false),
     S_NONE, V_CALL(0)},

    {"timeout on the last attempt, rollback asked: the VM it may have made is undone", "R", "5", "-", .rollback = true,
     .caps = PROBE, .obs = CALL(0, O_TIMEOUT), S_NONE, V_PROBE(0)},
    {"timeout on the last attempt, idempotency and probe: vm.find says whether it was made", "R", "5", "-",
     .caps = FULL, .obs = CALL(0, O_TIMEOUT), S_NONE, V_PROBE(0)},
    {"... it was made: adopted", "P", "5", "-", .caps = FULL, .obs = PROBED(0, O_OK, HVD_FOUND_IT, true), S_ADOPT(0),
     V_DONE},
    {"... nothing was made: retries exhausted, nothing left", "P", "5", "-", .rollback = true, .caps = FULL,
     .obs = PROBED(0, O_OK, HVD_FOUND_NOTHING, true), S_FAIL(0, "retries_exhausted"),
     V_FAIL("retries_exhausted", 0, false, true)},
    {"retryable answer on the last attempt: nothing was made", "R", "5", "-", .rollback = true, .caps = IDEM,
     .obs = CALL(0, O_BUSY), S_FAIL(0, "retries_exhausted"), V_FAIL("retries_exhausted", 0, false, true)},
    {"crash on the last attempt with idempotency, rollback asked", "R", "5", "-", .rollback = true, .caps = IDEM,
     .obs = CALL(0, O_CRASH), S_FAIL(0, "retries_exhausted"), V_FAIL("retries_exhausted", 0, true, true),
     .maybe_made = true},

    /* ---- nonsense ---- */
    {"an observation of a stage the job does not have", "P", "0", "-", .caps = IDEM, .obs = CALL(3, O_OK), S_NONE,
     V_FAIL("internal_error", -1, false, false)},
};

static const char *const NAMES[] = {"vm.create", "disk.create", "nic.create", "vm.initialize"};

static void make_job(const Row *row, HvdJobRecord *job)
{
    memset(job, 0, sizeof *job);
    size_t n = strlen(row->stages);
    job->n_stages = n;
    job->takeovers = row->takeovers;
    for (size_t i = 0; i < n; i++) {
        HvdStage *s = &job->stages[i];
        size_t k = i;
        if (row->kinds) k = (size_t)(strchr("CDNI", row->kinds[i]) - "CDNI");
        snprintf(s->name, sizeof s->name, "%s", NAMES[k]);
        switch (row->stages[i]) {
        case 'S': s->status = HVD_STAGE_SUCCEEDED; break;
        case 'R': s->status = HVD_STAGE_RUNNING; break;
        case 'F': s->status = HVD_STAGE_FAILED; break;
        default: s->status = HVD_STAGE_PENDING; break;
        }
        s->attempts = row->attempts[i] - '0';
        s->in_doubt = row->doubt[i] == '?';
    }
}

Test(plan_step, table)
{
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        const Row *row = &ROWS[i];
        HvdJobRecord job;
        make_job(row, &job);
        HvdStepFacts f = {
            .job = &job,
            .job_valid = !row->invalid,
            .secrets_gone = row->secrets_gone,
            .rollback = row->rollback,
            .stopping = row->stopping,
            .deadline_passed = row->late,
            .cancel_requested = row->cancel,
            .gate = row->gate,
            .caps = row->caps,
            .max_attempts = 5,
            .max_takeovers = 5,
            .preflight_done = row->preflight_done,
            .obs = row->obs,
        };
        HvdStepDecision d = hvd_plan_step(&f);
        const char *w = row->what;
        cr_assert_eq(d.settle, row->settle, "%s: settle %d", w, d.settle);
        cr_assert_eq(d.settle_stage, row->settle_stage, "%s: settle stage %d", w, d.settle_stage);
        if (row->settle_code)
            cr_assert(d.settle_code && strcmp(d.settle_code, row->settle_code) == 0, "%s: settle code %s", w,
                      d.settle_code ? d.settle_code : "(none)");
        else
            cr_assert_null(d.settle_code, "%s: settle code %s", w, d.settle_code);
        cr_assert_eq(d.keep_doubt, row->keep_doubt, "%s: keep doubt", w);
        cr_assert_eq(d.verdict, row->verdict, "%s: verdict %s", w, hvd_step_verdict_name(d.verdict));
        cr_assert_eq(d.stage, row->stage, "%s: stage %d", w, d.stage);
        if (d.verdict == HVD_STEP_RETRY) cr_assert_eq(d.attempt, row->attempt, "%s: attempt %d", w, d.attempt);
        if (d.verdict == HVD_STEP_FINISH) {
            cr_assert_eq(d.job_status, row->job_status, "%s: job status %s", w, hvd_job_status_name(d.job_status));
            if (row->code)
                cr_assert(d.code && strcmp(d.code, row->code) == 0, "%s: code %s", w, d.code ? d.code : "(none)");
            else
                cr_assert_null(d.code, "%s: code", w);
            cr_assert_eq(d.failed_stage, row->failed_stage, "%s: failed stage %d", w, d.failed_stage);
            cr_assert_eq(d.rollback, row->do_rollback, "%s: rollback", w);
            cr_assert_eq(d.dead_letter, row->dead_letter, "%s: dead letter", w);
            cr_assert_eq(d.maybe_made, row->maybe_made, "%s: maybe made", w);
        }
    }
}

Test(plan_step, verdict_names)
{
    cr_assert_str_eq(hvd_step_verdict_name(HVD_STEP_PROBE), "probe");
    cr_assert_str_eq(hvd_step_verdict_name((HvdStepVerdict)77), "unknown");
}

/* ---- rollback ---- */

Test(plan_rollback, table)
{
    static const struct {
        bool vm_known, vm_in_doubt;
        HvdAgentCaps caps;
        HvdRollbackPlan plan;
    } rows[] = {
        {false, false, RAW, HVD_ROLLBACK_NOTHING},
        {false, false, PROBE, HVD_ROLLBACK_NOTHING},
        {true, false, RAW, HVD_ROLLBACK_DELETE_VM},
        {true, true, RAW, HVD_ROLLBACK_DELETE_VM},
        {false, true, PROBE, HVD_ROLLBACK_FIND_THEN_DELETE},
        {false, true, IDEM, HVD_ROLLBACK_CANNOT},
        {false, true, RAW, HVD_ROLLBACK_CANNOT},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_eq(hvd_plan_rollback(rows[i].vm_known, rows[i].vm_in_doubt, &rows[i].caps), rows[i].plan, "row %zu",
                     i);
}
