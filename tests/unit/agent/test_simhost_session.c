/* Tests of hvdeploy-simhost --session (contract §6a "Session mode"): the
 * hello line first, several requests in flight answered out of order,
 * cancel, EOF, a crash that takes every request in flight with it, a hang,
 * garbage lines, live output lines (and their rate), state kept consistent
 * by concurrent requests, the aether-v flavour in a session, and --null. The
 * session is driven over pipes as the worker's session client would. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"

extern char **environ;
static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hvd-simsess-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char *rm = hvd_xasprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(rm);
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
    pid_t pid;
    int in, out;
    HvdBuf buf; /* bytes read, not yet returned */
    size_t pos;
    bool eof;
} Sess;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts the simhost with --session, --state-dir (unless --null) and args. */
static void sess_start(Sess *s, const char *args)
{
    memset(s, 0, sizeof *s);
    char *bin = hvd_xasprintf("%s/hvdeploy-simhost", HVD_BIN_DIR);
    char *argv[16] = {bin, "--session"};
    int argc = 2;
    char *copy = hvd_xstrdup(args ? args : "");
    if (!strstr(copy, "--null")) {
        argv[argc++] = "--state-dir";
        argv[argc++] = dir;
    }
    for (char *t = strtok(copy, " "); t && argc < 15; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    char *errlog = hvd_xasprintf("%s/stderr.log", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, errlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    cr_assert_eq(posix_spawn(&s->pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    s->in = in[1];
    s->out = out[0];
    free(errlog);
    free(copy);
    free(bin);
}

static void sess_send(Sess *s, const char *line)
{
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(s->in, line, n);
        cr_assert_gt(w, 0, "write to the session failed");
        line += w;
        n -= (size_t)w;
    }
}

/* The next stdout line (malloc'd, without '\n'), NULL on EOF or timeout. */
static char *sess_line(Sess *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        char *start = s->buf.data ? s->buf.data + s->pos : NULL;
        char *nl = start ? memchr(start, '\n', s->buf.len - s->pos) : NULL;
        if (nl) {
            char *line = hvd_xstrndup(start, (size_t)(nl - start));
            s->pos += (size_t)(nl - start) + 1;
            return line;
        }
        if (s->eof) return NULL;
        int left = (int)(deadline - now_ms());
        if (left <= 0) return NULL;
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) continue;
        char chunk[65536];
        ssize_t n = read(s->out, chunk, sizeof chunk);
        if (n <= 0) {
            s->eof = true;
            continue;
        }
        hvd_buf_append(&s->buf, chunk, (size_t)n);
    }
}

/* The next line as JSON (asserted), NULL on EOF or timeout. */
static json_t *sess_json(Sess *s, int timeout_ms)
{
    char *line = sess_line(s, timeout_ms);
    if (!line) return NULL;
    json_error_t je;
    json_t *j = json_loads(line, 0, &je);
    cr_assert(j && json_is_object(j), "not a JSON object line: %s", line);
    free(line);
    return j;
}

/* Closes stdin and returns the exit status (128 + signal when killed). */
static int sess_end(Sess *s)
{
    if (s->in >= 0) close(s->in);
    s->in = -1;
    int st;
    waitpid(s->pid, &st, 0);
    close(s->out);
    hvd_buf_free(&s->buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *req(const char *id, const char *op, const char *spec, const char *meta)
{
    return hvd_xasprintf("{\"request_id\":%s,\"operation\":\"%s\",\"resource_spec\":%s,\"correlation_id\":\"c\","
                         "\"metadata\":{\"host\":\"hv01\",\"job_id\":\"j\",\"attempt\":1%s%s}}\n",
                         id, op, spec, meta && *meta ? "," : "", meta ? meta : "");
}

static void send_req(Sess *s, const char *id, const char *op, const char *spec, const char *meta)
{
    char *r = req(id, op, spec, meta);
    sess_send(s, r);
    free(r);
}

static const char *str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

static const char *id_of(json_t *j)
{
    return str(j, "request_id");
}

static void expect_hello(Sess *s, const char *caps)
{
    json_t *h = sess_json(s, 5000);
    cr_assert_not_null(h, "no hello line");
    json_t *hello = json_object_get(h, "hello");
    cr_assert(json_is_object(hello), "the first line is the hello");
    char *c = json_dumps(json_object_get(hello, "capabilities"), JSON_COMPACT);
    cr_assert_str_eq(c, caps);
    cr_assert(strncmp(str(hello, "agent"), "hvdeploy-simhost 1.1", 20) == 0);
    free(c);
    json_decref(h);
}

static size_t count_effects(void)
{
    char *p = hvd_xasprintf("%s/hv01/effects.jsonl", dir);
    FILE *f = fopen(p, "r");
    free(p);
    size_t n = 0;
    int ch;
    while (f && (ch = fgetc(f)) != EOF) n += ch == '\n';
    if (f) fclose(f);
    return n;
}

#define HV_CAPS "[\"idempotency\",\"probe\",\"session\",\"output\"]"

Test(session, hello_first_in_each_flavour)
{
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    cr_assert_eq(sess_end(&s), 0);
    sess_start(&s, "--flavor aether-v");
    expect_hello(&s, "[\"session\"]");
    cr_assert_eq(sess_end(&s), 0);
    sess_start(&s, "--null");
    expect_hello(&s, "[\"idempotency\",\"probe\",\"session\"]");
    cr_assert_eq(sess_end(&s), 0);
}

Test(session, several_in_flight_answered_as_they_finish)
{
    setenv("HVD_SIM_LATENCY_MS", "noop-test=800,vm.find=400", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    int64_t t0 = now_ms();
    send_req(&s, "\"slow\"", "noop-test", "{}", "");
    send_req(&s, "\"mid\"", "vm.find", "{\"vm_name\":\"x\"}", "");
    send_req(&s, "3", "vm.create", "{\"vm_name\":\"fast\",\"gb_ram\":1,\"cpu_cores\":1}", "");
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "\"par-%d\"", i);
        send_req(&s, id, "noop-test", "{}", "");
    }
    json_t *a = sess_json(&s, 5000);
    cr_assert(json_is_integer(json_object_get(a, "request_id")), "the fast one first (an integer id is echoed)");
    cr_assert_eq(json_integer_value(json_object_get(a, "request_id")), 3);
    cr_assert_str_eq(str(a, "status"), "success");
    json_decref(a);
    a = sess_json(&s, 5000);
    cr_assert_str_eq(id_of(a), "mid");
    json_decref(a);
    int slow = 0;
    for (int i = 0; i < 5; i++) {
        a = sess_json(&s, 5000);
        cr_assert_not_null(a);
        cr_assert_str_eq(str(a, "status"), "success");
        slow += strcmp(id_of(a), "slow") == 0;
        json_decref(a);
    }
    cr_assert_eq(slow, 1);
    int64_t took = now_ms() - t0;
    cr_assert_lt(took, 2500, "five 800 ms requests at once took %lld ms", (long long)took);
    cr_assert_eq(sess_end(&s), 0);
    unsetenv("HVD_SIM_LATENCY_MS");
}

Test(session, cancel_stops_a_waiting_request_without_its_effect)
{
    setenv("HVD_SIM_LATENCY_MS", "vm.create=3000", 1);
    setenv("HVD_SIM_HANG", "noop-test=1", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    send_req(&s, "\"create\"", "vm.create", "{\"vm_name\":\"c\",\"gb_ram\":1,\"cpu_cores\":1}", "");
    send_req(&s, "\"hung\"", "noop-test", "{}", "");
    cr_assert_null(sess_line(&s, 300), "nothing answers yet");
    int64_t t0 = now_ms();
    sess_send(&s, "{\"cancel\":\"hung\"}\n");
    json_t *a = sess_json(&s, 2000);
    cr_assert_str_eq(id_of(a), "hung");
    cr_assert_str_eq(str(a, "status"), "error");
    cr_assert_str_eq(str(a, "code"), "CANCELLED");
    json_decref(a);
    sess_send(&s, "{\"cancel\":\"create\"}\n");
    a = sess_json(&s, 2000);
    cr_assert_str_eq(id_of(a), "create");
    cr_assert_str_eq(str(a, "code"), "CANCELLED");
    json_decref(a);
    cr_assert_lt(now_ms() - t0, 1500, "cancelled at once");
    cr_assert_eq(count_effects(), 0, "cancelled before the effect");
    /* A cancel of what is not in flight is ignored: the next line is the next answer. */
    sess_send(&s, "{\"cancel\":\"nobody\"}\n");
    unsetenv("HVD_SIM_HANG");
    cr_assert_eq(sess_end(&s), 0);
    unsetenv("HVD_SIM_LATENCY_MS");
}

Test(session, eof_finishes_what_is_in_flight_then_exits_0)
{
    setenv("HVD_SIM_LATENCY_MS", "vm.create=500", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    send_req(&s, "\"a\"", "vm.create", "{\"vm_name\":\"eof-a\",\"gb_ram\":1,\"cpu_cores\":1}", "");
    send_req(&s, "\"b\"", "vm.create", "{\"vm_name\":\"eof-b\",\"gb_ram\":1,\"cpu_cores\":1}", "");
    close(s.in);
    s.in = -1;
    int got = 0;
    json_t *a;
    while ((a = sess_json(&s, 5000)) != NULL) {
        cr_assert_str_eq(str(a, "status"), "success");
        got++;
        json_decref(a);
    }
    cr_assert(s.eof, "stdout closes after the answers");
    cr_assert_eq(got, 2);
    cr_assert_eq(sess_end(&s), 0);
    cr_assert_eq(count_effects(), 2);
    unsetenv("HVD_SIM_LATENCY_MS");
}

Test(session, a_crash_kills_every_request_in_flight)
{
    setenv("HVD_SIM_LATENCY_MS", "noop-test=2000", 1);
    setenv("HVD_SIM_CRASH", "vm.create=1:after", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    send_req(&s, "\"waiting\"", "noop-test", "{}", "");
    send_req(&s, "\"crasher\"", "vm.create", "{\"vm_name\":\"boom\",\"gb_ram\":1,\"cpu_cores\":1}", "");
    json_t *a = sess_json(&s, 5000);
    cr_assert_null(a, "no answer for anyone: %s", a ? json_dumps(a, 0) : "");
    cr_assert(s.eof);
    cr_assert_eq(sess_end(&s), 70, "the injected crash's status");
    cr_assert_eq(count_effects(), 1, "the crashing call's effect happened");
    unsetenv("HVD_SIM_CRASH");
    unsetenv("HVD_SIM_LATENCY_MS");
}

Test(session, a_hung_request_never_answers_the_others_do)
{
    setenv("HVD_SIM_HANG", "vm.find=1", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    send_req(&s, "\"hung\"", "vm.find", "{\"vm_name\":\"x\"}", "");
    send_req(&s, "\"ok\"", "noop-test", "{}", "");
    json_t *a = sess_json(&s, 3000);
    cr_assert_str_eq(id_of(a), "ok");
    json_decref(a);
    cr_assert_null(sess_line(&s, 1000), "the hung request stays silent");
    sess_send(&s, "{\"cancel\":\"hung\"}\n");
    a = sess_json(&s, 3000);
    cr_assert_str_eq(str(a, "code"), "CANCELLED");
    json_decref(a);
    cr_assert_eq(sess_end(&s), 0);
    unsetenv("HVD_SIM_HANG");
}

Test(session, garbage_lines_get_an_error_line_and_are_ignored)
{
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    static const char *const BAD[] = {
        "this is not json\n",
        "[1,2,3]\n",
        "{\"operation\":\"noop-test\",\"resource_spec\":{}}\n",
        "{\"request_id\":[1],\"operation\":\"noop-test\",\"resource_spec\":{}}\n",
    };
    sess_send(&s, "\n  \r\n"); /* blank lines: nothing */
    for (size_t i = 0; i < 4; i++) {
        sess_send(&s, BAD[i]);
        json_t *a = sess_json(&s, 3000);
        cr_assert_not_null(a, "no error line for %s", BAD[i]);
        cr_assert(json_is_null(json_object_get(a, "request_id")), "request_id null: %s", BAD[i]);
        cr_assert_str_eq(str(a, "status"), "error");
        cr_assert_str_eq(str(a, "code"), "BAD_REQUEST");
        json_decref(a);
    }
    /* A request_id but no operation: that request's error answer. */
    sess_send(&s, "{\"request_id\":\"noop\",\"resource_spec\":{}}\n");
    json_t *a = sess_json(&s, 3000);
    cr_assert_str_eq(id_of(a), "noop");
    cr_assert_str_eq(str(a, "message"), "Operation error: Job envelope missing required field: operation");
    json_decref(a);
    /* The same request_id twice while the first is in flight. */
    setenv("HVD_SIM_LATENCY_MS", "noop-test=500", 1);
    Sess t;
    sess_start(&t, NULL);
    expect_hello(&t, HV_CAPS);
    send_req(&t, "\"twice\"", "noop-test", "{}", "");
    send_req(&t, "\"twice\"", "noop-test", "{}", "");
    a = sess_json(&t, 3000);
    cr_assert(json_is_null(json_object_get(a, "request_id")));
    cr_assert(strstr(str(a, "message"), "already in flight"), "%s", str(a, "message"));
    json_decref(a);
    a = sess_json(&t, 3000);
    cr_assert_str_eq(id_of(a), "twice");
    cr_assert_str_eq(str(a, "status"), "success");
    json_decref(a);
    cr_assert_eq(sess_end(&t), 0);
    unsetenv("HVD_SIM_LATENCY_MS");
    /* A line over 4 MiB. */
    size_t n = 5 * 1024 * 1024;
    char *big = malloc(n + 64);
    int k = snprintf(big, 64, "{\"request_id\":\"big\",\"x\":\"");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "\"}\n");
    sess_send(&s, big);
    free(big);
    a = sess_json(&s, 10000);
    cr_assert(strstr(str(a, "message"), "longer than"), "%s", str(a, "message"));
    json_decref(a);
    /* And the session goes on. */
    send_req(&s, "\"after\"", "noop-test", "{}", "");
    a = sess_json(&s, 3000);
    cr_assert_str_eq(id_of(a), "after");
    cr_assert_str_eq(str(a, "status"), "success");
    json_decref(a);
    cr_assert_eq(sess_end(&s), 0);
}

/* Reads output lines of request id until its answer; returns how many. */
static int64_t read_outputs(Sess *s, const char *id, int64_t *first_ms, int64_t *last_ms)
{
    int64_t n = 0;
    for (;;) {
        json_t *a = sess_json(s, 20000);
        cr_assert_not_null(a, "the answer never came (%lld output lines)", (long long)n);
        cr_assert_str_eq(id_of(a), id);
        if (json_object_get(a, "status")) {
            json_decref(a);
            return n;
        }
        cr_assert_str_eq(str(a, "stream"), "stdout");
        cr_assert_not_null(str(a, "output"));
        if (n == 0 && first_ms) *first_ms = now_ms();
        if (last_ms) *last_ms = now_ms();
        n++;
        json_decref(a);
    }
}

Test(session, output_lines_when_asked)
{
    setenv("HVD_SIM_OUTPUT_LINES", "noop-test=20000", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    /* Not asked: no output lines. */
    send_req(&s, "\"quiet\"", "noop-test", "{}", "");
    json_t *a = sess_json(&s, 3000);
    cr_assert_str_eq(str(a, "status"), "success");
    json_decref(a);
    /* As fast as it can. */
    int64_t t0 = now_ms(), first = 0, last = 0;
    send_req(&s, "\"chatty\"", "noop-test", "{}", "\"output\":true");
    cr_assert_eq(read_outputs(&s, "chatty", &first, &last), 20000);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "session output: 20000 lines in %lld ms\n", (long long)took);
    /* Spread over the operation's latency: 10 000 lines in one second. */
    setenv("HVD_SIM_OUTPUT_LINES", "noop-test=10000", 1);
    setenv("HVD_SIM_LATENCY_MS", "noop-test=1000", 1);
    Sess t;
    sess_start(&t, NULL);
    expect_hello(&t, HV_CAPS);
    t0 = now_ms();
    send_req(&t, "\"paced\"", "noop-test", "{}", "\"output\":true");
    cr_assert_eq(read_outputs(&t, "paced", &first, &last), 10000);
    took = now_ms() - t0;
    fprintf(stderr, "session output: 10000 lines paced over %lld ms (first at %lld, last at %lld)\n", (long long)took,
            (long long)(first - t0), (long long)(last - t0));
    cr_assert_geq(took, 1000);
    cr_assert_lt(first - t0, 500, "the lines start early, not at the end");
    cr_assert_eq(sess_end(&t), 0);
    unsetenv("HVD_SIM_LATENCY_MS");
    /* Write-Host lines of an operation, and its error on stderr. */
    unsetenv("HVD_SIM_OUTPUT_LINES");
    send_req(&s, "\"vm\"", "vm.create", "{\"vm_name\":\"out-01\",\"gb_ram\":1,\"cpu_cores\":1}", "\"output\":true");
    a = sess_json(&s, 3000);
    cr_assert_str_eq(str(a, "output"), "Created VM base path: C:\\ClusterStorage\\Volume1\\Storage\\out-01");
    json_decref(a);
    while ((a = sess_json(&s, 3000)) != NULL && !json_object_get(a, "status")) json_decref(a);
    json_decref(a);
    send_req(&s, "\"bad\"", "vm.create", "{\"vm_name\":\"out-01\",\"gb_ram\":1,\"cpu_cores\":1}", "\"output\":true");
    a = sess_json(&s, 3000);
    cr_assert_str_eq(str(a, "stream"), "stderr");
    cr_assert(strstr(str(a, "output"), "already exists"));
    json_decref(a);
    a = sess_json(&s, 3000);
    cr_assert_str_eq(str(a, "status"), "error");
    json_decref(a);
    cr_assert_eq(sess_end(&s), 0);
}

Test(session, concurrent_requests_keep_the_state_consistent)
{
    setenv("HVD_SIM_LATENCY_MS", "vm.create=0-50", 1);
    Sess s;
    sess_start(&s, NULL);
    expect_hello(&s, HV_CAPS);
    for (int i = 0; i < 24; i++) {
        char id[16], spec[96], meta[64];
        snprintf(id, sizeof id, "%d", i);
        snprintf(spec, sizeof spec, "{\"vm_name\":\"cc-%02d\",\"gb_ram\":1,\"cpu_cores\":1}", i % 16);
        snprintf(meta, sizeof meta, "\"idempotency_key\":\"k%02d\"", i % 16); /* 8 repeats of a key */
        send_req(&s, id, "vm.create", spec, meta);
    }
    for (int i = 0; i < 24; i++) {
        json_t *a = sess_json(&s, 10000);
        cr_assert_str_eq(str(a, "status"), "success", "%s", json_dumps(a, 0));
        json_decref(a);
    }
    cr_assert_eq(sess_end(&s), 0);
    cr_assert_eq(count_effects(), 16, "a repeated key has no second effect, even at once");
    char *p = hvd_xasprintf("%s/hv01/state.json", dir);
    json_t *st = json_load_file(p, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 16);
    json_decref(st);
    free(p);
    unsetenv("HVD_SIM_LATENCY_MS");
}

Test(session, aether_v_in_a_session)
{
    Sess s;
    sess_start(&s, "--flavor aether-v");
    expect_hello(&s, "[\"session\"]");
    send_req(&s, "\"h\"", "agent.hello", "{}", "");
    json_t *a = sess_json(&s, 3000);
    cr_assert_str_eq(id_of(a), "h");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    json_decref(a);
    for (int i = 0; i < 2; i++) {
        send_req(&s, i ? "\"b\"" : "\"a\"", "vm.create", "{\"vm_name\":\"Ünïcödé-twin\",\"gb_ram\":1,\"cpu_cores\":1}",
                 "\"idempotency_key\":\"same\",\"output\":true");
        a = sess_json(&s, 3000);
        cr_assert_str_eq(str(a, "status"), "success", "no output lines without the capability: %s", json_dumps(a, 0));
        cr_assert_str_eq(str(json_object_get(a, "data"), "vm_name"), "Ünïcödé-twin");
        cr_assert_null(json_object_get(a, "code"));
        json_decref(a);
    }
    cr_assert_eq(sess_end(&s), 0);
    cr_assert_eq(count_effects(), 2, "keys ignored in a session too");
}

typedef struct {
    Sess *s;
    const char *data;
} Feed;

static void *feeder(void *arg)
{
    Feed *f = arg;
    sess_send(f->s, f->data);
    close(f->s->in);
    f->s->in = -1;
    return NULL;
}

Test(session, null_session_answers_everything_at_once)
{
    Sess s;
    sess_start(&s, "--null");
    expect_hello(&s, "[\"idempotency\",\"probe\",\"session\"]");
    HvdBuf all = {0};
    static const char *const OPS[] = {"vm.create",     "disk.create", "nic.create",
                                      "vm.initialize", "vm.find",     "agent.hello"};
    for (int i = 0; i < 3000; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        char *r = req(id, OPS[i % 6], "{\"vm_name\":\"n\",\"vm_id\":\"0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f\"}",
                      "\"idempotency_key\":\"k\"");
        hvd_buf_puts(&all, r);
        free(r);
    }
    hvd_buf_puts(&all, "{\"cancel\":\"5\"}\n");
    /* A client reads while it writes (else both ends block on full pipes). */
    Feed feed = {.s = &s, .data = all.data};
    pthread_t t;
    pthread_create(&t, NULL, feeder, &feed);
    int n = 0;
    json_t *a;
    while ((a = sess_json(&s, 5000)) != NULL) {
        cr_assert_str_eq(str(a, "status"), "success", "%s", json_dumps(a, 0));
        cr_assert_eq(json_integer_value(json_object_get(a, "request_id")), n, "in order");
        n++;
        json_decref(a);
    }
    pthread_join(t, NULL);
    hvd_buf_free(&all);
    cr_assert_eq(n, 3000);
    cr_assert_eq(sess_end(&s), 0);
    char *p = hvd_xasprintf("%s/hv01", dir);
    cr_assert(access(p, F_OK) != 0, "--null keeps no state");
    free(p);
}
