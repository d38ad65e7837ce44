/* The dashboard's actions on a job: cancel and retry (POST only, with
 * --allow-actions, the password and a CSRF token; each is logged). */
#include <stdio.h>
#include <string.h>
#include "amqp_util.h"
#include "log.h"
#include "html.h"
#include "auth.h"
#include "mq.h"
#include "pages.h"
#include "request.h"

#define ACTION_CONFIRM_MS 15000

bool web_action_allowed(WebReq *r)
{
    if (!r->web->allow_actions) {
        html_error(r, MHD_HTTP_FORBIDDEN, "Actions are off: this dashboard was started without --allow-actions.");
        return false;
    }
    if (!auth_check(r)) {
        html_error(r, MHD_HTTP_UNAUTHORIZED, "This action needs the dashboard's password.");
        r->auth_challenge = true;
        return false;
    }
    if (!auth_csrf_ok(r)) {
        html_error(r, MHD_HTTP_FORBIDDEN,
                   "The form's CSRF token is missing or does not match: reload the page and try again.");
        return false;
    }
    return true;
}

/* Rings the job's doorbell so that a worker takes it up now (else the sweep does, later). */
static void doorbell(Web *w, const char *job_id, const char *job_type)
{
    char err[512] = "", exchange[256];
    ctlq_name(exchange, sizeof exchange, w->cfg.amqp_prefix, "jobs");
    HvdBroker *b = web_broker_connect(w, true, err, sizeof err);
    if (!b || !ctlq_ring_doorbell(b, exchange, job_id, job_type, ACTION_CONFIRM_MS, err, sizeof err)) {
        HvdLogCtx lc = {.job_id = job_id};
        hvd_log_kv(HVD_LOG_WARN, &lc, "web: doorbell failed (the sweep takes the job up)", "reason", err, NULL);
    }
    hvd_broker_close(b);
}

void action_job(WebReq *r, const char *job_id, const char *verb)
{
    if (!web_uuid_ok(job_id)) return html_error(r, MHD_HTTP_NOT_FOUND, "That is not a job id.");
    if (!web_action_allowed(r)) return;
    Web *w = r->web;
    char err[512] = "", why[512] = "";
    bool found = false, finished = false;
    HvdStoreStatus st;
    HvdLogCtx lc = {.job_id = job_id};
    if (strcmp(verb, "cancel") == 0) {
        st = hvd_store_request_cancel(w->store, job_id, &found, &finished, err, sizeof err);
        if (st == HVD_STORE_OK && found && finished) snprintf(why, sizeof why, "The job has already finished.");
    } else {
        st = hvd_store_replay(w->store, job_id, &found, why, sizeof why, err, sizeof err);
    }
    if (st != HVD_STORE_OK) return html_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The database cannot be written now.");
    if (!found) return html_error(r, MHD_HTTP_NOT_FOUND, "No such job.");
    if (why[0]) return html_error(r, MHD_HTTP_CONFLICT, why);
    hvd_log_kv(HVD_LOG_INFO, &lc, "web: action", "action", verb, NULL);
    if (strcmp(verb, "retry") == 0) doorbell(w, job_id, NULL);
    r->status = MHD_HTTP_SEE_OTHER;
    snprintf(r->location, sizeof r->location, "/jobs/%s?done=%s", job_id, verb);
}
