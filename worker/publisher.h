/* The publisher thread (publisher.c): every outgoing AMQP message, on its own
 * connection in confirm mode. */
#ifndef HVD_W_PUBLISHER_H
#define HVD_W_PUBLISHER_H
#include "context.h"
#include "buf.h"

typedef enum {
    PUB_ENVELOPE, /* terminal envelope: marked sent in PostgreSQL once confirmed */
    PUB_ANSWER,   /* an envelope not stored anywhere (undecodable message): confirm awaited */
    PUB_DOORBELL,
    PUB_DEAD_LETTER,
    PUB_EVENT, /* best effort: dropped when the queue is full or the broker is away */
} PubKind;

typedef struct PubDone PubDone; /* completion for a caller that waits */

typedef struct PubMsg {
    PubKind kind;
    char *exchange; /* NULL = default exchange */
    char *routing_key;
    HvdBuf body;
    char *content_type, *message_id, *correlation_id;
    char *expiration; /* per-message TTL in ms as text, or NULL */
    bool doorbell_header;
    char *reason;         /* dead letters: x-hvdeploy-reason header */
    char *code;           /* dead letters: x-hvdeploy-code header */
    char job_id[37];      /* envelopes: whose envelope */
    char at[32];          /* when it was made (RFC 3339): dead letters carry it as x-hvdeploy-at */
    PubDone *done;        /* NULL or signalled once confirmed/failed */
    struct PubMsg *next_; /* publisher's queue link */
} PubMsg;

Publisher *publisher_start(Worker *w);
/* Waits until everything queued was sent (or timeout_ms passed); true when
 * the queue is empty. The publisher keeps running. */
bool publisher_flush(Publisher *p, int timeout_ms);
/* Takes ownership of m. Events are dropped when the queue is over its bound. */
void publisher_send(Publisher *p, PubMsg *m);
/* Sends m and waits until the broker confirmed it (or timeout_ms passed).
 * Returns true when confirmed. Takes ownership of m. */
bool publisher_send_wait(Publisher *p, PubMsg *m, int timeout_ms);
void publisher_stop(Publisher *p); /* flushes what it can, then joins */
/* Whether the envelope of job_id is queued or being sent right now (the
 * outbox leaves those alone). */
bool publisher_has_envelope(Publisher *p, const char *job_id);
/* Cuts the publisher's connection when one batch has been inside the broker
 * for longer than limit_ms (a half-open connection the socket timeouts missed). */
void publisher_watchdog(Publisher *p, int64_t limit_ms);

PubMsg *pubmsg_new(PubKind kind);
void pubmsg_free(PubMsg *m);

/* Helpers that build and send the usual messages. */
void pub_doorbell(Worker *w, const char *job_id, int64_t delay_ms);
void pub_event(Worker *w, const char *job_id, const char *correlation_id, const char *content_type, const char *stage,
               const char *status, int64_t attempt, const char *message);

#endif
