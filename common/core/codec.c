/* Wire codec front door: content types, limit checks, dispatch to the
 * msgpack and JSON halves, and helpers they share (UTF-8, map building). */
#include "codec.h"
#include "codec_priv.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void hvd_codec_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap); /* a truncated reason is still a reason */
    va_end(ap);
}

HvdContentType hvd_content_type_parse(const char *ct)
{
    if (!ct) return HVD_CT_UNKNOWN;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    static const struct {
        const char *name;
        HvdContentType ct;
    } types[] = {
        {"application/msgpack", HVD_CT_MSGPACK},
        {"application/x-msgpack", HVD_CT_MSGPACK},
        {"application/json", HVD_CT_JSON},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strlen(types[i].name) == n && strncasecmp(ct, types[i].name, n) == 0) return types[i].ct;
    return HVD_CT_UNKNOWN;
}

const char *hvd_content_type_name(HvdContentType ct)
{
    return ct == HVD_CT_MSGPACK ? "application/msgpack" : "application/json";
}

HvdDecodeStatus hvd_decode_limited(HvdContentType ct, const void *buf, size_t len, const HvdDecodeLimits *lim,
                                   HvdNode **out, char *why, size_t whylen)
{
    HvdDecodeLimits l = *lim;
    if (l.max_depth > HVD_DEPTH_CAP) l.max_depth = HVD_DEPTH_CAP;
    if (l.max_depth < 0) l.max_depth = 0;
    *out = NULL;
    if (why && whylen) why[0] = '\0';
    if (len > l.max_body) {
        hvd_codec_why(why, whylen, "body is %zu bytes, over the %zu-byte limit", len, l.max_body);
        return HVD_DECODE_TOO_LARGE;
    }
    if (len == 0 || !buf) {
        hvd_codec_why(why, whylen, "body is empty");
        return HVD_DECODE_MALFORMED;
    }
    HvdDecodeStatus st;
    switch (ct) {
    case HVD_CT_MSGPACK:
        st = hvd_prescan_msgpack(buf, len, &l, why, whylen);
        return st != HVD_DECODE_OK ? st : hvd_msgpack_decode(buf, len, out, why, whylen);
    case HVD_CT_JSON:
        st = hvd_prescan_json(buf, len, &l, why, whylen);
        return st != HVD_DECODE_OK ? st : hvd_json_decode(buf, len, out, why, whylen);
    default: hvd_codec_why(why, whylen, "unsupported content type"); return HVD_DECODE_MALFORMED;
    }
}

HvdDecodeStatus hvd_decode(HvdContentType ct, const void *buf, size_t len, HvdNode **out, char *why, size_t whylen)
{
    const HvdDecodeLimits lim = {HVD_MAX_BODY, HVD_MAX_STRING, HVD_MAX_DEPTH};
    return hvd_decode_limited(ct, buf, len, &lim, out, why, whylen);
}

void hvd_encode(HvdContentType ct, const HvdNode *node, HvdBuf *out)
{
    if (ct == HVD_CT_MSGPACK)
        hvd_msgpack_encode(node, out);
    else
        hvd_json_encode(node, out);
}

HvdDecodeStatus hvd_json_to_node(const char *text, size_t len, size_t max_len, HvdNode **out, char *why, size_t whylen)
{
    const HvdDecodeLimits lim = {max_len ? max_len : HVD_MAX_BODY, HVD_MAX_STRING, HVD_MAX_DEPTH};
    return hvd_decode_limited(HVD_CT_JSON, text, len, &lim, out, why, whylen);
}

char *hvd_node_to_json(const HvdNode *node)
{
    HvdBuf b = {0};
    hvd_json_encode(node, &b);
    return hvd_buf_steal(&b);
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return n;
}

bool hvd_codec_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

void hvd_codec_utf8_sanitize(const unsigned char *s, size_t len, HvdBuf *out)
{
    size_t i = 0, run = 0; /* run: start of the pending valid bytes */
    while (i < len) {
        size_t n = s[i] < 0x80 ? 1 : utf8_seq(s + i, len - i);
        if (n) {
            i += n;
            continue;
        }
        hvd_buf_append(out, s + run, i - run);
        hvd_buf_append(out, "\xEF\xBF\xBD", 3);
        run = ++i;
    }
    hvd_buf_append(out, s + run, len - run);
}

/* ---- map building with a key index ------------------------------------ */

#define KEY_INDEX_FROM 16 /* below this many keys a linear scan is cheaper */

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

static void index_insert(HvdKeyIndex *ix, const HvdNode *map, size_t at)
{
    size_t mask = ix->cap - 1;
    size_t s = (size_t)key_hash(map->u.map.keys[at]) & mask;
    while (ix->slots[s]) s = (s + 1) & mask;
    ix->slots[s] = at + 1;
}

static void index_rebuild(HvdKeyIndex *ix, const HvdNode *map, size_t cap)
{
    free(ix->slots);
    ix->slots = hvd_xcalloc(cap, sizeof(*ix->slots));
    ix->cap = cap;
    for (size_t i = 0; i < map->u.map.n; i++) index_insert(ix, map, i);
}

static long index_find(const HvdKeyIndex *ix, const HvdNode *map, const char *key)
{
    size_t mask = ix->cap - 1;
    for (size_t s = (size_t)key_hash(key) & mask; ix->slots[s]; s = (s + 1) & mask)
        if (strcmp(map->u.map.keys[ix->slots[s] - 1], key) == 0) return (long)(ix->slots[s] - 1);
    return -1;
}

void hvd_codec_map_put(HvdNode *map, HvdKeyIndex *seen, char *key, HvdNode *val)
{
    long at = -1;
    if (seen->cap) {
        at = index_find(seen, map, key);
    } else {
        for (size_t i = 0; i < map->u.map.n; i++)
            if (strcmp(map->u.map.keys[i], key) == 0) {
                at = (long)i;
                break;
            }
    }
    if (at >= 0) {
        free(key);
        hvd_node_free(map->u.map.vals[at]);
        map->u.map.vals[at] = val;
        return;
    }
    if (map->u.map.n == map->u.map.cap) {
        size_t cap = map->u.map.cap ? map->u.map.cap * 2 : 8;
        map->u.map.keys = hvd_xrealloc(map->u.map.keys, cap * sizeof(*map->u.map.keys));
        map->u.map.vals = hvd_xrealloc(map->u.map.vals, cap * sizeof(*map->u.map.vals));
        map->u.map.cap = cap;
    }
    size_t idx = map->u.map.n++;
    map->u.map.keys[idx] = key;
    map->u.map.vals[idx] = val;
    if (seen->cap == 0 && map->u.map.n >= KEY_INDEX_FROM)
        index_rebuild(seen, map, 64);
    else if (seen->cap && map->u.map.n * 2 > seen->cap)
        index_rebuild(seen, map, seen->cap * 2);
    else if (seen->cap)
        index_insert(seen, map, idx);
}

void hvd_codec_key_index_free(HvdKeyIndex *seen)
{
    free(seen->slots);
    seen->slots = NULL;
    seen->cap = 0;
}
