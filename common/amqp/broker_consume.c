/* Broker consuming: basic.consume/get, deliveries (with their header table), ack/reject. */
#include "broker_int.h"
#include <stdlib.h>
#include <string.h>
#include "buf.h"

static uint64_t tag_out(const HvdBroker *b, uint64_t tag)
{
    return ((uint64_t)b->ch_gen << BRK_TAG_BITS) | (tag & BRK_TAG_MASK);
}

static const amqp_table_t *env_headers(const amqp_envelope_t *env)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    return (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
}

static const amqp_field_value_t *header_find(const amqp_table_t *t, const char *key)
{
    size_t klen = strlen(key);
    for (int i = 0; t && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0) return &e->value;
    }
    return NULL;
}

/* An integer header value of any width; false when v is not an integer. */
static bool field_int(const amqp_field_value_t *v, int64_t *out)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8: *out = v->value.i8; return true;
    case AMQP_FIELD_KIND_U8: *out = v->value.u8; return true;
    case AMQP_FIELD_KIND_I16: *out = v->value.i16; return true;
    case AMQP_FIELD_KIND_U16: *out = v->value.u16; return true;
    case AMQP_FIELD_KIND_I32: *out = v->value.i32; return true;
    case AMQP_FIELD_KIND_U32: *out = v->value.u32; return true;
    case AMQP_FIELD_KIND_I64: *out = v->value.i64; return true;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        *out = v->value.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
        return true;
    default: return false;
    }
}

static bool is_doorbell(const amqp_field_value_t *v)
{
    int64_t i;
    if (!v) return false;
    if (field_int(v, &i)) return i == 1;
    if (v->kind == AMQP_FIELD_KIND_BOOLEAN) return v->value.boolean != 0;
    if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)
        return v->value.bytes.len == 1 && ((const char *)v->value.bytes.bytes)[0] == '1';
    return false;
}

static char *prop_str(const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t v)
{
    return (p->_flags & flag) ? brk_strdup_bytes(v) : NULL;
}

/* Fills d from env, taking ownership of env. */
static void fill_delivery(HvdBroker *b, amqp_envelope_t *env, HvdDelivery *d, bool no_ack)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    memset(d, 0, sizeof *d);
    const BrkEnvelope *be = (const BrkEnvelope *)env;
    d->priv = env;
    d->body = env->message.body.bytes ? env->message.body.bytes : "";
    d->len = env->message.body.len;
    d->too_large = be->too_large;
    d->body_size = be->too_large ? (size_t)be->body_size : d->len;
    d->delivery_tag = no_ack ? 0 : tag_out(b, env->delivery_tag);
    d->redelivered = env->redelivered;
    d->exchange = brk_strdup_bytes(env->exchange);
    d->routing_key = brk_strdup_bytes(env->routing_key);
    d->content_type = prop_str(p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
    d->message_id = prop_str(p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
    d->correlation_id = prop_str(p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
    d->reply_to = prop_str(p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
    d->delivery_mode = (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? p->delivery_mode : 0;
    const amqp_table_t *h = env_headers(env);
    d->doorbell = is_doorbell(header_find(h, HVD_BROKER_DOORBELL_HEADER));
    const amqp_field_value_t *dc = header_find(h, "x-delivery-count");
    int64_t n;
    if (dc && field_int(dc, &n)) d->delivery_count = n;
}

void hvd_delivery_free(HvdDelivery *d)
{
    if (!d) return;
    if (d->priv) {
        /* a job's body holds its passwords: wipe it before it is freed */
        amqp_envelope_t *env = d->priv;
        if (env->message.body.bytes) explicit_bzero(env->message.body.bytes, env->message.body.len);
        amqp_destroy_envelope(env);
        free(d->priv);
    }
    free(d->exchange);
    free(d->routing_key);
    free(d->content_type);
    free(d->message_id);
    free(d->correlation_id);
    free(d->reply_to);
    memset(d, 0, sizeof *d);
}

const char *hvd_delivery_header_str(const HvdDelivery *d, const char *key)
{
    if (!d || !d->priv) return NULL;
    const amqp_field_value_t *v = header_find(env_headers(d->priv), key);
    if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)) return NULL;
    /* Strings decoded by rabbitmq-c are not NUL-terminated: keep a terminated copy in
     * the envelope's pool, which lives as long as the delivery. */
    amqp_envelope_t *env = d->priv;
    char *s = amqp_pool_alloc(&env->message.pool, v->value.bytes.len + 1);
    if (!s) return NULL;
    memcpy(s, v->value.bytes.bytes, v->value.bytes.len);
    s[v->value.bytes.len] = '\0';
    return s;
}

static HvdNode *field_node(const amqp_field_value_t *v);

static HvdNode *table_node(const amqp_table_t *t)
{
    HvdNode *map = hvd_node_map();
    for (int i = 0; t && i < t->num_entries; i++) {
        char *k = brk_strdup_bytes(t->entries[i].key);
        hvd_node_map_set(map, k, field_node(&t->entries[i].value));
        free(k);
    }
    return map;
}

static HvdNode *field_node(const amqp_field_value_t *v)
{
    int64_t i;
    if (field_int(v, &i)) return hvd_node_int(i);
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return hvd_node_bool(v->value.boolean != 0);
    case AMQP_FIELD_KIND_F32: return hvd_node_float(v->value.f32);
    case AMQP_FIELD_KIND_F64: return hvd_node_float(v->value.f64);
    case AMQP_FIELD_KIND_DECIMAL: {
        double f = v->value.decimal.value;
        for (int k = 0; k < v->value.decimal.decimals; k++) f /= 10;
        return hvd_node_float(f);
    }
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return hvd_node_strn(v->value.bytes.bytes ? v->value.bytes.bytes : "", v->value.bytes.len);
    case AMQP_FIELD_KIND_TABLE: return table_node(&v->value.table);
    case AMQP_FIELD_KIND_ARRAY: {
        HvdNode *arr = hvd_node_array();
        for (int k = 0; k < v->value.array.num_entries; k++)
            hvd_node_array_push(arr, field_node(&v->value.array.entries[k]));
        return arr;
    }
    default: return hvd_node_nil();
    }
}

HvdNode *hvd_delivery_headers(const HvdDelivery *d)
{
    return table_node(d && d->priv ? env_headers(d->priv) : NULL);
}

/* ---- consume ---- */

HvdBrokerStatus hvd_broker_consume(HvdBroker *b, const char *queue, uint16_t prefetch, char *err, size_t errlen)
{
    char text[300];
    int code;
    if (!b || b->dead) {
        brk_err(b, err, errlen, "%s", b ? b->last_error : "not connected to RabbitMQ");
        return HVD_BROKER_CLOSED;
    }
    amqp_basic_qos(b->conn, BRK_CH_DATA, 0, prefetch, 0);
    HvdBrokerStatus st = brk_rpc_check(b, BRK_CH_DATA, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        brk_err(b, err, errlen, "cannot set prefetch %u: %s", prefetch, text);
        return st;
    }
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(b->conn, BRK_CH_DATA, amqp_cstring_bytes(queue), amqp_empty_bytes,
                                                     0, 0, 0, amqp_empty_table);
    st = brk_rpc_check(b, BRK_CH_DATA, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        if (code == AMQP_NOT_FOUND)
            brk_err(b, err, errlen, "cannot consume from queue '%s': it does not exist (%s)", queue, text);
        else
            brk_err(b, err, errlen, "cannot consume from queue '%s': %s", queue, text);
        return st;
    }
    amqp_bytes_free(b->consumer_tag);
    b->consumer_tag = amqp_bytes_malloc_dup(ok->consumer_tag);
    b->consuming = true;
    b->cancelled = false;
    return HVD_BROKER_OK;
}

HvdBrokerStatus hvd_broker_cancel_consume(HvdBroker *b, char *err, size_t errlen)
{
    char text[300];
    int code;
    if (!b || b->dead) {
        brk_err(b, err, errlen, "%s", b ? b->last_error : "not connected to RabbitMQ");
        return HVD_BROKER_CLOSED;
    }
    if (!b->consuming) return HVD_BROKER_OK;
    amqp_basic_cancel(b->conn, BRK_CH_DATA, b->consumer_tag);
    HvdBrokerStatus st = brk_rpc_check(b, BRK_CH_DATA, &code, text, sizeof text);
    b->consuming = false;
    if (st != HVD_BROKER_OK) brk_err(b, err, errlen, "cannot cancel the consumer: %s", text);
    return st;
}

static HvdBrokerStatus pop_stash(HvdBroker *b, HvdDelivery *d)
{
    amqp_envelope_t *env = b->stash[0];
    memmove(b->stash, b->stash + 1, (b->nstash - 1) * sizeof *b->stash);
    b->nstash--;
    fill_delivery(b, env, d, false);
    return HVD_BROKER_DELIVERY;
}

HvdBrokerStatus hvd_broker_next(HvdBroker *b, int timeout_ms, HvdDelivery *d)
{
    memset(d, 0, sizeof *d);
    if (!b || b->dead) return HVD_BROKER_CLOSED;
    int64_t deadline = brk_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (b->nstash) return pop_stash(b, d);
        if (b->cancelled) {
            b->cancelled = false;
            return HVD_BROKER_CANCELLED;
        }
        if (b->dead) return HVD_BROKER_CLOSED;
        int64_t left = deadline - brk_now_ms();
        if (left < 0) left = 0;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        amqp_maybe_release_buffers(b->conn);
        /* As amqp_consume_message, but the content is read by brk_read_content. */
        amqp_frame_t f;
        int wrc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
        if (wrc == AMQP_STATUS_OK && f.frame_type == AMQP_FRAME_METHOD &&
            f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            const amqp_basic_deliver_t *m = f.payload.method.decoded;
            BrkEnvelope *e = brk_envelope_new(f.channel, m);
            int rc = brk_read_content(b, f.channel, e);
            if (rc != AMQP_STATUS_OK) {
                brk_envelope_drop(e);
                return brk_lost(b, rc, "basic.deliver");
            }
            fill_delivery(b, &e->env, d, false);
            return HVD_BROKER_DELIVERY;
        }
        if (wrc == AMQP_STATUS_TIMEOUT) return HVD_BROKER_TIMEOUT;
        if (wrc != AMQP_STATUS_OK) return brk_lost(b, wrc, NULL);
        /* Another frame (cancel, close, ack, blocked...). */
        bool changed = false;
        HvdBrokerStatus st = brk_handle_frame(b, &f, &changed);
        if (st == HVD_BROKER_CANCELLED) b->cancelled = false; /* reported now */
        if (st != HVD_BROKER_OK) return st;
    }
}

HvdBrokerStatus hvd_broker_get(HvdBroker *b, const char *queue, bool no_ack, HvdDelivery *d, char *err, size_t errlen)
{
    char text[300];
    int code;
    memset(d, 0, sizeof *d);
    if (!b || b->dead) {
        brk_err(b, err, errlen, "%s", b ? b->last_error : "not connected to RabbitMQ");
        return HVD_BROKER_CLOSED;
    }
    amqp_maybe_release_buffers(b->conn);
    amqp_rpc_reply_t r = amqp_basic_get(b->conn, BRK_CH_DATA, amqp_cstring_bytes(queue), no_ack);
    (void)r;
    HvdBrokerStatus st = brk_rpc_check(b, BRK_CH_DATA, &code, text, sizeof text);
    if (st != HVD_BROKER_OK) {
        if (code == AMQP_NOT_FOUND)
            brk_err(b, err, errlen, "cannot get from queue '%s': it does not exist (%s)", queue, text);
        else
            brk_err(b, err, errlen, "cannot get from queue '%s': %s", queue, text);
        return st;
    }
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return HVD_BROKER_EMPTY;
    const amqp_basic_get_ok_t *ok = r.reply.decoded;
    BrkEnvelope *e = hvd_xcalloc(1, sizeof *e);
    e->env.channel = BRK_CH_DATA;
    e->env.delivery_tag = ok->delivery_tag;
    e->env.redelivered = ok->redelivered;
    e->env.exchange = amqp_bytes_malloc_dup(ok->exchange);
    e->env.routing_key = amqp_bytes_malloc_dup(ok->routing_key);
    int rc = brk_read_content(b, BRK_CH_DATA, e);
    if (rc != AMQP_STATUS_OK) {
        brk_envelope_drop(e);
        st = brk_lost(b, rc, "basic.get");
        brk_err(b, err, errlen, "%s", b->last_error);
        return st;
    }
    fill_delivery(b, &e->env, d, no_ack);
    return HVD_BROKER_DELIVERY;
}

/* A tag from an earlier generation of channel 1 is unknown to the broker now. */
static bool tag_current(HvdBroker *b, uint64_t tag)
{
    if ((tag >> BRK_TAG_BITS) == b->ch_gen && (tag & BRK_TAG_MASK) != 0) return true;
    brk_err(b, NULL, 0, "delivery tag %llu belongs to a channel since closed: the broker redelivers that message",
            (unsigned long long)(tag & BRK_TAG_MASK));
    return false;
}

HvdBrokerStatus hvd_broker_ack(HvdBroker *b, uint64_t delivery_tag)
{
    if (!b || b->dead) return HVD_BROKER_CLOSED;
    if (!tag_current(b, delivery_tag)) return HVD_BROKER_ERROR;
    int rc = amqp_basic_ack(b->conn, BRK_CH_DATA, delivery_tag & BRK_TAG_MASK, 0);
    return rc == AMQP_STATUS_OK ? HVD_BROKER_OK : brk_lost(b, rc, "basic.ack");
}

HvdBrokerStatus hvd_broker_reject(HvdBroker *b, uint64_t delivery_tag, bool requeue)
{
    if (!b || b->dead) return HVD_BROKER_CLOSED;
    if (!tag_current(b, delivery_tag)) return HVD_BROKER_ERROR;
    int rc = amqp_basic_reject(b->conn, BRK_CH_DATA, delivery_tag & BRK_TAG_MASK, requeue);
    return rc == AMQP_STATUS_OK ? HVD_BROKER_OK : brk_lost(b, rc, "basic.reject");
}
