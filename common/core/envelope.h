/* The result envelope (§4) and progress events (§5) as nodes, ready for
 * hvd_encode in the job's content type. Pure: timestamps come in as text. */
#ifndef HVD_ENVELOPE_H
#define HVD_ENVELOPE_H
#include <stddef.h>
#include "model.h"
#include "node.h"

/* Stage names in execution order. */
#define HVD_STAGE_VM_CREATE "vm.create"
#define HVD_STAGE_DISK_CREATE "disk.create"
#define HVD_STAGE_NIC_CREATE "nic.create"
#define HVD_STAGE_VM_INITIALIZE "vm.initialize"
#define HVD_OP_VM_DELETE "vm.delete"

typedef struct {
    const char *name;
    const char *status; /* succeeded, failed, not_started, rolled_back */
    int64_t attempts;
    const char *started_at; /* RFC 3339 or NULL */
    const char *finished_at;
    const char *message;
    const char *code;
    const char *agent_code;
} HvdStageResult;

typedef struct {
    const char *job_id; /* NULL when the message could not be decoded */
    const char *correlation_id;
    const char *job_type;
    const char *status; /* success, partial, error */
    const char *code;   /* NULL on success */
    const char *message;
    const HvdNode *data; /* map or NULL (encoded as an empty map) */
    const HvdStageResult *stages;
    size_t n_stages;
    const HvdErrors *errors; /* NULL = [] */
    int64_t attempts;
    const char *created_at;
    const char *finished_at;
} HvdEnvelope;

/* Every key of §4, always present, in this order: job_id, correlation_id,
 * job_type, status, code, message, data, stages, errors, attempts,
 * created_at, finished_at. */
HvdNode *hvd_envelope_to_node(const HvdEnvelope *env);

typedef struct {
    const char *job_id, *correlation_id;
    const char *stage; /* NULL for a job transition */
    const char *status;
    int64_t attempt;
    const char *at;
    const char *message;
} HvdEvent;
/* {job_id, correlation_id, stage, status, attempt, at, message} */
HvdNode *hvd_event_to_node(const HvdEvent *ev);
/* "job.<status>" or "stage.<stage>.<status>" into buf. */
void hvd_event_routing_key(const HvdEvent *ev, char *buf, size_t len);

/* Planned stages of a job (§9) in order: vm.create always, then disk.create,
 * nic.create, vm.initialize when their spec is present. Returns the count
 * (1..4) and fills names with static strings. */
size_t hvd_plan_stages(const HvdJob *job, const char *names[4]);

#endif
