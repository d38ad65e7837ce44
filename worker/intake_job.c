/* One job message on the consumer thread: decode, validate, seal the
 * secrets, then claim in PostgreSQL (one transaction) before the caller
 * acks. While PostgreSQL is away the message stays unacked and the broker
 * connection's heartbeats keep going. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "answer.h"
#include "clock.h"
#include "guestcfg.h"
#include "intake.h"
#include "intake_priv.h"
#include "log.h"
#include "publisher.h"
#include "runner.h"
#include "secret.h"

/* The options a job runs with, as stored. */
static char *options_json(const HvdJob *job)
{
    HvdNode *o = hvd_node_map();
    hvd_node_map_set_str(o, "on_failure", job->rollback ? "rollback" : "keep");
    if (job->deadline_text) hvd_node_map_set_str(o, "deadline", job->deadline_text);
    char *s = hvd_node_to_json(o);
    hvd_node_free(o);
    return s;
}

/* Seals the body's secrets into out (empty when it has none). */
static bool seal_secrets(Worker *w, const HvdNode *body, const char *job_id, HvdBuf *out)
{
    HvdNode *secrets = hvd_extract_secrets(body);
    if (!secrets) return true;
    char *plain = hvd_node_to_json(secrets);
    bool ok = hvd_secret_seal(&w->keys.v[0], plain, strlen(plain), job_id, out) == 0;
    HvdBuf wipe = {.data = plain, .len = strlen(plain), .cap = strlen(plain) + 1};
    hvd_secret_buf_free(&wipe);
    hvd_node_free(secrets);
    if (!ok) hvd_log_error(NULL, "cannot seal the job's secrets");
    return ok;
}

/* Claims a new job, holding the message while PostgreSQL is away. */
static HvdStoreStatus claim_new(Worker *w, HvdBroker *b, const HvdJobRecord *nj, HvdClaim *claim, HvdJobRecord *rec,
                                char *err, size_t errlen)
{
    HvdStoreStatus st;
    for (int a = 0;; a++) {
        st = hvd_store_claim_new(w->store, nj, claim, rec, err, errlen);
        if (st != HVD_STORE_RETRY) break;
        atomic_store(&w->pg_ready, false);
        if (atomic_load(&w->stopping)) break;
        /* keep the message unacked, keep the heartbeats going, try again with backoff */
        if (a == 0 || a % 10 == 0) hvd_log_warn(NULL, "PostgreSQL unavailable, holding the message: %s", err);
        int64_t until = hvd_mono_ms() + (a < 6 ? (100LL << a) : 5000);
        while (hvd_mono_ms() < until)
            if (hvd_broker_service(b, 100) == HVD_BROKER_CLOSED) return HVD_STORE_RETRY;
    }
    atomic_store(&w->pg_ready, st == HVD_STORE_OK);
    return st;
}

/* A job that validated: sealed, claimed, handed on. */
static bool take_job(Worker *w, HvdBroker *b, const HvdDelivery *d, const HvdNode *body, const HvdJob *job,
                     HvdContentType ct, const char *request_json)
{
    const char *stages[HVD_MAX_STAGES];
    size_t n_stages = hvd_plan_stages(job, stages);
    const char *corr = d->correlation_id && *d->correlation_id ? d->correlation_id : job->job_id;
    HvdJobRecord nj = {0};
    if (!seal_secrets(w, body, job->job_id, &nj.secret_blob)) return false;
    snprintf(nj.job_id, sizeof nj.job_id, "%s", job->job_id);
    nj.job_type = hvd_xstrdup(job->job_type);
    nj.target_host = hvd_xstrdup(job->target_host);
    nj.vm_name = hvd_xstrdup(job->vm.vm_name);
    nj.correlation_id = hvd_xstrdup(corr);
    nj.reply_to = hvd_xstrdup(answer_reply_queue(w, d->reply_to));
    nj.content_type = hvd_xstrdup(hvd_content_type_name(ct));
    nj.request_json = hvd_xstrdup(request_json);
    nj.options_json = options_json(job);
    nj.secret_key_id = hvd_xstrdup(w->keys.v[0].id);
    for (size_t i = 0; i < n_stages; i++) snprintf(nj.stages[i].name, sizeof nj.stages[i].name, "%s", stages[i]);
    nj.n_stages = n_stages;

    bool ok = true, reserved = runners_reserve(w->runners);
    HvdJobRecord rec = {0};
    HvdClaim claim;
    char err[256];
    HvdStoreStatus st = claim_new(w, b, &nj, &claim, &rec, err, sizeof err);
    HvdLogCtx lc = {.job_id = job->job_id, .correlation_id = corr, .host = job->target_host};
    if (st != HVD_STORE_OK) {
        if (reserved) runners_unreserve(w->runners);
        hvd_log_error(&lc, "cannot claim the job: %s", err);
        ok = false;
    } else if (claim.decision.verdict == HVD_CLAIM_DUPLICATE_NAME) {
        if (reserved) runners_unreserve(w->runners);
        HvdNode *data = hvd_node_map();
        hvd_node_map_set_str(data, "vm_name", job->vm.vm_name);
        hvd_node_map_set_str(data, "target_host", job->target_host);
        hvd_node_map_set_str(data, "os_family", job->os_family);
        HvdRejection why = hvd_plan_reject_duplicate(job->target_host, job->vm.vm_name);
        ok = intake_reject_job(w, d, job, ct, &why, NULL, data, stages, n_stages, request_json);
        hvd_node_free(data);
    } else if (claim.decision.verdict == HVD_CLAIM_RUN && !reserved) {
        /* No runner free (the consumer is about to pause): let the job go for
         * a worker with room; its doorbell finds one. */
        char next_job[37] = "";
        if (hvd_store_release(w->store, job->job_id, rec.epoch, next_job, err, sizeof err) != HVD_STORE_OK)
            hvd_log_warn(&lc, "cannot hand the job on (its lease will expire instead): %s", err);
        pub_doorbell(w, job->job_id, 0);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
    } else {
        HvdClaimVerdict v = claim.decision.verdict;
        if (v == HVD_CLAIM_RUN || v == HVD_CLAIM_WAIT) {
            hvd_log_info(&lc, v == HVD_CLAIM_RUN ? "job claimed" : "job claimed; waiting for its host");
            if (v == HVD_CLAIM_WAIT || rec.attempts <= 1)
                pub_event(w, job->job_id, corr, nj.content_type, NULL, "queued", 0, NULL);
        }
        intake_after_claim(w, d, &claim, &rec, reserved);
    }
    hvd_job_record_free(&rec);
    hvd_job_record_free(&nj);
    return ok;
}

bool intake_job(Worker *w, HvdBroker *b, const HvdDelivery *d)
{
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    if (ct == HVD_CT_UNKNOWN) {
        char why[256];
        snprintf(why, sizeof why, "content type '%s' is not supported (use application/msgpack or application/json)",
                 d->content_type ? d->content_type : "(none)");
        HvdRejection r = hvd_plan_reject_undecodable(false, HVD_DECODE_MALFORMED, why);
        return intake_reject_undecodable(w, d, &r);
    }
    char why[256];
    if (d->too_large) { /* refused by the consumer before the body was copied (only its start was kept) */
        snprintf(why, sizeof why, "body is %zu bytes, over the %d-byte limit", d->body_size, HVD_MAX_BODY);
        HvdRejection r = hvd_plan_reject_undecodable(true, HVD_DECODE_TOO_LARGE, why);
        return intake_reject_undecodable(w, d, &r);
    }
    HvdNode *body = NULL;
    HvdDecodeStatus ds = hvd_decode(ct, d->body, d->len, &body, why, sizeof why);
    if (ds == HVD_DECODE_OK && body->type != HVD_MAP) {
        ds = HVD_DECODE_MALFORMED;
        snprintf(why, sizeof why, "the body is not a map");
    }
    if (ds != HVD_DECODE_OK) {
        hvd_node_free(body);
        HvdRejection r = hvd_plan_reject_undecodable(true, ds, why);
        return intake_reject_undecodable(w, d, &r);
    }
    /* A doorbell that lost its header still names only a job. */
    const HvdNode *db = hvd_node_get(body, "doorbell");
    if (db && db->type == HVD_BOOL && db->u.b && !hvd_node_get(body, "request")) {
        const char *id = hvd_node_get_str(body, "job_id");
        bool ran;
        if (id && hvd_uuid_valid(id, strlen(id))) intake_claim_existing(w, id, &ran);
        hvd_node_free(body);
        return true;
    }

    HvdValidateOpts vo = {
        .allowed_hosts = (const char *const *)w->cfg.allowed_hosts.v,
        .n_allowed_hosts = w->cfg.allowed_hosts.n,
        .message_id = d->message_id,
        .correlation_id = d->correlation_id,
        .reply_to = d->reply_to,
    };
    HvdJob job;
    HvdErrors errs = {0};
    bool valid = hvd_job_validate(body, &vo, &job, &errs);
    HvdNode *redacted = hvd_redact_body(body);
    const HvdNode *req = hvd_node_get(redacted, "request");
    char *request_json = hvd_node_to_json(req ? req : redacted);
    bool ok;
    if (!valid) {
        HvdRejection r = hvd_plan_reject_invalid(&job, &errs);
        ok = intake_reject_job(w, d, &job, ct, &r, &errs, NULL, NULL, 0, request_json);
    } else {
        ok = take_job(w, b, d, body, &job, ct, request_json);
    }
    free(request_json);
    hvd_node_free(redacted);
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(body);
    return ok;
}
