/* The worker daemon's shared state and the interfaces between its threads.
 *
 * Threads (rabbitmq-c connections are not thread-safe, so each connection
 * belongs to exactly one thread):
 *   consumer   — its own AMQP connection: consumes <prefix>.jobs, decodes,
 *                validates, claims in PostgreSQL, then acks (intake.c).
 *   publisher  — its own AMQP connection in confirm mode: every outgoing
 *                message (envelopes, doorbells, dead letters, events) goes
 *                through its queue (publisher.c).
 *   runners    — HVD_CONCURRENCY threads, each running one claimed job's
 *                stages through the agent (runner.c). They never touch AMQP.
 *   maintainer — renews leases, sweeps PostgreSQL for jobs that need a
 *                worker, resends unsent envelopes, purges secrets (maint.c);
 *                on the one worker holding the fleet role, also exports the
 *                fleet view and prunes finished jobs (fleet.c).
 * PostgreSQL is reached through the store's small connection pool. */
#ifndef HVD_WORKER_H
#define HVD_WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "agent.h"
#include "broker.h"
#include "buf.h"
#include "config.h"
#include "plan.h"
#include "secret.h"
#include "store.h"

typedef struct Publisher Publisher;
typedef struct Runners Runners;
typedef struct LeaseSet LeaseSet;

typedef struct {
    HvdConfig cfg;
    HvdStore *store;
    HvdSecretKeys keys;
    HvdAgentCfg agent;
    Publisher *pub;
    Runners *runners;
    LeaseSet *leases;
    int retry_delays[HVD_CFG_MAX_RETRY_DELAYS]; /* HVD_RETRY_DELAYS as ints */
    char jobs_exchange[128], jobs_queue[128], retry_exchange[128], dead_exchange[128];
    char dead_queue[128], results_queue[128], events_exchange[128];
    char pub_conn_name[160], con_conn_name[160];
    int prefetch;                          /* basic.qos of the consumer */
    int64_t breaker_trial_ms;              /* how long one trial call may hold a host's circuit */
    struct HvdBroker *first_consumer_conn; /* connected by main at start, handed to the consumer */
    atomic_bool stopping;                  /* SIGTERM/SIGINT: take no new work */
    atomic_bool maint_stop;                /* the last step of shutdown */
    atomic_int agent_cancel;               /* raised when the shutdown grace is over: agents are stopped */
    atomic_bool amqp_ready;                /* consumer connected (for /healthz) */
    atomic_bool pub_ready;                 /* publisher connected */
    atomic_bool pg_ready;
} Worker;

/* ---- publisher.c ---------------------------------------------------------- */

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

/* ---- runner.c ------------------------------------------------------------- */

Runners *runners_start(Worker *w, int n);
/* Reserves a runner for a job about to be claimed; false when all are busy. */
bool runners_reserve(Runners *r);
void runners_unreserve(Runners *r);
/* Hands a claimed job (lease held) to the reserved runner; takes ownership of rec. */
void runners_submit(Runners *r, HvdJobRecord *rec, bool takeover);
size_t runners_free(Runners *r);
/* Stops: running jobs finish their current stage, then release their lease. */
void runners_stop(Runners *r, int grace_s);

/* ---- leases.c ------------------------------------------------------------- */

LeaseSet *leases_new(void);
void leases_free(LeaseSet *l);
void leases_add(LeaseSet *l, const char *job_id, int64_t epoch);
void leases_remove(LeaseSet *l, const char *job_id);
bool leases_lost(LeaseSet *l, const char *job_id);
/* Renews every lease in one statement; marks those lost. */
void leases_renew(LeaseSet *l, HvdStore *s);
/* Copies out (job_id, epoch) pairs; returns the count (at most max). */
size_t leases_snapshot(LeaseSet *l, char (*ids)[37], int64_t *epochs, size_t max);

/* ---- intake.c (consumer thread) ------------------------------------------- */

void *consumer_main(void *w);
/* Claims a job by id (doorbell, sweep) and hands it to a runner when ours. */
void intake_claim_existing(Worker *w, const char *job_id, bool *ran);

/* ---- maint.c --------------------------------------------------------------- */

void *maint_main(void *w);

/* ---- fleet.c (maintainer thread) ------------------------------------------ */

typedef struct Fleet Fleet;
/* The fleet role, view and pruner of this worker (see fleet.c). */
Fleet *fleet_new(Worker *w);
/* Tries the role, refreshes the view and prunes when their time has come. */
void fleet_tick(Fleet *f, int64_t now_mono_ms);
void fleet_free(Fleet *f); /* lets the role go */

/* ---- breaker.c ------------------------------------------------------------ */

/* Whether a call to host may go now: CLOSED, TRIAL (this job is the one
 * trial call) or OPEN (wait *wait_ms without spending an attempt). */
HvdHostGate breaker_gate(Worker *w, const char *host, const char *job_id, int64_t *wait_ms);
/* Records a call's outcome for the host's circuit. */
void breaker_report(Worker *w, const char *host, HvdOutcome o, const char *agent_code, bool was_trial);

/* ---- util ------------------------------------------------------------------ */

/* The broker connection options of this worker's settings (TLS included). */
HvdBrokerOptions worker_broker_options(const Worker *w, const char *connection_name, bool confirms);

/* Retries a store call while it answers HVD_STORE_RETRY and we are not told to
 * stop: sleeps with capped exponential backoff and jitter. */
void worker_backoff_sleep(Worker *w, int attempt);

#endif
