/* Envelopes and dead letters: encoding them in the job's content type and
 * handing them to the publisher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "codec.h"
#include "answer.h"
#include "publisher.h"
#include "log.h"
#include "metrics.h"

void answer_encode(const HvdEnvelope *env, HvdContentType ct, HvdBuf *out)
{
    HvdNode *n = hvd_envelope_to_node(env);
    hvd_encode(ct == HVD_CT_UNKNOWN ? HVD_CT_MSGPACK : ct, n, out);
    hvd_node_free(n);
}

const char *answer_reply_queue(Worker *w, const char *reply_to)
{
    /* direct reply-to cannot be answered later (the job is refused for it): the results queue */
    return reply_to && *reply_to && !hvd_reply_to_is_direct(reply_to) ? reply_to : w->results_queue;
}

void answer_publish(Worker *w, const char *job_id, const char *reply_to, const char *correlation_id,
                    const char *content_type, const HvdBuf *bytes)
{
    PubMsg *m = pubmsg_new(PUB_ENVELOPE);
    m->exchange = NULL; /* the default exchange: routing key = queue name */
    m->routing_key = hvd_xstrdup(answer_reply_queue(w, reply_to));
    hvd_buf_append(&m->body, bytes->data, bytes->len);
    m->content_type = hvd_xstrdup(content_type ? content_type : "application/msgpack");
    m->message_id = hvd_xstrdup(job_id);
    m->correlation_id = hvd_xstrdup(correlation_id ? correlation_id : job_id);
    if (job_id) snprintf(m->job_id, sizeof m->job_id, "%s", job_id);
    publisher_send(w->pub, m);
}

void answer_dead_letter(Worker *w, const HvdJobRecord *rec, const char *stage, const char *code, const char *message,
                        const char *agent_code, const char *agent_log)
{
    /* The evidence an operator needs; the request is the stored, redacted one. */
    HvdNode *n = hvd_node_map();
    hvd_node_map_set_str(n, "reason", message);
    hvd_node_map_set_str(n, "code", code);
    hvd_node_map_set_str(n, "job_id", rec->job_id);
    hvd_node_map_set_str(n, "job_type", rec->job_type);
    hvd_node_map_set_str(n, "correlation_id", rec->correlation_id);
    hvd_node_map_set_str(n, "target_host", rec->target_host);
    hvd_node_map_set_str(n, "stage", stage);
    hvd_node_map_set_str(n, "agent_code", agent_code);
    hvd_node_map_set_str(n, "agent_log", agent_log);
    hvd_node_map_set_int(n, "attempts", rec->attempts);
    char at[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), at);
    hvd_node_map_set_str(n, "at", at);
    HvdNode *req = NULL;
    char err[128];
    if (rec->request_json && hvd_json_to_node(rec->request_json, strlen(rec->request_json), 4 * HVD_MAX_BODY, &req, err,
                                              sizeof err) == HVD_DECODE_OK)
        hvd_node_map_set(n, "request", req);
    else
        hvd_node_map_set(n, "request", hvd_node_nil());

    PubMsg *m = pubmsg_new(PUB_DEAD_LETTER);
    m->exchange = hvd_xstrdup(w->dead_exchange);
    m->routing_key = hvd_xstrdup("");
    hvd_encode(HVD_CT_JSON, n, &m->body);
    hvd_node_free(n);
    m->content_type = hvd_xstrdup("application/json");
    m->message_id = hvd_xstrdup(rec->job_id);
    m->correlation_id = hvd_xstrdup(rec->correlation_id);
    m->reason = hvd_xstrdup(message);
    m->code = hvd_xstrdup(code);
    snprintf(m->job_id, sizeof m->job_id, "%s", rec->job_id);
    hvd_metric_inc(HVD_M_DEAD_LETTERS_TOTAL, code, NULL);
    publisher_send(w->pub, m);
}
