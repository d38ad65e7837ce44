/* HvdNode: the generic decoded-message tree (constructors, containers, lookups). */
#include "node.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static HvdNode *node_new(HvdNodeType t)
{
    HvdNode *n = hvd_xcalloc(1, sizeof(*n));
    n->type = t;
    return n;
}

HvdNode *hvd_node_nil(void)
{
    return node_new(HVD_NIL);
}

HvdNode *hvd_node_bool(bool b)
{
    HvdNode *n = node_new(HVD_BOOL);
    n->u.b = b;
    return n;
}

HvdNode *hvd_node_int(int64_t i)
{
    HvdNode *n = node_new(HVD_INT);
    n->u.i = i;
    return n;
}

HvdNode *hvd_node_float(double f)
{
    HvdNode *n = node_new(HVD_FLOAT);
    n->u.f = f;
    return n;
}

HvdNode *hvd_node_str(const char *s)
{
    return s ? hvd_node_strn(s, strlen(s)) : hvd_node_nil();
}

HvdNode *hvd_node_strn(const char *s, size_t len)
{
    HvdNode *n = node_new(HVD_STR);
    n->u.s.ptr = hvd_xmalloc(len + 1);
    if (len) memcpy(n->u.s.ptr, s, len);
    n->u.s.ptr[len] = '\0';
    n->u.s.len = len;
    return n;
}

HvdNode *hvd_node_bin(const void *p, size_t len)
{
    HvdNode *n = hvd_node_strn(p, len);
    n->type = HVD_BIN;
    return n;
}

HvdNode *hvd_node_array(void)
{
    return node_new(HVD_ARRAY);
}

HvdNode *hvd_node_map(void)
{
    return node_new(HVD_MAP);
}

void hvd_node_array_push(HvdNode *arr, HvdNode *val)
{
    if (!arr || arr->type != HVD_ARRAY) {
        hvd_node_free(val);
        return;
    }
    if (arr->u.arr.n == arr->u.arr.cap) {
        size_t cap = arr->u.arr.cap ? arr->u.arr.cap * 2 : 4;
        arr->u.arr.items = hvd_xrealloc(arr->u.arr.items, cap * sizeof(*arr->u.arr.items));
        arr->u.arr.cap = cap;
    }
    arr->u.arr.items[arr->u.arr.n++] = val ? val : hvd_node_nil();
}

/* Index of key in map, or -1. Maps are small (a request has a dozen keys),
 * so a linear scan is the simplest correct choice; a decoded map (which may
 * be large) is built by the codecs without lookups and checked for repeated
 * keys by sorting (codec_map.c), so nothing here degrades on crafted keys. */
static long map_find(const HvdNode *map, const char *key)
{
    for (size_t i = 0; i < map->u.map.n; i++)
        if (strcmp(map->u.map.keys[i], key) == 0) return (long)i;
    return -1;
}

void hvd_node_map_set(HvdNode *map, const char *key, HvdNode *val)
{
    if (!map || map->type != HVD_MAP || !key) {
        hvd_node_free(val);
        return;
    }
    if (!val) val = hvd_node_nil();
    long at = map_find(map, key);
    if (at >= 0) {
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
    map->u.map.keys[map->u.map.n] = hvd_xstrdup(key);
    map->u.map.vals[map->u.map.n] = val;
    map->u.map.n++;
}

void hvd_node_map_set_str(HvdNode *map, const char *key, const char *s)
{
    hvd_node_map_set(map, key, hvd_node_str(s));
}

void hvd_node_map_set_int(HvdNode *map, const char *key, int64_t i)
{
    hvd_node_map_set(map, key, hvd_node_int(i));
}

void hvd_node_map_set_bool(HvdNode *map, const char *key, bool b)
{
    hvd_node_map_set(map, key, hvd_node_bool(b));
}

bool hvd_node_map_remove(HvdNode *map, const char *key)
{
    if (!map || map->type != HVD_MAP || !key) return false;
    long at = map_find(map, key);
    if (at < 0) return false;
    free(map->u.map.keys[at]);
    hvd_node_free(map->u.map.vals[at]);
    size_t rest = map->u.map.n - (size_t)at - 1;
    memmove(&map->u.map.keys[at], &map->u.map.keys[at + 1], rest * sizeof(*map->u.map.keys));
    memmove(&map->u.map.vals[at], &map->u.map.vals[at + 1], rest * sizeof(*map->u.map.vals));
    map->u.map.n--;
    return true;
}

const HvdNode *hvd_node_get(const HvdNode *map, const char *key)
{
    if (!map || map->type != HVD_MAP || !key) return NULL;
    long at = map_find(map, key);
    return at < 0 ? NULL : map->u.map.vals[at];
}

HvdNode *hvd_node_get_mut(HvdNode *map, const char *key)
{
    if (!map || map->type != HVD_MAP || !key) return NULL;
    long at = map_find(map, key);
    return at < 0 ? NULL : map->u.map.vals[at];
}

const char *hvd_node_get_str(const HvdNode *map, const char *key)
{
    const HvdNode *v = hvd_node_get(map, key);
    return v && v->type == HVD_STR ? v->u.s.ptr : NULL;
}

bool hvd_node_get_int(const HvdNode *map, const char *key, int64_t *out)
{
    const HvdNode *v = hvd_node_get(map, key);
    if (!v || v->type != HVD_INT) return false;
    if (out) *out = v->u.i;
    return true;
}

HvdNode *hvd_node_clone(const HvdNode *n)
{
    if (!n) return NULL;
    switch (n->type) {
    case HVD_NIL: return hvd_node_nil();
    case HVD_BOOL: return hvd_node_bool(n->u.b);
    case HVD_INT: return hvd_node_int(n->u.i);
    case HVD_FLOAT: return hvd_node_float(n->u.f);
    case HVD_STR: return hvd_node_strn(n->u.s.ptr, n->u.s.len);
    case HVD_BIN: return hvd_node_bin(n->u.s.ptr, n->u.s.len);
    case HVD_ARRAY: {
        HvdNode *c = hvd_node_array();
        for (size_t i = 0; i < n->u.arr.n; i++) hvd_node_array_push(c, hvd_node_clone(n->u.arr.items[i]));
        return c;
    }
    case HVD_MAP: {
        /* keys are already unique: copy straight across, no lookups (a
         * 256 KiB body can hold 50 000 keys; redaction clones whole bodies) */
        HvdNode *c = hvd_node_map();
        if (n->u.map.n) {
            c->u.map.keys = hvd_xmalloc(n->u.map.n * sizeof(*c->u.map.keys));
            c->u.map.vals = hvd_xmalloc(n->u.map.n * sizeof(*c->u.map.vals));
            c->u.map.cap = n->u.map.n;
        }
        for (size_t i = 0; i < n->u.map.n; i++) {
            c->u.map.keys[i] = hvd_xstrdup(n->u.map.keys[i]);
            c->u.map.vals[i] = hvd_node_clone(n->u.map.vals[i]);
            c->u.map.n++;
        }
        return c;
    }
    }
    return hvd_node_nil();
}

/* Structural equality; maps must hold the same keys in the same order (order
 * matters because it decides the encoded bytes). NaN equals NaN here. */
bool hvd_node_equal(const HvdNode *a, const HvdNode *b)
{
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case HVD_NIL: return true;
    case HVD_BOOL: return a->u.b == b->u.b;
    case HVD_INT: return a->u.i == b->u.i;
    case HVD_FLOAT: return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
    case HVD_STR:
    case HVD_BIN: return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    case HVD_ARRAY:
        if (a->u.arr.n != b->u.arr.n) return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!hvd_node_equal(a->u.arr.items[i], b->u.arr.items[i])) return false;
        return true;
    case HVD_MAP:
        if (a->u.map.n != b->u.map.n) return false;
        for (size_t i = 0; i < a->u.map.n; i++) {
            if (strcmp(a->u.map.keys[i], b->u.map.keys[i]) != 0) return false;
            if (!hvd_node_equal(a->u.map.vals[i], b->u.map.vals[i])) return false;
        }
        return true;
    }
    return false;
}

void hvd_node_free(HvdNode *n)
{
    if (!n) return;
    /* Strings are wiped before they are freed: a decoded job holds its
     * passwords, and freed memory is not cleared by free(). */
    switch (n->type) {
    case HVD_STR:
    case HVD_BIN:
        explicit_bzero(n->u.s.ptr, n->u.s.len);
        free(n->u.s.ptr);
        break;
    case HVD_ARRAY:
        for (size_t i = 0; i < n->u.arr.n; i++) hvd_node_free(n->u.arr.items[i]);
        free(n->u.arr.items);
        break;
    case HVD_MAP:
        for (size_t i = 0; i < n->u.map.n; i++) {
            explicit_bzero(n->u.map.keys[i], strlen(n->u.map.keys[i]));
            free(n->u.map.keys[i]);
            hvd_node_free(n->u.map.vals[i]);
        }
        free(n->u.map.keys);
        free(n->u.map.vals);
        break;
    default: break;
    }
    free(n);
}

const char *hvd_node_type_name(HvdNodeType t)
{
    switch (t) {
    case HVD_NIL: return "nil";
    case HVD_BOOL: return "bool";
    case HVD_INT: return "int";
    case HVD_FLOAT: return "float";
    case HVD_STR: return "str";
    case HVD_BIN: return "bin";
    case HVD_ARRAY: return "array";
    case HVD_MAP: return "map";
    }
    return "unknown";
}
