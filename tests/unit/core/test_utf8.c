/* UTF-8 (core/utf8.c): decoding, validation, cutting on a character
 * boundary, sanitising. Issue 12, item 1: a message cut at a byte count or
 * stderr in a Windows code page reached a PostgreSQL text column as invalid
 * UTF-8 (SQLSTATE 22021) and the job could never record its end. */
#include <criterion/criterion.h>
#include <string.h>
#include "utf8.h"

Test(utf8, decode_and_validate)
{
    uint32_t cp = 0;
    cr_assert_eq(hvd_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    cr_assert_eq(cp, 'A');
    cr_assert_eq(hvd_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    cr_assert_eq(cp, 0xe9);
    cr_assert_eq(hvd_utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    cr_assert_eq(cp, 0x20ac);
    cr_assert_eq(hvd_utf8_decode((const unsigned char *)"\xf0\x9f\x96\xa5", 4, &cp), 4);
    cr_assert_eq(cp, 0x1f5a5);
    static const char *const bad[] = {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\x80",     "\xff",         "\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(hvd_utf8_decode((const unsigned char *)bad[i], strlen(bad[i]), &cp), 0, "case %zu", i);
        cr_assert_not(hvd_utf8_valid(bad[i], strlen(bad[i])), "case %zu", i);
    }
    cr_assert(hvd_utf8_valid("a\0b", 3), "NUL is valid UTF-8");
    cr_assert(hvd_utf8_valid("", 0));
    bool ok;
    cr_assert_eq(hvd_utf8_count("h\xc3\xa9llo", 6, &ok), 5);
    cr_assert(ok);
    cr_assert_eq(hvd_utf8_count("a\xff"
                                "b",
                                3, &ok),
                 3);
    cr_assert_not(ok);
}

/* A cut never ends inside a character; what is cut off is the whole character. */
Test(utf8, truncate_on_a_character_boundary)
{
    const char *s = "ab\xe2\x82\xac"
                    "c"; /* a b € c */
    cr_assert_eq(hvd_utf8_truncate(s, 6, 10), 6);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 6), 6);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 5), 5);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 4), 2);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 3), 2);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 2), 2);
    cr_assert_eq(hvd_utf8_truncate(s, 6, 0), 0);
    /* 4-byte characters, at every cut */
    const char *e = "\xf0\x9f\x96\xa5\xf0\x9f\x96\xa5";
    for (size_t max = 0; max <= 8; max++) cr_assert_eq(hvd_utf8_truncate(e, 8, max), max / 4 * 4, "max %zu", max);
    /* bytes that are not UTF-8 count one each */
    cr_assert_eq(hvd_utf8_truncate("\xff\xfe\xfd", 3, 2), 2);
    cr_assert_eq(hvd_utf8_truncate("a\x80\x80\x80\x80", 5, 3), 3);
    /* every cut of a mixed string is valid UTF-8 */
    const char *m = "Acc\xc3\xa8s refus\xc3\xa9: \xe2\x82\xac\xf0\x9f\x96\xa5 fin";
    for (size_t max = 0; max <= strlen(m); max++)
        cr_assert(hvd_utf8_valid(m, hvd_utf8_truncate(m, strlen(m), max)), "cut at %zu", max);
}

Test(utf8, tail_start_on_a_character_boundary)
{
    const char *m = "Acc\xc3\xa8s refus\xc3\xa9: \xe2\x82\xac\xf0\x9f\x96\xa5 fin";
    size_t len = strlen(m);
    for (size_t max = 0; max <= len; max++) {
        size_t at = hvd_utf8_tail_start(m, len, max);
        cr_assert_leq(len - at, max, "keeps at most max bytes");
        cr_assert(hvd_utf8_valid(m + at, len - at), "tail of %zu", max);
        cr_assert_geq(len - at + 3, max, "drops at most the rest of one character");
    }
    cr_assert_eq(hvd_utf8_tail_start("abc", 3, 10), 0);
}

/* Windows-1252 "échec: accès refusé" as PowerShell writes it to a console. */
Test(utf8, sanitize_replaces_what_is_not_utf8)
{
    const char cp1252[] = "\xe9"
                          "chec: acc\xe8s refus\xe9\r\n";
    cr_assert_not(hvd_utf8_valid(cp1252, strlen(cp1252)));
    char *s = hvd_utf8_sanitize_dup(cp1252, strlen(cp1252), 0);
    cr_assert_str_eq(s, "\xef\xbf\xbd"
                        "chec: acc\xef\xbf\xbds refus\xef\xbf\xbd\r\n");
    cr_assert(hvd_utf8_valid(s, strlen(s)));
    free(s);
    /* valid text is kept byte for byte; NUL only with HVD_UTF8_NUL */
    s = hvd_utf8_sanitize_dup("caf\xc3\xa9\0x", 7, 0);
    cr_assert_eq(memcmp(s, "caf\xc3\xa9\0x", 7), 0);
    free(s);
    s = hvd_utf8_sanitize_dup("caf\xc3\xa9\0x", 7, HVD_UTF8_NUL);
    cr_assert_str_eq(s, "caf\xc3\xa9\xef\xbf\xbdx");
    free(s);
    cr_assert(hvd_utf8_clean("ok\xc3\xa9", 4, HVD_UTF8_NUL));
    cr_assert_not(hvd_utf8_clean("a\0", 2, HVD_UTF8_NUL));
    cr_assert(hvd_utf8_clean("a\0", 2, 0));
    cr_assert_null(hvd_utf8_sanitize_dup(NULL, 0, 0));
    /* a sequence cut at the end, and a surrogate, are each replaced byte by byte */
    s = hvd_utf8_sanitize_dup("x\xe2\x82", 3, 0);
    cr_assert_str_eq(s, "x\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
}

/* Issue 12 item 1: the worker's own messages (a stage's failure, a rollback's
 * reason) were cut by snprintf at a byte; hvd_text_printf cuts before the
 * character that would straddle the end. */
Test(utf8, text_printf_never_cuts_inside_a_character)
{
    char buf[8];
    /* "Stage: " is 7 bytes; "é" (2 bytes) does not fit in the 8th */
    int n = hvd_text_printf(buf, sizeof buf, "Stage: %s", "\xc3\xa9t\xc3\xa9");
    cr_assert_eq(n, 12, "the untruncated length, as snprintf");
    cr_assert_str_eq(buf, "Stage: ");
    cr_assert(hvd_utf8_valid(buf, strlen(buf)));
    /* each width of a character straddling the cut */
    static const char *const chars[] = {"\xc3\xa9", "\xe6\x9d\xb1", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++)
        for (size_t size = 2; size <= 8; size++) {
            char out[16];
            hvd_text_printf(out, size, "a%s%s%s", chars[c], chars[c], chars[c]);
            cr_assert(hvd_utf8_valid(out, strlen(out)), "char %zu, size %zu", c, size);
            cr_assert_lt(strlen(out), size);
        }
    /* what fits is copied whole */
    hvd_text_printf(buf, sizeof buf, "%s", "\xe6\x9d\xb1\xe4\xba\xac");
    cr_assert_str_eq(buf, "\xe6\x9d\xb1\xe4\xba\xac");
}
