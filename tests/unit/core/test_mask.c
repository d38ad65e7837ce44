/* Masking (core/mask.c): secrets in text (issue 12 items 4 and 9), passwords
 * in URLs and DSNs (the one masker of the tree), secret values in raw bodies
 * that could not be decoded (dead letters). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>
#include "codec.h"
#include "mask.h"

static char *m(const char *s, const char *const *secrets, size_t n, unsigned flags)
{
    return hvd_mask_secrets_dup(s, secrets, n, flags);
}

#define EXPECT_MASK(text, want, ...)                                 \
    do {                                                             \
        const char *const sec_[] = {__VA_ARGS__};                    \
        char *got_ = m(text, sec_, sizeof sec_ / sizeof sec_[0], 0); \
        cr_assert_str_eq(got_, want, "masking \"%s\"", text);        \
        free(got_);                                                  \
    } while (0)

Test(mask, long_secrets_are_masked_wherever_they_occur)
{
    EXPECT_MASK("password is S3cret!pw, again S3cret!pw.", "password is ***, again ***.", "S3cret!pw");
    EXPECT_MASK("xS3cret!pwx", "x***x", "S3cret!pw");
    EXPECT_MASK("nothing here", "nothing here", "S3cret!pw");
    /* overlapping and adjacent occurrences become one mask; nothing of either leaks */
    EXPECT_MASK("abcdefgh", "***", "abcdef", "cdefgh");
    EXPECT_MASK("S3cret!pwS3cret!pw", "***", "S3cret!pw");
    EXPECT_MASK("$env:GuestLaPw = 'Tr0ub4dor&3'", "$env:GuestLaPw = '***'", "Tr0ub4dor&3", NULL, "");
    /* a multi-line key is masked whole */
    EXPECT_MASK("key: -----BEGIN KEY-----\nAAAA\n-----END KEY----- done", "key: *** done",
                "-----BEGIN KEY-----\nAAAA\n-----END KEY-----");
}

/* Item 9: a one-letter guest_la_pw was masked wherever the letter appeared. */
Test(mask, short_secrets_only_as_whole_tokens)
{
    EXPECT_MASK("deploying VM alpha on hv01", "deploying VM alpha on hv01", "a");
    EXPECT_MASK("password a", "password ***", "a");
    EXPECT_MASK("pw=a;", "pw=***;", "a");
    EXPECT_MASK("'a' \"a\" (a) [a]", "'***' \"***\" (***) [***]", "a");
    EXPECT_MASK("abc abcd xabc abc_", "*** abcd xabc abc_", "abc");
    EXPECT_MASK("h\xc3\xa9llo l\xc3\xa9", "h\xc3\xa9llo l\xc3\xa9", "l");
    /* a secret whose edge is punctuation is whole on that side whatever is next */
    EXPECT_MASK("go!go!", "***", "go!");
    EXPECT_MASK("xgo! go!x", "xgo! ***x", "go!");
    /* five characters is short, six is long */
    EXPECT_MASK("xhellox", "xhellox", "hello");
    EXPECT_MASK("xhello1x", "x***x", "hello1");
    /* code points, not bytes: five 2-byte characters are short */
    EXPECT_MASK("x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x", "x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x",
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
}

/* A tail cut from a longer text may begin with the end of a secret. */
Test(mask, cut_texts_mask_the_part_of_a_secret_at_the_edge)
{
    const char *const sec[] = {"CorrectHorse"};
    char *got = m("rseBattery done", sec, 1, HVD_MASK_CUT_START);
    cr_assert_str_eq(got, "***Battery done");
    free(got);
    got = m("start Correc", sec, 1, HVD_MASK_CUT_END);
    cr_assert_str_eq(got, "start ***");
    free(got);
    got = m("rseBattery done", sec, 1, 0);
    cr_assert_str_eq(got, "rseBattery done", "no flag, no guess");
    free(got);
    HvdBuf b = {0};
    cr_assert_not(hvd_mask_secrets("abc", 3, NULL, 0, 0, &b));
    cr_assert_str_eq(b.data, "abc");
    hvd_buf_free(&b);
}

static char *url(const char *s)
{
    return hvd_mask_url_dup(s);
}

/* The cases the three maskers of the tree (config, store, broker) had. */
Test(mask, urls_and_dsns)
{
    static const char *const cases[][2] = {
        {"amqp://guest:guest@localhost:5672/%2f", "amqp://guest:***@localhost:5672/%2f"},
        {"amqps://bob:p%40ss:w@rd@mq.example:5671/vh", "amqps://bob:***@mq.example:5671/vh"},
        {"amqp://svc:pa/ss@rabbit/prod", "amqp://svc:***@rabbit/prod"},
        {"amqp://localhost/%2f", "amqp://localhost/%2f"},
        {"amqp://bob@localhost/", "amqp://bob@localhost/"},
        {"postgresql://u:pw@h:5/db?sslmode=require&password=x2",
         "postgresql://u:***@h:5/db?sslmode=require&password=***"},
        {"postgresql://db/hvdeploy?user=app&sslpassword=k#frag",
         "postgresql://db/hvdeploy?user=app&sslpassword=***#frag"},
        {"postgres://h/db", "postgres://h/db"},
        {"host=h password='a b\\'c' user=u", "host=h password=*** user=u"},
        {"host=h password = secret", "host=h password = ***"},
        {"host=db PASSWORD=x sslpassword=y", "host=db PASSWORD=*** sslpassword=***"},
        {"host=db garbage s3cret", "host=db ***"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = url(cases[i][0]);
        cr_assert_str_eq(got, cases[i][1], "%s", cases[i][0]);
        free(got);
    }
    cr_assert_null(url(NULL));
}

static char *raw(const void *p, size_t n, size_t *masked)
{
    HvdBuf b = {0};
    *masked = hvd_mask_raw_secrets(p, n, &b);
    return hvd_buf_steal(&b);
}

/* Dead letters of undecodable bodies kept secrets in clear. */
Test(mask, raw_json_bodies)
{
    size_t k;
    static const char *const cases[][2] = {
        /* truncated after the password: masked to the end */
        {"{\"guest_config\":{\"guest_la_pw\":\"S3cr", "{\"guest_config\":{\"guest_la_pw\":\"***"},
        /* a comma, a brace and an escaped quote inside the value do not end it */
        {"{\"guest_la_pw\": \"a,b}c\\\"d\", \"x\":1,", "{\"guest_la_pw\": \"***\", \"x\":1,"},
        {"{\"Guest_La_Pw\" :\"x\"} trailing", "{\"Guest_La_Pw\" :\"***\"} trailing"},
        {"{\"guest_domain_join_pw\":\"dj\",\"cnf_ansible_ssh_key\":\"-----BEGIN\\nK\",\"a\":",
         "{\"guest_domain_join_pw\":\"***\",\"cnf_ansible_ssh_key\":\"***\",\"a\":"},
        /* not a string: up to the next delimiter, or the matching bracket */
        {"{\"guest_la_pw\":12345,\"b\":2", "{\"guest_la_pw\":***,\"b\":2"},
        {"{\"guest_la_pw\":[\"x\",\"y\"],\"b\":2", "{\"guest_la_pw\":***,\"b\":2"},
        /* JSON inside a JSON string */
        {"{\"req\":\"{\\\"guest_la_pw\\\":\\\"S3cret\\\"}\"}", "{\"req\":\"{\\\"guest_la_pw\\\":\\\"***\\\"}\"}"},
        /* text */
        {"guest_la_pw=S3cret&x=1", "guest_la_pw=***&x=1"},
        {"no secrets { here", "no secrets { here"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = raw(cases[i][0], strlen(cases[i][0]), &k);
        cr_assert_str_eq(got, cases[i][1], "case %zu: %s", i, cases[i][0]);
        free(got);
    }
}

Test(mask, raw_msgpack_bodies_stay_decodable)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "guest_la_pw", 11);
    msgpack_pack_str_with_body(&pk, "S3cret!pw,}\"", 12);
    msgpack_pack_str_with_body(&pk, "cnf_ansible_ssh_key", 19);
    msgpack_pack_bin_with_body(&pk, "KEYBYTES", 8);
    msgpack_pack_str_with_body(&pk, "guest_domain_join_pw", 20);
    msgpack_pack_uint32(&pk, 4242);
    msgpack_pack_str_with_body(&pk, "vm_name", 7);
    msgpack_pack_str_with_body(&pk, "web-01", 6);
    size_t k;
    char *got = raw(sb.data, sb.size, &k);
    cr_assert_eq(k, 3);
    cr_assert_null(memmem(got, sb.size, "S3cret", 6));
    cr_assert_null(memmem(got, sb.size, "KEYBYTES", 8));
    HvdNode *n = NULL;
    char why[256];
    HvdBuf b = {0};
    hvd_mask_raw_secrets(sb.data, sb.size, &b);
    cr_assert_eq(hvd_decode(HVD_CT_MSGPACK, b.data, b.len, &n, why, sizeof why), HVD_DECODE_OK, "%s", why);
    cr_assert_str_eq(hvd_node_get_str(n, "guest_la_pw"), "***");
    cr_assert_str_eq(hvd_node_get_str(n, "cnf_ansible_ssh_key"), "***");
    cr_assert_str_eq(hvd_node_get_str(n, "guest_domain_join_pw"), "***");
    cr_assert_str_eq(hvd_node_get_str(n, "vm_name"), "web-01", "the rest as received");
    hvd_node_free(n);
    hvd_buf_free(&b);
    free(got);
    /* cut in the middle of the value: masked to the end */
    got = raw(sb.data, 16, &k);
    cr_assert_eq(k, 1);
    cr_assert_eq(memcmp(got + 13, "\xa3***", 4), 0);
    free(got);
    msgpack_sbuffer_destroy(&sb);
}
