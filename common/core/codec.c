/* Wire codec front door: content types, limit checks and dispatch to the
 * msgpack and JSON halves (their shared pieces: codec_map.c). */
#include "codec.h"
#include "codec_priv.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
