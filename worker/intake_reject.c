/* The answers to messages that never become running jobs (§3, §4): an
 * undecodable message is answered (when someone can be) and dead-lettered as
 * received; an invalid or duplicate job is recorded when it has a job id and
 * answered with its error envelope. The code and sentence come from
 * hvd_plan_reject_*. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "answer.h"
#include "clock.h"
#include "intake_priv.h"
#include "log.h"
#include "mask.h"
#include "metrics.h"
#include "publisher.h"
#include "utf8.h"

#define CONFIRM_WAIT_MS 30000

static void rejection_envelope(const char *job_id, const char *correlation_id, const char *job_type,
                               const HvdRejection *why, const HvdErrors *errors, const HvdNode *data,
                               const char *const *stages, size_t n_stages, HvdContentType ct, HvdBuf *out)
{
    char now[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), now);
    HvdStage st[HVD_MAX_STAGES];
    memset(st, 0, sizeof st);
    for (size_t i = 0; i < n_stages && i < HVD_MAX_STAGES; i++)
        snprintf(st[i].name, sizeof st[i].name, "%s", stages[i]); /* pending: reported not_started */
    HvdEnvelope env = {
        .job_id = job_id,
        .correlation_id = correlation_id ? correlation_id : job_id,
        .job_type = job_type,
        .status = "error",
        .code = why->code,
        .message = why->message,
        .data = data,
        .stages = st,
        .n_stages = n_stages,
        .errors = errors,
        .attempts = 0,
        .created_at = now,
        .finished_at = now,
    };
    answer_encode(&env, ct, out);
}

/* Publishes the raw message to <prefix>.dead with its reason, and waits for
 * the confirm (the message is acked only after). */
static bool dead_letter_raw(Worker *w, const HvdDelivery *d, const char *code, const char *reason)
{
    PubMsg *m = pubmsg_new(PUB_DEAD_LETTER);
    m->exchange = hvd_xstrdup(w->dead_exchange);
    m->routing_key = hvd_xstrdup(d->routing_key ? d->routing_key : "");
    hvd_mask_raw_secrets(d->body, d->len, &m->body); /* as received, but the secret fields' values */
    m->content_type = hvd_xstrdup(d->content_type);
    m->message_id = hvd_xstrdup(d->message_id);
    m->correlation_id = hvd_xstrdup(d->correlation_id);
    m->reason = hvd_xstrdup(reason);
    m->code = hvd_xstrdup(code);
    hvd_metric_inc(HVD_M_DEAD_LETTERS_TOTAL, code, NULL);
    return publisher_send_wait(w->pub, m, CONFIRM_WAIT_MS);
}

static bool answer_unstored(Worker *w, const HvdDelivery *d, const char *job_id, const HvdBuf *env, HvdContentType ct)
{
    if (!d->reply_to && !job_id) return true; /* nobody to answer */
    PubMsg *m = pubmsg_new(PUB_ANSWER);
    m->routing_key = hvd_xstrdup(answer_reply_queue(w, d->reply_to));
    hvd_buf_append(&m->body, env->data, env->len);
    m->content_type = hvd_xstrdup(hvd_content_type_name(ct));
    m->message_id = hvd_xstrdup(job_id);
    m->correlation_id = hvd_xstrdup(d->correlation_id ? d->correlation_id : job_id);
    return publisher_send_wait(w->pub, m, CONFIRM_WAIT_MS);
}

bool intake_reject_undecodable(Worker *w, const HvdDelivery *d, const HvdRejection *why)
{
    HvdLogCtx lc = {.correlation_id = d->correlation_id};
    hvd_log_kv(HVD_LOG_WARN, &lc, "message rejected", "code", why->code, "reason", why->message, "message_id",
               d->message_id, NULL);
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    if (ct == HVD_CT_UNKNOWN) ct = HVD_CT_JSON;
    const char *job_id = d->message_id && hvd_uuid_valid(d->message_id, strlen(d->message_id)) ? d->message_id : NULL;
    HvdErrors errs = {0};
    hvd_errors_add(&errs, "body", why->code, "%s", why->message);
    HvdBuf env = {0};
    rejection_envelope(job_id, d->correlation_id, NULL, why, &errs, NULL, NULL, 0, ct, &env);
    bool ok = answer_unstored(w, d, job_id, &env, ct) && dead_letter_raw(w, d, why->code, why->message);
    hvd_buf_free(&env);
    hvd_errors_free(&errs);
    return ok;
}

bool intake_reject_job(Worker *w, const HvdDelivery *d, const HvdJob *job, HvdContentType ct, const HvdRejection *why,
                       const HvdErrors *errs, const HvdNode *data, const char *const *stages, size_t n_stages,
                       const char *request_json)
{
    const char *job_id = job->job_id[0] ? job->job_id : NULL;
    /* Properties that are not UTF-8 were reported by validation: what is stored and echoed is their sanitised form. */
    char *corr_clean = d->correlation_id && *d->correlation_id
                           ? hvd_utf8_sanitize_dup(d->correlation_id, strlen(d->correlation_id), HVD_UTF8_NUL)
                           : NULL;
    const char *corr = corr_clean ? corr_clean : job_id;
    const char *reply_to = d->reply_to && hvd_utf8_valid(d->reply_to, strlen(d->reply_to)) ? d->reply_to : NULL;
    HvdBuf env = {0};
    rejection_envelope(job_id, corr, job->job_type, why, errs, data, stages, n_stages, ct, &env);
    HvdLogCtx lc = {.job_id = job_id, .correlation_id = corr, .host = job->target_host};
    hvd_log_kv(HVD_LOG_WARN, &lc, "job rejected", "code", why->code, "reason", why->message, NULL);
    hvd_metric_inc(HVD_M_JOBS_TOTAL,
                   job->job_type && strcmp(job->job_type, HVD_JOB_TYPE_MANAGED) == 0 ? HVD_JOB_TYPE_MANAGED : "other",
                   "error");
    bool ok = true;
    if (!job_id) {
        ok = answer_unstored(w, d, NULL, &env, ct);
        hvd_buf_free(&env);
        free(corr_clean);
        return ok;
    }
    HvdJobRecord nj = {0};
    snprintf(nj.job_id, sizeof nj.job_id, "%s", job_id);
    nj.job_type = hvd_xstrdup(job->job_type ? job->job_type : "");
    nj.target_host = hvd_xstrdup(job->target_host);
    nj.vm_name = hvd_xstrdup(job->vm.vm_name);
    nj.correlation_id = hvd_xstrdup(corr);
    nj.reply_to = hvd_xstrdup(answer_reply_queue(w, reply_to));
    nj.content_type = hvd_xstrdup(hvd_content_type_name(ct));
    nj.request_json = hvd_xstrdup(request_json);
    nj.options_json = hvd_xstrdup("{}");
    for (size_t i = 0; i < n_stages && i < HVD_MAX_STAGES; i++)
        snprintf(nj.stages[nj.n_stages++].name, sizeof nj.stages[0].name, "%s", stages[i]);
    bool existing = false;
    HvdBuf stored = {0};
    char err[256];
    HvdStoreStatus st;
    for (int a = 0;; a++) {
        st =
            hvd_store_record_rejected(w->store, &nj, why->code, env.data, env.len, &existing, &stored, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&w->stopping)) break;
        worker_backoff_sleep(w, a);
    }
    if (st != HVD_STORE_OK) {
        hvd_log_error(&lc, "cannot record the rejected job: %s", err);
        ok = false;
    } else if (existing) {
        /* The id is known: answer with what is stored, if it ended. */
        if (stored.len && !d->redelivered) answer_publish(w, job_id, nj.reply_to, corr, nj.content_type, &stored);
    } else {
        answer_publish(w, job_id, nj.reply_to, corr, nj.content_type, &env);
    }
    hvd_buf_free(&stored);
    hvd_job_record_free(&nj);
    hvd_buf_free(&env);
    free(corr_clean);
    return ok;
}
