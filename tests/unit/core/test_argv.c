/* Table tests of the command-line template splitter (argv.c): HVD_AGENT_CMD
 * words, quoted words with spaces, and the error of an unterminated quote. */
#include <criterion/criterion.h>
#include <string.h>
#include "argv.h"

static const struct {
    const char *in;
    const char *words[8]; /* NULL-terminated */
} ROWS[] = {
    {"ssh -T {host} pwsh", {"ssh", "-T", "{host}", "pwsh", NULL}},
    {"  a\t\tb  ", {"a", "b", NULL}},
    {"", {NULL}},
    {"   ", {NULL}},
    {"pwsh -File \"C:/Program Files/Aether-V/hvdeploy-agent.ps1\"",
     {"pwsh", "-File", "C:/Program Files/Aether-V/hvdeploy-agent.ps1", NULL}},
    {"pwsh -File 'C:/Program Files/Aether-V/x.ps1' -Session",
     {"pwsh", "-File", "C:/Program Files/Aether-V/x.ps1", "-Session", NULL}},
    {"a\"b c\"d", {"ab cd", NULL}},
    {"'it''s'", {"its", NULL}},
    {"\"say \\\"hi\\\"\" x", {"say \"hi\"", "x", NULL}},
    {"\"back\\\\slash\"", {"back\\slash", NULL}},
    {"'no \\\"escape'", {"no \\\"escape", NULL}},
    {"\"\" x ''", {"", "x", "", NULL}},
    {"admin@{host}", {"admin@{host}", NULL}},
};

Test(argv, table)
{
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        size_t n = 99;
        char err[128] = "";
        char **v = hvd_argv_split(ROWS[i].in, &n, err, sizeof err);
        cr_assert_not_null(v, "'%s': %s", ROWS[i].in, err);
        size_t want = 0;
        while (ROWS[i].words[want]) want++;
        cr_assert_eq(n, want, "'%s': %zu words, want %zu", ROWS[i].in, n, want);
        for (size_t k = 0; k < n; k++) cr_assert_str_eq(v[k], ROWS[i].words[k], "'%s' word %zu", ROWS[i].in, k);
        cr_assert_null(v[n], "NULL-terminated");
        hvd_argv_free(v);
    }
}

Test(argv, unterminated_quotes_are_an_error)
{
    static const char *const bad[] = {"pwsh -File \"C:/Program Files", "a 'b", "x \"y\\\""};
    for (size_t i = 0; i < 3; i++) {
        size_t n = 7;
        char err[128] = "";
        cr_assert_null(hvd_argv_split(bad[i], &n, err, sizeof err), "%s", bad[i]);
        cr_assert(strstr(err, "unterminated"), "%s", err);
        cr_assert_eq(n, 0);
    }
}

Test(argv, null_template_is_empty)
{
    size_t n = 3;
    char err[64];
    char **v = hvd_argv_split(NULL, &n, err, sizeof err);
    cr_assert_not_null(v);
    cr_assert_eq(n, 0);
    hvd_argv_free(v);
    hvd_argv_free(NULL);
}
