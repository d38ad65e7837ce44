/* Shared helpers of the integration tests (tests/integration/test_*.c): the services'
 * environment from deploy/dev.sh, a unique AMQP prefix per test, cleanup, commands,
 * and the test side's own broker calls. Keep it small and generic. */
#ifndef HVD_IT_HARNESS_H
#define HVD_IT_HARNESS_H
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <amqp.h>
#include "broker.h"

/* An environment variable (HVD_AMQP_URL, HVD_PG_DSN, HVD_SECRET_KEY_FILE, HVD_DEV_SH...);
 * NULL when unset or empty. HVD_DEV_SH falls back to <source dir>/deploy/dev.sh. */
const char *hvd_it_env(const char *name);

/* Skips the current test (with a reason) when the variable is not set. */
#define HVD_IT_NEED(var)                                                      \
    do {                                                                      \
        if (!hvd_it_env(var))                                                 \
            cr_skip_test("%s is not set: run under ./deploy/dev.sh test, or " \
                         ". .state/env after ./deploy/dev.sh up",             \
                         var);                                                \
    } while (0)

/* A new prefix unique to this process and call, e.g. "it4242x1" (static storage; the
 * last 32 stay valid). */
const char *hvd_it_prefix(void);
/* The retry delays the tests declare (short, so a TTL test stays quick): 1 and 2 s. */
extern const int hvd_it_delays[];
extern const size_t hvd_it_ndelays;

/* A broker connection for the test side (connection name "hvd-it <what>", confirms on);
 * fails the test when it cannot connect. */
HvdBroker *hvd_it_broker(const char *what);
/* Declares the topology of prefix with hvd_it_delays; fails the test on error. */
void hvd_it_declare(HvdBroker *b, const char *prefix);
/* Deletes every queue and exchange of prefix's topology (with the given retry delays,
 * NULL = hvd_it_delays), on its own connection; never fails the test. */
void hvd_it_cleanup_prefix(const char *prefix, const int *delays, size_t n);

/* Publishes body to exchange/key (persistent, with p's other fields when p is given, else
 * none) and waits for its confirm (10 s); returns how it was settled. */
HvdConfirm hvd_it_publish(HvdBroker *b, const HvdPublish *p);
/* Takes one message from queue (basic.get, acked at once), polling up to timeout_ms:
 * DELIVERY (free *d) or EMPTY when none came. */
HvdBrokerStatus hvd_it_get(HvdBroker *b, const char *queue, int timeout_ms, HvdDelivery *d);
/* Number of ready messages in queue (-1 when it cannot be read). */
long hvd_it_queue_len(HvdBroker *b, const char *queue);

/* A plain rabbitmq-c connection to $HVD_AMQP_URL with channel 1 open, to make objects
 * behind the broker module's back; close it with hvd_it_raw_close. */
amqp_connection_state_t hvd_it_raw_conn(void);
void hvd_it_raw_close(amqp_connection_state_t c);

/* Runs a shell command (printf-style); returns its exit status, -1 when it could not run. */
int hvd_it_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command and returns its stdout (caller frees; never NULL). */
char *hvd_it_run_output(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The pid of the broker's Erlang VM from `$HVD_DEV_SH svc rmq-pid`; 0 when unknown. */
long hvd_it_rmq_pid(void);

/* Milliseconds on a monotonic clock. */
long long hvd_it_now_ms(void);

#endif
