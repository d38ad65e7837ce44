/* The consumer thread: takes messages from <prefix>.jobs, decodes and
 * validates them, claims valid jobs in PostgreSQL (one transaction) and only
 * then acks (intake_job.c). Undecodable messages are answered and dead-lettered as
 * received; invalid ones are answered (and recorded when they carry a job
 * id) (intake_reject.c); doorbells resume their job from PostgreSQL. While every runner is
 * busy the consumer stops consuming, so the broker hands jobs to workers
 * that have room. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "answer.h"
#include "intake.h"
#include "intake_priv.h"
#include "log.h"
#include "mask.h"
#include "metrics.h"
#include "publisher.h"
#include "runner.h"

typedef struct {
    Worker *w;
    HvdBroker *b;
    bool consuming;
} Consumer;

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
    return intake_job(c->w, c->b, d);
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
