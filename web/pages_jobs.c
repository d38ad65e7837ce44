/* The jobs list (filters by status, host and a search, paging) and a job's
 * page: its stages, its live output, its timeline, the stored (redacted)
 * request and the envelope decoded with secrets masked. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "amqp_util.h"
#include "codec.h"
#include "store_view.h"
#include "html.h"
#include "auth.h"
#include "pages.h"
#include "request.h"

#define OUTPUT_SHOWN 1000 /* stored lines shown on a job's page */

static const char *const STATUSES[] = {"queued", "running", "retrying", "succeeded", "failed", "cancelled", NULL};

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

static void job_summary_row(HvdBuf *b, const HvdJobRecord *j)
{
    html_printf(b, "<tr><td class=\"id\"><a href=\"/jobs/%s\">%s</a></td><td>", j->job_id, j->job_id);
    html_badge(b, hvd_job_status_name(j->status));
    const HvdStage *cur = hvd_job_current_stage(j);
    html_printf(b, "</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
                dash(j->target_host), dash(j->vm_name), dash(cur ? cur->name : NULL), j->attempts, dash(j->created_at),
                dash(j->code));
}

/* A link to the list with the current filters and another page. */
static void page_link(HvdBuf *b, const char *status, const char *host, const char *q, int page, const char *label)
{
    hvd_buf_puts(b, "<a class=\"page\" href=\"/jobs?page=");
    hvd_buf_printf(b, "%d", page);
    if (status) hvd_buf_puts(b, "&amp;status="), html_url(b, status);
    if (host) hvd_buf_puts(b, "&amp;host="), html_url(b, host);
    if (q) hvd_buf_puts(b, "&amp;q="), html_url(b, q);
    html_printf(b, "\">%s</a>", label);
}

void page_jobs(WebReq *r)
{
    const char *status = web_arg(r, "status"), *host = web_arg(r, "host"), *q = web_arg(r, "q");
    const char *page_s = web_arg(r, "page");
    int page = page_s ? atoi(page_s) : 1;
    if (page < 1 || page > 100000) page = 1;
    bool status_ok = !status;
    for (size_t i = 0; status && STATUSES[i]; i++) status_ok |= strcmp(status, STATUSES[i]) == 0;
    if (!status_ok) return html_error(r, MHD_HTTP_BAD_REQUEST, "Unknown status filter.");

    HvdListFilter f = {.status = status,
                       .host = host,
                       .search = q,
                       .limit = (size_t)r->web->page_size + 1,
                       .offset = (size_t)(page - 1) * (size_t)r->web->page_size};
    HvdJobRecord *v = NULL;
    size_t n = 0;
    char err[512] = "";
    if (hvd_store_list_filtered(r->web->store, &f, &v, &n, err, sizeof err) != HVD_STORE_OK)
        return html_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The database cannot be read right now.");
    HvdBuf *b = &r->body;
    html_begin(r, "Jobs", "jobs");
    hvd_buf_puts(b, "<h1>Jobs</h1>\n<form class=\"filters\" method=\"get\" action=\"/jobs\">"
                    "<label>Status <select name=\"status\"><option value=\"\">any</option>");
    for (size_t i = 0; STATUSES[i]; i++)
        html_printf(b, "<option%s>%s</option>", status && strcmp(status, STATUSES[i]) == 0 ? " selected" : "",
                    STATUSES[i]);
    html_printf(b,
                "</select></label> <label>Host <input name=\"host\" value=\"%s\"></label> "
                "<label>Search <input name=\"q\" value=\"%s\" placeholder=\"id, VM, host, correlation id\"></label> "
                "<button type=\"submit\">Filter</button></form>\n",
                host ? host : "", q ? q : "");
    size_t shown = n > (size_t)r->web->page_size ? (size_t)r->web->page_size : n;
    if (shown == 0) {
        html_printf(b, "<p class=\"empty\">No jobs%s.</p>", status || host || q ? " match" : " yet");
    } else {
        hvd_buf_puts(b, "<table class=\"jobs\"><thead><tr><th>Job</th><th>Status</th><th>Host</th><th>VM</th>"
                        "<th>Stage</th><th>Attempts</th><th>Created</th><th>Code</th></tr></thead><tbody>\n");
        for (size_t i = 0; i < shown; i++) job_summary_row(b, &v[i]);
        hvd_buf_puts(b, "</tbody></table>\n");
    }
    hvd_buf_puts(b, "<p class=\"pager\">");
    if (page > 1) page_link(b, status, host, q, page - 1, "← newer");
    html_printf(b, " <span>page %d</span> ", page);
    if (n > shown) page_link(b, status, host, q, page + 1, "older →");
    hvd_buf_puts(b, "</p>\n");
    html_end(r);
    hvd_job_records_free(v, n);
}

/* ---- one job ---- */

static void pre_json(HvdBuf *b, const HvdNode *n)
{
    HvdNode *red = ctlq_redact_all(n);
    char *pretty = ctlq_pretty_json(red);
    hvd_buf_puts(b, "<pre class=\"json\">");
    html_esc(b, pretty);
    hvd_buf_puts(b, "</pre>\n");
    free(pretty);
    hvd_node_free(red);
}

static void section_stages(HvdBuf *b, const HvdJobRecord *rec)
{
    hvd_buf_puts(b, "<h2>Stages</h2><table class=\"stages\"><thead><tr><th>Stage</th><th>Status</th>"
                    "<th>Attempts</th><th>Started</th><th>Finished</th><th>Message</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < rec->n_stages; i++) {
        const HvdStage *s = &rec->stages[i];
        html_printf(b, "<tr><td>%s</td><td>", s->name);
        html_badge(b, hvd_stage_status_name(s->status));
        html_printf(b, "</td><td>%d</td><td>%s</td><td>%s</td><td>", s->attempts, dash(s->started_at),
                    dash(s->finished_at));
        if (s->code || s->agent_code)
            html_printf(b, "<span class=\"code\">%s%s%s</span> ", s->code ? s->code : "",
                        s->code && s->agent_code ? "/" : "", s->agent_code ? s->agent_code : "");
        html_esc(b, s->message);
        if (s->agent_log) html_printf(b, "<pre class=\"log\">%s</pre>", s->agent_log);
        hvd_buf_puts(b, "</td></tr>\n");
    }
    hvd_buf_puts(b, "</tbody></table>\n");
}

/* The stored output lines; returns the last seq shown. */
static int64_t section_output(WebReq *r, const HvdJobRecord *rec, bool live)
{
    HvdBuf *b = &r->body;
    HvdOutputRow *rows = NULL;
    size_t n = 0;
    char err[256];
    int64_t last = 0;
    (void)hvd_store_output_read(r->web->store, rec->job_id, 0, OUTPUT_SHOWN, &rows, &n, err, sizeof err);
    html_printf(b, "<h2>Output</h2><div id=\"output\" class=\"output\" data-live=\"%s\">", live ? "1" : "0");
    if (n == 0) hvd_buf_puts(b, "<p class=\"empty\" id=\"output-empty\">No output yet.</p>");
    for (size_t i = 0; i < n; i++) {
        html_printf(
            b, "<div class=\"line %s\"><span class=\"meta\">%s #%d</span> <span class=\"text\">%s</span></div>\n",
            strcmp(rows[i].stream, "stderr") == 0 ? "err" : "out", rows[i].stage, rows[i].attempt, rows[i].line);
        last = rows[i].seq;
    }
    hvd_buf_puts(b, "</div>\n");
    hvd_output_rows_free(rows, n);
    return last;
}

static int64_t section_timeline(WebReq *r, const char *job_id)
{
    HvdBuf *b = &r->body;
    HvdJobEvent *ev = NULL;
    size_t n = 0;
    char err[256];
    int64_t last = 0;
    (void)hvd_store_job_events(r->web->store, job_id, 0, 10000, &ev, &n, err, sizeof err);
    hvd_buf_puts(b, "<h2>Timeline</h2><table class=\"timeline\"><thead><tr><th>At</th><th>Stage</th>"
                    "<th>Transition</th><th>Attempt</th><th>Worker</th><th>Detail</th></tr></thead>"
                    "<tbody id=\"timeline\">\n");
    for (size_t i = 0; i < n; i++) {
        html_printf(b, "<tr><td>%s</td><td>%s</td><td>%s → %s</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
                    dash(ev[i].at), ev[i].stage ? ev[i].stage : "(job)",
                    ev[i].from_status ? ev[i].from_status : "(new)", dash(ev[i].to_status), ev[i].attempt,
                    dash(ev[i].worker), ev[i].detail ? ev[i].detail : "");
        last = ev[i].id;
    }
    hvd_buf_puts(b, "</tbody></table>\n");
    hvd_job_events_free(ev, n);
    return last;
}

static void section_actions(WebReq *r, const HvdJobRecord *rec, bool live)
{
    if (!r->web->allow_actions) return;
    HvdBuf *b = &r->body;
    hvd_buf_puts(b, "<div class=\"actions\">");
    if (live && !rec->cancel_requested) {
        html_printf(b, "<form method=\"post\" action=\"/jobs/%s/cancel\">", rec->job_id);
        auth_csrf_field(r);
        hvd_buf_puts(b, "<button type=\"submit\" id=\"cancel\" class=\"danger\">Cancel job</button></form>");
    }
    if (rec->status == HVD_JOB_FAILED) {
        html_printf(b, "<form method=\"post\" action=\"/jobs/%s/retry\">", rec->job_id);
        auth_csrf_field(r);
        hvd_buf_puts(b, "<button type=\"submit\" id=\"retry\">Retry from the failed stage</button></form>");
    }
    hvd_buf_puts(b, "</div>\n");
}

void page_job(WebReq *r, const char *job_id)
{
    if (!web_uuid_ok(job_id)) return html_error(r, MHD_HTTP_NOT_FOUND, "That is not a job id.");
    HvdJobRecord rec = {0};
    bool found = false;
    char err[512] = "";
    if (hvd_store_get(r->web->store, job_id, &found, &rec, err, sizeof err) != HVD_STORE_OK) {
        hvd_job_record_free(&rec);
        return html_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The database cannot be read right now.");
    }
    if (!found) {
        hvd_job_record_free(&rec);
        return html_error(r, MHD_HTTP_NOT_FOUND, "No such job.");
    }
    bool live = !rec.finished_at;
    HvdBuf *b = &r->body;
    html_begin(r, "Job", "jobs");
    html_printf(b, "<h1>Job <span class=\"id\">%s</span> ", rec.job_id);
    hvd_buf_puts(b, "<span id=\"job-status\">");
    html_badge(b, hvd_job_status_name(rec.status));
    hvd_buf_puts(b, "</span></h1>\n");
    const char *done = web_arg(r, "done");
    if (done && strcmp(done, "cancel") == 0)
        hvd_buf_puts(b, "<p class=\"notice\" id=\"notice\">Cancel requested: the job stops before its next stage.</p>");
    else if (done && strcmp(done, "retry") == 0)
        hvd_buf_puts(b, "<p class=\"notice\" id=\"notice\">The job resumes from its failed stage.</p>");
    html_printf(b,
                "<dl class=\"facts\"><dt>Host</dt><dd>%s</dd><dt>VM</dt><dd>%s</dd><dt>Code</dt><dd>%s</dd>"
                "<dt>Attempts</dt><dd>%d</dd><dt>Correlation id</dt><dd>%s</dd><dt>Created</dt><dd>%s</dd>"
                "<dt>Updated</dt><dd>%s</dd><dt>Finished</dt><dd>%s</dd>",
                dash(rec.target_host), dash(rec.vm_name), dash(rec.code), rec.attempts, dash(rec.correlation_id),
                dash(rec.created_at), dash(rec.updated_at), dash(rec.finished_at));
    if (rec.waiting != HVD_WAIT_NONE)
        html_printf(b, "<dt>Waiting</dt><dd>%s, next try at %s</dd>", hvd_wait_reason_name(rec.waiting),
                    dash(rec.next_run_at));
    if (rec.cancel_requested && live) hvd_buf_puts(b, "<dt>Cancel</dt><dd>requested</dd>");
    hvd_buf_puts(b, "</dl>\n");
    section_actions(r, &rec, live);
    section_stages(b, &rec);
    int64_t last_seq = section_output(r, &rec, live);
    int64_t last_ev = section_timeline(r, rec.job_id);
    if (live)
        html_printf(b,
                    "<p class=\"live\" id=\"live\" data-stream=\"/jobs/%s/stream?after=%lld&amp;ev=%lld\">live</p>\n",
                    rec.job_id, (long long)last_seq, (long long)last_ev);

    HvdNode *req = NULL;
    if (rec.request_json &&
        hvd_json_to_node(rec.request_json, strlen(rec.request_json), 0, &req, NULL, 0) == HVD_DECODE_OK) {
        hvd_buf_puts(b, "<h2>Request <small>(as stored: secrets masked)</small></h2>");
        pre_json(b, req);
    }
    hvd_node_free(req);
    if (rec.envelope.len) {
        HvdNode *env = NULL;
        HvdContentType ct = hvd_content_type_parse(rec.content_type);
        if (ct == HVD_CT_UNKNOWN) ct = HVD_CT_MSGPACK;
        html_printf(b, "<h2>Envelope <small>(%s, %s)</small></h2>", rec.content_type ? rec.content_type : "?",
                    rec.envelope_sent ? "sent" : "stored, not yet confirmed sent");
        if (hvd_decode(ct, rec.envelope.data, rec.envelope.len, &env, err, sizeof err) == HVD_DECODE_OK)
            pre_json(b, env);
        else
            hvd_buf_puts(b, "<p class=\"error\">The stored envelope cannot be decoded.</p>");
        hvd_node_free(env);
    }
    html_end(r);
    hvd_job_record_free(&rec);
}
