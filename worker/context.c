/* The helpers every worker thread uses: broker connection options and the
 * backoff between retries of a store or broker call. */
#include <unistd.h>
#include <sys/random.h>
#include "clock.h"
#include "context.h"

void worker_backoff_sleep(Worker *w, int attempt)
{
    /* capped exponential backoff with full jitter: 100 ms .. 10 s */
    int64_t cap = attempt < 7 ? (100LL << attempt) : 10000;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = (uint32_t)hvd_mono_ms();
    int64_t ms = cap / 2 + (int64_t)(r % (uint32_t)(cap / 2 + 1));
    int64_t until = hvd_mono_ms() + ms;
    while (hvd_mono_ms() < until) {
        if (w && atomic_load(&w->stopping) && attempt > 2) return;
        usleep(50 * 1000);
    }
}

static const char *unless_empty(const char *s)
{
    return s && *s ? s : NULL;
}

HvdBrokerOptions worker_broker_options(const Worker *w, const char *connection_name, bool confirms)
{
    return (HvdBrokerOptions){
        .url = w->cfg.amqp_url,
        .connection_name = connection_name,
        .heartbeat_s = (int)w->cfg.heartbeat,
        .confirms = confirms,
        .tls_ca_file = unless_empty(w->cfg.amqp_ca_file),
        .tls_cert_file = unless_empty(w->cfg.amqp_cert_file),
        .tls_key_file = unless_empty(w->cfg.amqp_key_file),
        .tls_no_verify_peer = !w->cfg.amqp_verify,
        .tls_no_verify_hostname = !w->cfg.amqp_verify,
        .max_body = HVD_MAX_BODY, /* a larger job is refused before its body is copied */
    };
}
