/* msgpack half of the codec: msgpack-c objects to HvdNode and back. */
#include "codec_priv.h"
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* NULL (with why set) when a map holds a key twice. */
static HvdNode *from_object(const msgpack_object *o, char *why, size_t whylen)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return hvd_node_nil();
    case MSGPACK_OBJECT_BOOLEAN: return hvd_node_bool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: /* above INT64_MAX: refused by the pre-scan */
        return hvd_node_int(o->via.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return hvd_node_int(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return hvd_node_float(o->via.f64);
    case MSGPACK_OBJECT_STR: return hvd_node_strn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN: return hvd_node_bin(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        HvdNode *arr = hvd_node_array();
        if (o->via.array.size) {
            arr->u.arr.items = hvd_xmalloc(o->via.array.size * sizeof(*arr->u.arr.items));
            arr->u.arr.cap = o->via.array.size;
        }
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            HvdNode *v = from_object(&o->via.array.ptr[i], why, whylen);
            if (!v) {
                hvd_node_free(arr);
                return NULL;
            }
            arr->u.arr.items[arr->u.arr.n++] = v;
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        HvdNode *map = hvd_node_map();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) continue; /* node maps have string keys only */
            HvdNode *v = from_object(&kv->val, why, whylen);
            if (!v) {
                hvd_node_free(map);
                return NULL;
            }
            /* msgpack-c leaves ptr NULL for an empty string */
            char *key =
                kv->key.via.str.size ? hvd_xstrndup(kv->key.via.str.ptr, kv->key.via.str.size) : hvd_xstrdup("");
            hvd_codec_map_push(map, key, v);
        }
        long dup = hvd_codec_map_dup(map);
        if (dup >= 0) {
            /* last-wins here and first-wins elsewhere could disagree on what was asked */
            hvd_codec_dup_why(why, whylen, "invalid msgpack: ", map->u.map.keys[dup]);
            hvd_node_free(map);
            return NULL;
        }
        return map;
    }
    default: /* EXT: refused by the pre-scan */ return hvd_node_nil();
    }
}

HvdDecodeStatus hvd_msgpack_decode(const void *buf, size_t len, HvdNode **out, char *why, size_t whylen)
{
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    size_t off = 0;
    HvdDecodeStatus st = HVD_DECODE_MALFORMED;
    msgpack_unpack_return rc = msgpack_unpack_next(&msg, buf, len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS) {
        hvd_codec_why(why, whylen, "invalid msgpack: the decoder failed (%d)", (int)rc);
        goto out;
    }
    if (off != len) {
        hvd_codec_why(why, whylen, "invalid msgpack: %zu trailing bytes after the value ending at byte %zu", len - off,
                      off);
        goto out;
    }
    *out = from_object(&msg.data, why, whylen);
    if (*out) st = HVD_DECODE_OK;
out:
    msgpack_unpacked_destroy(&msg);
    return st;
}

static int buf_write(void *data, const char *p, size_t n)
{
    hvd_buf_append(data, p, n);
    return 0;
}

static void pack_text(msgpack_packer *pk, const char *s, size_t n)
{
    if (hvd_utf8_valid(s, n)) {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
        return;
    }
    HvdBuf clean = {0};
    hvd_utf8_sanitize(s, n, 0, &clean);
    msgpack_pack_str(pk, clean.len);
    msgpack_pack_str_body(pk, clean.data, clean.len);
    hvd_buf_free(&clean);
}

static void pack_node(msgpack_packer *pk, const HvdNode *n)
{
    if (!n) {
        msgpack_pack_nil(pk);
        return;
    }
    switch (n->type) {
    case HVD_NIL: msgpack_pack_nil(pk); break;
    case HVD_BOOL: n->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case HVD_INT: msgpack_pack_int64(pk, n->u.i); break; /* smallest encoding */
    case HVD_FLOAT: msgpack_pack_double(pk, n->u.f); break;
    case HVD_STR: pack_text(pk, n->u.s.ptr, n->u.s.len); break;
    case HVD_BIN:
        msgpack_pack_bin(pk, n->u.s.len);
        msgpack_pack_bin_body(pk, n->u.s.ptr, n->u.s.len);
        break;
    case HVD_ARRAY:
        msgpack_pack_array(pk, n->u.arr.n);
        for (size_t i = 0; i < n->u.arr.n; i++) pack_node(pk, n->u.arr.items[i]);
        break;
    case HVD_MAP:
        msgpack_pack_map(pk, n->u.map.n);
        for (size_t i = 0; i < n->u.map.n; i++) {
            pack_text(pk, n->u.map.keys[i], strlen(n->u.map.keys[i]));
            pack_node(pk, n->u.map.vals[i]);
        }
        break;
    default: msgpack_pack_nil(pk); break;
    }
}

void hvd_msgpack_encode(const HvdNode *node, HvdBuf *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    pack_node(&pk, node);
}
