/* Logger: one valid JSON object per line, escaping, levels, context fields,
 * the secret guard, threads; and the clock helpers it stamps lines with. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "log.h"

static char path[] = "/tmp/hvd-test-log-XXXXXX";
static int fd = -1;

static void setup(void)
{
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    hvd_log_set_fd(fd);
    hvd_log_init(HVD_LOG_INFO, "test-host:42");
}

static void teardown(void)
{
    hvd_log_set_fd(2);
    close(fd);
    unlink(path);
}

TestSuite(log, .init = setup, .fini = teardown);

/* Every line written so far, each parsed (asserting it is one JSON object). */
static size_t read_lines(json_t **out, size_t max)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = malloc((size_t)len + 1);
    cr_assert_eq(pread(fd, buf, (size_t)len, 0), len);
    buf[len] = '\0';
    cr_assert(len == 0 || buf[len - 1] == '\n', "last line not terminated");
    size_t n = 0;
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        json_error_t e;
        json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &e);
        cr_assert_not_null(j, "not JSON (%s): %s", e.text, line);
        cr_assert(json_is_object(j));
        if (n < max)
            out[n] = j;
        else
            json_decref(j);
        n++;
    }
    free(buf);
    return n;
}

static json_t *only_line(void)
{
    json_t *l[2];
    size_t n = read_lines(l, 2);
    cr_assert_eq(n, 1, "expected one line, got %zu", n);
    return l[0];
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

Test(log, line_has_time_level_msg_worker_and_context)
{
    HvdLogCtx ctx = {.job_id = "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11",
                     .correlation_id = "corr-1",
                     .stage = "vm.create",
                     .host = "hv01.lab.example",
                     .attempt = 2};
    hvd_log_info(&ctx, "stage %s started (%d)", "vm.create", 7);
    json_t *j = only_line();
    const char *t = str(j, "time");
    cr_assert_not_null(t);
    cr_assert_eq(strlen(t), 24);
    int64_t ms;
    cr_assert(hvd_time_parse_rfc3339(t, &ms));
    cr_assert(llabs(ms - hvd_now_ms()) < 5000);
    cr_assert_eq(t[23], 'Z');
    cr_assert_str_eq(str(j, "level"), "info");
    cr_assert_str_eq(str(j, "msg"), "stage vm.create started (7)");
    cr_assert_str_eq(str(j, "worker"), "test-host:42");
    cr_assert_str_eq(str(j, "job_id"), ctx.job_id);
    cr_assert_str_eq(str(j, "correlation_id"), "corr-1");
    cr_assert_str_eq(str(j, "stage"), "vm.create");
    cr_assert_str_eq(str(j, "host"), "hv01.lab.example");
    cr_assert(json_is_integer(json_object_get(j, "attempt")));
    cr_assert_eq(json_integer_value(json_object_get(j, "attempt")), 2);
    /* field order: time, level, msg first */
    const char *keys[3];
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        (void)v;
        if (i < 3) keys[i] = k;
        i++;
    }
    cr_assert_eq(i, 9);
    cr_assert_str_eq(keys[0], "time");
    cr_assert_str_eq(keys[1], "level");
    cr_assert_str_eq(keys[2], "msg");
    json_decref(j);
}

Test(log, no_context_no_worker)
{
    hvd_log_init(HVD_LOG_DEBUG, NULL);
    hvd_log_debug(NULL, "plain");
    json_t *j = only_line();
    cr_assert_str_eq(str(j, "level"), "debug");
    cr_assert_null(json_object_get(j, "worker"));
    cr_assert_null(json_object_get(j, "job_id"));
    cr_assert_null(json_object_get(j, "attempt"));
    cr_assert_eq(json_object_size(j), 3);
    json_decref(j);
}

Test(log, raw_line_format)
{
    HvdLogCtx ctx = {.job_id = "j1", .attempt = 1};
    hvd_log_warn(&ctx, "x");
    char buf[512] = {0};
    cr_assert(pread(fd, buf, sizeof buf - 1, 0) > 0);
    cr_assert_eq(strncmp(buf, "{\"time\":\"", 9), 0);
    cr_assert_str_eq(
        buf + 34, ",\"level\":\"warn\",\"msg\":\"x\",\"worker\":\"test-host:42\",\"job_id\":\"j1\",\"attempt\":1}\n");
}

Test(log, escaping_and_invalid_utf8)
{
    hvd_log_error(NULL, "%s",
                  "q\"b\\s/n\nt\tr\rb\bf\fc\x01\x1f del\x7f e\xc3\xa9 emoji\xf0\x9f\x98\x80"
                  " bad\xff trunc\xe2\x82 overlong\xc0\xaf surr\xed\xa0\x80 end");
    char raw[1024] = {0};
    cr_assert(pread(fd, raw, sizeof raw - 1, 0) > 0);
    cr_assert_not_null(strstr(raw, "q\\\"b\\\\s/n\\nt\\tr\\rb\\bf\\fc\\u0001\\u001f del\\u007f"));
    json_t *j = only_line();
    cr_assert_str_eq(str(j, "msg"), "q\"b\\s/n\nt\tr\rb\bf\fc\x01\x1f del\x7f e\xc3\xa9 emoji\xf0\x9f\x98\x80"
                                    " bad\xef\xbf\xbd trunc\xef\xbf\xbd\xef\xbf\xbd overlong\xef\xbf\xbd\xef\xbf\xbd"
                                    " surr\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    json_decref(j);
}

Test(log, json_escape_helper)
{
    HvdBuf b = {0};
    hvd_json_escape(&b, "a\0b", 3);
    cr_assert_str_eq(b.data, "a\\u0000b");
    hvd_buf_free(&b);
}

Test(log, level_filter)
{
    hvd_log_init(HVD_LOG_WARN, "w");
    cr_assert(!hvd_log_enabled(HVD_LOG_INFO));
    cr_assert(hvd_log_enabled(HVD_LOG_ERROR));
    hvd_log_debug(NULL, "no");
    hvd_log_info(NULL, "no");
    hvd_log_kv(HVD_LOG_INFO, NULL, "no", "k", "v", NULL);
    hvd_log_warn(NULL, "yes-warn");
    hvd_log_error(NULL, "yes-error");
    json_t *l[4];
    cr_assert_eq(read_lines(l, 4), 2);
    cr_assert_str_eq(str(l[0], "msg"), "yes-warn");
    cr_assert_str_eq(str(l[1], "level"), "error");
    json_decref(l[0]);
    json_decref(l[1]);
    cr_assert_eq(hvd_log_get_level(), HVD_LOG_WARN);
}

Test(log, level_names)
{
    HvdLogLevel l;
    cr_assert(hvd_log_level_parse("debug", &l) && l == HVD_LOG_DEBUG);
    cr_assert(hvd_log_level_parse("INFO", &l) && l == HVD_LOG_INFO);
    cr_assert(hvd_log_level_parse("warn", &l) && l == HVD_LOG_WARN);
    cr_assert(hvd_log_level_parse("warning", &l) && l == HVD_LOG_WARN);
    cr_assert(hvd_log_level_parse("error", &l) && l == HVD_LOG_ERROR);
    cr_assert(!hvd_log_level_parse("trace", &l));
    cr_assert(!hvd_log_level_parse(NULL, &l));
    cr_assert_str_eq(hvd_log_level_name(HVD_LOG_WARN), "warn");
}

Test(log, key_values)
{
    HvdLogCtx ctx = {.stage = "nic.create"};
    hvd_log_kv(HVD_LOG_INFO, &ctx, "agent answered", "vm_id", "abc-123", "agent_code", NULL, "msg", "clash", "we\"ird",
               "v\n", NULL);
    json_t *j = only_line();
    cr_assert_str_eq(str(j, "msg"), "agent answered");
    cr_assert_str_eq(str(j, "vm_id"), "abc-123");
    cr_assert(json_is_null(json_object_get(j, "agent_code")));
    cr_assert_str_eq(str(j, "x_msg"), "clash");
    cr_assert_str_eq(str(j, "we\"ird"), "v\n");
    cr_assert_str_eq(str(j, "stage"), "nic.create");
    json_decref(j);
}

Test(log, secret_guard_masks_registered_values)
{
    cr_assert_eq(hvd_log_secret_count(), 0);
    hvd_log_register_secret("S3cret!pw");
    hvd_log_register_secret("");   /* ignored */
    hvd_log_register_secret(NULL); /* ignored */
    cr_assert_eq(hvd_log_secret_count(), 1);
    HvdLogCtx ctx = {.job_id = "xS3cret!pwx"};
    hvd_log_info(&ctx, "password is S3cret!pw, again S3cret!pw.");
    hvd_log_kv(HVD_LOG_INFO, NULL, "kv", "request", "{\"guest_la_pw\":\"S3cret!pw\"}", NULL);
    json_t *l[2];
    cr_assert_eq(read_lines(l, 2), 2);
    cr_assert_str_eq(str(l[0], "msg"), "password is ***, again ***.");
    cr_assert_str_eq(str(l[0], "job_id"), "x***x");
    cr_assert_str_eq(str(l[1], "request"), "{\"guest_la_pw\":\"***\"}");
    json_decref(l[0]);
    json_decref(l[1]);
    hvd_log_unregister_secret("S3cret!pw");
    cr_assert_eq(hvd_log_secret_count(), 0);
    hvd_log_info(NULL, "now S3cret!pw");
    json_t *l3[3];
    cr_assert_eq(read_lines(l3, 3), 3);
    cr_assert_str_eq(str(l3[2], "msg"), "now S3cret!pw");
    for (int i = 0; i < 3; i++) json_decref(l3[i]);
}

Test(log, secret_guard_escaped_form_overlap_and_refcount)
{
    /* a secret with JSON specials, found as is and inside JSON text */
    hvd_log_register_secret("pa\"ss\\w");
    hvd_log_info(NULL, "raw pa\"ss\\w json {\"pw\":\"pa\\\"ss\\\\w\"}");
    /* overlapping secrets: the longer one is masked whole */
    hvd_log_register_secret("pass");
    hvd_log_register_secret("password1");
    hvd_log_info(NULL, "password1 pass");
    /* counted registration */
    hvd_log_register_secret("twice");
    hvd_log_register_secret("twice");
    hvd_log_unregister_secret("twice");
    hvd_log_info(NULL, "twice");
    hvd_log_unregister_secret("twice");
    hvd_log_info(NULL, "twice");
    hvd_log_unregister_secret("never-registered");
    json_t *l[4];
    cr_assert_eq(read_lines(l, 4), 4);
    cr_assert_str_eq(str(l[0], "msg"), "raw *** json {\"pw\":\"***\"}");
    cr_assert_str_eq(str(l[1], "msg"), "*** ***");
    cr_assert_str_eq(str(l[2], "msg"), "***");
    cr_assert_str_eq(str(l[3], "msg"), "twice");
    for (int i = 0; i < 4; i++) json_decref(l[i]);
    char raw[2048] = {0};
    cr_assert(pread(fd, raw, sizeof raw - 1, 0) > 0);
    cr_assert_null(strstr(raw, "password1"));
    cr_assert_null(strstr(raw, "ss\\\\w"));
}

Test(log, long_value_is_cut)
{
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    hvd_log_info(NULL, "%s", big);
    json_t *j = only_line();
    const char *m = str(j, "msg");
    cr_assert_not_null(m);
    cr_assert_lt(strlen(m), 40 * 1024);
    cr_assert_not_null(strstr(m, "bytes cut]"));
    json_decref(j);
    free(big);
}

static void *writer(void *arg)
{
    char id[16];
    snprintf(id, sizeof id, "t%ld", (long)(intptr_t)arg);
    HvdLogCtx ctx = {.job_id = id};
    for (int i = 0; i < 300; i++) {
        if (i % 50 == 0) hvd_log_register_secret("shared-secret");
        hvd_log_info(&ctx, "line %d of %s with shared-secret and some padding %0200d", i, id, i);
        if (i % 50 == 0) hvd_log_unregister_secret("shared-secret");
    }
    return NULL;
}

Test(log, threads_never_interleave)
{
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    json_t *l[1];
    size_t n = read_lines(l, 1); /* asserts every line parses */
    cr_assert_eq(n, 2400);
    json_decref(l[0]);
    cr_assert_eq(hvd_log_secret_count(), 0);
}

/* ---- clock ---- */

Test(clock, rfc3339_format)
{
    char out[HVD_RFC3339_LEN];
    hvd_time_rfc3339(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    hvd_time_rfc3339(1795637076123, out);
    cr_assert_str_eq(out, "2026-11-25T20:04:36.123Z");
    hvd_time_rfc3339(951868799000, out);
    cr_assert_str_eq(out, "2000-02-29T23:59:59.000Z");
    hvd_time_rfc3339(-1, out);
    cr_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
}

Test(clock, rfc3339_parse)
{
    int64_t ms;
    cr_assert(hvd_time_parse_rfc3339("2026-11-25T20:04:36.123Z", &ms));
    cr_assert_eq(ms, 1795637076123);
    cr_assert(hvd_time_parse_rfc3339("2026-11-25T21:04:36.1234567+01:00", &ms));
    cr_assert_eq(ms, 1795637076123);
    cr_assert(hvd_time_parse_rfc3339("2026-11-25t20:04:36z", &ms));
    cr_assert_eq(ms, 1795637076000);
    cr_assert(hvd_time_parse_rfc3339("2000-02-29T23:59:59Z", &ms));
    cr_assert_eq(ms, 951868799000);
    cr_assert(hvd_time_parse_rfc3339("2026-11-25T15:04:36.5-05:00", &ms));
    cr_assert_eq(ms, 1795637076500);
    static const char *bad[] = {"",
                                "2026-11-25",
                                "2026-11-25T20:04:36",
                                "2026-13-01T00:00:00Z",
                                "2026-02-30T00:00:00Z",
                                "2025-02-29T00:00:00Z",
                                "2026-11-25T24:00:00Z",
                                "2026-11-25T20:04:36.Z",
                                "2026-11-25T20:04:36Zjunk",
                                "26-11-25T20:04:36Z",
                                "2026-11-25T20:04:36+1:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect(!hvd_time_parse_rfc3339(bad[i], &ms), "accepted '%s'", bad[i]);
    cr_assert(!hvd_time_parse_rfc3339(NULL, &ms));
    /* round trip */
    char out[HVD_RFC3339_LEN];
    for (int64_t t = -86400000LL * 800; t < 86400000LL * 365 * 80; t += 86400000LL * 37 + 12345) {
        hvd_time_rfc3339(t, out);
        cr_assert(hvd_time_parse_rfc3339(out, &ms));
        cr_assert_eq(ms, t, "%s", out);
    }
}

Test(clock, clocks)
{
    int64_t a = hvd_mono_ms();
    usleep(20000);
    int64_t b = hvd_mono_ms();
    cr_assert_geq(b - a, 15);
    cr_assert(llabs(hvd_now_ms() / 1000 - (int64_t)time(NULL)) <= 1);
}

/* Issue 12, item 9: a one-letter guest_la_pw was masked wherever that letter
 * appeared in any job's log line. The guard uses core/mask.c's rule: a short
 * secret is masked only where it stands as a whole token. */
Test(log, a_short_secret_does_not_garble_unrelated_lines)
{
    hvd_log_register_secret("a");
    hvd_log_register_secret("S3cret!pw");
    hvd_log_info(NULL, "stage vm.create started on hv01.lab.example (attempt 1)");
    hvd_log_info(NULL, "agent said: password a rejected; pw=S3cret!pw");
    hvd_log_kv(HVD_LOG_INFO, NULL, "kv", "request", "{\"guest_la_pw\":\"a\",\"vm_name\":\"alpha\"}", NULL);
    json_t *l[3];
    cr_assert_eq(read_lines(l, 3), 3);
    cr_assert_str_eq(str(l[0], "msg"), "stage vm.create started on hv01.lab.example (attempt 1)");
    cr_assert_str_eq(str(l[1], "msg"), "agent said: password *** rejected; pw=***");
    cr_assert_str_eq(str(l[2], "request"), "{\"guest_la_pw\":\"***\",\"vm_name\":\"alpha\"}");
    for (int i = 0; i < 3; i++) json_decref(l[i]);
    hvd_log_unregister_secret("a");
    hvd_log_unregister_secret("S3cret!pw");
}

/* A value cut at the line limit is cut on a character boundary. */
Test(log, long_value_is_cut_on_a_character_boundary)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "x");
    for (int i = 0; i < 20000; i++) hvd_buf_puts(&b, "\xe2\x82\xac");
    hvd_log_info(NULL, "%s", b.data);
    hvd_buf_free(&b);
    json_t *l = only_line();
    const char *msg = str(l, "msg");
    cr_assert_null(strstr(msg, "\xef\xbf\xbd"), "a character was split into U+FFFD");
    cr_assert_not_null(strstr(msg, "bytes cut]"));
    json_decref(l);
}
