/* Dead letters, read from <prefix>.dead as `hvdeployctl dead list` reads
 * them (ctl/deadq.c: taken unacked, given back when the connection closes),
 * one reader at a time; one dead letter in full, secrets masked; and the
 * replay of a dead job (reset in PostgreSQL, doorbell, dead letter removed). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "amqp_util.h"
#include "deadq.h"
#include "log.h"
#include "html.h"
#include "auth.h"
#include "mq.h"
#include "pages.h"

#define DEAD_READ_LIMIT 1000
#define DEAD_CONFIRM_MS 15000

/* Reads the queue under dead_mu; the caller closes *b (giving the messages back) and unlocks. */
static bool read_dead(WebReq *r, bool confirms, HvdBroker **b, DeadItem **items, size_t *n, char *queue, size_t qlen)
{
    char err[512] = "";
    ctlq_name(queue, qlen, r->web->cfg.amqp_prefix, "dead");
    pthread_mutex_lock(&r->web->dead_mu);
    *b = web_broker_connect(r->web, confirms, err, sizeof err);
    if (!*b || deadq_read(*b, queue, DEAD_READ_LIMIT, items, n, err, sizeof err) != HVD_BROKER_OK) {
        hvd_log_kv(HVD_LOG_WARN, NULL, "web: cannot read the dead letters", "reason", err, NULL);
        hvd_broker_close(*b);
        *b = NULL;
        pthread_mutex_unlock(&r->web->dead_mu);
        html_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "RabbitMQ cannot be read right now.");
        return false;
    }
    return true;
}

static void done_dead(WebReq *r, HvdBroker *b, DeadItem *items, size_t n)
{
    hvd_broker_close(b);
    deadq_items_free(items, n);
    pthread_mutex_unlock(&r->web->dead_mu);
}

void page_dead(WebReq *r)
{
    HvdBroker *b;
    DeadItem *items = NULL;
    size_t n = 0;
    char queue[256];
    if (!read_dead(r, false, &b, &items, &n, queue, sizeof queue)) return;
    HvdBuf *hb = &r->body;
    html_begin(r, "Dead letters", "dead");
    html_printf(hb, "<h1>Dead letters <small>%s</small></h1>\n", queue);
    if (n == 0)
        hvd_buf_puts(hb, "<p class=\"empty\">No dead letters.</p>");
    else
        hvd_buf_puts(hb, "<table class=\"dead\"><thead><tr><th>ID</th><th>Code</th><th>Age</th><th>Size</th>"
                         "<th>Source</th><th>Reason</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const DeadItem *it = &items[i];
        char age[16] = "-", size[16];
        if (it->at_ms) ctlq_age(deadq_item_age_s(it), age, sizeof age);
        deadq_size_text(it->d.len, size, sizeof size);
        hvd_buf_puts(hb, "<tr><td class=\"id\"><a href=\"/dead/");
        html_url(hb, it->id);
        html_printf(hb, "\">%s</a></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", it->id,
                    it->code, age, size, it->source, it->reason);
    }
    if (n) html_printf(hb, "</tbody></table><p>%d dead letter(s).</p>\n", (int)n);
    html_end(r);
    done_dead(r, b, items, n);
}

void page_dead_one(WebReq *r, const char *id)
{
    HvdBroker *b;
    DeadItem *items = NULL;
    size_t n = 0;
    char queue[256];
    if (!read_dead(r, false, &b, &items, &n, queue, sizeof queue)) return;
    HvdBuf *hb = &r->body;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        const DeadItem *it = &items[i];
        if (!deadq_item_matches(it, id)) continue;
        if (shown++ == 0) {
            html_begin(r, "Dead letter", "dead");
            html_printf(hb, "<h1>Dead letter <span class=\"id\">%s</span></h1>\n", id);
        }
        html_printf(hb,
                    "<dl class=\"facts\"><dt>Job</dt><dd>%s</dd><dt>Code</dt><dd>%s</dd><dt>Reason</dt><dd>%s</dd>"
                    "<dt>Source</dt><dd>%s</dd><dt>Routing key</dt><dd>%s</dd><dt>Content type</dt><dd>%s</dd></dl>\n",
                    it->job_id ? it->job_id : "-", it->code, it->reason, it->source, it->routing_key,
                    it->d.content_type ? it->d.content_type : "-");
        if (it->job_id) html_printf(hb, "<p><a href=\"/jobs/%s\">The job's page</a></p>", it->job_id);
        if (it->body) {
            HvdNode *red = ctlq_redact_all(it->body);
            char *pretty = ctlq_pretty_json(red);
            html_printf(hb, "<pre class=\"json\">%s</pre>\n", pretty);
            free(pretty);
            hvd_node_free(red);
        } else {
            size_t clen = 0;
            unsigned char *copy = deadq_masked_raw(it, &clen);
            size_t len = clen < 4096 ? clen : 4096;
            copy[len] = '\0';
            char *text = deadq_one_line((char *)copy, 0);
            html_printf(hb,
                        "<p>The body could not be decoded; its first bytes, secret fields masked:</p>"
                        "<pre class=\"raw\">%s</pre>\n",
                        text);
            free(text);
            free(copy);
        }
    }
    if (shown == 0) {
        done_dead(r, b, items, n);
        return html_error(r, MHD_HTTP_NOT_FOUND, "No dead letter with that ID.");
    }
    const DeadItem *first = NULL;
    for (size_t i = 0; i < n && !first; i++)
        if (deadq_item_matches(&items[i], id)) first = &items[i];
    if (r->web->allow_actions && first && first->job_id) {
        hvd_buf_puts(hb, "<div class=\"actions\"><form method=\"post\" action=\"/dead/");
        html_url(hb, id);
        hvd_buf_puts(hb, "/replay\">");
        auth_csrf_field(r);
        hvd_buf_puts(hb, "<button type=\"submit\" id=\"replay\">Replay: resume the job from its failed stage</button>"
                         "</form></div>\n");
    }
    html_end(r);
    done_dead(r, b, items, n);
}

void action_dead_replay(WebReq *r, const char *id)
{
    if (!web_action_allowed(r)) return;
    HvdBroker *b;
    DeadItem *items = NULL;
    size_t n = 0;
    char queue[256], why[512] = "", err[512] = "", job[37] = "";
    if (!read_dead(r, true, &b, &items, &n, queue, sizeof queue)) return;
    DeadItem *first = NULL;
    for (size_t i = 0; i < n && !first; i++)
        if (deadq_item_matches(&items[i], id)) first = &items[i];
    if (!first || !first->job_id) {
        done_dead(r, b, items, n);
        return html_error(r, first ? MHD_HTTP_CONFLICT : MHD_HTTP_NOT_FOUND,
                          first ? "This dead letter is not a job: replay it with `hvdeployctl dead replay`."
                                : "No dead letter with that ID.");
    }
    snprintf(job, sizeof job, "%s", first->job_id);
    bool found = false;
    HvdStoreStatus st = hvd_store_replay(r->web->store, job, &found, why, sizeof why, err, sizeof err);
    if (st != HVD_STORE_OK || !found || why[0]) {
        done_dead(r, b, items, n);
        return html_error(r, st != HVD_STORE_OK ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_CONFLICT,
                          st != HVD_STORE_OK ? "The database cannot be written right now."
                          : !found           ? "The job is not in the database: nothing to resume."
                                             : why);
    }
    char jobs_exchange[256];
    ctlq_name(jobs_exchange, sizeof jobs_exchange, r->web->cfg.amqp_prefix, "jobs");
    if (!ctlq_ring_doorbell(b, jobs_exchange, job, NULL, DEAD_CONFIRM_MS, err, sizeof err))
        hvd_log_kv(HVD_LOG_WARN, NULL, "web: replay doorbell failed (the sweep takes the job up)", "job_id", job,
                   "reason", err, NULL);
    /* every dead letter of the job is about the same failure */
    for (size_t i = 0; i < n; i++)
        if (items[i].job_id && strcasecmp(items[i].job_id, job) == 0) (void)hvd_broker_ack(b, items[i].d.delivery_tag);
    /* a round trip, so that the acks are in before the connection closes */
    (void)hvd_broker_queue_info(b, queue, NULL, NULL, err, sizeof err);
    HvdLogCtx lc = {.job_id = job};
    hvd_log_info(&lc, "web: dead letter replayed");
    done_dead(r, b, items, n);
    r->status = MHD_HTTP_SEE_OTHER;
    snprintf(r->location, sizeof r->location, "/jobs/%s?done=retry", job);
}
