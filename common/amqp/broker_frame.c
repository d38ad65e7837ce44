/* Broker frames: the dispatcher of every frame read off the connection
 * (confirms, returns, deliveries, cancel, close, blocked), the channels it
 * reopens, the check of a synchronous reply, and the reading of a message's
 * content (which meets frames of other channels and hands them back here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker_int.h"
#include "buf.h"

/* ---- settling confirms ---- */

static void on_confirm(HvdBroker *b, uint64_t tag, bool multiple, HvdConfirm status)
{
    if (b->return_pending) {
        b->return_pending = false;
        brk_settle(b, tag, false, HVD_CONFIRM_RETURNED);
    }
    brk_settle(b, tag, multiple, status);
}

/* ---- channels ---- */

static HvdBrokerStatus open_channel(HvdBroker *b, amqp_channel_t ch, char *err, size_t errlen)
{
    amqp_channel_open(b->conn, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return HVD_BROKER_OK;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        brk_lost(b, r.library_error, "channel.open");
    else
        brk_err(b, NULL, 0, "RabbitMQ at %s refused to open channel %u", b->desc, ch);
    b->dead = true;
    brk_err(b, err, errlen, "%s", b->last_error);
    return HVD_BROKER_CLOSED;
}

HvdBrokerStatus brk_open_data_channel(HvdBroker *b)
{
    HvdBrokerStatus st = open_channel(b, BRK_CH_DATA, NULL, 0);
    if (st != HVD_BROKER_OK) return st;
    b->ch_gen++;
    b->seq = 0;
    b->return_pending = false;
    if (b->confirms) {
        amqp_confirm_select(b->conn, BRK_CH_DATA);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return brk_lost(b, r.library_error, "confirm.select");
            b->dead = true;
            brk_err(b, NULL, 0, "RabbitMQ at %s refused confirm.select", b->desc);
            return HVD_BROKER_CLOSED;
        }
    }
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_rpc_channel(HvdBroker *b, char *err, size_t errlen)
{
    if (b->dead) {
        brk_err(b, err, errlen, "%s", b->last_error);
        return HVD_BROKER_CLOSED;
    }
    if (b->ch_rpc_open) return HVD_BROKER_OK;
    HvdBrokerStatus st = open_channel(b, BRK_CH_RPC, err, errlen);
    if (st == HVD_BROKER_OK) b->ch_rpc_open = true;
    return st;
}

static void send_close_ok(HvdBroker *b, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok = {0};
    (void)amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

/* The broker closed channel ch (reply in m). Answers, reopens channel 1 when it is
 * the one, and says whether our consumer went with it. */
static HvdBrokerStatus on_channel_close(HvdBroker *b, amqp_channel_t ch, const amqp_channel_close_t *m,
                                        bool *consumer_gone)
{
    *consumer_gone = false;
    send_close_ok(b, ch);
    if (ch != BRK_CH_DATA) {
        b->ch_rpc_open = false;
        return HVD_BROKER_OK;
    }
    brk_err(b, NULL, 0, "RabbitMQ at %s closed channel %u: %.*s", b->desc, ch, (int)m->reply_text.len,
            (const char *)m->reply_text.bytes);
    brk_lose_pending(b);
    /* deliveries not yet handed out belong to the closed channel: the broker requeues them */
    for (size_t i = 0; i < b->nstash; i++) {
        amqp_destroy_envelope(b->stash[i]);
        free(b->stash[i]);
    }
    b->nstash = 0;
    if (b->consuming) {
        b->consuming = false;
        b->cancelled = true;
        *consumer_gone = true;
    }
    return brk_open_data_channel(b);
}

HvdBrokerStatus brk_rpc_check(HvdBroker *b, amqp_channel_t ch, int *code, char *text, size_t textlen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    *code = 0;
    if (textlen) text[0] = '\0';
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return HVD_BROKER_OK;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        if (r.library_error == AMQP_STATUS_TIMEOUT) {
            /* The answer may still come: the connection's state is unknown. */
            brk_err(b, NULL, 0, "RabbitMQ at %s did not answer within %d ms", b->desc, b->rpc_timeout_ms);
            b->dead = true;
            brk_lose_pending(b);
        } else {
            brk_lost(b, r.library_error, NULL);
        }
        snprintf(text, textlen, "%s", b->last_error);
        return HVD_BROKER_CLOSED;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            *code = m->reply_code;
            snprintf(text, textlen, "%.*s", (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            bool gone;
            if (on_channel_close(b, ch, m, &gone) != HVD_BROKER_OK) {
                snprintf(text, textlen, "%s", b->last_error);
                return HVD_BROKER_CLOSED;
            }
            return HVD_BROKER_ERROR;
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            *code = m->reply_code;
            brk_err(b, NULL, 0, "RabbitMQ at %s closed the connection: %.*s", b->desc, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
            snprintf(text, textlen, "%s", b->last_error);
            b->dead = true;
            brk_lose_pending(b);
            return HVD_BROKER_CLOSED;
        }
        brk_err(b, NULL, 0, "RabbitMQ at %s answered with unexpected method 0x%08x", b->desc, (unsigned)r.reply.id);
        snprintf(text, textlen, "%s", b->last_error);
        b->dead = true;
        return HVD_BROKER_CLOSED;
    case AMQP_RESPONSE_NONE:
    default:
        brk_err(b, NULL, 0, "RabbitMQ at %s: no reply", b->desc);
        snprintf(text, textlen, "%s", b->last_error);
        b->dead = true;
        return HVD_BROKER_CLOSED;
    }
}

/* ---- frame dispatch ---- */

static HvdBrokerStatus on_return(HvdBroker *b, const amqp_basic_return_t *m)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(b->conn, BRK_CH_DATA, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return brk_lost(
            b, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? r.library_error : AMQP_STATUS_UNEXPECTED_STATE,
            "basic.return");
    amqp_destroy_message(&msg);
    (void)m;
    b->return_pending = b->confirms; /* without confirms no ack follows */
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_handle_frame(HvdBroker *b, const amqp_frame_t *f, bool *changed)
{
    if (f->frame_type != AMQP_FRAME_METHOD) return HVD_BROKER_OK; /* a stray header/body frame */
    amqp_method_number_t id = f->payload.method.id;
    const void *dec = f->payload.method.decoded;

    if (f->channel == 0) {
        if (id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = dec;
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            brk_err(b, NULL, 0, "RabbitMQ at %s closed the connection: %.*s", b->desc, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
            b->dead = true;
            brk_lose_pending(b);
            return HVD_BROKER_CLOSED;
        }
        if (id == AMQP_CONNECTION_BLOCKED_METHOD) {
            const amqp_connection_blocked_t *m = dec;
            free(b->blocked_reason);
            b->blocked_reason = brk_strdup_bytes(m->reason);
            b->blocked = true;
            *changed = true;
        } else if (id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
            b->blocked = false;
            *changed = true;
        }
        return HVD_BROKER_OK;
    }
    if (f->channel == BRK_CH_DATA) {
        switch (id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *m = dec;
            on_confirm(b, m->delivery_tag, m->multiple, HVD_CONFIRM_ACKED);
            *changed = true;
            return HVD_BROKER_OK;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *m = dec;
            on_confirm(b, m->delivery_tag, m->multiple, HVD_CONFIRM_NACKED);
            *changed = true;
            return HVD_BROKER_OK;
        }
        case AMQP_BASIC_RETURN_METHOD: return on_return(b, dec);
        case AMQP_BASIC_DELIVER_METHOD: return brk_stash_delivery(b, dec);
        case AMQP_BASIC_CANCEL_METHOD:
            /* consumer_cancel_notify: the queue went away. No reply is expected. */
            b->consuming = false;
            b->cancelled = true;
            brk_err(b, NULL, 0, "RabbitMQ at %s cancelled our consumer (queue deleted?)", b->desc);
            return HVD_BROKER_CANCELLED;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            bool gone;
            HvdBrokerStatus st = on_channel_close(b, f->channel, dec, &gone);
            *changed = true;
            if (st != HVD_BROKER_OK) return st;
            return gone ? HVD_BROKER_CANCELLED : HVD_BROKER_OK;
        }
        default: return HVD_BROKER_OK;
        }
    }
    if (id == AMQP_CHANNEL_CLOSE_METHOD) {
        bool gone;
        return on_channel_close(b, f->channel, dec, &gone);
    }
    return HVD_BROKER_OK;
}

HvdBrokerStatus brk_pump(HvdBroker *b, int timeout_ms)
{
    int64_t deadline = brk_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (b->dead) return HVD_BROKER_CLOSED;
        int64_t left = deadline - brk_now_ms();
        if (left < 0) left = 0;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        amqp_frame_t f;
        amqp_maybe_release_buffers(b->conn);
        int rc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) return HVD_BROKER_TIMEOUT;
        if (rc != AMQP_STATUS_OK) return brk_lost(b, rc, NULL);
        bool changed = false;
        HvdBrokerStatus st = brk_handle_frame(b, &f, &changed);
        if (st != HVD_BROKER_OK) return st;
        if (changed) return HVD_BROKER_OK;
    }
}

HvdBrokerStatus hvd_broker_service(HvdBroker *b, int timeout_ms)
{
    if (!b || b->dead) return HVD_BROKER_CLOSED;
    HvdBrokerStatus st = brk_pump(b, timeout_ms);
    if (st == HVD_BROKER_CANCELLED) b->cancelled = false; /* reported here, not again by next */
    return st;
}

/* ---- message content ---- */

static int clone_bytes(amqp_pool_t *pool, amqp_bytes_t *dst, amqp_bytes_t src)
{
    if (src.len == 0) {
        *dst = amqp_empty_bytes;
        return AMQP_STATUS_OK;
    }
    amqp_pool_alloc_bytes(pool, src.len, dst);
    if (!dst->bytes) return AMQP_STATUS_NO_MEMORY;
    memcpy(dst->bytes, src.bytes, src.len);
    return AMQP_STATUS_OK;
}

/* The properties of a header frame, copied into the message's own pool (the
 * frame's memory is released while the body is read). */
static int clone_properties(const amqp_basic_properties_t *src, amqp_basic_properties_t *dst, amqp_pool_t *pool)
{
    *dst = *src;
    const struct {
        amqp_flags_t flag;
        amqp_bytes_t *field;
    } fields[] = {
        {AMQP_BASIC_CONTENT_TYPE_FLAG, &dst->content_type},
        {AMQP_BASIC_CONTENT_ENCODING_FLAG, &dst->content_encoding},
        {AMQP_BASIC_CORRELATION_ID_FLAG, &dst->correlation_id},
        {AMQP_BASIC_REPLY_TO_FLAG, &dst->reply_to},
        {AMQP_BASIC_EXPIRATION_FLAG, &dst->expiration},
        {AMQP_BASIC_MESSAGE_ID_FLAG, &dst->message_id},
        {AMQP_BASIC_TYPE_FLAG, &dst->type},
        {AMQP_BASIC_USER_ID_FLAG, &dst->user_id},
        {AMQP_BASIC_APP_ID_FLAG, &dst->app_id},
        {AMQP_BASIC_CLUSTER_ID_FLAG, &dst->cluster_id},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        /* a field whose flag is clear holds whatever the decoder left there */
        int rc = (src->_flags & fields[i].flag) ? clone_bytes(pool, fields[i].field, *fields[i].field)
                                                : (*fields[i].field = amqp_empty_bytes, AMQP_STATUS_OK);
        if (rc != AMQP_STATUS_OK) return rc;
    }
    if (src->_flags & AMQP_BASIC_HEADERS_FLAG) return amqp_table_clone(&src->headers, &dst->headers, pool);
    dst->headers = amqp_empty_table;
    return AMQP_STATUS_OK;
}

/* The next frame for channel ch; frames of other channels are handled meanwhile. */
static int frame_on(HvdBroker *b, amqp_channel_t ch, amqp_frame_t *f)
{
    for (;;) {
        int rc = amqp_simple_wait_frame(b->conn, f);
        if (rc != AMQP_STATUS_OK) return rc;
        if (f->channel == ch) return AMQP_STATUS_OK;
        bool changed = false;
        if (brk_handle_frame(b, f, &changed) == HVD_BROKER_CLOSED) return AMQP_STATUS_CONNECTION_CLOSED;
    }
}

int brk_read_content(HvdBroker *b, amqp_channel_t ch, BrkEnvelope *e)
{
    amqp_message_t *msg = &e->env.message;
    amqp_frame_t f;
    memset(msg, 0, sizeof *msg);
    init_amqp_pool(&msg->pool, 4096);
    int rc = frame_on(b, ch, &f);
    if (rc != AMQP_STATUS_OK) return rc;
    if (f.frame_type != AMQP_FRAME_HEADER) return AMQP_STATUS_UNEXPECTED_STATE;
    rc = clone_properties(f.payload.properties.decoded, &msg->properties, &msg->pool);
    if (rc != AMQP_STATUS_OK) return rc;
    uint64_t size = f.payload.properties.body_size;
    /* The size is known before any body frame: a body over the limit is not
     * copied (only its start is kept), so a 100 MiB message costs no 100 MiB. */
    uint64_t keep = b->max_body && size > b->max_body ? b->max_body : size;
    if (keep > SIZE_MAX) return AMQP_STATUS_NO_MEMORY;
    e->body_size = size;
    e->too_large = keep < size;
    msg->body = keep ? amqp_bytes_malloc((size_t)keep) : amqp_empty_bytes;
    if (keep && !msg->body.bytes) return AMQP_STATUS_NO_MEMORY;
    uint64_t got = 0;
    while (got < size) {
        amqp_maybe_release_buffers_on_channel(b->conn, ch); /* each body frame's memory goes back */
        rc = frame_on(b, ch, &f);
        if (rc != AMQP_STATUS_OK) return rc;
        if (f.frame_type != AMQP_FRAME_BODY) return AMQP_STATUS_UNEXPECTED_STATE;
        size_t n = f.payload.body_fragment.len;
        if (n > size - got) return AMQP_STATUS_BAD_AMQP_DATA;
        if (got < keep) {
            size_t c = n < keep - got ? n : (size_t)(keep - got);
            memcpy((char *)msg->body.bytes + got, f.payload.body_fragment.bytes, c);
        }
        got += n;
    }
    return AMQP_STATUS_OK;
}

BrkEnvelope *brk_envelope_new(amqp_channel_t ch, const amqp_basic_deliver_t *m)
{
    BrkEnvelope *e = hvd_xcalloc(1, sizeof *e);
    e->env.channel = ch;
    e->env.consumer_tag = amqp_bytes_malloc_dup(m->consumer_tag);
    e->env.delivery_tag = m->delivery_tag;
    e->env.redelivered = m->redelivered;
    e->env.exchange = amqp_bytes_malloc_dup(m->exchange);
    e->env.routing_key = amqp_bytes_malloc_dup(m->routing_key);
    return e;
}

void brk_envelope_drop(BrkEnvelope *e)
{
    amqp_destroy_envelope(&e->env); /* NULL-safe on the parts never filled */
    free(e);
}

HvdBrokerStatus brk_stash_delivery(HvdBroker *b, const amqp_basic_deliver_t *m)
{
    BrkEnvelope *e = brk_envelope_new(BRK_CH_DATA, m);
    amqp_envelope_t *env = &e->env;
    int rc = brk_read_content(b, BRK_CH_DATA, e);
    if (rc != AMQP_STATUS_OK) {
        brk_envelope_drop(e);
        return brk_lost(b, rc, "basic.deliver");
    }
    if (b->nstash == b->capstash) {
        b->capstash = b->capstash ? b->capstash * 2 : 8;
        b->stash = hvd_xrealloc(b->stash, b->capstash * sizeof *b->stash);
    }
    b->stash[b->nstash++] = env;
    return HVD_BROKER_OK;
}
