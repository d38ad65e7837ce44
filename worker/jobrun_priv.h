/* What the jobrun*.c files share: one running job's context, and the calls
 * between the loop (jobrun.c), the agent calls (jobcall.c) and the job's
 * ends and waits (jobend.c). */
#ifndef HVD_W_JOBRUN_PRIV_H
#define HVD_W_JOBRUN_PRIV_H
#include "codec.h"
#include "context.h"
#include "log.h"
#include "model.h"
#include "plan.h"
#include "record.h"

#define JOBRUN_MAX_SECRETS 8

typedef struct {
    Worker *w;
    HvdJobRecord *rec; /* the job as recorded; its stages are updated as they run */
    HvdJob job;        /* the validated request, secrets restored: never log */
    bool job_valid;
    HvdNode *body;    /* rebuilt request body, secrets restored: never log */
    HvdNode *outputs; /* vm_id, disk_id, ... of succeeded stages */
    HvdContentType ct;
    HvdLogCtx log;
    int64_t epoch;
    HvdAgentCaps caps;                 /* what the host's agent honours (raw until known) */
    bool caps_known;                   /* its agent answered agent.hello (or HVD_AGENT_PROFILE fixes it) */
    bool preflight_done;               /* host.resources was asked in this run */
    HvdErrors errors;                  /* validation errors of the preflight, for the envelope */
    int unrecorded;                    /* a stage that succeeded and is not yet recorded, or -1 */
    char why[512];                     /* why the job could not be rebuilt */
    char *secrets[JOBRUN_MAX_SECRETS]; /* values registered with the log guard */
    size_t n_secrets;
} JobRun;

/* What one agent call answered. */
typedef struct {
    HvdOutcome outcome;
    char message[512];
    char *agent_code;
    HvdNode *data;  /* the answer's data (owned), an empty map when none */
    char *log_tail; /* last agent log lines */
    int64_t elapsed_ms;
} CallResult;

/* ---- jobcall.c ---- */
/* Calls operation for the job (stage names the stage it serves, attempt its
 * attempt number); res is always filled (free with call_result_free). */
void call_agent(JobRun *r, const char *operation, const char *stage, int attempt, CallResult *res);
void call_result_free(CallResult *c);
/* Asks vm.find what exists of stage i's effect; fills *found and, when it
 * found it, *adopted with what the stage would have made. */
HvdOutcome call_probe(JobRun *r, int i, HvdFound *found, HvdNode **adopted, char *message, size_t len);

/* Asks host.resources whether the host has what the job names; errors get
 * one entry per missing thing. Returns the call's outcome; *ok is the answer. */
HvdOutcome call_preflight(JobRun *r, bool *ok, HvdErrors *errors);

/* ---- jobend.c ---- */
void jobrun_event(JobRun *r, const char *stage, const char *status, int64_t attempt, const char *message);
/* Ends the job as decision d says (rollback first when it asks). */
void jobrun_finish(JobRun *r, const HvdStepDecision *d);
/* Stage i waits for its retry (reason retry) or its host (circuit_open,
 * wait_ms from the breaker). */
void jobrun_wait(JobRun *r, int i, HvdWaitReason reason, int attempt, int64_t wait_ms);
void jobrun_release(JobRun *r);
/* Records the unrecorded success, if any (no next stage). False when the
 * lease is lost or the database refused. */
bool jobrun_flush(JobRun *r);

#endif
