/* Result envelopes (§4) and progress events (§5) as nodes. */
#include "envelope.h"
#include <stdio.h>

const char *hvd_envelope_stage_status(HvdStageStatus s)
{
    return s == HVD_STAGE_PENDING || s == HVD_STAGE_RUNNING ? "not_started" : hvd_stage_status_name(s);
}

static HvdNode *stage_to_node(const HvdStage *s)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "name", s->name);
    hvd_node_map_set_str(m, "status", hvd_envelope_stage_status(s->status));
    hvd_node_map_set_int(m, "attempts", s->attempts);
    hvd_node_map_set_str(m, "started_at", s->started_at);
    hvd_node_map_set_str(m, "finished_at", s->finished_at);
    hvd_node_map_set_str(m, "message", s->message);
    hvd_node_map_set_str(m, "code", s->code);
    hvd_node_map_set_str(m, "agent_code", s->agent_code);
    return m;
}

HvdNode *hvd_envelope_to_node(const HvdEnvelope *env)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "job_id", env->job_id);
    hvd_node_map_set_str(m, "correlation_id", env->correlation_id);
    hvd_node_map_set_str(m, "job_type", env->job_type);
    hvd_node_map_set_str(m, "status", env->status);
    hvd_node_map_set_str(m, "code", env->code);
    hvd_node_map_set_str(m, "message", env->message);
    hvd_node_map_set(m, "data", env->data && env->data->type == HVD_MAP ? hvd_node_clone(env->data) : hvd_node_map());
    HvdNode *stages = hvd_node_array();
    for (size_t i = 0; env->stages && i < env->n_stages; i++)
        hvd_node_array_push(stages, stage_to_node(&env->stages[i]));
    hvd_node_map_set(m, "stages", stages);
    hvd_node_map_set(m, "errors", env->errors ? hvd_errors_to_node(env->errors) : hvd_node_array());
    hvd_node_map_set_int(m, "attempts", env->attempts);
    hvd_node_map_set_str(m, "created_at", env->created_at);
    hvd_node_map_set_str(m, "finished_at", env->finished_at);
    return m;
}

HvdNode *hvd_event_to_node(const HvdEvent *ev)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "job_id", ev->job_id);
    hvd_node_map_set_str(m, "correlation_id", ev->correlation_id);
    hvd_node_map_set_str(m, "stage", ev->stage);
    hvd_node_map_set_str(m, "status", ev->status);
    hvd_node_map_set_int(m, "attempt", ev->attempt);
    hvd_node_map_set_str(m, "at", ev->at);
    hvd_node_map_set_str(m, "message", ev->message);
    return m;
}

void hvd_event_routing_key(const HvdEvent *ev, char *buf, size_t len)
{
    if (!buf || len == 0) return;
    const char *status = ev->status ? ev->status : "unknown";
    if (ev->stage)
        snprintf(buf, len, "stage.%s.%s", ev->stage, status);
    else
        snprintf(buf, len, "job.%s", status);
}
