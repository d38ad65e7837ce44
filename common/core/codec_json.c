/* JSON half of the codec: jansson parses into HvdNode; a small writer of our
 * own encodes (compact, insertion order, shortest round-trip floats). */
#include "codec_priv.h"
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's copies of decoded strings (a job's passwords among them) are wiped
 * before they are freed: a free() that clears the whole allocation first. */
static void wipe_free(void *p)
{
    if (!p) return;
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

/* Set once, before the first decode: jansson blocks allocated with malloc
 * before that are freed as well by wipe_free, so a race costs nothing. */
static void json_wipe_allocator(void)
{
    static atomic_bool set;
    if (!atomic_exchange(&set, true)) json_set_alloc_funcs(malloc, wipe_free);
}

/* NULL (with why set) when a key holds a NUL byte, which node maps cannot keep. */
static HvdNode *from_json(const json_t *j, char *why, size_t whylen)
{
    switch (json_typeof(j)) {
    case JSON_NULL: return hvd_node_nil();
    case JSON_TRUE: return hvd_node_bool(true);
    case JSON_FALSE: return hvd_node_bool(false);
    case JSON_INTEGER: return hvd_node_int((int64_t)json_integer_value(j));
    case JSON_REAL: return hvd_node_float(json_real_value(j));
    case JSON_STRING: return hvd_node_strn(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        HvdNode *arr = hvd_node_array();
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++) {
            HvdNode *v = from_json(json_array_get(j, i), why, whylen);
            if (!v) {
                hvd_node_free(arr);
                return NULL;
            }
            hvd_node_array_push(arr, v);
        }
        return arr;
    }
    case JSON_OBJECT: {
        /* jansson refused repeated keys (JSON_REJECT_DUPLICATES): push straight in */
        HvdNode *map = hvd_node_map();
        for (void *it = json_object_iter((json_t *)j); it; it = json_object_iter_next((json_t *)j, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            if (memchr(key, '\0', klen)) {
                hvd_codec_why(why, whylen, "invalid JSON: a map key contains a NUL character");
                hvd_node_free(map);
                return NULL;
            }
            HvdNode *v = from_json(json_object_iter_value(it), why, whylen);
            if (!v) {
                hvd_node_free(map);
                return NULL;
            }
            hvd_codec_map_push(map, hvd_xstrndup(key, klen), v);
        }
        return map;
    }
    }
    return hvd_node_nil();
}

HvdDecodeStatus hvd_json_decode(const void *buf, size_t len, HvdNode **out, char *why, size_t whylen)
{
    json_error_t err;
    json_wipe_allocator();
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        /* jansson quotes the text it stopped at (" near '...'"): that could be a
         * piece of a password, and this sentence reaches envelopes and logs.
         * Only a repeated key is named, as the msgpack decoder names it. */
        char *near = strstr(err.text, " near '");
        char at[64];
        snprintf(at, sizeof at, "invalid JSON at line %d column %d: ", err.line, err.column);
        if (json_error_code(&err) == json_error_duplicate_key && near) {
            char *key = near + strlen(" near '");
            size_t klen = strlen(key);
            if (klen && key[klen - 1] == '\'') key[--klen] = '\0';
            if (klen >= 2 && key[0] == '"' && key[klen - 1] == '"') {
                key[klen - 1] = '\0';
                key++;
            }
            hvd_codec_dup_why(why, whylen, at, key);
            return HVD_DECODE_MALFORMED;
        }
        if (near) *near = '\0';
        if (json_error_code(&err) == json_error_numeric_overflow)
            hvd_codec_why(why, whylen, "%stoo big integer (%s)", at, HVD_CODEC_INT_RANGE);
        else
            hvd_codec_why(why, whylen, "%s%s", at, err.text);
        return HVD_DECODE_MALFORMED;
    }
    HvdNode *n = from_json(root, why, whylen);
    json_decref(root);
    if (!n) return HVD_DECODE_MALFORMED;
    *out = n;
    return HVD_DECODE_OK;
}

/* ---- writer ------------------------------------------------------------ */

static void put_escaped(HvdBuf *out, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    hvd_buf_append(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        hvd_buf_append(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': hvd_buf_append(out, "\\\"", 2); break;
        case '\\': hvd_buf_append(out, "\\\\", 2); break;
        case '\b': hvd_buf_append(out, "\\b", 2); break;
        case '\f': hvd_buf_append(out, "\\f", 2); break;
        case '\n': hvd_buf_append(out, "\\n", 2); break;
        case '\r': hvd_buf_append(out, "\\r", 2); break;
        case '\t': hvd_buf_append(out, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            hvd_buf_append(out, u, 6);
        }
        }
    }
    hvd_buf_append(out, s + run, n - run);
    hvd_buf_append(out, "\"", 1);
}

static void put_text(HvdBuf *out, const char *s, size_t n)
{
    if (hvd_utf8_valid(s, n)) {
        put_escaped(out, (const unsigned char *)s, n);
        return;
    }
    HvdBuf clean = {0};
    hvd_utf8_sanitize(s, n, 0, &clean);
    put_escaped(out, (const unsigned char *)clean.data, clean.len);
    hvd_buf_free(&clean);
}

static void put_float(HvdBuf *out, double d)
{
    if (!isfinite(d)) {
        hvd_buf_puts(out, "null");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    hvd_buf_puts(out, tmp);
    if (!strpbrk(tmp, ".eE")) hvd_buf_puts(out, ".0"); /* stays a float when read back */
}

static void put_base64(HvdBuf *out, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    hvd_buf_append(out, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63], i + 1 < n ? tbl[(v >> 6) & 63] : '=',
                     i + 2 < n ? tbl[v & 63] : '='};
        hvd_buf_append(out, q, 4);
    }
    hvd_buf_append(out, "\"", 1);
}

static void put_node(HvdBuf *out, const HvdNode *n)
{
    if (!n) {
        hvd_buf_puts(out, "null");
        return;
    }
    switch (n->type) {
    case HVD_NIL: hvd_buf_puts(out, "null"); break;
    case HVD_BOOL: hvd_buf_puts(out, n->u.b ? "true" : "false"); break;
    case HVD_INT: hvd_buf_printf(out, "%" PRId64, n->u.i); break;
    case HVD_FLOAT: put_float(out, n->u.f); break;
    case HVD_STR: put_text(out, n->u.s.ptr, n->u.s.len); break;
    case HVD_BIN: put_base64(out, (const unsigned char *)n->u.s.ptr, n->u.s.len); break;
    case HVD_ARRAY:
        hvd_buf_append(out, "[", 1);
        for (size_t i = 0; i < n->u.arr.n; i++) {
            if (i) hvd_buf_append(out, ",", 1);
            put_node(out, n->u.arr.items[i]);
        }
        hvd_buf_append(out, "]", 1);
        break;
    case HVD_MAP:
        hvd_buf_append(out, "{", 1);
        for (size_t i = 0; i < n->u.map.n; i++) {
            if (i) hvd_buf_append(out, ",", 1);
            put_text(out, n->u.map.keys[i], strlen(n->u.map.keys[i]));
            hvd_buf_append(out, ":", 1);
            put_node(out, n->u.map.vals[i]);
        }
        hvd_buf_append(out, "}", 1);
        break;
    default: hvd_buf_puts(out, "null"); break;
    }
}

void hvd_json_encode(const HvdNode *node, HvdBuf *out)
{
    put_node(out, node);
    if (!out->data) hvd_buf_append(out, "", 0); /* keep data non-NULL */
}
