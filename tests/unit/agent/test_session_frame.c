/* Unit tests of session-mode framing (session_frame.c): lines out of chunks
 * cut anywhere, over-long lines dropped whole, and what each line is. */
#include <criterion/criterion.h>
#include <string.h>
#include "session_frame.h"

typedef struct {
    char lines[8][64];
    int n;
} Got;

static void collect(void *arg, const char *line, size_t len)
{
    Got *g = arg;
    cr_assert_lt(g->n, 8);
    cr_assert_lt(len, 64);
    memcpy(g->lines[g->n], line, len);
    g->lines[g->n++][len] = '\0';
}

Test(session_frame, lines_come_whole_whatever_the_chunks)
{
    const char *in = "{\"a\":1}\n\n{\"b\":2}\npartial";
    for (size_t chunk = 1; chunk <= strlen(in); chunk++) {
        HvdFrame f = {0};
        Got g = {0};
        for (size_t off = 0; off < strlen(in); off += chunk) {
            size_t n = strlen(in) - off < chunk ? strlen(in) - off : chunk;
            hvd_frame_feed(&f, in + off, n, 100, collect, &g);
        }
        cr_assert_eq(g.n, 3, "chunk %zu", chunk);
        cr_assert_str_eq(g.lines[0], "{\"a\":1}");
        cr_assert_str_eq(g.lines[1], "");
        cr_assert_str_eq(g.lines[2], "{\"b\":2}");
        hvd_frame_free(&f);
    }
}

Test(session_frame, an_over_long_line_is_dropped_to_its_newline_and_counted)
{
    HvdFrame f = {0};
    Got g = {0};
    hvd_frame_feed(&f, "0123456789", 10, 8, collect, &g);
    hvd_frame_feed(&f, "abc\nok\n", 7, 8, collect, &g);
    hvd_frame_feed(&f, "exactly8\n123456789\n", 19, 8, collect, &g);
    cr_assert_eq(g.n, 2);
    cr_assert_str_eq(g.lines[0], "ok");
    cr_assert_str_eq(g.lines[1], "exactly8");
    cr_assert_eq(f.dropped, 2);
    hvd_frame_free(&f);
}

static const struct {
    const char *line;
    HvdLineKind kind;
    const char *id;
    const char *text;
    bool stderr_line;
} rows[] = {
    {"", HVD_LINE_NOISE, "", NULL, false},
    {"   \r", HVD_LINE_NOISE, "", NULL, false},
    {"WARNING: Write-Host noise", HVD_LINE_NOISE, "", NULL, false},
    {"[1,2]", HVD_LINE_NOISE, "", NULL, false},
    {"{\"status\":\"success\"}", HVD_LINE_NOISE, "", NULL, false}, /* no request_id */
    {"{\"request_id\":true,\"status\":\"success\"}", HVD_LINE_NOISE, "", NULL, false},
    {"{\"request_id\":\"7\",\"output\":3}", HVD_LINE_NOISE, "", NULL, false}, /* output not text */
    {"{\"request_id\":\"7\",\"status\":\"success\",\"data\":{}}\r", HVD_LINE_ANSWER, "7", NULL, false},
    {"{\"request_id\":12,\"status\":\"error\"}", HVD_LINE_ANSWER, "12", NULL, false},
    {"{\"request_id\":\"9\",\"output\":\"copying 40%\"}", HVD_LINE_OUTPUT, "9", "copying 40%", false},
    {"{\"request_id\":\"9\",\"output\":\"oops\",\"stream\":\"stderr\"}", HVD_LINE_OUTPUT, "9", "oops", true},
};

Test(session_frame, each_line_is_an_answer_an_output_line_or_noise)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        HvdLine l;
        hvd_frame_line(rows[i].line, strlen(rows[i].line), 4096, &l);
        cr_assert_eq(l.kind, rows[i].kind, "row %zu: %s", i, rows[i].line);
        cr_assert_str_eq(l.id, rows[i].id, "row %zu", i);
        if (l.kind == HVD_LINE_NOISE) cr_assert_null(l.msg, "row %zu", i);
        if (l.kind == HVD_LINE_ANSWER) {
            cr_assert_not_null(l.msg);
            cr_assert_null(hvd_node_get(l.msg, "request_id"), "row %zu: the id is not part of the envelope", i);
            cr_assert_not_null(hvd_node_get(l.msg, "status"));
        }
        if (l.kind == HVD_LINE_OUTPUT) {
            cr_assert_eq(l.text_len, strlen(rows[i].text));
            cr_assert(memcmp(l.text, rows[i].text, l.text_len) == 0, "row %zu", i);
            cr_assert_eq(l.stderr_line, rows[i].stderr_line, "row %zu", i);
        }
        hvd_node_free(l.msg);
    }
}
