/* The one shape of a stage and the one shape of a job as hvdeploy records
 * them (contract §8): what the store loads and writes, the runner updates,
 * the envelope reports and the CLI shows. Plain data; every string is owned
 * (malloc'd) and may be NULL. */
#ifndef HVD_RECORD_H
#define HVD_RECORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "status.h"

#define HVD_MAX_STAGES 4

/* Stage names in execution order (§9) and the operations that are not stages. */
#define HVD_STAGE_VM_CREATE "vm.create"
#define HVD_STAGE_DISK_CREATE "disk.create"
#define HVD_STAGE_NIC_CREATE "nic.create"
#define HVD_STAGE_VM_INITIALIZE "vm.initialize"
#define HVD_OP_VM_DELETE "vm.delete"
#define HVD_OP_AGENT_HELLO "agent.hello"
#define HVD_OP_VM_FIND "vm.find"
#define HVD_OP_HOST_RESOURCES "host.resources"

typedef struct {
    char name[24]; /* the operation, e.g. "vm.create" */
    HvdStageStatus status;
    int attempts;
    char *started_at, *finished_at; /* RFC 3339 */
    char *message;                  /* the agent's last message: an error, or the success sentence */
    char *code, *agent_code;        /* the failure's envelope code and the agent's own code */
    char *agent_log;                /* the last agent log lines of a failed attempt */
    char *output_json;              /* what the stage made (vm_id, ...) once it succeeded */
    bool in_doubt; /* an earlier attempt's outcome is unknown (its worker stopped mid-call, or no answer
                    * came from an agent without idempotency) until an answer or vm.find settles it */
} HvdStage;

typedef struct {
    char job_id[37];
    HvdJobStatus status;
    char *job_type, *target_host, *vm_name, *correlation_id, *reply_to, *content_type;
    char *request_json; /* the redacted request */
    char *options_json; /* {"on_failure":..., "deadline":...} */
    char *outputs_json; /* what the stages made so far, merged */
    HvdBuf secret_blob; /* sealed secrets; empty when none or erased */
    char *secret_key_id;
    int attempts; /* runs started, including this claim */
    int takeovers;
    int64_t epoch; /* our fencing token once claimed */
    bool cancel_requested;
    char *code; /* terminal code */
    char *created_at, *updated_at, *finished_at;
    char *lease_owner, *lease_expires_at, *next_run_at;
    HvdWaitReason waiting;
    HvdStage stages[HVD_MAX_STAGES];
    size_t n_stages;
    HvdBuf envelope; /* terminal envelope bytes, once finished */
    bool envelope_sent;
} HvdJobRecord;

void hvd_stage_clear(HvdStage *st);        /* frees the members, zeroes; NULL-safe */
void hvd_job_record_free(HvdJobRecord *r); /* frees the members (wiping the secret blob), zeroes; NULL-safe */
/* Sets a stage string member to a copy of v (NULL clears it). */
void hvd_stage_set(char **member, const char *v);

/* The stage a job is at: the running one, else the first not succeeded;
 * NULL when every stage succeeded (or there are none). */
const HvdStage *hvd_job_current_stage(const HvdJobRecord *r);
/* Index of the first stage not yet succeeded, n_stages when all did. */
size_t hvd_job_first_open_stage(const HvdJobRecord *r);
/* Index of the named stage, or -1. */
int hvd_job_stage_index(const HvdJobRecord *r, const char *name);
bool hvd_job_any_stage(const HvdJobRecord *r, HvdStageStatus s);

#endif
