/* Unit tests of the HvdNode tree: constructors, containers, lookups, clone, equality. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "codec.h"
#include "node.h"

Test(node, scalars)
{
    HvdNode *n = hvd_node_int(-42);
    cr_assert_eq(n->type, HVD_INT);
    cr_assert_eq(n->u.i, -42);
    hvd_node_free(n);

    n = hvd_node_float(2.5);
    cr_assert_eq(n->type, HVD_FLOAT);
    cr_assert_float_eq(n->u.f, 2.5, 1e-12);
    hvd_node_free(n);

    n = hvd_node_bool(true);
    cr_assert(n->type == HVD_BOOL && n->u.b);
    hvd_node_free(n);

    n = hvd_node_str(NULL);
    cr_assert_eq(n->type, HVD_NIL, "a NULL string is nil");
    hvd_node_free(n);

    n = hvd_node_strn("a\0b", 3);
    cr_assert_eq(n->type, HVD_STR);
    cr_assert_eq(n->u.s.len, 3);
    cr_assert_eq(memcmp(n->u.s.ptr, "a\0b", 4), 0, "copied and NUL-terminated");
    hvd_node_free(n);

    n = hvd_node_bin("\x00\xff", 2);
    cr_assert_eq(n->type, HVD_BIN);
    cr_assert_eq(n->u.s.len, 2);
    cr_assert_eq((unsigned char)n->u.s.ptr[1], 0xff);
    hvd_node_free(n);

    hvd_node_free(NULL); /* NULL-safe */
}

Test(node, map_set_keeps_order_and_replaces_in_place)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "a", "1");
    hvd_node_map_set_int(m, "b", 2);
    hvd_node_map_set_bool(m, "c", true);
    hvd_node_map_set_str(m, "d", NULL);
    cr_assert_eq(m->u.map.n, 4);
    hvd_node_map_set_int(m, "a", 10); /* replace keeps position 0 */
    cr_assert_eq(m->u.map.n, 4);
    cr_assert_str_eq(m->u.map.keys[0], "a");
    cr_assert_eq(m->u.map.vals[0]->type, HVD_INT);
    cr_assert_eq(m->u.map.vals[0]->u.i, 10);
    cr_assert_eq(hvd_node_get(m, "d")->type, HVD_NIL);

    int64_t v = 0;
    cr_assert(hvd_node_get_int(m, "b", &v));
    cr_assert_eq(v, 2);
    cr_assert_not(hvd_node_get_int(m, "c", &v), "c is a bool, not an int");
    cr_assert_null(hvd_node_get_str(m, "b"));
    cr_assert_null(hvd_node_get(m, "missing"));
    cr_assert_null(hvd_node_get(NULL, "a"));
    cr_assert_null(hvd_node_get(hvd_node_get(m, "b"), "a"), "lookup in a non-map is NULL");

    cr_assert(hvd_node_map_remove(m, "b"));
    cr_assert_not(hvd_node_map_remove(m, "b"));
    cr_assert_eq(m->u.map.n, 3);
    cr_assert_str_eq(m->u.map.keys[0], "a");
    cr_assert_str_eq(m->u.map.keys[1], "c");
    cr_assert_str_eq(m->u.map.keys[2], "d");

    HvdNode *mut = hvd_node_get_mut(m, "c");
    mut->u.b = false;
    cr_assert_not(hvd_node_get(m, "c")->u.b);
    hvd_node_free(m);
}

Test(node, map_grows_past_initial_capacity)
{
    HvdNode *m = hvd_node_map();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        hvd_node_map_set_int(m, key, i);
    }
    cr_assert_eq(m->u.map.n, 100);
    int64_t v;
    cr_assert(hvd_node_get_int(m, "k73", &v));
    cr_assert_eq(v, 73);
    cr_assert_str_eq(m->u.map.keys[99], "k99");
    hvd_node_free(m);
}

Test(node, array_push)
{
    HvdNode *a = hvd_node_array();
    for (int i = 0; i < 50; i++) hvd_node_array_push(a, hvd_node_int(i));
    hvd_node_array_push(a, NULL); /* becomes nil */
    cr_assert_eq(a->u.arr.n, 51);
    cr_assert_eq(a->u.arr.items[49]->u.i, 49);
    cr_assert_eq(a->u.arr.items[50]->type, HVD_NIL);
    hvd_node_free(a);
}

Test(node, clone_and_equal)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "s", "text");
    hvd_node_map_set(m, "f", hvd_node_float(0.1));
    hvd_node_map_set(m, "b", hvd_node_bin("xy", 2));
    HvdNode *arr = hvd_node_array();
    hvd_node_array_push(arr, hvd_node_nil());
    hvd_node_array_push(arr, hvd_node_map());
    hvd_node_map_set(m, "arr", arr);

    HvdNode *c = hvd_node_clone(m);
    cr_assert(hvd_node_equal(m, c));
    cr_assert_neq(c, m);
    cr_assert_neq(hvd_node_get(c, "s")->u.s.ptr, hvd_node_get(m, "s")->u.s.ptr, "deep copy");

    hvd_node_map_set_str(c, "s", "other");
    cr_assert_not(hvd_node_equal(m, c));
    hvd_node_free(c);

    /* same entries, other order: not equal (order decides the encoding) */
    HvdNode *x = hvd_node_map(), *y = hvd_node_map();
    hvd_node_map_set_int(x, "a", 1);
    hvd_node_map_set_int(x, "b", 2);
    hvd_node_map_set_int(y, "b", 2);
    hvd_node_map_set_int(y, "a", 1);
    cr_assert_not(hvd_node_equal(x, y));
    cr_assert_not(hvd_node_equal(hvd_node_get(x, "a"), NULL));
    cr_assert(hvd_node_equal(NULL, NULL));
    hvd_node_free(x);
    hvd_node_free(y);

    HvdNode *s1 = hvd_node_strn("a\0b", 3), *s2 = hvd_node_strn("a\0c", 3);
    cr_assert_not(hvd_node_equal(s1, s2), "compares past an embedded NUL");
    hvd_node_free(s1);
    hvd_node_free(s2);
    cr_assert_null(hvd_node_clone(NULL));
    hvd_node_free(m);
}

Test(node, containers_ignore_wrong_targets)
{
    HvdNode *i = hvd_node_int(1);
    hvd_node_map_set(i, "k", hvd_node_int(2)); /* not a map: value freed, nothing set */
    hvd_node_array_push(i, hvd_node_int(3));
    cr_assert_eq(i->type, HVD_INT);
    cr_assert_not(hvd_node_map_remove(i, "k"));
    hvd_node_free(i);
}

Test(node, type_names)
{
    cr_assert_str_eq(hvd_node_type_name(HVD_NIL), "nil");
    cr_assert_str_eq(hvd_node_type_name(HVD_BOOL), "bool");
    cr_assert_str_eq(hvd_node_type_name(HVD_INT), "int");
    cr_assert_str_eq(hvd_node_type_name(HVD_FLOAT), "float");
    cr_assert_str_eq(hvd_node_type_name(HVD_STR), "str");
    cr_assert_str_eq(hvd_node_type_name(HVD_BIN), "bin");
    cr_assert_str_eq(hvd_node_type_name(HVD_ARRAY), "array");
    cr_assert_str_eq(hvd_node_type_name(HVD_MAP), "map");
}

Test(node, clone_of_a_large_map_is_fast, .timeout = 5)
{
    /* as many keys as a 256 KiB body can hold; a quadratic clone would take seconds */
    HvdBuf text = {0};
    hvd_buf_puts(&text, "{");
    for (int i = 0; i < 60000; i++) hvd_buf_printf(&text, "%s\"k%d\":%d", i ? "," : "", i, i);
    hvd_buf_puts(&text, "}");
    const HvdDecodeLimits lim = {1 << 20, HVD_MAX_STRING, HVD_MAX_DEPTH};
    HvdNode *m = NULL;
    cr_assert_eq(hvd_decode_limited(HVD_CT_JSON, text.data, text.len, &lim, &m, NULL, 0), HVD_DECODE_OK);
    cr_assert_eq(m->u.map.n, 60000);
    HvdNode *c = hvd_node_clone(m);
    cr_assert(hvd_node_equal(m, c));
    int64_t v;
    cr_assert(hvd_node_get_int(c, "k59999", &v));
    cr_assert_eq(v, 59999);
    hvd_node_free(c);
    hvd_node_free(m);
    hvd_buf_free(&text);
}
