/* Reading and describing the dead letters of <prefix>.dead (hvdeployctl dead, hvdeploy-web). */
#include "deadq.h"
#include "mask.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "clock.h"
#include "codec.h"
#include "guestcfg.h"
#include "model.h"

/* ---- small text helpers ---- */

/* The parser's " near '...'" excerpt of a message could be a piece of a password. */
char *deadq_safe_reason(const char *s)
{
    char *r = hvd_xstrdup(s ? s : "");
    char *near = strstr(r, " near '");
    if (near) *near = '\0';
    return r;
}

/* A copy fit for one terminal line: control characters become '?'; at most max bytes
 * (cut on a UTF-8 boundary, with "..."). */
char *deadq_one_line(const char *s, size_t max)
{
    HvdBuf b = {0};
    size_t n = 0;
    hvd_buf_puts(&b, "");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++, n++) {
        if (max && n >= max && (*p & 0xc0) != 0x80) {
            hvd_buf_puts(&b, "...");
            break;
        }
        unsigned char c = (*p < 0x20 || *p == 0x7f) ? '?' : *p;
        hvd_buf_append(&b, &c, 1);
    }
    return hvd_buf_steal(&b);
}

void deadq_size_text(size_t n, char *out, size_t outlen)
{
    if (n < 10000)
        snprintf(out, outlen, "%zu", n);
    else if (n < 10u << 20)
        snprintf(out, outlen, "%.1fK", (double)n / 1024);
    else
        snprintf(out, outlen, "%.1fM", (double)n / (1024 * 1024));
}

/* A raw body that could not be decoded, as received but for the values of
 * the secret fields (core/mask.c, the masking the worker applies before
 * dead-lettering; this covers letters from older workers). NUL-terminated;
 * caller frees. */
unsigned char *deadq_masked_raw(const DeadItem *it, size_t *len)
{
    HvdBuf b = {0};
    hvd_mask_raw_secrets(it->d.body, it->d.len, &b);
    *len = b.len;
    return (unsigned char *)hvd_buf_steal(&b);
}

/* ---- reading the queue ---- */

void deadq_item_free(DeadItem *it)
{
    hvd_delivery_free(&it->d);
    free(it->job_id);
    free(it->reason);
    free(it->code);
    free(it->source);
    free(it->routing_key);
    hvd_node_free(it->headers);
    hvd_node_free(it->body);
}

static const HvdNode *first_death(const HvdNode *headers)
{
    const HvdNode *xd = hvd_node_get(headers, "x-death");
    if (!xd || xd->type != HVD_ARRAY || xd->u.arr.n == 0) return NULL;
    return xd->u.arr.items[xd->u.arr.n - 1]; /* the oldest death is last */
}

static HvdNode *decode_body(const HvdDelivery *d)
{
    static const HvdDecodeLimits lim = {.max_body = 64u << 20, .max_string = 8u << 20, .max_depth = 64};
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    HvdNode *n = NULL;
    char why[256];
    if (ct == HVD_CT_UNKNOWN) return NULL; /* shown as received */
    if (hvd_decode_limited(ct, d->body, d->len, &lim, &n, why, sizeof why) != HVD_DECODE_OK) return NULL;
    if (n->type != HVD_MAP && n->type != HVD_ARRAY) {
        hvd_node_free(n);
        return NULL;
    }
    return n;
}

/* Works out id, job id, reason, code, source and time of a fresh item. */
void deadq_item_describe(DeadItem *it)
{
    const HvdDelivery *d = &it->d;
    it->headers = hvd_delivery_headers(d);
    it->body = decode_body(d);
    const char *hreason = hvd_node_get_str(it->headers, "x-hvdeploy-reason");
    const char *hcode = hvd_node_get_str(it->headers, "x-hvdeploy-code");
    const HvdNode *death = first_death(it->headers);

    /* the worker's record of a failed job: JSON with job_id, stage, request */
    const char *rec_id = hvd_node_get_str(it->body, "job_id");
    it->record = hcode && it->body && it->body->type == HVD_MAP && rec_id && hvd_node_get(it->body, "stage") &&
                 hvd_node_get(it->body, "request");

    if (d->message_id && *d->message_id) {
        char *clean = deadq_one_line(d->message_id, 60);
        snprintf(it->id, sizeof it->id, "%s", clean);
        free(clean);
    } else {
        unsigned char h[8];
        crypto_generichash(h, sizeof h, d->body, d->len, NULL, 0);
        snprintf(it->id, sizeof it->id, "raw-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
    }
    if (d->message_id && hvd_uuid_valid(d->message_id, strlen(d->message_id)))
        it->job_id = hvd_xstrdup(d->message_id);
    else if (it->record && hvd_uuid_valid(rec_id, strlen(rec_id)))
        it->job_id = hvd_xstrdup(rec_id);

    if (hreason || hcode) {
        it->reason = deadq_safe_reason(hreason ? hreason : hvd_node_get_str(it->body, "reason"));
        it->code = hvd_xstrdup(hcode ? hcode : "-");
        it->source = hvd_xstrdup("worker");
    } else if (death || hvd_node_get_str(it->headers, "x-first-death-reason")) {
        const char *why = death ? hvd_node_get_str(death, "reason") : NULL;
        if (!why) why = hvd_node_get_str(it->headers, "x-first-death-reason");
        const char *q = death ? hvd_node_get_str(death, "queue") : NULL;
        if (!q) q = hvd_node_get_str(it->headers, "x-first-death-queue");
        it->code = hvd_xstrdup(why ? why : "dead_lettered");
        it->reason = hvd_xasprintf("dead-lettered by RabbitMQ: %s%s%s", why ? why : "unknown reason",
                                   q ? " in queue " : "", q ? q : "");
        it->source = hvd_xasprintf("rabbitmq (%s)", why ? why : "unknown");
    } else {
        it->reason = hvd_xstrdup("(no reason recorded)");
        it->code = hvd_xstrdup("-");
        it->source = hvd_xstrdup("unknown");
    }

    /* the routing key it had when first published */
    const HvdNode *rks = death ? hvd_node_get(death, "routing-keys") : NULL;
    if (rks && rks->type == HVD_ARRAY && rks->u.arr.n && rks->u.arr.items[0]->type == HVD_STR)
        it->routing_key = hvd_xstrdup(rks->u.arr.items[0]->u.s.ptr);
    else if (d->routing_key && *d->routing_key)
        it->routing_key = hvd_xstrdup(d->routing_key);
    else
        it->routing_key = hvd_xstrdup(HVD_BROKER_JOB_KEY);

    int64_t t;
    const char *at = it->record ? hvd_node_get_str(it->body, "at") : NULL;
    if (!at) at = hvd_delivery_header_str(d, "x-hvdeploy-at"); /* the worker's stamp on raw dead letters */
    if (at && hvd_time_parse_rfc3339(at, &t))
        it->at_ms = t;
    else if (death && hvd_node_get_int(death, "time", &t) && t > 0)
        it->at_ms = t * 1000;
}

bool deadq_item_matches(const DeadItem *it, const char *id)
{
    return strcmp(it->id, id) == 0 || (it->job_id && strcasecmp(it->job_id, id) == 0);
}

int64_t deadq_item_age_s(const DeadItem *it)
{
    return it->at_ms ? (hvd_now_ms() - it->at_ms) / 1000 : -1;
}

HvdNode *deadq_item_summary_node(const DeadItem *it)
{
    HvdNode *m = hvd_node_map();
    char at[HVD_RFC3339_LEN];
    hvd_node_map_set_str(m, "id", it->id);
    hvd_node_map_set_str(m, "job_id", it->job_id);
    hvd_node_map_set_str(m, "code", it->code);
    hvd_node_map_set_str(m, "reason", it->reason);
    hvd_node_map_set_str(m, "source", it->source);
    if (it->at_ms) {
        hvd_time_rfc3339(it->at_ms, at);
        hvd_node_map_set_str(m, "at", at);
        hvd_node_map_set_int(m, "age_s", deadq_item_age_s(it));
    } else {
        hvd_node_map_set(m, "at", hvd_node_nil());
        hvd_node_map_set(m, "age_s", hvd_node_nil());
    }
    hvd_node_map_set_int(m, "size", (int64_t)it->d.len);
    hvd_node_map_set_str(m, "content_type", it->d.content_type);
    hvd_node_map_set_str(m, "routing_key", it->routing_key);
    hvd_node_map_set_bool(m, "replayable_job", it->record);
    if (it->record) {
        hvd_node_map_set_str(m, "stage", hvd_node_get_str(it->body, "stage"));
        hvd_node_map_set_str(m, "target_host", hvd_node_get_str(it->body, "target_host"));
    }
    return m;
}

HvdBrokerStatus deadq_read(HvdBroker *b, const char *queue, size_t limit, DeadItem **items, size_t *n, char *err,
                           size_t errlen)
{
    size_t cap = 0;
    *items = NULL;
    *n = 0;
    while (*n < limit) {
        HvdDelivery d;
        HvdBrokerStatus st = hvd_broker_get(b, queue, false, &d, err, errlen);
        if (st == HVD_BROKER_EMPTY) break;
        if (st != HVD_BROKER_DELIVERY) return st;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            *items = hvd_xrealloc(*items, cap * sizeof **items);
        }
        DeadItem *it = &(*items)[(*n)++];
        memset(it, 0, sizeof *it);
        it->d = d;
        deadq_item_describe(it);
    }
    return HVD_BROKER_OK;
}

void deadq_items_free(DeadItem *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++) deadq_item_free(&items[i]);
    free(items);
}
