/* The result envelope (§4) and progress events (§5) as nodes, ready for
 * hvd_encode in the job's content type. Pure: timestamps come in as text. */
#ifndef HVD_ENVELOPE_H
#define HVD_ENVELOPE_H
#include <stddef.h>
#include "model.h"
#include "node.h"
#include "record.h"

typedef struct {
    const char *job_id; /* NULL when the message could not be decoded */
    const char *correlation_id;
    const char *job_type;
    const char *status; /* success, partial, error */
    const char *code;   /* NULL on success */
    const char *message;
    const HvdNode *data;    /* map or NULL (encoded as an empty map) */
    const HvdStage *stages; /* reported as {name, status, attempts, started_at, finished_at, message, code,
                             * agent_code}; pending and running stages are not_started */
    size_t n_stages;
    const HvdErrors *errors; /* NULL = [] */
    int64_t attempts;
    const char *created_at;
    const char *finished_at;
} HvdEnvelope;

/* The envelope name of a stage status: pending and running are not_started. */
const char *hvd_envelope_stage_status(HvdStageStatus s);

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

#endif
