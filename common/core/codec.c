/* Wire codec front door: content types, limit checks, dispatch to the
 * msgpack and JSON halves, and the map building they share. */
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

/* ---- map building ---------------------------------------------------- */

#define KEY_SORT_FROM 16 /* below this many keys comparing every pair is cheaper */

void hvd_codec_map_push(HvdNode *map, char *key, HvdNode *val)
{
    if (map->u.map.n == map->u.map.cap) {
        size_t cap = map->u.map.cap ? map->u.map.cap * 2 : 8;
        map->u.map.keys = hvd_xrealloc(map->u.map.keys, cap * sizeof(*map->u.map.keys));
        map->u.map.vals = hvd_xrealloc(map->u.map.vals, cap * sizeof(*map->u.map.vals));
        map->u.map.cap = cap;
    }
    map->u.map.keys[map->u.map.n] = key;
    map->u.map.vals[map->u.map.n] = val;
    map->u.map.n++;
}

/* Merge sort of the indexes ix[0..n) by key, then by position (so equal keys
 * stay in map order); tmp has room for n. */
static void sort_keys(char *const *keys, size_t *ix, size_t *tmp, size_t n)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = strcmp(keys[ix[a]], keys[ix[b]]) <= 0 ? ix[a++] : ix[b++];
            while (a < mid) tmp[k++] = ix[a++];
            while (b < hi) tmp[k++] = ix[b++];
        }
        memcpy(ix, tmp, n * sizeof *ix);
    }
}

long hvd_codec_map_dup(const HvdNode *map)
{
    size_t n = map->u.map.n;
    char *const *keys = map->u.map.keys;
    if (n < KEY_SORT_FROM) {
        for (size_t j = 1; j < n; j++)
            for (size_t i = 0; i < j; i++)
                if (strcmp(keys[i], keys[j]) == 0) return (long)j;
        return -1;
    }
    size_t *ix = hvd_xmalloc(n * sizeof *ix), *tmp = hvd_xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) ix[i] = i;
    sort_keys(keys, ix, tmp, n);
    long best = -1;
    for (size_t k = 1; k < n; k++)
        if (strcmp(keys[ix[k - 1]], keys[ix[k]]) == 0 && (best < 0 || ix[k] < (size_t)best)) best = (long)ix[k];
    free(ix);
    free(tmp);
    return best;
}

void hvd_codec_dup_why(char *why, size_t whylen, const char *prefix, const char *key)
{
    char shown[65];
    size_t n = hvd_utf8_truncate(key, strlen(key), sizeof shown - 1);
    for (size_t i = 0; i < n; i++) shown[i] = (unsigned char)key[i] < 0x20 ? '?' : key[i];
    shown[n] = '\0';
    hvd_codec_why(why, whylen, "%sduplicate key '%s'%s", prefix, shown, n < strlen(key) ? "..." : "");
}
