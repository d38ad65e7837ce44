/* The worker daemon's shared state (one Worker per process) and the small
 * helpers every thread uses. Each thread's module has its own header.
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
 *                worker, resends unsent envelopes, purges secrets (maint.c).
 * PostgreSQL is reached through the store's small connection pool. */
#ifndef HVD_W_CONTEXT_H
#define HVD_W_CONTEXT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "agent.h"
#include "broker.h"
#include "buf.h"
#include "config.h"
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
    struct HvdSessions *sessions; /* session-mode agents (NULL with HVD_AGENT_PROFILE=raw) */
    char **session_argv;          /* HVD_AGENT_SESSION_CMD, or HVD_AGENT_CMD plus --session */
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

/* The broker connection options of this worker's settings (TLS included). */
HvdBrokerOptions worker_broker_options(const Worker *w, const char *connection_name, bool confirms);

/* Retries a store call while it answers HVD_STORE_RETRY and we are not told to
 * stop: sleeps with capped exponential backoff and jitter. */
void worker_backoff_sleep(Worker *w, int attempt);

#endif
