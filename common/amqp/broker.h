/* The RabbitMQ edge of hvdeploy, on rabbitmq-c 0.11 (Debian 12's librabbitmq).
 *
 * Threading model: ONE CONNECTION PER THREAD. rabbitmq-c connections are not
 * thread-safe, so an HvdBroker is used by the one thread that connected it,
 * with a single exception: hvd_broker_interrupt() may be called from any
 * thread (a watchdog, a signal-driven shutdown) to make a blocked call
 * return. The worker runs a consumer thread (its own connection: consume,
 * ack) and a publisher thread (its own connection: envelopes, doorbells,
 * events, dead letters, with publisher confirms).
 *
 * What rabbitmq-c 0.11 does not do for us, and this module does:
 *   - heartbeats are only sent and checked inside library calls: the owning
 *     thread must stay in hvd_broker_next / hvd_broker_wait_confirms /
 *     hvd_broker_service while idle (a missed heartbeat -> HVD_BROKER_CLOSED);
 *   - the capabilities connection.blocked, consumer_cancel_notify,
 *     publisher_confirms, basic.nack and authentication_failure_close are
 *     announced at login, else the broker stays silent about them;
 *   - its socket I/O waits with poll() without a deadline, so a write on a
 *     half-open connection could wait forever: the socket gets TCP keepalive
 *     (10/5/3 s), TCP_USER_TIMEOUT, and send/receive timeouts;
 *   - there is no confirm API in 0.11: basic.ack / basic.nack / basic.return
 *     method frames are read and matched to publish sequence numbers here.
 *
 * Channels: channel 1 carries consume/publish (and is in confirm mode when
 * asked); channel 2 is opened on demand for declarations and other RPCs, so a
 * declaration that the broker refuses never disturbs the confirm sequence.
 *
 * Errors: every function that can fail writes one human line into err (when
 * err is not NULL). No message ever contains the password of the URL. */
#ifndef HVD_BROKER_H
#define HVD_BROKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node.h"

#define HVD_BROKER_DEFAULT_URL "amqp://guest:guest@localhost:5672/%2f"
/* The one routing key of job messages (= job_type) and doorbells. */
#define HVD_BROKER_JOB_KEY "managed_deployment"
/* Header marking a doorbell (§3); value 1. */
#define HVD_BROKER_DOORBELL_HEADER "x-hvdeploy-doorbell"

typedef struct HvdBroker HvdBroker;

typedef struct {
    const char *url;             /* HVD_AMQP_URL: one URL, or the nodes of a cluster separated by
                                    whitespace (urllist.h); NULL = HVD_BROKER_DEFAULT_URL */
    const char *connection_name; /* shown by rabbitmqctl list_connections; NULL = "hvdeploy" */
    int heartbeat_s;             /* 0 = 30; negative = no heartbeats (not advised) */
    int connect_timeout_ms;      /* TCP connect and AMQP handshake; 0 = 10000 */
    int rpc_timeout_ms;          /* synchronous methods (declare, qos, consume...); 0 = 15000 */
    int tcp_user_timeout_ms;     /* TCP_USER_TIMEOUT and SO_SNDTIMEO/SO_RCVTIMEO; 0 = 30000 */
    int keepalive_idle_s;        /* TCP_KEEPIDLE; 0 = 10 */
    int keepalive_intvl_s;       /* TCP_KEEPINTVL; 0 = 5 */
    int keepalive_cnt;           /* TCP_KEEPCNT; 0 = 3 */
    bool confirms;               /* confirm.select on channel 1 (publisher connections) */
    /* TLS, used with amqps:// URLs only. Verification is on unless turned off. */
    const char *tls_ca_file;   /* NULL = /etc/ssl/certs/ca-certificates.crt when present */
    const char *tls_cert_file; /* client certificate (PEM), with tls_key_file */
    const char *tls_key_file;
    bool tls_no_verify_peer;
    bool tls_no_verify_hostname;
    /* Deliveries whose body is larger than this many bytes are refused before
     * their body is copied: only its first max_body bytes are kept (the rest
     * is read from the socket and dropped) and the delivery says too_large.
     * 0 = no limit. */
    size_t max_body;
} HvdBrokerOptions;

typedef enum {
    HVD_BROKER_OK = 0,
    HVD_BROKER_DELIVERY,  /* next/get: *d was filled in; free it with hvd_delivery_free */
    HVD_BROKER_TIMEOUT,   /* nothing happened within the timeout */
    HVD_BROKER_EMPTY,     /* get: the queue is empty */
    HVD_BROKER_CLOSED,    /* the connection is lost or was closed by the broker: close and reconnect */
    HVD_BROKER_CANCELLED, /* the broker cancelled our consumer (queue deleted): consume again or reconnect */
    HVD_BROKER_BLOCKED,   /* publish: the broker blocked this connection (resource alarm); try later */
    HVD_BROKER_ERROR,     /* the broker refused this one operation (channel error); the channel was
                              reopened and the connection is usable; err says why */
} HvdBrokerStatus;

const char *hvd_broker_status_name(HvdBrokerStatus s); /* "ok", "closed", ... */

/* Connects, logs in and opens channel 1 (in confirm mode when opt->confirms).
 * With several URLs (a cluster) each is tried in turn, starting with the one
 * that last worked in this process (moving on past one that failed), so that
 * every (re)connect of every connection finds a live node; the TLS options
 * apply to each amqps:// URL. The caller's backoff comes between rounds.
 * NULL on failure with one line in err, e.g.
 *   "cannot connect to RabbitMQ at 127.0.0.1:5672: connection refused"
 *   "RabbitMQ refused login for user 'guest' at 127.0.0.1:5672: ACCESS_REFUSED - ..."
 *   "no RabbitMQ node of 3 answered: cannot connect to RabbitMQ at a:5672: ...; ..."
 * A URL naming several hosts with a comma ("amqp://a,b/"), which rabbitmq-c
 * would cut to the first, is refused. */
HvdBroker *hvd_broker_connect(const HvdBrokerOptions *opt, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Closes the connection politely (bounded by a short timeout) and frees. NULL-safe. */
void hvd_broker_close(HvdBroker *b);
/* Thread-safe and async-signal-safe: shuts the socket down so that the call the owning
 * thread is blocked in returns HVD_BROKER_CLOSED (a watchdog's way out of a stuck write).
 * The owner still calls hvd_broker_close; the caller must make sure that close does not
 * run concurrently (b must still be alive). */
void hvd_broker_interrupt(HvdBroker *b);
/* False once the connection is known to be lost. */
bool hvd_broker_is_open(const HvdBroker *b);
/* True between connection.blocked and connection.unblocked; *reason (borrowed, may be
 * NULL) gets the broker's reason. */
bool hvd_broker_is_blocked(const HvdBroker *b, const char **reason);
/* The last error line of this connection (why it was CLOSED, CANCELLED, or an operation
 * refused); "" when none. Borrowed until the next call. */
const char *hvd_broker_last_error(const HvdBroker *b);
/* "host:port/vhost" of the connection, for log lines (never the credentials). */
const char *hvd_broker_describe(const HvdBroker *b);

/* A copy of url with the password replaced by "***" (caller frees). NULL in, NULL out. */
char *hvd_broker_mask_url(const char *url);

/* ---- topology (§2) ---- */

/* Declares every exchange, queue and binding of §2 for prefix (e.g. "hvdeploy") and the
 * retry buckets retry_delays_s[0..n-1] (seconds, each > 0): idempotent. Doorbells wait in
 * <prefix>.retry.<N>s, reached through exchange <prefix>.retry with routing key "<N>s"
 * (see hvd_broker_retry_key); when their TTL expires they are dead-lettered to exchange
 * <prefix>.jobs with routing key HVD_BROKER_JOB_KEY. Every queue is a quorum queue
 * (replicated on a cluster's nodes); the retry buckets keep their TTL (RabbitMQ 3.10
 * expires quorum messages at the queue's head, as classic queues do) and dead-letter
 * at-least-once. An existing object with other arguments gives HVD_BROKER_ERROR and a
 * message naming it, e.g. "queue 'hvdeploy.jobs' exists with different arguments:
 * PRECONDITION_FAILED - inequivalent arg ..."; the classic retry buckets and dead-letter
 * queue of an earlier version get a message saying what to run to upgrade them. */
HvdBrokerStatus hvd_broker_declare_topology(HvdBroker *b, const char *prefix, const int *retry_delays_s, size_t n,
                                            char *err, size_t errlen) __attribute__((warn_unused_result));
/* The routing key of the retry bucket of delay_s seconds on <prefix>.retry: "<N>s". */
void hvd_broker_retry_key(int delay_s, char *buf, size_t n);

/* Smaller RPCs (channel 2). Names of missing objects come back as HVD_BROKER_ERROR. */
/* Passive declare: counts of a queue (either pointer may be NULL). */
HvdBrokerStatus hvd_broker_queue_info(HvdBroker *b, const char *queue, uint32_t *messages, uint32_t *consumers,
                                      char *err, size_t errlen);
/* A server-named exclusive, auto-delete queue (for a private reply queue or an event
 * tap); its name goes to name (namelen >= 128 is enough). */
HvdBrokerStatus hvd_broker_declare_private_queue(HvdBroker *b, char *name, size_t namelen, char *err, size_t errlen);
HvdBrokerStatus hvd_broker_bind(HvdBroker *b, const char *queue, const char *exchange, const char *key, char *err,
                                size_t errlen);
HvdBrokerStatus hvd_broker_queue_purge(HvdBroker *b, const char *queue, uint32_t *purged, char *err, size_t errlen);
/* Deleting a queue or exchange that does not exist is OK. */
HvdBrokerStatus hvd_broker_queue_delete(HvdBroker *b, const char *queue, char *err, size_t errlen);
HvdBrokerStatus hvd_broker_exchange_delete(HvdBroker *b, const char *exchange, char *err, size_t errlen);

/* ---- consuming (channel 1) ---- */

typedef struct {
    const void *body; /* the message body, len bytes (not NUL-terminated) */
    size_t len;
    uint64_t delivery_tag; /* 0 for a message taken with no_ack */
    bool redelivered;
    char *exchange; /* "" for the default exchange */
    char *routing_key;
    char *content_type; /* properties: NULL when absent */
    char *message_id;
    char *correlation_id;
    char *reply_to;
    int delivery_mode;      /* 2 = persistent, 0 when absent */
    bool doorbell;          /* header x-hvdeploy-doorbell is 1, "1" or true */
    int64_t delivery_count; /* header x-delivery-count (quorum queues), 0 when absent */
    bool too_large;         /* the body was over HvdBrokerOptions.max_body: body/len hold its start only */
    size_t body_size;       /* the body's size as sent (= len unless too_large) */
    void *priv;             /* the received message, with its full header table */
} HvdDelivery;

/* basic.qos(prefetch) + basic.consume on queue. ERROR names a missing queue. */
HvdBrokerStatus hvd_broker_consume(HvdBroker *b, const char *queue, uint16_t prefetch, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops the consumer (deliveries already sent stay unacked until acked or the connection
 * closes, which requeues them). */
HvdBrokerStatus hvd_broker_cancel_consume(HvdBroker *b, char *err, size_t errlen);
/* Waits up to timeout_ms for the next delivery: DELIVERY, TIMEOUT, CLOSED or CANCELLED.
 * Services heartbeats and other frames (confirms, blocked) meanwhile. */
HvdBrokerStatus hvd_broker_next(HvdBroker *b, int timeout_ms, HvdDelivery *d) __attribute__((warn_unused_result));
/* basic.get: DELIVERY or EMPTY (or CLOSED/ERROR). With no_ack the message is gone at once. */
HvdBrokerStatus hvd_broker_get(HvdBroker *b, const char *queue, bool no_ack, HvdDelivery *d, char *err, size_t errlen)
    __attribute__((warn_unused_result));
HvdBrokerStatus hvd_broker_ack(HvdBroker *b, uint64_t delivery_tag);
/* requeue=false dead-letters the message (when its queue has a dead-letter exchange). */
HvdBrokerStatus hvd_broker_reject(HvdBroker *b, uint64_t delivery_tag, bool requeue);

/* The delivery's headers as a map node (AMQP tables become maps, arrays become arrays,
 * numbers ints or floats, timestamps ints); an empty map when there are none.
 * Caller frees with hvd_node_free. */
HvdNode *hvd_delivery_headers(const HvdDelivery *d);
/* A header's value as a string (UTF-8 or byte string only; borrowed until
 * hvd_delivery_free; NULL when absent or of another type). */
const char *hvd_delivery_header_str(const HvdDelivery *d, const char *key);
void hvd_delivery_free(HvdDelivery *d); /* NULL-safe; leaves *d zeroed */

/* ---- publishing (channel 1; confirms when opt->confirms) ---- */

typedef struct {
    const char *key;
    const char *str; /* a string value; NULL = the integer i */
    int64_t i;
} HvdHeader;

typedef struct {
    const char *exchange;    /* NULL or "" = the default exchange */
    const char *routing_key; /* with the default exchange: the queue name */
    const void *body;
    size_t len;
    const char *content_type; /* NULL = unset, as are the other properties */
    const char *message_id;
    const char *correlation_id;
    const char *reply_to;
    const char *expiration;   /* per-message TTL in milliseconds as text, NULL = none */
    bool persistent;          /* delivery_mode 2 */
    bool mandatory;           /* unroutable -> HVD_CONFIRM_RETURNED */
    const HvdHeader *headers; /* n_headers entries, added after copy_headers_from's */
    size_t n_headers;
    const HvdDelivery *copy_headers_from; /* NULL, or a delivery whose headers are copied
                                              (a dead letter keeping x-death and the like) */
} HvdPublish;

typedef enum {
    HVD_CONFIRM_ACKED,    /* the broker took responsibility for the message */
    HVD_CONFIRM_NACKED,   /* the broker refused it (e.g. x-overflow=reject-publish) */
    HVD_CONFIRM_RETURNED, /* mandatory and unroutable: it went nowhere */
    HVD_CONFIRM_LOST,     /* the channel or connection closed before the confirm: unknown */
} HvdConfirm;
const char *hvd_confirm_name(HvdConfirm c);

typedef void (*HvdConfirmFn)(void *ctx, uint64_t seq, HvdConfirm status);

/* Publishes one message. With confirms, *seq_out (may be NULL) gets its sequence number
 * (1, 2, ... per channel; renumbered from 1 after the channel is reopened), reported
 * later by hvd_broker_wait_confirms; without confirms it is 0.
 * OK, CLOSED, BLOCKED (the connection is blocked by a resource alarm: nothing was sent),
 * or ERROR (invalid arguments). A publish to a missing exchange is refused by the broker
 * asynchronously: its seq is reported HVD_CONFIRM_LOST and the channel reopened. */
HvdBrokerStatus hvd_broker_publish(HvdBroker *b, const HvdPublish *p, uint64_t *seq_out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Reads frames until every published seq is settled or timeout_ms passed, calling fn (may
 * be NULL) once per seq as it is settled (ack with multiple=true settles all up to the
 * tag). OK when none is outstanding, TIMEOUT, or CLOSED (the outstanding seqs are then
 * reported HVD_CONFIRM_LOST before returning). Settlements read during other calls are
 * kept and reported here. */
HvdBrokerStatus hvd_broker_wait_confirms(HvdBroker *b, int timeout_ms, HvdConfirmFn fn, void *ctx);
/* Seqs published and not yet reported by hvd_broker_wait_confirms. */
size_t hvd_broker_unconfirmed(const HvdBroker *b);

/* For an idle thread: services heartbeats and pending frames for up to timeout_ms
 * (0 = only what is already there). Returns early with OK when something changed
 * (a confirm, blocked/unblocked), else TIMEOUT; CLOSED when the connection is gone,
 * CANCELLED when our consumer was cancelled. Deliveries read here are kept for
 * hvd_broker_next. */
HvdBrokerStatus hvd_broker_service(HvdBroker *b, int timeout_ms);

#endif
