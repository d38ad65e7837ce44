/* Unit tests of live output line cleaning (common/core/outline.c): secrets
 * masked raw and JSON-escaped, a cut secret at a truncated line's end,
 * invalid UTF-8 and control characters, and telling the agent's answer apart. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "outline.h"

static char *clean(const char *s, bool cut, char *const *sec, size_t n)
{
    return hvd_outline_clean(s, strlen(s), cut, sec, n);
}

Test(outline, masks_secrets_raw_and_json_escaped)
{
    char *sec[] = {"S3cret!pw", "p\"q\\r", NULL, ""};
    char *a = clean("password S3cret!pw set; again S3cret!pw.", false, sec, 4);
    cr_assert_str_eq(a, "password *** set; again ***.");
    char *b = clean("{\"guest_la_pw\": \"p\\\"q\\\\r\"} and raw p\"q\\r", false, sec, 4);
    cr_assert_str_eq(b, "{\"guest_la_pw\": \"***\"} and raw ***");
    free(a);
    free(b);
}

Test(outline, longest_secret_first)
{
    char *sec[] = {"abc", "abcdef"};
    char *a = clean("x abcdef y abc", false, sec, 2);
    cr_assert_str_eq(a, "x *** y ***");
    free(a);
}

Test(outline, cut_line_ending_in_a_secrets_beginning)
{
    char *sec[] = {"LongSecretValue"};
    char *a = clean("the password is LongSec", true, sec, 1);
    cr_assert_str_eq(a, "the password is ***");
    char *b = clean("the password is LongSec", false, sec, 1); /* not cut: an ordinary word */
    cr_assert_str_eq(b, "the password is LongSec");
    char *c = clean("ends in Lo", true, sec, 1); /* too short to tell */
    cr_assert_str_eq(c, "ends in Lo");
    free(a);
    free(b);
    free(c);
}

Test(outline, text_is_made_safe)
{
    const char raw[] = "a\x01"
                       "b\tc\xff\xfe d\x7f";
    char *a = hvd_outline_clean(raw, sizeof raw - 1, false, NULL, 0);
    cr_assert_str_eq(a, "a?b\tc\xEF\xBF\xBD\xEF\xBF\xBD d?");
    char *b = hvd_outline_clean("x\0y", 3, false, NULL, 0);
    cr_assert_str_eq(b, "x?y");
    free(a);
    free(b);
}

Test(outline, answer_lines)
{
    const char *yes = "{\"status\":\"success\",\"message\":\"ok\",\"data\":{}}";
    cr_assert(hvd_outline_is_answer(yes, strlen(yes)));
    const char *bom = "\xEF\xBB\xBF {\"status\":\"error\"}";
    cr_assert(hvd_outline_is_answer(bom, strlen(bom)));
    const char *no1 = "{\"progress\": 50, \"note\": \"status\"}";
    cr_assert_not(hvd_outline_is_answer(no1, strlen(no1)));
    const char *no2 = "status: {\"status\":1}";
    cr_assert_not(hvd_outline_is_answer(no2, strlen(no2)));
    const char *no3 = "{\"status\": broken";
    cr_assert_not(hvd_outline_is_answer(no3, strlen(no3)));
}
