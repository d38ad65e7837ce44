/* Lifetime and small queries of the stage and job records (record.h). */
#include <stdlib.h>
#include <string.h>
#include "record.h"

void hvd_stage_clear(HvdStage *st)
{
    if (!st) return;
    free(st->started_at);
    free(st->finished_at);
    free(st->message);
    free(st->code);
    free(st->agent_code);
    free(st->agent_log);
    free(st->output_json);
    memset(st, 0, sizeof *st);
}

void hvd_stage_set(char **member, const char *v)
{
    char *copy = v ? hvd_xstrdup(v) : NULL;
    free(*member);
    *member = copy;
}

void hvd_job_record_free(HvdJobRecord *r)
{
    if (!r) return;
    free(r->job_type);
    free(r->target_host);
    free(r->vm_name);
    free(r->correlation_id);
    free(r->reply_to);
    free(r->content_type);
    free(r->request_json);
    free(r->options_json);
    free(r->outputs_json);
    if (r->secret_blob.data) explicit_bzero(r->secret_blob.data, r->secret_blob.len);
    hvd_buf_free(&r->secret_blob);
    free(r->secret_key_id);
    free(r->code);
    free(r->created_at);
    free(r->updated_at);
    free(r->finished_at);
    free(r->lease_owner);
    free(r->lease_expires_at);
    free(r->next_run_at);
    for (size_t i = 0; i < HVD_MAX_STAGES; i++) hvd_stage_clear(&r->stages[i]);
    hvd_buf_free(&r->envelope);
    memset(r, 0, sizeof *r);
}

const HvdStage *hvd_job_current_stage(const HvdJobRecord *r)
{
    for (size_t i = 0; i < r->n_stages; i++)
        if (r->stages[i].status == HVD_STAGE_RUNNING) return &r->stages[i];
    size_t i = hvd_job_first_open_stage(r);
    return i < r->n_stages ? &r->stages[i] : NULL;
}

size_t hvd_job_first_open_stage(const HvdJobRecord *r)
{
    size_t i = 0;
    while (i < r->n_stages && r->stages[i].status == HVD_STAGE_SUCCEEDED) i++;
    return i;
}

int hvd_job_stage_index(const HvdJobRecord *r, const char *name)
{
    for (size_t i = 0; name && i < r->n_stages; i++)
        if (strcmp(r->stages[i].name, name) == 0) return (int)i;
    return -1;
}

bool hvd_job_any_stage(const HvdJobRecord *r, HvdStageStatus s)
{
    for (size_t i = 0; i < r->n_stages; i++)
        if (r->stages[i].status == s) return true;
    return false;
}
