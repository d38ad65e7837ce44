/* Unit tests of the wire codecs: round trips, byte stability, every limit at
 * its boundary in both formats, and refusal of bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "codec.h"

static char why[512];

static HvdDecodeStatus dec(HvdContentType ct, const void *b, size_t n, HvdNode **out)
{
    why[0] = '\0';
    return hvd_decode(ct, b, n, out, why, sizeof(why));
}

static HvdDecodeStatus dec_json(const char *s, HvdNode **out)
{
    return dec(HVD_CT_JSON, s, strlen(s), out);
}

/* A msgpack writer for building test inputs. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} Mp;

static void mp_init(Mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(Mp *m, const char *s, size_t n)
{
    msgpack_pack_str(&m->pk, n);
    msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_cstr(Mp *m, const char *s)
{
    mp_str(m, s, strlen(s));
}

static char *filled(size_t n, char c)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- content types ------------------------------------------------------ */

Test(codec, content_types)
{
    cr_assert_eq(hvd_content_type_parse("application/msgpack"), HVD_CT_MSGPACK);
    cr_assert_eq(hvd_content_type_parse("application/x-msgpack"), HVD_CT_MSGPACK);
    cr_assert_eq(hvd_content_type_parse("Application/MsgPack"), HVD_CT_MSGPACK);
    cr_assert_eq(hvd_content_type_parse("application/json"), HVD_CT_JSON);
    cr_assert_eq(hvd_content_type_parse("application/json; charset=utf-8"), HVD_CT_JSON);
    cr_assert_eq(hvd_content_type_parse(" application/json ;x=y"), HVD_CT_JSON);
    cr_assert_eq(hvd_content_type_parse("application/jsonx"), HVD_CT_UNKNOWN);
    cr_assert_eq(hvd_content_type_parse("text/plain"), HVD_CT_UNKNOWN);
    cr_assert_eq(hvd_content_type_parse(""), HVD_CT_UNKNOWN);
    cr_assert_eq(hvd_content_type_parse(NULL), HVD_CT_UNKNOWN);
    cr_assert_str_eq(hvd_content_type_name(HVD_CT_MSGPACK), "application/msgpack");
    cr_assert_str_eq(hvd_content_type_name(HVD_CT_JSON), "application/json");
    cr_assert_str_eq(hvd_content_type_name(HVD_CT_UNKNOWN), "application/json");

    HvdNode *n = (HvdNode *)1;
    cr_assert_eq(dec(HVD_CT_UNKNOWN, "{}", 2, &n), HVD_DECODE_MALFORMED);
    cr_assert_null(n);
}

/* ---- JSON --------------------------------------------------------------- */

static const char *EXAMPLE =
    "{\"job_id\": \"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\n"
    " \"job_type\": \"managed_deployment\",\n"
    " \"request\": {\n"
    "   \"target_host\": \"hv01.lab.example\",\n"
    "   \"vm_spec\": {\"vm_name\": \"web-01\", \"gb_ram\": 4, \"cpu_cores\": 2.0, \"vm_clustered\": false,"
    " \"storage_class\": null},\n"
    "   \"tags\": [\"a\", 1, -7, 1e3, true, {}, []],\n"
    "   \"name\": \"Stra\\u00dfe \\ud83d\\ude00 caf\xc3\xa9\"}}";

Test(codec, json_decode_types)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec_json(EXAMPLE, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->type, HVD_MAP);
    cr_assert_str_eq(n->u.map.keys[0], "job_id");
    cr_assert_str_eq(n->u.map.keys[2], "request");
    const HvdNode *vm = hvd_node_get(hvd_node_get(n, "request"), "vm_spec");
    cr_assert_eq(hvd_node_get(vm, "gb_ram")->type, HVD_INT);
    cr_assert_eq(hvd_node_get(vm, "cpu_cores")->type, HVD_FLOAT, "2.0 is a float");
    cr_assert_eq(hvd_node_get(vm, "vm_clustered")->type, HVD_BOOL);
    cr_assert_eq(hvd_node_get(vm, "storage_class")->type, HVD_NIL);
    const HvdNode *tags = hvd_node_get(hvd_node_get(n, "request"), "tags");
    cr_assert_eq(tags->u.arr.n, 7);
    cr_assert_eq(tags->u.arr.items[2]->u.i, -7);
    cr_assert_eq(tags->u.arr.items[3]->type, HVD_FLOAT, "1e3 is a float");
    cr_assert_eq(tags->u.arr.items[5]->type, HVD_MAP);
    cr_assert_eq(tags->u.arr.items[6]->type, HVD_ARRAY);
    cr_assert_str_eq(hvd_node_get_str(hvd_node_get(n, "request"), "name"), "Stra\xc3\x9f"
                                                                           "e \xf0\x9f\x98\x80 caf\xc3\xa9");
    hvd_node_free(n);
}

Test(codec, json_encode_is_compact_and_ordered)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec_json(EXAMPLE, &n), HVD_DECODE_OK, "%s", why);
    char *s = hvd_node_to_json(n);
    cr_assert_str_eq(
        s, "{\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"job_type\":\"managed_deployment\","
           "\"request\":{\"target_host\":\"hv01.lab.example\",\"vm_spec\":{\"vm_name\":\"web-01\",\"gb_ram\":4,"
           "\"cpu_cores\":2.0,\"vm_clustered\":false,\"storage_class\":null},\"tags\":[\"a\",1,-7,1000.0,true,{},[]],"
           "\"name\":\"Stra\xc3\x9f"
           "e \xf0\x9f\x98\x80 caf\xc3\xa9\"}}");
    free(s);
    hvd_node_free(n);
}

Test(codec, json_float_text)
{
    struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {4.0, "4.0"},
        {-0.0, "-0.0"},
        {1e300, "1e+300"},
        {123456.789, "123456.789"},
        {1.0 / 3.0, "0.3333333333333333"},
        {5e-324, "4.94065645841247e-324"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        HvdNode *f = hvd_node_float(cases[i].d);
        char *s = hvd_node_to_json(f);
        cr_assert_str_eq(s, cases[i].text);
        HvdNode *back = NULL;
        cr_assert_eq(dec_json(s, &back), HVD_DECODE_OK);
        cr_assert_eq(back->type, HVD_FLOAT);
        cr_assert(back->u.f == cases[i].d && signbit(back->u.f) == signbit(cases[i].d), "%s reads back", s);
        hvd_node_free(back);
        free(s);
        hvd_node_free(f);
    }
    HvdNode *nan = hvd_node_float(NAN), *inf = hvd_node_float(-INFINITY);
    char *a = hvd_node_to_json(nan), *b = hvd_node_to_json(inf);
    cr_assert_str_eq(a, "null");
    cr_assert_str_eq(b, "null");
    free(a);
    free(b);
    hvd_node_free(nan);
    hvd_node_free(inf);
}

Test(codec, json_string_escapes)
{
    HvdNode *s = hvd_node_strn("q\"b\\n\n\r\t\b\f\x01\x1f\x7f/\0z\xc3\xa9", 18);
    char *j = hvd_node_to_json(s);
    cr_assert_str_eq(j, "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\\u001f\x7f/\\u0000z\xc3\xa9\"");
    HvdNode *back = NULL;
    cr_assert_eq(dec_json(j, &back), HVD_DECODE_OK, "%s", why);
    cr_assert(hvd_node_equal(s, back), "NUL and control characters survive");
    hvd_node_free(back);
    free(j);
    hvd_node_free(s);
}

Test(codec, invalid_utf8_is_replaced_when_encoding)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set(m, "k\xff",
                     hvd_node_strn("a\xff"
                                   "b\xc3",
                                   4));
    char *j = hvd_node_to_json(m);
    cr_assert_str_eq(j, "{\"k\xef\xbf\xbd\":\"a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\"}");
    free(j);
    HvdBuf b = {0};
    hvd_encode(HVD_CT_MSGPACK, m, &b);
    HvdNode *back = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, b.data, b.len, &back), HVD_DECODE_OK, "%s", why);
    cr_assert_str_eq(hvd_node_get_str(back, "k\xef\xbf\xbd"), "a\xef\xbf\xbd"
                                                              "b\xef\xbf\xbd");
    hvd_node_free(back);
    hvd_buf_free(&b);
    hvd_node_free(m);
}

Test(codec, json_bin_is_base64)
{
    HvdNode *a = hvd_node_array();
    hvd_node_array_push(a, hvd_node_bin("", 0));
    hvd_node_array_push(a, hvd_node_bin("f", 1));
    hvd_node_array_push(a, hvd_node_bin("fo", 2));
    hvd_node_array_push(a, hvd_node_bin("foo", 3));
    hvd_node_array_push(a, hvd_node_bin("\xff\x00\xfe\x01", 4));
    char *j = hvd_node_to_json(a);
    cr_assert_str_eq(j, "[\"\",\"Zg==\",\"Zm8=\",\"Zm9v\",\"/wD+AQ==\"]");
    free(j);
    hvd_node_free(a);
}

Test(codec, json_integers_and_top_level_values)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec_json("9223372036854775807", &n), HVD_DECODE_OK);
    cr_assert_eq(n->type, HVD_INT);
    cr_assert_eq(n->u.i, INT64_MAX);
    hvd_node_free(n);
    cr_assert_eq(dec_json("-9223372036854775808", &n), HVD_DECODE_OK);
    cr_assert_eq(n->u.i, INT64_MIN);
    hvd_node_free(n);
    cr_assert_eq(dec_json("99999999999999999999", &n), HVD_DECODE_MALFORMED);
    cr_assert_null(n);
    cr_assert(strstr(why, "invalid JSON at line 1 column"), "%s", why);
    cr_assert_eq(dec_json("  \"x\"  \n", &n), HVD_DECODE_OK, "whitespace around a value is fine");
    cr_assert_eq(n->type, HVD_STR);
    hvd_node_free(n);
}

/* Issue 12: a repeated key is refused, naming it, in both formats (last-wins
 * here and first-wins upstream could disagree on what was asked). */
Test(codec, duplicate_keys_are_refused_naming_the_key)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec_json("{\"a\":1,\"target_host\":\"h1\",\"b\":2,\"target_host\":\"h2\"}", &n), HVD_DECODE_MALFORMED);
    cr_assert_null(n);
    cr_assert(strstr(why, "invalid JSON at line 1 column") && strstr(why, "duplicate key 'target_host'"), "%s", why);
    cr_assert_null(strstr(why, "h2"), "the value is not quoted: %s", why);
    /* nested maps too */
    cr_assert_eq(dec_json("{\"request\":{\"vm_spec\":{\"x\":1,\"x\":2}}}", &n), HVD_DECODE_MALFORMED);
    cr_assert(strstr(why, "duplicate key 'x'"), "%s", why);

    Mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_cstr(&m, "target_host");
    mp_cstr(&m, "h1");
    mp_cstr(&m, "b");
    msgpack_pack_int(&m.pk, 2);
    mp_cstr(&m, "target_host");
    mp_cstr(&m, "h2");
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_MALFORMED);
    cr_assert_null(n);
    cr_assert_str_eq(why, "invalid msgpack: duplicate key 'target_host'");
    msgpack_sbuffer_destroy(&m.sb);
    /* distinct keys are fine */
    cr_assert_eq(dec_json("{\"a\":1,\"A\":2,\"aa\":3}", &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.map.n, 3);
    hvd_node_free(n);
}

Test(codec, large_map_with_duplicates)
{
    /* past the sort threshold: the earliest repeat is the one named */
    Mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3000);
    char key[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i < 2000 ? i : 3999 - i); /* k1999, k1998, ... repeat */
        mp_cstr(&m, key);
        msgpack_pack_int(&m.pk, i);
    }
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_MALFORMED);
    cr_assert_str_eq(why, "invalid msgpack: duplicate key 'k1999'");
    msgpack_sbuffer_destroy(&m.sb);
    /* 3000 distinct keys decode, in order */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        mp_cstr(&m, key);
        msgpack_pack_int(&m.pk, i);
    }
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.map.n, 3000);
    cr_assert_str_eq(n->u.map.keys[5], "k5");
    int64_t v;
    cr_assert(hvd_node_get_int(n, "k2999", &v));
    cr_assert_eq(v, 2999);
    hvd_node_free(n);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- msgpack ------------------------------------------------------------- */

static HvdNode *sample_tree(void)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "name", "web-01");
    hvd_node_map_set_int(m, "small", 5);
    hvd_node_map_set_int(m, "neg", -33);
    hvd_node_map_set_int(m, "big", 5000000000LL);
    hvd_node_map_set_int(m, "min", INT64_MIN);
    hvd_node_map_set(m, "pi", hvd_node_float(3.141592653589793));
    hvd_node_map_set(m, "whole", hvd_node_float(4.0));
    hvd_node_map_set_bool(m, "yes", true);
    hvd_node_map_set_str(m, "none", NULL);
    hvd_node_map_set(m, "nul", hvd_node_strn("a\0b", 3));
    hvd_node_map_set_str(m, "utf8", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    char *longs = filled(300, 'x');
    hvd_node_map_set_str(m, "long", longs);
    free(longs);
    HvdNode *arr = hvd_node_array();
    for (int i = 0; i < 20; i++) hvd_node_array_push(arr, hvd_node_int(i * 1000));
    hvd_node_array_push(arr, hvd_node_map());
    hvd_node_map_set(m, "arr", arr);
    return m;
}

Test(codec, msgpack_round_trip_and_byte_stable)
{
    HvdNode *t = sample_tree();
    HvdBuf a = {0}, b = {0};
    hvd_encode(HVD_CT_MSGPACK, t, &a);
    HvdNode *back = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, a.data, a.len, &back), HVD_DECODE_OK, "%s", why);
    cr_assert(hvd_node_equal(t, back));
    hvd_encode(HVD_CT_MSGPACK, back, &b);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.data, b.data, a.len), 0, "encode -> decode -> encode gives the same bytes");
    hvd_node_free(back);
    hvd_buf_free(&a);
    hvd_buf_free(&b);
    hvd_node_free(t);
}

Test(codec, json_round_trip_and_byte_stable)
{
    HvdNode *t = sample_tree();
    HvdBuf a = {0}, b = {0};
    hvd_encode(HVD_CT_JSON, t, &a);
    HvdNode *back = NULL;
    cr_assert_eq(dec(HVD_CT_JSON, a.data, a.len, &back), HVD_DECODE_OK, "%s", why);
    cr_assert(hvd_node_equal(t, back), "%s", a.data);
    hvd_encode(HVD_CT_JSON, back, &b);
    cr_assert_str_eq(a.data, b.data);
    hvd_node_free(back);
    hvd_buf_free(&a);
    hvd_buf_free(&b);
    hvd_node_free(t);
}

Test(codec, msgpack_integers_use_smallest_encoding)
{
    struct {
        int64_t v;
        size_t len;
        unsigned char first;
    } cases[] = {
        {0, 1, 0x00},   {127, 1, 0x7f},   {128, 2, 0xcc},   {-1, 1, 0xff},        {-32, 1, 0xe0},
        {-33, 2, 0xd0}, {65535, 3, 0xcd}, {65536, 5, 0xce}, {INT64_MAX, 9, 0xcf}, {INT64_MIN, 9, 0xd3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        HvdNode *n = hvd_node_int(cases[i].v);
        HvdBuf b = {0};
        hvd_encode(HVD_CT_MSGPACK, n, &b);
        cr_assert_eq(b.len, cases[i].len, "%lld", (long long)cases[i].v);
        cr_assert_eq((unsigned char)b.data[0], cases[i].first);
        hvd_buf_free(&b);
        hvd_node_free(n);
    }
}

Test(codec, msgpack_scalars)
{
    /* uint64 up to INT64_MAX fits; float32 widens; bin stays bin */
    Mp m;
    mp_init(&m);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint64(&m.pk, (uint64_t)INT64_MAX);
    msgpack_pack_float(&m.pk, 1.5f);
    msgpack_pack_bin(&m.pk, 3);
    msgpack_pack_bin_body(&m.pk, "\x00\x01\x02", 3);
    msgpack_pack_false(&m.pk);
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.arr.items[0]->u.i, INT64_MAX);
    cr_assert_eq(n->u.arr.items[1]->type, HVD_FLOAT);
    cr_assert_float_eq(n->u.arr.items[1]->u.f, 1.5, 1e-12);
    cr_assert_eq(n->u.arr.items[2]->type, HVD_BIN);
    cr_assert_eq(n->u.arr.items[2]->u.s.len, 3);
    cr_assert_eq(n->u.arr.items[3]->type, HVD_BOOL);
    hvd_node_free(n);
    msgpack_sbuffer_destroy(&m.sb);
}

/* Issue 12: a msgpack uint64 above INT64_MAX was clamped while JSON refused
 * it; now both refuse it in the same words. */
Test(codec, too_big_integer_is_the_same_error_in_both_formats)
{
    Mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_cstr(&m, "gb_ram");
    msgpack_pack_uint64(&m.pk, (uint64_t)INT64_MAX + 1);
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_MALFORMED);
    cr_assert_null(n);
    char mp_why[512];
    snprintf(mp_why, sizeof mp_why, "%s", why);
    msgpack_sbuffer_destroy(&m.sb);
    cr_assert_eq(dec_json("{\"gb_ram\":9223372036854775808}", &n), HVD_DECODE_MALFORMED);
    const char *tail = "too big integer";
    cr_assert(strstr(mp_why, tail) && strstr(why, tail), "msgpack: %s / JSON: %s", mp_why, why);
    const char *range = "(integers must be within -9223372036854775808..9223372036854775807)";
    cr_assert(strstr(mp_why, range) && strstr(why, range), "msgpack: %s / JSON: %s", mp_why, why);
    cr_assert_str_eq(mp_why, "invalid msgpack: too big integer at byte 8 "
                             "(integers must be within -9223372036854775808..9223372036854775807)");
}

Test(codec, msgpack_non_string_keys_are_dropped)
{
    Mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    msgpack_pack_int(&m.pk, 1);
    mp_cstr(&m, "int key");
    mp_cstr(&m, "ok");
    msgpack_pack_int(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_nil(&m.pk);
    mp_cstr(&m, "array key");
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.map.n, 1);
    cr_assert_str_eq(n->u.map.keys[0], "ok");
    hvd_node_free(n);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- limits: body -------------------------------------------------------- */

Test(codec, json_body_limit_boundary)
{
    char *body = filled(HVD_MAX_BODY + 1, ' ');
    memcpy(body, "{\"a\":1}", 7); /* padded with trailing whitespace */
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_JSON, body, HVD_MAX_BODY, &n), HVD_DECODE_OK, "%s", why);
    hvd_node_free(n);
    cr_assert_eq(dec(HVD_CT_JSON, body, HVD_MAX_BODY + 1, &n), HVD_DECODE_TOO_LARGE);
    cr_assert_null(n);
    cr_assert_str_eq(why, "body is 262145 bytes, over the 262144-byte limit");
    free(body);
}

/* A msgpack array of strings of exactly total bytes (each string <= 16384). */
static void mp_body_of(Mp *m, size_t total)
{
    mp_init(m);
    msgpack_pack_array(&m->pk, 16); /* 3 bytes (array16) */
    char *s = filled(HVD_MAX_STRING, 's');
    for (int i = 0; i < 15; i++) mp_str(m, s, HVD_MAX_STRING); /* 3 + 16384 each */
    size_t left = total - m->sb.size - 3;
    mp_str(m, s, left);
    free(s);
}

Test(codec, msgpack_body_limit_boundary)
{
    Mp m;
    mp_body_of(&m, HVD_MAX_BODY);
    cr_assert_eq(m.sb.size, HVD_MAX_BODY);
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.arr.n, 16);
    hvd_node_free(n);
    msgpack_sbuffer_destroy(&m.sb);

    mp_body_of(&m, HVD_MAX_BODY + 1);
    cr_assert_eq(m.sb.size, HVD_MAX_BODY + 1);
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_TOO_LARGE);
    cr_assert_str_eq(why, "body is 262145 bytes, over the 262144-byte limit");
    msgpack_sbuffer_destroy(&m.sb);
}

Test(codec, json_to_node_body_cap)
{
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node("[1,2,3]", 7, 7, &n, why, sizeof(why)), HVD_DECODE_OK);
    hvd_node_free(n);
    cr_assert_eq(hvd_json_to_node("[1,2,3]", 7, 6, &n, why, sizeof(why)), HVD_DECODE_TOO_LARGE);
    cr_assert_str_eq(why, "body is 7 bytes, over the 6-byte limit");
    cr_assert_eq(hvd_json_to_node("[1,2,3]", 7, 0, &n, why, sizeof(why)), HVD_DECODE_OK, "0 = HVD_MAX_BODY");
    hvd_node_free(n);
}

/* ---- limits: strings ----------------------------------------------------- */

static char *json_with_string(size_t n, bool as_key)
{
    char *s = filled(n, 'v');
    char *doc = as_key ? hvd_xasprintf("{\"vm\":{\"%s\":1}}", s) : hvd_xasprintf("{\"vm\":{\"x\":[\"%s\"]}}", s);
    free(s);
    return doc;
}

Test(codec, json_string_limit_boundary)
{
    HvdNode *n = NULL;
    char *ok = json_with_string(HVD_MAX_STRING, false), *big = json_with_string(HVD_MAX_STRING + 1, false);
    cr_assert_eq(dec_json(ok, &n), HVD_DECODE_OK, "%s", why);
    hvd_node_free(n);
    cr_assert_eq(dec_json(big, &n), HVD_DECODE_TOO_LARGE);
    cr_assert_str_eq(why, "string of 16385 bytes at depth 3 is over the 16384-byte limit");
    free(ok);
    free(big);

    ok = json_with_string(HVD_MAX_STRING, true);
    big = json_with_string(HVD_MAX_STRING + 1, true);
    cr_assert_eq(dec_json(ok, &n), HVD_DECODE_OK, "%s", why);
    hvd_node_free(n);
    cr_assert_eq(dec_json(big, &n), HVD_DECODE_TOO_LARGE, "a key counts as a string");
    free(ok);
    free(big);
}

Test(codec, json_string_limit_counts_unescaped_bytes)
{
    /* 8192 x "\u00e9" (2 bytes each) + "ab" = 16386 bytes: over. 8191 x + "ab" = 16384: fine. */
    HvdBuf b = {0};
    for (int pass = 0; pass < 2; pass++) {
        hvd_buf_reset(&b);
        hvd_buf_puts(&b, "[\"");
        for (int i = 0; i < (pass ? 8192 : 8191); i++) hvd_buf_puts(&b, "\\u00e9");
        hvd_buf_puts(&b, "ab\"]");
        HvdNode *n = NULL;
        HvdDecodeStatus st = dec(HVD_CT_JSON, b.data, b.len, &n);
        if (pass == 0) {
            cr_assert_eq(st, HVD_DECODE_OK, "%s", why);
            cr_assert_eq(n->u.arr.items[0]->u.s.len, 16384);
        } else {
            cr_assert_eq(st, HVD_DECODE_TOO_LARGE);
            cr_assert_str_eq(why, "string of 16386 bytes at depth 1 is over the 16384-byte limit");
        }
        hvd_node_free(n);
    }
    /* surrogate pairs: 4096 x "\ud83d\ude00" = 16384 bytes */
    hvd_buf_reset(&b);
    hvd_buf_puts(&b, "\"");
    for (int i = 0; i < 4096; i++) hvd_buf_puts(&b, "\\ud83d\\ude00");
    hvd_buf_puts(&b, "\"");
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_JSON, b.data, b.len, &n), HVD_DECODE_OK, "%s", why);
    cr_assert_eq(n->u.s.len, 16384);
    hvd_node_free(n);
    /* simple escapes are one byte each */
    hvd_buf_reset(&b);
    hvd_buf_puts(&b, "\"");
    for (int i = 0; i < 16384; i++) hvd_buf_puts(&b, "\\n");
    hvd_buf_puts(&b, "\"");
    cr_assert_eq(dec(HVD_CT_JSON, b.data, b.len, &n), HVD_DECODE_OK, "%s", why);
    hvd_node_free(n);
    hvd_buf_free(&b);
}

Test(codec, msgpack_string_limit_boundary)
{
    char *s = filled(HVD_MAX_STRING + 1, 'z');
    for (int what = 0; what < 3; what++) { /* value string, key, bin */
        for (size_t len = HVD_MAX_STRING; len <= HVD_MAX_STRING + 1; len++) {
            Mp m;
            mp_init(&m);
            msgpack_pack_map(&m.pk, 1);
            mp_cstr(&m, "outer");
            msgpack_pack_map(&m.pk, 1);
            if (what == 1) {
                mp_str(&m, s, len);
                msgpack_pack_nil(&m.pk);
            } else {
                mp_cstr(&m, "k");
                if (what == 0) {
                    mp_str(&m, s, len);
                } else {
                    msgpack_pack_bin(&m.pk, len);
                    msgpack_pack_bin_body(&m.pk, s, len);
                }
            }
            HvdNode *n = NULL;
            HvdDecodeStatus st = dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n);
            if (len == HVD_MAX_STRING) {
                cr_assert_eq(st, HVD_DECODE_OK, "%d: %s", what, why);
            } else {
                cr_assert_eq(st, HVD_DECODE_TOO_LARGE, "%d", what);
                const char *expect[] = {
                    "string of 16385 bytes at depth 2 is over the 16384-byte limit",
                    "map key of 16385 bytes at depth 2 is over the 16384-byte limit",
                    "bin of 16385 bytes at depth 2 is over the 16384-byte limit",
                };
                cr_assert_str_eq(why, expect[what]);
            }
            hvd_node_free(n);
            msgpack_sbuffer_destroy(&m.sb);
        }
    }
    free(s);
}

Test(codec, string_limit_checked_before_truncation)
{
    /* a str32 header claiming 4 GiB in a 10-byte body: refused as too large, nothing allocated */
    const unsigned char b[] = {0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd'};
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, b, sizeof(b), &n), HVD_DECODE_TOO_LARGE);
    cr_assert_str_eq(why, "string of 4294967295 bytes at depth 1 is over the 16384-byte limit");
}

/* ---- limits: depth ------------------------------------------------------- */

static char *json_nested(int depth, bool maps)
{
    HvdBuf b = {0};
    for (int i = 0; i < depth; i++) hvd_buf_puts(&b, maps ? "{\"a\":" : "[");
    hvd_buf_puts(&b, "1");
    for (int i = 0; i < depth; i++) hvd_buf_puts(&b, maps ? "}" : "]");
    return hvd_buf_steal(&b);
}

Test(codec, json_depth_boundary)
{
    for (int maps = 0; maps < 2; maps++) {
        char *ok = json_nested(HVD_MAX_DEPTH, maps), *deep = json_nested(HVD_MAX_DEPTH + 1, maps);
        HvdNode *n = NULL;
        cr_assert_eq(dec_json(ok, &n), HVD_DECODE_OK, "%s", why);
        hvd_node_free(n);
        cr_assert_eq(dec_json(deep, &n), HVD_DECODE_TOO_LARGE);
        cr_assert_str_eq(why, "nesting deeper than 16 levels");
        free(ok);
        free(deep);
    }
    /* brackets inside strings do not count */
    HvdNode *n = NULL;
    cr_assert_eq(dec_json("[\"[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{{{{{\"]", &n), HVD_DECODE_OK, "%s", why);
    hvd_node_free(n);
}

static void mp_nested(Mp *m, int depth, bool maps)
{
    mp_init(m);
    for (int i = 0; i < depth; i++) {
        if (maps) {
            msgpack_pack_map(&m->pk, 1);
            mp_cstr(m, "a");
        } else {
            msgpack_pack_array(&m->pk, 1);
        }
    }
    msgpack_pack_nil(&m->pk);
}

Test(codec, msgpack_depth_boundary)
{
    for (int maps = 0; maps < 2; maps++) {
        Mp m;
        HvdNode *n = NULL;
        mp_nested(&m, HVD_MAX_DEPTH, maps);
        cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_OK, "%s", why);
        hvd_node_free(n);
        msgpack_sbuffer_destroy(&m.sb);
        mp_nested(&m, HVD_MAX_DEPTH + 1, maps);
        cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_TOO_LARGE);
        cr_assert_str_eq(why, "nesting deeper than 16 levels");
        msgpack_sbuffer_destroy(&m.sb);
    }
    /* empty containers count too */
    Mp m;
    mp_nested(&m, HVD_MAX_DEPTH, false);
    m.sb.data[m.sb.size - 1] = (char)0x90; /* the innermost nil becomes [] */
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, m.sb.data, m.sb.size, &n), HVD_DECODE_TOO_LARGE);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- bad input ------------------------------------------------------------ */

Test(codec, empty_body)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, "", 0, &n), HVD_DECODE_MALFORMED);
    cr_assert_str_eq(why, "body is empty");
    cr_assert_eq(dec(HVD_CT_JSON, "", 0, &n), HVD_DECODE_MALFORMED);
}

Test(codec, msgpack_truncated)
{
    struct {
        const char *b;
        size_t n;
    } cases[] = {
        {"\x82\xa1"
         "a\x01",
         4}, /* map of 2 pairs holding 1 */
        {"\x81\xa1"
         "a",
         3}, /* key without value */
        {"\x81\xa1"
         "a\xa5xy",
         6}, /* str of 5 with 2 bytes */
        {"\x81\xa1"
         "a\xda\x00",
         5},                             /* str16 length cut in half */
        {"\x91\xcb\x00\x00", 4},         /* float64 cut short */
        {"\xdd\xff\xff\xff\xff\x01", 6}, /* array32 of 4 billion, 1 byte */
        {"\xdf\xff\xff\xff\xff\x01", 6}, /* map32: 2*count must not wrap */
        {"\xc6\x00\x00\x00\x10"
         "abc",
         8},                 /* bin32 of 16 with 3 */
        {"\xdb\x00\x00", 3}, /* str32 length cut */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        HvdNode *n = NULL;
        cr_assert_eq(dec(HVD_CT_MSGPACK, cases[i].b, cases[i].n, &n), HVD_DECODE_MALFORMED, "case %zu", i);
        cr_assert_null(n);
        cr_assert(strstr(why, "invalid msgpack: truncated at byte"), "case %zu: %s", i, why);
    }
    HvdNode *n = NULL;
    dec(HVD_CT_MSGPACK,
        "\x81\xa1"
        "a\xa5xy",
        6, &n);
    cr_assert_str_eq(
        why, "invalid msgpack: truncated at byte 3 (the value starting there runs past the end of the 6-byte body)");
}

Test(codec, msgpack_trailing_bytes)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, "\x80\x00", 2, &n), HVD_DECODE_MALFORMED);
    cr_assert_str_eq(why, "invalid msgpack: 1 trailing bytes after the value ending at byte 1");
    cr_assert_eq(dec(HVD_CT_MSGPACK,
                     "\x81\xa1"
                     "a\x01\xc0\xc0",
                     6, &n),
                 HVD_DECODE_MALFORMED);
    cr_assert(strstr(why, "trailing"), "%s", why);
}

Test(codec, msgpack_garbage_and_ext)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, "\xc1", 1, &n), HVD_DECODE_MALFORMED);
    cr_assert_str_eq(why, "invalid msgpack: unknown type byte 0xc1 at byte 0");
    static const char fixext16[] = "\x91\xd8\x01"
                                   "0123456789abcdef";
    const char *ext[] = {"\xd4\x01\x00", "\xd5\x01\x00\x00", "\xc7\x01\x05\x00", fixext16};
    const size_t ext_len[] = {3, 4, 4, 19};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(dec(HVD_CT_MSGPACK, ext[i], ext_len[i], &n), HVD_DECODE_MALFORMED, "ext %zu", i);
        cr_assert(strstr(why, "extension type"), "%s", why);
    }
    /* JSON text sent as msgpack: '{' is positive fixint 0x7b followed by more */
    cr_assert_eq(dec(HVD_CT_MSGPACK, "{\"a\":1}", 7, &n), HVD_DECODE_MALFORMED);
}

Test(codec, msgpack_invalid_utf8)
{
    const char *bad[] = {"\xa1\xff", "\xa2\xc0\x80",    "\xa3\xed\xa0\x80", "\xa4\xf4\x90\x80\x80",
                         "\xa1\xc3", "\x81\xa1\xfe\xc0"};
    const size_t n_bad[] = {2, 3, 4, 5, 2, 4};
    for (size_t i = 0; i < 6; i++) {
        HvdNode *n = NULL;
        cr_assert_eq(dec(HVD_CT_MSGPACK, bad[i], n_bad[i], &n), HVD_DECODE_MALFORMED, "case %zu", i);
        cr_assert(strstr(why, "not valid UTF-8"), "%s", why);
    }
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, "\xa4\xf0\x9f\x98\x80", 5, &n), HVD_DECODE_OK, "an emoji is fine");
    hvd_node_free(n);
    cr_assert_eq(dec(HVD_CT_MSGPACK, "\xc4\x01\xff", 3, &n), HVD_DECODE_OK, "bin need not be UTF-8");
    hvd_node_free(n);
}

Test(codec, keys_with_nul_are_refused)
{
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK,
                     "\x81\xa3"
                     "a\0b\xc0",
                     6, &n),
                 HVD_DECODE_MALFORMED);
    cr_assert(strstr(why, "NUL"), "%s", why);
    cr_assert_eq(dec_json("{\"a\\u0000b\":1}", &n), HVD_DECODE_MALFORMED);
    cr_assert(strstr(why, "NUL"), "%s", why);
    cr_assert_eq(dec_json("{\"ab\":\"x\\u0000y\"}", &n), HVD_DECODE_OK, "NUL in a value is kept");
    cr_assert_eq(hvd_node_get(n, "ab")->u.s.len, 3);
    hvd_node_free(n);
}

Test(codec, json_bad_input)
{
    const char *bad[] = {"{nope",
                         "{\"a\":1} x",
                         "{\"a\":1}{}",
                         "[1,]",
                         "{\"a\" 1}",
                         "\"unterminated",
                         "{\"a\":\"\xff\"}",
                         "{\"a\":\"\xed\xa0\x80\"}",
                         "\"\\ud800\"",
                         "NaN",
                         "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        HvdNode *n = NULL;
        cr_assert_eq(dec_json(bad[i], &n), HVD_DECODE_MALFORMED, "case %zu: %s", i, bad[i]);
        cr_assert_null(n);
        cr_assert(strncmp(why, "invalid JSON at line ", 21) == 0, "%s", why);
    }
    HvdNode *n = NULL;
    dec_json("{\"a\":1,\n \"b\": x}", &n);
    cr_assert(strstr(why, "invalid JSON at line 2 column"), "%s", why);
}

Test(codec, why_may_be_null_or_short)
{
    HvdNode *n = NULL;
    cr_assert_eq(hvd_decode(HVD_CT_JSON, "{", 1, &n, NULL, 0), HVD_DECODE_MALFORMED);
    char tiny[8];
    cr_assert_eq(hvd_decode(HVD_CT_JSON, "{", 1, &n, tiny, sizeof(tiny)), HVD_DECODE_MALFORMED);
    cr_assert_eq(strlen(tiny), 7, "truncated, still terminated");
}

Test(codec, limited_decode_allows_more)
{
    char *s = filled(40000, 'L');
    char *doc = hvd_xasprintf("{\"logs\":\"%s\"}", s);
    HvdNode *n = NULL;
    cr_assert_eq(dec_json(doc, &n), HVD_DECODE_TOO_LARGE);
    const HvdDecodeLimits lim = {1 << 20, 1 << 20, 32};
    cr_assert_eq(hvd_decode_limited(HVD_CT_JSON, doc, strlen(doc), &lim, &n, why, sizeof(why)), HVD_DECODE_OK, "%s",
                 why);
    cr_assert_eq(hvd_node_get(n, "logs")->u.s.len, 40000);
    hvd_node_free(n);
    free(doc);
    free(s);
}

Test(codec, empty_strings_and_keys)
{
    /* found by fuzz_msgpack: msgpack-c gives an empty string a NULL pointer */
    HvdNode *n = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK,
                     "\x82\xa0\xa0\xa1"
                     "b\xc4\x00",
                     7, &n),
                 HVD_DECODE_OK, "%s", why);
    cr_assert_str_eq(n->u.map.keys[0], "");
    cr_assert_eq(hvd_node_get(n, "")->u.s.len, 0);
    cr_assert_eq(hvd_node_get(n, "b")->type, HVD_BIN);
    char *j = hvd_node_to_json(n);
    cr_assert_str_eq(j, "{\"\":\"\",\"b\":\"\"}");
    free(j);
    hvd_node_free(n);
    cr_assert_eq(dec_json("{\"\":{\"\":\"\"}}", &n), HVD_DECODE_OK, "%s", why);
    HvdBuf b = {0};
    hvd_encode(HVD_CT_MSGPACK, n, &b);
    HvdNode *back = NULL;
    cr_assert_eq(dec(HVD_CT_MSGPACK, b.data, b.len, &back), HVD_DECODE_OK, "%s", why);
    cr_assert(hvd_node_equal(n, back));
    hvd_node_free(back);
    hvd_buf_free(&b);
    hvd_node_free(n);
}

Test(codec_json, parse_errors_never_quote_the_input)
{
    /* A truncated body ending inside a password: the error sentence reaches
     * envelopes, dead letters and logs, so it must not carry the text. */
    const char *bodies[] = {"{\"guest_la_pw\": \"S3cret!pw-TEST", "{\"guest_la_pw\": S3cret!pw-TEST}",
                            "{\"a\": 1, S3cret!pw-TEST"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        HvdNode *n = NULL;
        char why[256];
        cr_assert_eq(hvd_decode(HVD_CT_JSON, bodies[i], strlen(bodies[i]), &n, why, sizeof why), HVD_DECODE_MALFORMED);
        cr_assert_null(strstr(why, "S3cret"), "error quotes the input: %s", why);
        cr_assert_not_null(strstr(why, "invalid JSON at line 1"), "%s", why);
    }
}
