/* Broker publishing with publisher confirms (read by hand: rabbitmq-c 0.11 has no API). */
#include "broker_int.h"
#include <stdlib.h>
#include <string.h>
#include "buf.h"

static void pend_push(HvdBroker *b, uint64_t seq)
{
    if (b->npend == b->cappend) {
        b->cappend = b->cappend ? b->cappend * 2 : 16;
        b->pend = hvd_xrealloc(b->pend, b->cappend * sizeof *b->pend);
    }
    b->pend[b->npend++] = seq;
}

static bool key_eq(amqp_bytes_t k, const char *s)
{
    size_t n = strlen(s);
    return k.len == n && memcmp(k.bytes, s, n) == 0;
}

/* The headers table of a publish: the copied delivery's entries (minus those p->headers
 * overrides), then p->headers. Entries borrow their memory from the delivery and p. */
static amqp_table_entry_t *build_headers(const HvdPublish *p, int *n_out)
{
    const amqp_table_t *src = NULL;
    if (p->copy_headers_from && p->copy_headers_from->priv) {
        const amqp_envelope_t *env = p->copy_headers_from->priv;
        if (env->message.properties._flags & AMQP_BASIC_HEADERS_FLAG) src = &env->message.properties.headers;
    }
    size_t cap = (src ? (size_t)src->num_entries : 0) + p->n_headers;
    amqp_table_entry_t *e = hvd_xcalloc(cap ? cap : 1, sizeof *e);
    int n = 0;
    for (int i = 0; src && i < src->num_entries; i++) {
        bool overridden = false;
        for (size_t j = 0; j < p->n_headers && !overridden; j++)
            overridden = key_eq(src->entries[i].key, p->headers[j].key);
        if (!overridden) e[n++] = src->entries[i];
    }
    for (size_t j = 0; j < p->n_headers; j++) {
        amqp_table_entry_t *x = &e[n++];
        x->key = amqp_cstring_bytes(p->headers[j].key);
        if (p->headers[j].str) {
            x->value.kind = AMQP_FIELD_KIND_UTF8;
            x->value.value.bytes = amqp_cstring_bytes(p->headers[j].str);
        } else {
            x->value.kind = AMQP_FIELD_KIND_I64;
            x->value.value.i64 = p->headers[j].i;
        }
    }
    *n_out = n;
    return e;
}

HvdBrokerStatus hvd_broker_publish(HvdBroker *b, const HvdPublish *p, uint64_t *seq_out, char *err, size_t errlen)
{
    if (seq_out) *seq_out = 0;
    if (!b || b->dead) {
        brk_err(b, err, errlen, "%s", b ? b->last_error : "not connected to RabbitMQ");
        return HVD_BROKER_CLOSED;
    }
    if (!p || !p->routing_key || (p->len && !p->body)) {
        brk_err(b, err, errlen, "publish: missing routing key or body");
        return HVD_BROKER_ERROR;
    }
    if (b->blocked) {
        /* Catch up with an unblock that may already be waiting. */
        HvdBrokerStatus st;
        while ((st = brk_pump(b, 0)) == HVD_BROKER_OK && b->blocked)
            ;
        if (st == HVD_BROKER_CLOSED) {
            brk_err(b, err, errlen, "%s", b->last_error);
            return st;
        }
        if (b->blocked) {
            brk_err(b, err, errlen, "RabbitMQ at %s blocks publishing: %s", b->desc,
                    b->blocked_reason ? b->blocked_reason : "resource alarm");
            return HVD_BROKER_BLOCKED;
        }
    }

    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    if (p->content_type) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes(p->content_type);
    }
    if (p->message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(p->message_id);
    }
    if (p->correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(p->correlation_id);
    }
    if (p->expiration) {
        props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        props.expiration = amqp_cstring_bytes(p->expiration);
    }
    if (p->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(p->reply_to);
    }
    props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = p->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
    amqp_table_entry_t *entries = NULL;
    int n = 0;
    if (p->n_headers || p->copy_headers_from) {
        entries = build_headers(p, &n);
        if (n) {
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers = (amqp_table_t){.num_entries = n, .entries = entries};
        }
    }
    amqp_bytes_t body = {.len = p->len, .bytes = (void *)(p->len ? p->body : "")};
    amqp_maybe_release_buffers(b->conn);
    int rc = amqp_basic_publish(b->conn, BRK_CH_DATA, amqp_cstring_bytes(p->exchange ? p->exchange : ""),
                                amqp_cstring_bytes(p->routing_key), p->mandatory, 0, &props, body);
    free(entries);
    if (rc != AMQP_STATUS_OK) {
        HvdBrokerStatus st = brk_lost(b, rc, "basic.publish");
        brk_err(b, err, errlen, "%s", b->last_error);
        return st;
    }
    if (b->confirms) {
        b->seq++;
        pend_push(b, b->seq);
        if (seq_out) *seq_out = b->seq;
    }
    return HVD_BROKER_OK;
}

size_t hvd_broker_unconfirmed(const HvdBroker *b)
{
    return b ? b->npend + b->ndone : 0;
}

static void report(HvdBroker *b, HvdConfirmFn fn, void *ctx)
{
    /* Copy first: fn may publish (and settle) again. */
    size_t n = b->ndone;
    if (!n) return;
    BrkSettled *list = hvd_xmalloc(n * sizeof *list);
    memcpy(list, b->done, n * sizeof *list);
    memmove(b->done, b->done + n, (b->ndone - n) * sizeof *b->done);
    b->ndone -= n;
    for (size_t i = 0; i < n; i++)
        if (fn) fn(ctx, list[i].seq, list[i].status);
    free(list);
}

HvdBrokerStatus hvd_broker_wait_confirms(HvdBroker *b, int timeout_ms, HvdConfirmFn fn, void *ctx)
{
    if (!b) return HVD_BROKER_CLOSED;
    int64_t deadline = brk_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    HvdBrokerStatus st = HVD_BROKER_OK;
    while (b->npend && !b->dead) {
        int64_t left = deadline - brk_now_ms();
        st = brk_pump(b, left > 0 ? (int)left : 0);
        if (st == HVD_BROKER_TIMEOUT && left <= 0) break;
        if (st == HVD_BROKER_CLOSED) break;
        /* OK and CANCELLED (a consumer on this connection) just go on. */
        if (st == HVD_BROKER_CANCELLED) b->cancelled = true;
        st = HVD_BROKER_OK;
    }
    if (b->dead) {
        brk_lose_pending(b);
        st = HVD_BROKER_CLOSED;
    } else if (b->npend) {
        st = HVD_BROKER_TIMEOUT;
    } else {
        st = HVD_BROKER_OK;
    }
    report(b, fn, ctx);
    return st;
}
