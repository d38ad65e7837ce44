/* The decision core: every decision the contract is about, as pure functions
 * from observed facts to a decision. No I/O, no clock, no randomness: the
 * store fetches the facts and applies the decisions, the worker observes and
 * carries them out. Each function is table-tested in tests/unit/core/.
 *
 *   hvd_plan_claim        a doorbell, redelivery or sweep meets a job (§2)
 *   hvd_plan_step         the next step of a running job, after an observation
 *   hvd_plan_rollback     what an on_failure=rollback can undo, and how
 *   hvd_plan_reject       the code and sentence of a message that never becomes a job
 *   hvd_plan_outcome_*    what an agent call's outcome means (§6, §6a)
 *   hvd_plan_retry_delay  the backoff of a transient failure */
#ifndef HVD_PLAN_H
#define HVD_PLAN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "codec.h"
#include "model.h"
#include "record.h"
#include "status.h"

/* ---- outcomes ------------------------------------------------------------ */

/* Transient: retried (RETRYABLE, TIMEOUT, TRANSPORT, UNREACHABLE, CANCELLED, NOT_SENT). */
bool hvd_outcome_transient(HvdOutcome o);
/* No answer came back although the request may have reached the agent
 * (TIMEOUT, TRANSPORT, UNREACHABLE, CANCELLED): its effect may or may not
 * have been applied (§6a "Outcome unknown"). */
bool hvd_outcome_unknown(HvdOutcome o);
/* The envelope code of a failed call: agent_error, agent_protocol_error,
 * agent_timeout (the code a stage records; a job that ran out of attempts
 * reports retries_exhausted). */
const char *hvd_outcome_code(HvdOutcome o);
/* Whether a call's outcome counts against its host's circuit: the host was
 * unreachable, hung or broke the transport, or said it is busy. */
bool hvd_outcome_counts_against_host(HvdOutcome o, const char *agent_code);

/* The retry delay after failed attempt `attempt` (1-based): bucket
 * delays[min(attempt, n) - 1] in seconds, shortened by up to 20 % of jitter
 * drawn from `random` (any 32-bit value). *bucket gets the bucket's index. */
int64_t hvd_plan_retry_delay_ms(const int *delays_s, size_t n, int attempt, uint32_t random, size_t *bucket);

/* Envelope status of a job that did not succeed: "partial" when resources it
 * made (or may have made) are left behind, "error" when none are. */
const char *hvd_plan_failed_status(bool resources_left);

/* ---- agent capabilities (§6a) -------------------------------------------- */

typedef struct {
    bool idempotency; /* a repeated key gets the first answer and no second effect */
    bool probe;       /* vm.find and host.resources */
    bool session;     /* session mode */
    bool output;      /* live output lines in session mode */
} HvdAgentCaps;

/* The capabilities HVD_AGENT_PROFILE fixes: "raw" none, "hvdeploy" all four,
 * or a comma list of their names (e.g. "idempotency,probe": the shim without
 * its session loop); false for "auto" (the host is asked with agent.hello)
 * and for a value that is none of these. */
bool hvd_plan_profile_fixed(const char *profile, HvdAgentCaps *caps);
/* auto, raw, hvdeploy or a list of known capability names. */
bool hvd_plan_profile_valid(const char *profile);
/* What an agent.hello call says: success with data.capabilities (a list of
 * names) gives those; an error answer (what Main-NewProtocol.ps1 gives for an
 * unknown operation) or an answer that is not an envelope gives none (the raw
 * profile). A call that got no answer, or a busy answer, says nothing: false. */
bool hvd_plan_profile_from_hello(HvdOutcome outcome, const HvdNode *data, HvdAgentCaps *caps);
/* "raw" when caps has nothing, "hvdeploy" when it has all four, else "partial". */
const char *hvd_plan_profile_name(const HvdAgentCaps *caps);

/* vm.create, disk.create and nic.create make something each time they run;
 * vm.initialize and vm.delete may be sent again. */
bool hvd_op_creates(const char *operation);
/* A vm.delete refused because the VM is not there ("VM not found: ...", as
 * Main-NewProtocol.ps1 and the shim say it, in any case): what it was to
 * delete is gone (an earlier attempt whose answer was lost deleted it). */
bool hvd_plan_delete_gone(HvdOutcome outcome, const char *message);

typedef enum {
    HVD_DELETE_DONE,    /* deleted, or it is not there */
    HVD_DELETE_FAILED,  /* the agent refused: what it was to delete is left */
    HVD_DELETE_UNKNOWN, /* no answer (timeout, crash, transport): it may or may not be gone */
} HvdDeleteResult;
/* What a rollback's last vm.delete call says about its VM. */
HvdDeleteResult hvd_plan_delete_result(HvdOutcome outcome, const char *message);

/* ---- stages and what they make ------------------------------------------- */

/* Planned stages of a job (§9) in order: vm.create always, then disk.create,
 * nic.create, vm.initialize when their spec is present. Returns the count
 * (1..4) and fills names with static strings. */
size_t hvd_plan_stages(const HvdJob *job, const char *names[HVD_MAX_STAGES]);
/* The keys of what a stage makes, as later stages and the envelope name them
 * (vm.create: vm_id; disk.create: disk_id, disk_path; nic.create: nic_id,
 * adapter_name, mac_address); NULL-terminated, empty for other stages. */
const char *const *hvd_stage_output_keys(const char *stage);
/* A new map with the stage's output keys copied from an answer's data. */
HvdNode *hvd_stage_outputs(const char *stage, const HvdNode *data);
/* Whether a successful answer carries what the stage must make: vm.create a
 * vm_id, which every later stage and the rollback need. */
bool hvd_stage_output_ok(const char *stage, const HvdNode *data);
/* Removes every stage's outputs from a job's outputs map (after a rollback). */
void hvd_stage_outputs_forget(HvdNode *outputs);
/* The envelope's data (§4): vm_id, vm_name, target_host, os_family, then what
 * the other stages made, then guest_config_keys (may be NULL); only those
 * that exist. */
HvdNode *hvd_plan_envelope_data(const HvdNode *outputs, const char *vm_name, const char *target_host,
                                const char *os_family, HvdNode *guest_config_keys);

/* ---- claiming ------------------------------------------------------------ */

typedef struct {
    bool found;
    HvdJobStatus status;
    bool lease_live; /* its lease has not expired */
    bool lease_ours; /* lease_owner is this worker */
    bool not_due;    /* next_run_at is in the future */
    HvdWaitReason waiting;
    bool holds_slot;      /* it holds a slot of its host */
    int64_t host_live;    /* other jobs of the host holding a slot under a live lease */
    int64_t host_holders; /* other jobs of the host marked as holding a slot (live or expired) */
    int64_t host_earlier; /* other jobs of the host that arrived earlier and wait for a slot */
    int host_concurrency; /* slots per host */
} HvdClaimFacts;

typedef enum {
    HVD_CLAIM_NOT_FOUND,      /* the database does not know the job */
    HVD_CLAIM_FINISHED,       /* terminal: its stored envelope answers */
    HVD_CLAIM_HELD,           /* another worker's live lease holds it */
    HVD_CLAIM_WAIT,           /* not now: decision.wait says why */
    HVD_CLAIM_RUN,            /* take the lease and a slot: run it (decision.takeover) */
    HVD_CLAIM_DUPLICATE_NAME, /* (new jobs) another live job of the host has its vm_name */
} HvdClaimVerdict;

typedef struct {
    HvdClaimVerdict verdict;
    HvdWaitReason wait;      /* WAIT: retry, circuit_open (not due yet) or host_busy (no slot) */
    bool record_host_busy;   /* WAIT: mark the job queued, waiting for its host's slot */
    bool takeover;           /* RUN: an expired lease of another worker is taken */
    bool free_expired_slots; /* RUN: slots of expired holders go back to the host first */
} HvdClaimDecision;

HvdClaimDecision hvd_plan_claim(const HvdClaimFacts *f);
const char *hvd_claim_verdict_name(HvdClaimVerdict v);

/* ---- running: the next step ---------------------------------------------- */

/* What the host's circuit says about a call now. */
typedef enum {
    HVD_HOST_CLOSED, /* calls go through */
    HVD_HOST_OPEN,   /* failing: wait without spending an attempt */
    HVD_HOST_TRIAL,  /* cooled down: this job makes the one trial call */
} HvdHostGate;

typedef enum {
    HVD_OBS_NONE,      /* nothing yet in this run (just claimed, or after a cancel check) */
    HVD_OBS_CALL,      /* stage `stage` was called: `outcome` */
    HVD_OBS_IN_DOUBT,  /* stage `stage` was under way when its last worker stopped */
    HVD_OBS_PROBE,     /* vm.find about stage `stage` answered (`outcome`, `found`) */
    HVD_OBS_PREFLIGHT, /* host.resources before stage `stage` (vm.create): `outcome`, `preflight_ok` */
} HvdObsKind;

typedef enum {
    HVD_FOUND_NOTHING,   /* no trace of the stage's effect: it did not happen */
    HVD_FOUND_IT,        /* exactly what the stage makes, stamped with this job */
    HVD_FOUND_AMBIGUOUS, /* something, but not provably this job's */
} HvdFound;

typedef struct {
    HvdObsKind kind;
    int stage;          /* index into the job's stages */
    HvdOutcome outcome; /* CALL, PROBE */
    bool output_ok;     /* CALL success: the answer has what the stage must make (vm.create: a vm_id) */
    HvdFound found;     /* PROBE success */
    bool after_failure; /* PROBE: the doubt came from a failed call in this run (not a takeover) */
    bool preflight_ok;  /* PREFLIGHT success: the host has what the job names */
} HvdObservation;

typedef struct {
    const HvdJobRecord *job; /* stages and their statuses/attempts as recorded so far */
    bool job_valid;          /* the stored request rebuilt and validates */
    bool secrets_gone;       /* vm.initialize is planned but its secrets were erased */
    bool rollback;           /* options.on_failure = rollback */
    bool stopping;           /* the worker is shutting down */
    bool deadline_passed;
    bool cancel_requested;
    HvdHostGate gate;
    HvdAgentCaps caps;
    int max_attempts;
    int max_takeovers;   /* 0 = unbounded */
    bool preflight_done; /* host.resources was asked in this run (or needs not be) */
    HvdObservation obs;
} HvdStepFacts;

typedef enum {
    HVD_SETTLE_NONE,
    HVD_SETTLE_SUCCEEDED, /* the observed stage succeeded (CALL success) */
    HVD_SETTLE_ADOPTED,   /* the observed stage succeeded with what vm.find found */
    HVD_SETTLE_PENDING,   /* the observed stage failed transiently: pending, waits for a retry */
    HVD_SETTLE_FAILED,    /* the observed stage failed for good: settle_code */
} HvdSettle;

typedef enum {
    HVD_STEP_CALL,      /* call stage `stage` (its attempt = attempts + 1) */
    HVD_STEP_PROBE,     /* ask vm.find whether stage `stage`'s effect exists */
    HVD_STEP_PREFLIGHT, /* ask host.resources whether the host has what the job names, before `stage` */
    HVD_STEP_RETRY,     /* release the job until a retry: `wait` (retry) after the delay of `attempt` */
    HVD_STEP_WAIT_HOST, /* the host's circuit is open: wait without spending an attempt */
    HVD_STEP_FINISH,    /* end the job: job_status, code, failed_stage, rollback, dead_letter */
    HVD_STEP_RELEASE,   /* shutting down: let the job go for another worker */
} HvdStepVerdict;

typedef struct {
    /* what the observation means for its stage */
    HvdSettle settle;
    int settle_stage;
    const char *settle_code; /* PENDING/FAILED: the code recorded on the stage */
    bool keep_doubt;         /* PENDING: the stage is still in doubt (vm.find must ask again first) */
    /* what to do next */
    HvdStepVerdict verdict;
    int stage;               /* CALL, PROBE */
    int attempt;             /* RETRY: the failed attempt whose bucket applies */
    HvdJobStatus job_status; /* FINISH */
    const char *code;        /* FINISH: envelope code (NULL on success) */
    int failed_stage;        /* FINISH: -1 when no stage failed */
    bool rollback;           /* FINISH: undo what the job made first (hvd_plan_rollback) */
    bool dead_letter;        /* FINISH: send the evidence to the dead-letter queue */
    bool maybe_made;         /* FINISH: the failed stage creates, and its last call may have made it */
} HvdStepDecision;

HvdStepDecision hvd_plan_step(const HvdStepFacts *f);

/* What vm.find's answer (data {vms: [{vm_id, vm_name, job_id, disks, nics}]})
 * says about stage `stage` of job job_id: vm.create's VM is the one stamped
 * with job_id; disk.create's disk and nic.create's adapter belong to the VM
 * vm_id (the adapter named adapter_name when the job names one). FOUND_IT
 * fills *adopted with what the stage makes; message gets one sentence. */
HvdFound hvd_plan_probe_found(const char *stage, const HvdNode *data, const char *job_id, const char *vm_id,
                              const char *adapter_name, HvdNode **adopted, char *message, size_t len);
const char *hvd_step_verdict_name(HvdStepVerdict v);

/* The preflight (§6a): the host's hostresources document (storage_classes,
 * networks, golden_images: lists of {name}) must have the job's storage
 * class, network and image (compared case-insensitively; a list the
 * document lacks is not checked). Adds one error per missing thing, at its
 * field's loc with type host_resource_missing; true when none is missing. */
bool hvd_plan_preflight(const HvdJob *job, const HvdNode *resources, HvdErrors *errs);

/* ---- rollback -------------------------------------------------------------- */

typedef enum {
    HVD_ROLLBACK_NOTHING,          /* nothing was made: nothing to undo */
    HVD_ROLLBACK_DELETE_VM,        /* vm.delete by the recorded vm_id, disks included */
    HVD_ROLLBACK_FIND_THEN_DELETE, /* the VM's creation is in doubt: vm.find by name, delete this job's */
    HVD_ROLLBACK_CANNOT,           /* it may exist but cannot be found safely: say what to check */
} HvdRollbackPlan;

/* vm_known: vm.create's vm_id is recorded; vm_in_doubt: vm.create's outcome
 * is unknown. Rollback follows the outcome-unknown rule of §6a: delete by
 * name only where vm.find can tell this job's VM from another's. */
HvdRollbackPlan hvd_plan_rollback(bool vm_known, bool vm_in_doubt, const HvdAgentCaps *caps);

/* ---- intake ---------------------------------------------------------------- */

typedef struct {
    const char *code;
    char message[256];
} HvdRejection;

/* A job body that decoded but did not validate: unsupported_job_type when
 * the job type is wrong, host_not_allowed when every error is a host
 * outside HVD_ALLOWED_HOSTS, else validation_error. job is what validation
 * filled in (job_type, target_host may be NULL). */
HvdRejection hvd_plan_reject_invalid(const HvdJob *job, const HvdErrors *errs);
/* A message that cannot become a job body: unsupported_content_type when its
 * content type is unknown, message_too_large when over a limit, else
 * malformed_message; why is the decoder's reason. */
HvdRejection hvd_plan_reject_undecodable(bool content_type_known, HvdDecodeStatus ds, const char *why);
/* A valid job whose name another live job of its host has. */
HvdRejection hvd_plan_reject_duplicate(const char *target_host, const char *vm_name);

#endif
