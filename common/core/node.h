/* HvdNode: one in-memory tree for a decoded message, whichever wire format it
 * came in (msgpack or JSON). Validation, redaction and every encoder work on
 * this tree, so one code path serves both content types.
 *
 * Ownership: a node owns its children and its strings; hvd_node_free frees
 * the whole tree, wiping every string and key first (a decoded job holds
 * passwords). Map entries keep insertion order, which makes encoding
 * deterministic (the same tree always encodes to the same bytes). */
#ifndef HVD_NODE_H
#define HVD_NODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

typedef enum {
    HVD_NIL,
    HVD_BOOL,
    HVD_INT, /* integers (int64; a decoder refuses anything outside) */
    HVD_FLOAT,
    HVD_STR, /* UTF-8 text (may contain NUL when decoded from msgpack: use len) */
    HVD_BIN, /* msgpack bin; JSON has none */
    HVD_ARRAY,
    HVD_MAP, /* string keys only: non-string msgpack keys are dropped on decode */
} HvdNodeType;

typedef struct HvdNode HvdNode;
struct HvdNode {
    HvdNodeType type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *ptr;
            size_t len;
        } s; /* STR, BIN; ptr NUL-terminated */
        struct {
            HvdNode **items;
            size_t n, cap;
        } arr; /* ARRAY */
        struct {
            char **keys;
            HvdNode **vals;
            size_t n, cap;
        } map; /* MAP */
    } u;
};

/* Constructors (never return NULL: allocation aborts on OOM). */
HvdNode *hvd_node_nil(void);
HvdNode *hvd_node_bool(bool b);
HvdNode *hvd_node_int(int64_t i);
HvdNode *hvd_node_float(double f);
HvdNode *hvd_node_str(const char *s); /* NULL s gives a NIL node */
HvdNode *hvd_node_strn(const char *s, size_t n);
HvdNode *hvd_node_bin(const void *p, size_t n);
HvdNode *hvd_node_array(void);
HvdNode *hvd_node_map(void);

/* Containers take ownership of the value. map_set replaces an existing key in place
 * (keeping its position). */
void hvd_node_array_push(HvdNode *arr, HvdNode *val);
void hvd_node_map_set(HvdNode *map, const char *key, HvdNode *val);
/* Shorthands: map_set with a new string / int / bool / nil value. */
void hvd_node_map_set_str(HvdNode *map, const char *key, const char *s); /* NULL s sets nil */
void hvd_node_map_set_int(HvdNode *map, const char *key, int64_t i);
void hvd_node_map_set_bool(HvdNode *map, const char *key, bool b);
bool hvd_node_map_remove(HvdNode *map, const char *key);

/* Lookups return a borrowed pointer or NULL (also when node is NULL or not a map). */
const HvdNode *hvd_node_get(const HvdNode *map, const char *key);
HvdNode *hvd_node_get_mut(HvdNode *map, const char *key);
/* Borrowed string of map[key] when it is a STR, else NULL. */
const char *hvd_node_get_str(const HvdNode *map, const char *key);
/* map[key] as an int when it is an INT; returns false otherwise. */
bool hvd_node_get_int(const HvdNode *map, const char *key, int64_t *out);

HvdNode *hvd_node_clone(const HvdNode *n);
bool hvd_node_equal(const HvdNode *a, const HvdNode *b);
void hvd_node_free(HvdNode *n);                /* NULL-safe */
const char *hvd_node_type_name(HvdNodeType t); /* "nil", "bool", "int", ... */

#endif
