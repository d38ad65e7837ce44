/* hvdeployctl status JOB_ID: a job, its stages with times, attempts and last
 * error; --events adds its timeline from job_events, --follow prints its
 * stage transitions and live output until it ends. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "amqp_util.h"
#include "codec.h"
#include "dbutil.h"
#include "follow.h"
#include "store_view.h"

static void status_usage(FILE *f)
{
    fputs("usage: hvdeployctl status JOB_ID [--events | --follow] [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Shows a job from PostgreSQL: its status, host, VM name, attempts, lease or wait,\n"
          "and each planned stage with its status, attempts, start and end times and last\n"
          "error. Times are RFC 3339 UTC.\n"
          "\n"
          "options:\n"
          "  --events                also the job's timeline: every recorded transition of the job\n"
          "                          and its stages (job_events), oldest first\n"
          "  --follow                print the output lines stored so far, then the job's stage\n"
          "                          transitions and live output lines from the events exchange\n"
          "                          ($HVD_AMQP_URL) until it ends, then its status (json: one\n"
          "                          object per event, the status last)\n"
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

static HvdNode *status_node(const HvdJobRecord *r)
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
    return m;
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

/* ---- the timeline ---- */

static HvdNode *events_node(const HvdJobEvent *e, size_t n)
{
    HvdNode *arr = hvd_node_array();
    for (size_t i = 0; i < n; i++) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_int(m, "id", e[i].id);
        hvd_node_map_set_str(m, "at", e[i].at);
        hvd_node_map_set_str(m, "stage", e[i].stage);
        hvd_node_map_set_str(m, "from_status", e[i].from_status);
        hvd_node_map_set_str(m, "to_status", e[i].to_status);
        hvd_node_map_set_int(m, "attempt", e[i].attempt);
        hvd_node_map_set_str(m, "worker", e[i].worker);
        hvd_node_map_set_str(m, "detail", e[i].detail);
        hvd_node_array_push(arr, m);
    }
    return arr;
}

static void print_events_human(const HvdJobEvent *e, size_t n)
{
    printf("\ntimeline (%zu event%s)\n", n, n == 1 ? "" : "s");
    if (n == 0) return;
    printf("%-24s %-14s %-24s %-7s %-24s %s\n", "AT", "STAGE", "TRANSITION", "ATTEMPT", "WORKER", "DETAIL");
    for (size_t i = 0; i < n; i++) {
        char tr[64];
        snprintf(tr, sizeof tr, "%s -> %s", e[i].from_status ? e[i].from_status : "(new)", dash(e[i].to_status));
        char *detail = hvd_xstrdup(e[i].detail ? e[i].detail : "");
        for (char *p = detail; *p; p++)
            if ((unsigned char)*p < 0x20) *p = ' ';
        printf("%-24s %-14s %-24s %-7d %-24s %s\n", dash(e[i].at), e[i].stage ? e[i].stage : "(job)", tr, e[i].attempt,
               dash(e[i].worker), detail);
        free(detail);
    }
}

typedef struct {
    CtlOutput output;
    bool events, follow;
    const char *job_id;
} StatusArgs;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, StatusArgs *a)
{
    static const struct option longopts[] = {
        {"events", no_argument, NULL, 'e'},
        {"follow", no_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e': a->events = true; break;
        case 'f': a->follow = true; break;
        case 'o':
            if (!ctl_parse_output("status", optarg, &a->output)) return CTL_EXIT_USAGE;
            break;
        case 'h': status_usage(stdout); return CTL_EXIT_OK;
        default: status_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error("status", argc - optind == 0 ? "expected JOB_ID" : "expected exactly one JOB_ID");
        status_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (a->events && a->follow) {
        ctl_error("status", "--events and --follow exclude each other");
        return CTL_EXIT_USAGE;
    }
    a->job_id = argv[optind];
    return ctl_db_job_id_ok("status", a->job_id) ? -1 : CTL_EXIT_USAGE;
}

static int show(HvdStore *s, const StatusArgs *a)
{
    HvdJobRecord rec = {0};
    bool found = false;
    char err[1024] = "";
    int rc;
    HvdStoreStatus st = hvd_store_get(s, a->job_id, &found, &rec, err, sizeof err);
    HvdJobEvent *ev = NULL;
    size_t n_ev = 0;
    if (st == HVD_STORE_OK && found && a->events)
        st = hvd_store_job_events(s, a->job_id, 0, 100000, &ev, &n_ev, err, sizeof err);
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("status", st, err);
    } else if (!found) {
        ctl_error("status", "job %s not found", a->job_id);
        rc = CTL_EXIT_FAILED;
    } else {
        if (a->output == CTL_OUTPUT_JSON) {
            HvdNode *m = status_node(&rec);
            if (a->events) hvd_node_map_set(m, "events", events_node(ev, n_ev));
            ctl_db_print_json(m);
        } else {
            print_human(&rec);
            if (a->events) print_events_human(ev, n_ev);
        }
        rc = job_failed(&rec) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
    }
    hvd_job_events_free(ev, n_ev);
    hvd_job_record_free(&rec);
    return rc;
}

int ctl_cmd_status(int argc, char **argv)
{
    HvdConfig cfg;
    StatusArgs a = {.output = CTL_OUTPUT_HUMAN};
    int rc = CTL_EXIT_USAGE;
    HvdStore *s = NULL;
    if (!ctlq_load_config("status", &argc, argv, &cfg)) goto out;
    rc = parse_args(argc, argv, &a);
    if (rc >= 0) goto out;
    rc = CTL_EXIT_USAGE;
    s = ctl_db_open("status", cfg.pg_dsn);
    if (!s) goto out;
    if (a.follow) {
        char final[16];
        rc = ctl_follow_job("status", &cfg, s, a.job_id, a.output, final);
        if (rc >= 0) goto out;
        if (a.output == CTL_OUTPUT_HUMAN) printf("\n");
    }
    rc = show(s, &a);
out:
    hvd_store_close(s);
    hvd_config_free(&cfg);
    return rc;
}
