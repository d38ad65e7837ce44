/* Broker topology (§2) and the small synchronous methods on the RPC channel. */
#include "broker_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"

#define BRK_NAME_MAX 256 /* AMQP short string */
#define BRK_MAX_BUCKETS 32

void hvd_broker_retry_key(int delay_s, char *buf, size_t n)
{
    snprintf(buf, n, "%ds", delay_s);
}

static amqp_table_entry_t arg_str(const char *k, const char *v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

static amqp_table_entry_t arg_int(const char *k, int64_t v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = v;
    return e;
}

static HvdBrokerStatus declare_exchange(HvdBroker *b, const char *name, const char *type, char *err, size_t errlen)
{
    char text[400];
    int code;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_exchange_declare(b->conn, BRK_CH_RPC, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                          amqp_empty_table);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st == HVD_BROKER_OK) return st;
    if (code == AMQP_PRECONDITION_FAILED)
        brk_err(b, err, errlen, "exchange '%s' exists with a different type or arguments (want %s, durable): %s", name,
                type, text);
    else
        brk_err(b, err, errlen, "cannot declare exchange '%s': %s", name, text);
    return st;
}

static HvdBrokerStatus declare_queue(HvdBroker *b, const char *name, amqp_table_t args, char *err, size_t errlen)
{
    char text[400];
    int code;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_declare(b->conn, BRK_CH_RPC, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st == HVD_BROKER_OK) return st;
    if (code == AMQP_PRECONDITION_FAILED)
        brk_err(b, err, errlen, "queue '%s' exists with different arguments: %s", name, text);
    else
        brk_err(b, err, errlen, "cannot declare queue '%s': %s", name, text);
    return st;
}

/* An earlier hvdeploy declared the retry buckets and the dead-letter queue as
 * classic queues; a queue's type cannot change in place. When declaring the
 * quorum form fails, declaring the classic one (old_args, exactly what the
 * earlier version declared) tells whether the queue is that old one: then the
 * error says what the operator must run. */
static HvdBrokerStatus declare_queue_or_explain(HvdBroker *b, const char *name, amqp_table_t args,
                                                amqp_table_t old_args, bool holds_dead_letters, char *err,
                                                size_t errlen)
{
    char first[512] = "";
    HvdBrokerStatus st = declare_queue(b, name, args, first, sizeof first);
    if (st != HVD_BROKER_ERROR || !strstr(first, "exists with different arguments")) {
        if (st != HVD_BROKER_OK) brk_err(b, err, errlen, "%s", first);
        return st;
    }
    char probe[512];
    HvdBrokerStatus old = declare_queue(b, name, old_args, probe, sizeof probe);
    if (old == HVD_BROKER_CLOSED) {
        brk_err(b, err, errlen, "%s", probe);
        return old;
    }
    if (old != HVD_BROKER_OK) {
        brk_err(b, err, errlen, "%s", first);
        return st;
    }
    char p[300] = "";
    if (strcmp(b->vhost, "/") != 0) snprintf(p, sizeof p, "-p '%s' ", b->vhost);
    if (holds_dead_letters)
        brk_err(b, err, errlen,
                "queue '%s' is the classic queue of an earlier hvdeploy; this version declares it a quorum queue "
                "(replicated on the cluster's nodes) and a queue's type cannot change in place. Empty it first "
                "(hvdeployctl dead list, then dead replay / dead purge; or move its messages, docs/scaling.md), then "
                "run: rabbitmqctl delete_queue %s'%s' --if-empty",
                name, p, name);
    else
        brk_err(b, err, errlen,
                "queue '%s' is the classic queue of an earlier hvdeploy; this version declares it a quorum queue "
                "(replicated on the cluster's nodes) and a queue's type cannot change in place. Run: rabbitmqctl "
                "delete_queue %s'%s' (the doorbells it holds are rung again by the workers' sweep) and start the "
                "worker again",
                name, p, name);
    return st;
}

HvdBrokerStatus hvd_broker_bind(HvdBroker *b, const char *queue, const char *exchange, const char *key, char *err,
                                size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_bind(b->conn, BRK_CH_RPC, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key ? key : ""), amqp_empty_table);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st != HVD_BROKER_OK)
        brk_err(b, err, errlen, "cannot bind queue '%s' to exchange '%s' with key '%s': %s", queue, exchange,
                key ? key : "", text);
    return st;
}

HvdBrokerStatus hvd_broker_declare_topology(HvdBroker *b, const char *prefix, const int *retry_delays_s, size_t n,
                                            char *err, size_t errlen)
{
    char jobs[BRK_NAME_MAX], retry[BRK_NAME_MAX], dead[BRK_NAME_MAX], events[BRK_NAME_MAX];
    char results[BRK_NAME_MAX];
    HvdBrokerStatus st;
    if (!b || b->dead) {
        brk_err(b, err, errlen, "%s", b ? b->last_error : "not connected to RabbitMQ");
        return HVD_BROKER_CLOSED;
    }
    if (!prefix || !*prefix || strlen(prefix) > 200) {
        brk_err(b, err, errlen, "invalid AMQP prefix '%s': want 1 to 200 characters", prefix ? prefix : "");
        return HVD_BROKER_ERROR;
    }
    if (n > BRK_MAX_BUCKETS || (n && !retry_delays_s)) {
        brk_err(b, err, errlen, "too many retry delays (%zu, at most %d)", n, BRK_MAX_BUCKETS);
        return HVD_BROKER_ERROR;
    }
    for (size_t i = 0; i < n; i++)
        if (retry_delays_s[i] <= 0 || retry_delays_s[i] > 86400 * 30) {
            brk_err(b, err, errlen, "invalid retry delay %d s: want 1 to 2592000", retry_delays_s[i]);
            return HVD_BROKER_ERROR;
        }
    snprintf(jobs, sizeof jobs, "%s.jobs", prefix);
    snprintf(retry, sizeof retry, "%s.retry", prefix);
    snprintf(dead, sizeof dead, "%s.dead", prefix);
    snprintf(events, sizeof events, "%s.events", prefix);
    snprintf(results, sizeof results, "%s.results", prefix);

    if ((st = declare_exchange(b, jobs, "direct", err, errlen)) != HVD_BROKER_OK ||
        (st = declare_exchange(b, retry, "direct", err, errlen)) != HVD_BROKER_OK ||
        (st = declare_exchange(b, dead, "fanout", err, errlen)) != HVD_BROKER_OK ||
        (st = declare_exchange(b, events, "topic", err, errlen)) != HVD_BROKER_OK)
        return st;

    amqp_table_entry_t jargs[] = {
        arg_str("x-queue-type", "quorum"),       arg_str("x-dead-letter-exchange", dead),
        arg_int("x-delivery-limit", 5),          arg_str("x-dead-letter-strategy", "at-least-once"),
        arg_str("x-overflow", "reject-publish"),
    };
    if ((st = declare_queue(b, jobs, (amqp_table_t){5, jargs}, err, errlen)) != HVD_BROKER_OK ||
        (st = hvd_broker_bind(b, jobs, jobs, HVD_BROKER_JOB_KEY, err, errlen)) != HVD_BROKER_OK)
        return st;

    for (size_t i = 0; i < n; i++) {
        char q[BRK_NAME_MAX], key[32];
        hvd_broker_retry_key(retry_delays_s[i], key, sizeof key);
        snprintf(q, sizeof q, "%s.retry.%s", prefix, key);
        /* Quorum (RabbitMQ 3.10 supports x-message-ttl and the per-message
         * expiration on quorum queues; both expire at the head of the queue,
         * as in a classic one, so a doorbell waits at most the bucket's TTL).
         * At-least-once dead-lettering keeps a doorbell in the bucket until
         * hvdeploy.jobs has taken it; it needs x-overflow=reject-publish. */
        amqp_table_entry_t rargs[] = {
            arg_str("x-queue-type", "quorum"),
            arg_int("x-message-ttl", (int64_t)retry_delays_s[i] * 1000),
            arg_str("x-dead-letter-exchange", jobs),
            arg_str("x-dead-letter-routing-key", HVD_BROKER_JOB_KEY),
            arg_str("x-dead-letter-strategy", "at-least-once"),
            arg_str("x-overflow", "reject-publish"),
        };
        if ((st = declare_queue_or_explain(b, q, (amqp_table_t){6, rargs}, (amqp_table_t){3, rargs + 1}, false, err,
                                           errlen)) != HVD_BROKER_OK ||
            (st = hvd_broker_bind(b, q, retry, key, err, errlen)) != HVD_BROKER_OK)
            return st;
    }

    amqp_table_entry_t qargs[] = {arg_str("x-queue-type", "quorum")};
    if ((st = declare_queue_or_explain(b, dead, (amqp_table_t){1, qargs}, amqp_empty_table, true, err, errlen)) !=
            HVD_BROKER_OK ||
        (st = hvd_broker_bind(b, dead, dead, "", err, errlen)) != HVD_BROKER_OK)
        return st;
    return declare_queue(b, results, (amqp_table_t){1, qargs}, err, errlen);
}

HvdBrokerStatus hvd_broker_queue_info(HvdBroker *b, const char *queue, uint32_t *messages, uint32_t *consumers,
                                      char *err, size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(b->conn, BRK_CH_RPC, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        if (code == AMQP_NOT_FOUND)
            brk_err(b, err, errlen, "queue '%s' does not exist", queue);
        else
            brk_err(b, err, errlen, "cannot inspect queue '%s': %s", queue, text);
        return st;
    }
    if (messages) *messages = ok->message_count;
    if (consumers) *consumers = ok->consumer_count;
    return HVD_BROKER_OK;
}

HvdBrokerStatus hvd_broker_declare_private_queue(HvdBroker *b, char *name, size_t namelen, char *err, size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(b->conn, BRK_CH_RPC, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        brk_err(b, err, errlen, "cannot declare a private queue: %s", text);
        return st;
    }
    if (ok->queue.len + 1 > namelen) {
        brk_err(b, err, errlen, "private queue name too long (%zu bytes)", ok->queue.len);
        return HVD_BROKER_ERROR;
    }
    memcpy(name, ok->queue.bytes, ok->queue.len);
    name[ok->queue.len] = '\0';
    return HVD_BROKER_OK;
}

HvdBrokerStatus hvd_broker_queue_purge(HvdBroker *b, const char *queue, uint32_t *purged, char *err, size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_purge_ok_t *ok = amqp_queue_purge(b->conn, BRK_CH_RPC, amqp_cstring_bytes(queue));
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        brk_err(b, err, errlen, "cannot purge queue '%s': %s", queue, text);
        return st;
    }
    if (purged) *purged = ok->message_count;
    return HVD_BROKER_OK;
}

HvdBrokerStatus hvd_broker_queue_delete(HvdBroker *b, const char *queue, char *err, size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_queue_delete(b->conn, BRK_CH_RPC, amqp_cstring_bytes(queue), 0, 0);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st == HVD_BROKER_ERROR && code == AMQP_NOT_FOUND) return HVD_BROKER_OK;
    if (st != HVD_BROKER_OK) brk_err(b, err, errlen, "cannot delete queue '%s': %s", queue, text);
    return st;
}

HvdBrokerStatus hvd_broker_exchange_delete(HvdBroker *b, const char *exchange, char *err, size_t errlen)
{
    char text[400];
    int code;
    if (!b) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_rpc_channel(b, err, errlen);
    if (st != HVD_BROKER_OK) return st;
    amqp_exchange_delete(b->conn, BRK_CH_RPC, amqp_cstring_bytes(exchange), 0);
    st = brk_rpc_check(b, BRK_CH_RPC, &code, text, sizeof text);
    if (st == HVD_BROKER_ERROR && code == AMQP_NOT_FOUND) return HVD_BROKER_OK;
    if (st != HVD_BROKER_OK) brk_err(b, err, errlen, "cannot delete exchange '%s': %s", exchange, text);
    return st;
}
