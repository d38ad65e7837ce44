/* The dead-letter queue <prefix>.dead, read as `hvdeployctl dead` and the
 * web dashboard read it: messages taken with basic.get and not acked (closing
 * the connection puts them back, in order), each described: its id, job id,
 * reason, code, source, first routing key and time, and its body decoded
 * when it can be. Text helpers that keep secrets and control characters out
 * of what is shown. */
#ifndef HVD_CTL_DEADQ_H
#define HVD_CTL_DEADQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "broker.h"
#include "node.h"

/* One dead letter, taken with basic.get and not acked: closing the connection
 * puts it back in the queue, in order. */
typedef struct {
    HvdDelivery d;
    char id[64];  /* message_id, else "raw-<hash of the body>" */
    char *job_id; /* a job id: message_id or the record's job_id; NULL when none */
    char *reason; /* why it died (secret-safe) */
    char *code;
    char *source;      /* "worker", or "rabbitmq (delivery_limit from queue X)" */
    char *routing_key; /* the routing key it was first published with */
    int64_t at_ms;     /* when it died, 0 when unknown */
    bool record;       /* the worker's JSON record of a failed job (retries exhausted...) */
    bool resumed;      /* replay: its job was reset and rung in this run */
    HvdNode *headers;
    HvdNode *body; /* decoded body (JSON or msgpack map/list), NULL when undecodable */
} DeadItem;

/* Takes up to limit dead letters from queue (unacked) into a new array. */
HvdBrokerStatus deadq_read(HvdBroker *b, const char *queue, size_t limit, DeadItem **items, size_t *n, char *err,
                           size_t errlen);
void deadq_items_free(DeadItem *items, size_t n); /* NULL-safe */

/* Fills the description of an item whose delivery d is set. */
void deadq_item_describe(DeadItem *it);
void deadq_item_free(DeadItem *it);
/* Its ID or job id is id (the job id case-insensitively). */
bool deadq_item_matches(const DeadItem *it, const char *id);
int64_t deadq_item_age_s(const DeadItem *it); /* -1 when unknown */
/* {id, job_id, code, reason, source, at, age_s, size, content_type, routing_key, replayable_job[, stage, target_host]} */
HvdNode *deadq_item_summary_node(const DeadItem *it);

/* A reason without the parser's " near '...'" excerpt (it could hold a password). */
char *deadq_safe_reason(const char *s);
/* A copy fit for one line: control characters as '?', at most max bytes (0 = all) cut on a UTF-8 boundary. */
char *deadq_one_line(const char *s, size_t max);
void deadq_size_text(size_t n, char *out, size_t outlen);
/* A raw body that could not be decoded, as received but for the values of
 * the secret fields; NUL-terminated, *len bytes; caller frees. */
unsigned char *deadq_masked_raw(const DeadItem *it, size_t *len);

#endif
