/* The consumer thread: takes messages from <prefix>.jobs, decodes and
 * validates them, claims valid jobs in PostgreSQL (one transaction) and only
 * then acks. Undecodable messages are answered and dead-lettered as
 * received; invalid ones are answered (and recorded when they carry a job
 * id); doorbells resume their job from PostgreSQL. While every runner is
 * busy the consumer stops consuming, so the broker hands jobs to workers
 * that have room. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker.h"
#include "clock.h"
#include "codec.h"
#include "guestcfg.h"
#include "jobrun.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "worker.h"

#define CONFIRM_WAIT_MS 30000

typedef struct {
    Worker *w;
    HvdBroker *b;
    bool consuming;
} Consumer;

/* ---- answers to messages that never become jobs ---- */

static void rejection_envelope(const char *job_id, const char *correlation_id, const char *job_type, const char *code,
                               const char *message, const HvdErrors *errors, const HvdNode *data,
                               const char *const *stages, size_t n_stages, HvdContentType ct, HvdBuf *out)
{
    char now[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), now);
    HvdStageResult sr[4];
    for (size_t i = 0; i < n_stages && i < 4; i++) sr[i] = (HvdStageResult){.name = stages[i], .status = "not_started"};
    HvdEnvelope env = {
        .job_id = job_id,
        .correlation_id = correlation_id ? correlation_id : job_id,
        .job_type = job_type,
        .status = "error",
        .code = code,
        .message = message,
        .data = data,
        .stages = sr,
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
    hvd_buf_append(&m->body, d->body, d->len);
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

/* An undecodable message: answered with its code and dead-lettered as received. */
static bool reject_undecodable(Worker *w, const HvdDelivery *d, const char *code, const char *why)
{
    HvdLogCtx lc = {.correlation_id = d->correlation_id};
    hvd_log_kv(HVD_LOG_WARN, &lc, "message rejected", "code", code, "reason", why, "message_id", d->message_id, NULL);
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    if (ct == HVD_CT_UNKNOWN) ct = HVD_CT_JSON;
    const char *job_id = d->message_id && hvd_uuid_valid(d->message_id, strlen(d->message_id)) ? d->message_id : NULL;
    HvdErrors errs = {0};
    hvd_errors_add(&errs, "body", code, "%s", why);
    HvdBuf env = {0};
    char msg[512];
    snprintf(msg, sizeof msg, "The message could not be read: %s", why);
    rejection_envelope(job_id, d->correlation_id, NULL, code, msg, &errs, NULL, NULL, 0, ct, &env);
    bool ok = answer_unstored(w, d, job_id, &env, ct) && dead_letter_raw(w, d, code, msg);
    hvd_buf_free(&env);
    hvd_errors_free(&errs);
    return ok;
}

/* Records (when it has a job id) and answers a job that will never run. */
static bool reject_job(Worker *w, const HvdDelivery *d, const HvdJob *job, HvdContentType ct, const char *code,
                       const char *message, const HvdErrors *errs, const HvdNode *data, const char *const *stages,
                       size_t n_stages, const char *request_json)
{
    const char *job_id = job->job_id[0] ? job->job_id : NULL;
    const char *corr = d->correlation_id && *d->correlation_id ? d->correlation_id : job_id;
    HvdBuf env = {0};
    rejection_envelope(job_id, corr, job->job_type, code, message, errs, data, stages, n_stages, ct, &env);
    HvdLogCtx lc = {.job_id = job_id, .correlation_id = corr, .host = job->target_host};
    hvd_log_kv(HVD_LOG_WARN, &lc, "job rejected", "code", code, "reason", message, NULL);
    hvd_metric_inc(HVD_M_JOBS_TOTAL, job->job_type ? job->job_type : "unknown", "error");
    bool ok = true;
    if (!job_id) {
        ok = answer_unstored(w, d, NULL, &env, ct);
    } else {
        HvdNewJob nj = {
            .job_id = job_id,
            .job_type = job->job_type ? job->job_type : "",
            .target_host = job->target_host,
            .vm_name = job->vm.vm_name,
            .correlation_id = corr,
            .reply_to = answer_reply_queue(w, d->reply_to),
            .content_type = hvd_content_type_name(ct),
            .request_json = request_json,
            .options_json = "{}",
            .stages = stages,
            .n_stages = n_stages,
        };
        bool existing = false;
        HvdBuf stored = {0};
        char err[256];
        HvdStoreStatus st;
        for (int a = 0;; a++) {
            st = hvd_store_record_rejected(w->store, &nj, code, env.data, env.len, &existing, &stored, err, sizeof err);
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
    }
    hvd_buf_free(&env);
    return ok;
}

/* ---- claiming ---- */

/* The runner was reserved by the caller; on every path but RUN it is given back. */
static void after_claim(Worker *w, const HvdDelivery *d, HvdClaimOutcome out, HvdJobRecord *rec, bool takeover,
                        bool reserved)
{
    if (out == HVD_CLAIM_RUN) {
        HvdJobRecord *heap = hvd_xmalloc(sizeof *heap);
        *heap = *rec;
        memset(rec, 0, sizeof *rec);
        runners_submit(w->runners, heap, takeover);
        return;
    }
    if (reserved) runners_unreserve(w->runners);
    if (out == HVD_CLAIM_FINISHED && rec->envelope.len && (!d || (!d->redelivered && !d->doorbell))) {
        /* Upstream sent a finished job again: the stored envelope, byte for byte. */
        HvdLogCtx lc = {.job_id = rec->job_id, .correlation_id = rec->correlation_id};
        hvd_log_info(&lc, "job already finished: publishing its stored envelope again");
        answer_publish(w, rec->job_id, rec->reply_to, rec->correlation_id, rec->content_type, &rec->envelope);
    }
}

void intake_claim_existing(Worker *w, const char *job_id, bool *ran)
{
    *ran = false;
    if (!runners_reserve(w->runners)) {
        /* Every runner is busy (our consumer is pausing): ring the doorbell
         * again, for a worker with room — paused consumers get none. */
        pub_doorbell(w, job_id, 0);
        return;
    }
    HvdJobRecord rec;
    memset(&rec, 0, sizeof rec);
    HvdClaimOutcome out = HVD_CLAIM_NOT_FOUND;
    bool takeover = false;
    char err[256];
    HvdStoreStatus st;
    for (int a = 0;; a++) {
        st = hvd_store_claim(w->store, job_id, &out, &rec, &takeover, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&w->stopping) || a >= 3) break;
        worker_backoff_sleep(w, a);
    }
    if (st != HVD_STORE_OK) {
        HvdLogCtx lc = {.job_id = job_id};
        hvd_log_warn(&lc, "cannot claim the job (the sweep will retry): %s", err);
        runners_unreserve(w->runners);
        hvd_job_record_free(&rec);
        return;
    }
    *ran = out == HVD_CLAIM_RUN;
    /* A doorbell or sweep never republishes a finished job's envelope. */
    HvdDelivery none = {.doorbell = true};
    after_claim(w, &none, out, &rec, takeover, true);
    hvd_job_record_free(&rec);
}

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

/* Returns false when the message must not be acked (it will come again). */
static bool handle_job(Consumer *c, const HvdDelivery *d)
{
    Worker *w = c->w;
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    if (ct == HVD_CT_UNKNOWN) {
        char why[256];
        snprintf(why, sizeof why, "content type '%s' is not supported (use application/msgpack or application/json)",
                 d->content_type ? d->content_type : "(none)");
        return reject_undecodable(w, d, "unsupported_content_type", why);
    }
    HvdNode *body = NULL;
    char why[256];
    HvdDecodeStatus ds = hvd_decode(ct, d->body, d->len, &body, why, sizeof why);
    if (ds == HVD_DECODE_TOO_LARGE) return reject_undecodable(w, d, "message_too_large", why);
    if (ds != HVD_DECODE_OK) return reject_undecodable(w, d, "malformed_message", why);
    if (body->type != HVD_MAP) {
        hvd_node_free(body);
        return reject_undecodable(w, d, "malformed_message", "the body is not a map");
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
        .reply_to = d->reply_to,
    };
    HvdJob job;
    HvdErrors errs = {0};
    bool valid = hvd_job_validate(body, &vo, &job, &errs);
    HvdNode *redacted = hvd_redact_body(body);
    char *request_json =
        hvd_node_to_json(hvd_node_get(redacted, "request") ? hvd_node_get(redacted, "request") : redacted);
    bool ok = true;
    if (!valid) {
        const char *code = "validation_error";
        bool all_host = errs.n > 0;
        for (size_t i = 0; i < errs.n; i++) {
            if (strcmp(errs.items[i].loc, "job_type") == 0 && job.job_type &&
                strcmp(job.job_type, HVD_JOB_TYPE_MANAGED) != 0)
                code = "unsupported_job_type";
            if (strcmp(errs.items[i].type, "host_not_allowed") != 0) all_host = false;
        }
        if (all_host) code = "host_not_allowed";
        char msg[256];
        if (strcmp(code, "unsupported_job_type") == 0)
            snprintf(msg, sizeof msg, "Job type '%s' is not handled by this fleet.", job.job_type);
        else if (strcmp(code, "host_not_allowed") == 0)
            snprintf(msg, sizeof msg, "Target host '%s' is not in this fleet's allowed hosts.", job.target_host);
        else if (errs.n == 1 && strcmp(errs.items[0].loc, "reply_to") == 0)
            snprintf(msg, sizeof msg,
                     "Refused: reply_to is RabbitMQ's direct reply-to, which cannot carry the "
                     "envelope of a job this long; use a durable named queue.");
        else
            snprintf(msg, sizeof msg, "The request is invalid: %zu validation error%s.", errs.n,
                     errs.n == 1 ? "" : "s");
        ok = reject_job(w, d, &job, ct, code, msg, &errs, NULL, NULL, 0, request_json);
        goto out;
    }

    const char *stages[4];
    size_t n_stages = hvd_plan_stages(&job, stages);
    /* Seal the secrets before anything is stored. */
    HvdNode *secrets = hvd_extract_secrets(body);
    HvdBuf sealed = {0};
    if (secrets) {
        char *plain = hvd_node_to_json(secrets);
        if (hvd_secret_seal(&w->keys.v[0], plain, strlen(plain), job.job_id, &sealed) != 0) {
            hvd_log_error(NULL, "cannot seal the job's secrets");
            ok = false;
        }
        HvdBuf wipe = {.data = plain, .len = strlen(plain), .cap = strlen(plain) + 1};
        hvd_secret_buf_free(&wipe);
        hvd_node_free(secrets);
        if (!ok) goto out;
    }
    char *opts = options_json(&job);
    const char *corr = d->correlation_id && *d->correlation_id ? d->correlation_id : job.job_id;
    HvdNewJob nj = {
        .job_id = job.job_id,
        .job_type = job.job_type,
        .target_host = job.target_host,
        .vm_name = job.vm.vm_name,
        .correlation_id = corr,
        .reply_to = answer_reply_queue(w, d->reply_to),
        .content_type = hvd_content_type_name(ct),
        .request_json = request_json,
        .options_json = opts,
        .secret_blob = sealed.len ? sealed.data : NULL,
        .secret_len = sealed.len,
        .secret_key_id = w->keys.v[0].id,
        .stages = stages,
        .n_stages = n_stages,
    };
    bool reserved = runners_reserve(w->runners);
    HvdJobRecord rec;
    memset(&rec, 0, sizeof rec);
    HvdClaimOutcome outcome = HVD_CLAIM_WAITING;
    char err[256];
    HvdStoreStatus st;
    for (int a = 0;; a++) {
        st = hvd_store_claim_new(w->store, &nj, &outcome, &rec, err, sizeof err);
        if (st != HVD_STORE_RETRY) break;
        atomic_store(&w->pg_ready, false);
        if (atomic_load(&w->stopping)) break;
        /* PostgreSQL is away: keep the message unacked, keep the heartbeats
         * going, and try again with backoff. */
        if (a == 0 || a % 10 == 0) hvd_log_warn(NULL, "PostgreSQL unavailable, holding the message: %s", err);
        int64_t until = hvd_mono_ms() + (a < 6 ? (100LL << a) : 5000);
        while (hvd_mono_ms() < until)
            if (hvd_broker_service(c->b, 100) == HVD_BROKER_CLOSED) {
                st = HVD_STORE_RETRY;
                goto give_up;
            }
    }
    atomic_store(&w->pg_ready, st == HVD_STORE_OK);
    if (st != HVD_STORE_OK) {
    give_up:
        if (reserved) runners_unreserve(w->runners);
        hvd_log_error(NULL, "cannot claim job %s: %s", job.job_id, err);
        ok = false;
    } else if (outcome == HVD_CLAIM_DUPLICATE_NAME) {
        if (reserved) runners_unreserve(w->runners);
        HvdNode *data = hvd_node_map();
        hvd_node_map_set_str(data, "vm_name", job.vm.vm_name);
        hvd_node_map_set_str(data, "target_host", job.target_host);
        hvd_node_map_set_str(data, "os_family", job.os_family);
        char msg[256];
        snprintf(msg, sizeof msg, "Another job on %s is already deploying a VM named '%s'.", job.target_host,
                 job.vm.vm_name);
        ok = reject_job(w, d, &job, ct, "duplicate_vm_name", msg, NULL, data, stages, n_stages, request_json);
        hvd_node_free(data);
    } else if (outcome == HVD_CLAIM_RUN && !reserved) {
        /* No runner free (the consumer is about to pause): let the job go for
         * a worker with room; its doorbell finds one. */
        char next_job[37] = "";
        HvdLogCtx lc = {.job_id = job.job_id};
        if (hvd_store_release(w->store, job.job_id, rec.epoch, next_job, err, sizeof err) != HVD_STORE_OK)
            hvd_log_warn(&lc, "cannot hand the job on (its lease will expire instead): %s", err);
        pub_doorbell(w, job.job_id, 0);
        if (next_job[0]) pub_doorbell(w, next_job, 0);
    } else {
        if (outcome == HVD_CLAIM_RUN || outcome == HVD_CLAIM_WAITING) {
            HvdLogCtx lc = {.job_id = job.job_id, .correlation_id = corr, .host = job.target_host};
            hvd_log_info(&lc, outcome == HVD_CLAIM_RUN ? "job claimed" : "job claimed; waiting for its host");
            if (outcome == HVD_CLAIM_WAITING || rec.attempts <= 1)
                pub_event(w, job.job_id, corr, nj.content_type, NULL, "queued", 0, NULL);
        }
        after_claim(w, d, outcome, &rec, false, reserved);
    }
    hvd_job_record_free(&rec);
    free(opts);
    hvd_secret_buf_free(&sealed);
out:
    free(request_json);
    hvd_node_free(redacted);
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(body);
    return ok;
}

static bool handle_delivery(Consumer *c, const HvdDelivery *d)
{
    if (d->doorbell) {
        HvdNode *body = NULL;
        char why[128];
        HvdContentType ct = hvd_content_type_parse(d->content_type);
        const char *id = d->message_id;
        if (hvd_decode(ct == HVD_CT_UNKNOWN ? HVD_CT_MSGPACK : ct, d->body, d->len, &body, why, sizeof why) ==
                HVD_DECODE_OK &&
            hvd_node_get_str(body, "job_id"))
            id = hvd_node_get_str(body, "job_id");
        if (id && hvd_uuid_valid(id, strlen(id))) {
            bool ran;
            intake_claim_existing(c->w, id, &ran);
        } else {
            hvd_log_warn(NULL, "doorbell without a valid job id dropped");
        }
        hvd_node_free(body);
        return true;
    }
    return handle_job(c, d);
}

/* ---- connection ---- */

static HvdBroker *connect_consumer(Worker *w, int *attempt)
{
    char err[512];
    HvdBrokerOptions o = worker_broker_options(w, w->con_conn_name, false);
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    if (!b) {
        if (*attempt == 0 || *attempt % 10 == 0) hvd_log_warn(NULL, "consumer: %s (retrying)", err);
        return NULL;
    }
    if (hvd_broker_declare_topology(b, w->cfg.amqp_prefix, w->retry_delays, w->cfg.retry_delays.n, err, sizeof err) !=
        HVD_BROKER_OK) {
        hvd_log_error(NULL, "cannot declare the RabbitMQ topology: %s", err);
        hvd_broker_close(b);
        return NULL;
    }
    return b;
}

static bool set_consuming(Consumer *c, bool want)
{
    if (c->consuming == want) return true;
    char err[256];
    HvdBrokerStatus st = want ? hvd_broker_consume(c->b, c->w->jobs_queue, (uint16_t)c->w->prefetch, err, sizeof err)
                              : hvd_broker_cancel_consume(c->b, err, sizeof err);
    hvd_metric_inc(HVD_M_AMQP_OPERATIONS, want ? "consume" : "cancel", NULL);
    if (st != HVD_BROKER_OK) {
        hvd_log_warn(NULL, "cannot %s consuming %s: %s", want ? "start" : "stop", c->w->jobs_queue, err);
        return false;
    }
    c->consuming = want;
    return true;
}

void *consumer_main(void *arg)
{
    Worker *w = arg;
    Consumer c = {.w = w, .b = w->first_consumer_conn};
    w->first_consumer_conn = NULL;
    int attempt = 0;
    while (!atomic_load(&w->stopping)) {
        if (!c.b) {
            c.b = connect_consumer(w, &attempt);
            if (!c.b) {
                atomic_store(&w->amqp_ready, false);
                worker_backoff_sleep(w, attempt++);
                hvd_metric_inc(HVD_M_RECONNECTS_TOTAL, "amqp", NULL);
                continue;
            }
            if (attempt > 0) hvd_log_info(NULL, "consumer reconnected to RabbitMQ");
            attempt = 0;
            c.consuming = false;
        }
        atomic_store(&w->amqp_ready, true);
        bool room = runners_free(w->runners) > 0;
        if (!set_consuming(&c, room)) {
            hvd_broker_close(c.b);
            c.b = NULL;
            continue;
        }
        HvdDelivery d;
        memset(&d, 0, sizeof d);
        HvdBrokerStatus st = hvd_broker_next(c.b, 200, &d);
        if (st == HVD_BROKER_DELIVERY) {
            bool ack = handle_delivery(&c, &d);
            HvdBrokerStatus as = ack ? hvd_broker_ack(c.b, d.delivery_tag) : HVD_BROKER_OK;
            hvd_metric_inc(HVD_M_AMQP_OPERATIONS, "ack", NULL);
            hvd_delivery_free(&d);
            if (!ack) {
                /* Not claimed (PostgreSQL away or stopping): closing the
                 * connection gives the message back to the queue. */
                hvd_broker_close(c.b);
                c.b = NULL;
            } else if (as == HVD_BROKER_CLOSED) {
                hvd_broker_close(c.b);
                c.b = NULL;
            }
        } else if (st == HVD_BROKER_CLOSED) {
            hvd_log_warn(NULL, "consumer lost its RabbitMQ connection; reconnecting");
            atomic_store(&w->amqp_ready, false);
            hvd_broker_close(c.b);
            c.b = NULL;
        } else if (st == HVD_BROKER_CANCELLED) {
            hvd_log_warn(NULL, "RabbitMQ cancelled our consumer (queue deleted?); consuming again");
            c.consuming = false;
        }
    }
    atomic_store(&w->amqp_ready, false);
    hvd_broker_close(c.b);
    return NULL;
}
