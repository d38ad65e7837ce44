/* hvdeployctl status JOB_ID: a job, its stages with times, attempts and last error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "dbutil.h"

static void status_usage(FILE *f)
{
    fputs("usage: hvdeployctl status JOB_ID [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Shows a job from PostgreSQL: its status, host, VM name, attempts, lease or wait,\n"
          "and each planned stage with its status, attempts, start and end times and last\n"
          "error. Times are RFC 3339 UTC.\n"
          "\n"
          "options:\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human output format (default human)\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 the job exists and has not failed (queued, running, retrying,\n"
          "succeeded), 1 it failed or was cancelled, or is unknown, 2 usage or connection error.\n",
          f);
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

static bool job_failed(const HvdJobRecord *r)
{
    return r->status == HVD_JOB_FAILED || r->status == HVD_JOB_CANCELLED;
}

/* The stage whose error is the job's "last error": the failed stage, else
 * the last stage that has not succeeded and has an error recorded (a retry
 * wait). A stage that succeeded keeps its agent's message in the same
 * column, which is no error. */
static const HvdStage *last_error_stage(const HvdJobRecord *r)
{
    const HvdStage *best = NULL;
    for (size_t i = 0; i < r->n_stages; i++) {
        const HvdStage *st = &r->stages[i];
        if (st->status == HVD_STAGE_FAILED) return st;
        if (st->status == HVD_STAGE_SUCCEEDED || st->status == HVD_STAGE_ROLLED_BACK) continue;
        if (st->message || st->code || st->agent_code) best = st;
    }
    return best;
}

static char *stage_error_text(const HvdStage *st)
{
    if (!st || !(st->message || st->code || st->agent_code)) return hvd_xstrdup("");
    HvdBuf b = {0};
    if (st->code) hvd_buf_puts(&b, st->code);
    if (st->agent_code) hvd_buf_printf(&b, "%s%s", b.len ? "/" : "", st->agent_code);
    if (st->message) hvd_buf_printf(&b, "%s%s", b.len ? ": " : "", st->message);
    /* one line in a table */
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\n' || b.data[i] == '\r' || b.data[i] == '\t') b.data[i] = ' ';
    return hvd_buf_steal(&b);
}

static HvdNode *json_or_nil(const char *text)
{
    HvdNode *n = NULL;
    if (text && hvd_json_to_node(text, strlen(text), 0, &n, NULL, 0) == HVD_DECODE_OK) return n;
    return hvd_node_str(text);
}

static void print_json(const HvdJobRecord *r)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "job_id", r->job_id);
    hvd_node_map_set_str(m, "status", hvd_job_status_name(r->status));
    hvd_node_map_set_str(m, "code", r->code);
    hvd_node_map_set_str(m, "job_type", r->job_type);
    hvd_node_map_set_str(m, "target_host", r->target_host);
    hvd_node_map_set_str(m, "vm_name", r->vm_name);
    hvd_node_map_set_str(m, "correlation_id", r->correlation_id);
    hvd_node_map_set_str(m, "reply_to", r->reply_to);
    hvd_node_map_set_int(m, "attempts", r->attempts);
    hvd_node_map_set_bool(m, "cancel_requested", r->cancel_requested);
    hvd_node_map_set_str(m, "created_at", r->created_at);
    hvd_node_map_set_str(m, "updated_at", r->updated_at);
    hvd_node_map_set_str(m, "finished_at", r->finished_at);
    hvd_node_map_set_str(m, "lease_owner", r->lease_owner);
    hvd_node_map_set_str(m, "lease_expires_at", r->lease_expires_at);
    hvd_node_map_set_int(m, "lease_epoch", r->epoch);
    hvd_node_map_set_str(m, "waiting_reason", hvd_wait_reason_name(r->waiting));
    hvd_node_map_set_str(m, "next_run_at", r->next_run_at);
    hvd_node_map_set(m, "options", r->options_json ? json_or_nil(r->options_json) : hvd_node_nil());
    hvd_node_map_set(m, "outputs", r->outputs_json ? json_or_nil(r->outputs_json) : hvd_node_nil());
    hvd_node_map_set_bool(m, "secrets_retained", r->secret_blob.len > 0);
    hvd_node_map_set_bool(m, "envelope_stored", r->envelope.len > 0);
    hvd_node_map_set_bool(m, "envelope_sent", r->envelope_sent);
    HvdNode *stages = hvd_node_array();
    for (size_t i = 0; i < r->n_stages; i++) {
        const HvdStage *st = &r->stages[i];
        HvdNode *s = hvd_node_map();
        hvd_node_map_set_str(s, "name", st->name);
        hvd_node_map_set_str(s, "status", hvd_stage_status_name(st->status));
        hvd_node_map_set_int(s, "attempts", st->attempts);
        hvd_node_map_set_str(s, "started_at", st->started_at);
        hvd_node_map_set_str(s, "finished_at", st->finished_at);
        hvd_node_map_set_str(s, "message", st->message);
        hvd_node_map_set_str(s, "code", st->code);
        hvd_node_map_set_str(s, "agent_code", st->agent_code);
        hvd_node_map_set(s, "output", st->output_json ? json_or_nil(st->output_json) : hvd_node_nil());
        hvd_node_map_set_str(s, "agent_log", st->agent_log);
        hvd_node_array_push(stages, s);
    }
    hvd_node_map_set(m, "stages", stages);
    const HvdStage *le = last_error_stage(r);
    char *last = stage_error_text(le);
    hvd_node_map_set_str(m, "last_error", *last ? last : NULL);
    free(last);
    ctl_db_print_json(m);
}

static void print_human(const HvdJobRecord *r)
{
    const char *running = NULL;
    for (size_t i = 0; i < r->n_stages; i++)
        if (r->stages[i].status == HVD_STAGE_RUNNING) running = r->stages[i].name;
    printf("job        %s\n", r->job_id);
    printf("status     %s", hvd_job_status_name(r->status));
    if (r->code)
        printf(" (%s)", r->code);
    else if (running)
        printf(" (stage %s)", running);
    if (r->cancel_requested && !r->finished_at) printf(", cancel requested");
    printf("\n");
    printf("type       %s\n", dash(r->job_type));
    printf("host       %s\n", dash(r->target_host));
    printf("vm         %s\n", dash(r->vm_name));
    printf("attempts   %d\n", r->attempts);
    printf("created    %s\n", dash(r->created_at));
    printf("updated    %s\n", dash(r->updated_at));
    printf("finished   %s\n", dash(r->finished_at));
    if (r->status == HVD_JOB_RUNNING)
        printf("lease      %s until %s (epoch %lld)\n", dash(r->lease_owner), dash(r->lease_expires_at),
               (long long)r->epoch);
    if (r->waiting != HVD_WAIT_NONE)
        printf("waiting    %s, next try at %s\n", hvd_wait_reason_name(r->waiting), dash(r->next_run_at));
    else if (r->status == HVD_JOB_QUEUED || r->status == HVD_JOB_RETRYING)
        printf("waiting    next try at %s\n", dash(r->next_run_at));
    if (r->finished_at)
        printf("envelope   %s\n", r->envelope.len == 0 ? "none"
                                  : r->envelope_sent   ? "sent"
                                                       : "stored, not yet confirmed sent");
    if (r->outputs_json && strcmp(r->outputs_json, "{}") != 0) printf("outputs    %s\n", r->outputs_json);
    const HvdStage *le = last_error_stage(r);
    char *last = stage_error_text(le);
    if (*last) printf("last error %s: %s\n", le->name, last);
    free(last);

    if (r->n_stages == 0) {
        printf("\nno stages\n");
        return;
    }
    printf("\n%-14s %-12s %-8s %-24s %-24s %s\n", "STAGE", "STATUS", "ATTEMPTS", "STARTED", "FINISHED", "MESSAGE");
    for (size_t i = 0; i < r->n_stages; i++) {
        const HvdStage *st = &r->stages[i];
        char *e = stage_error_text(st);
        printf("%-14s %-12s %-8d %-24s %-24s %s\n", st->name, hvd_stage_status_name(st->status), st->attempts,
               dash(st->started_at), dash(st->finished_at), e);
        free(e);
    }
}

int ctl_cmd_status(int argc, char **argv)
{
    CtlOutput output;
    const char *job_id;
    HvdStore *s;
    int rc = ctl_db_job_command("status", argc, argv, status_usage, &output, &job_id, &s);
    if (rc >= 0) return rc;
    HvdJobRecord rec = {0};
    bool found = false;
    char err[1024] = "";
    HvdStoreStatus st = hvd_store_get(s, job_id, &found, &rec, err, sizeof err);
    hvd_store_close(s);
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("status", st, err);
    } else if (!found) {
        ctl_error("status", "job %s not found", job_id);
        rc = CTL_EXIT_FAILED;
    } else {
        if (output == CTL_OUTPUT_JSON)
            print_json(&rec);
        else
            print_human(&rec);
        rc = job_failed(&rec) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
    }
    hvd_job_record_free(&rec);
    return rc;
}
