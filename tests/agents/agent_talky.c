/* A test agent that prints output lines while it works (live output tests):
 * reads the request, prints HVD_TEST_LINES lines (default 5) on stdout, every
 * HVD_TEST_LINE_MS milliseconds (default 200; 0 = as fast as it can), every
 * HVD_TEST_STDERR_EVERY-th one on stderr instead (default 0 = none), each
 * "<operation> line N" followed by HVD_TEST_LINE_TEXT when set (HVD_TEST_RATE
 * = lines a second instead, in bursts every 10 ms). With
 * HVD_TEST_ECHO_GUEST_PW=1 it also prints the guest_la_pw of a vm.initialize
 * request (the worker must mask it). Then, when it was given a command
 * (argv[1]...), it runs that command with the request on its stdin (e.g. the
 * simhost, which answers); else it answers success itself, with a vm_id for
 * vm.create. HVD_TEST_ONLY_OP limits the talking to one operation; while the
 * file HVD_TEST_FAIL_WHILE exists (or for the host HVD_TEST_FAIL_HOST),
 * HVD_TEST_FAIL_OP answers an error with code HVD_TEST_FAIL_CODE (default
 * INJECTED, permanent). It answers agent.hello itself: a per-call agent,
 * with the simulated host's idempotency and probe when it runs one. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int main(int argc, char **argv)
{
    static char buf[1 << 20];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(STDIN_FILENO, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    json_t *req = json_loadb(buf, n, 0, NULL);
    const char *op = json_string_value(json_object_get(req, "operation"));
    if (!op) op = "?";
    if (strcmp(op, "agent.hello") == 0) {
        /* a per-call agent: what the simulated host behind it honours, but no sessions */
        printf("{\"status\":\"success\",\"message\":\"hello\",\"data\":{\"agent\":\"agent_talky 1\","
               "\"capabilities\":%s},\"code\":null,\"logs\":[]}\n",
               argc > 1 ? "[\"idempotency\",\"probe\"]" : "[]");
        json_decref(req);
        return 0;
    }
    const char *only = getenv("HVD_TEST_ONLY_OP");
    bool talk = !only || !*only || strcmp(only, op) == 0;

    long lines = talk ? env_long("HVD_TEST_LINES", 5) : 0;
    long every_ms = env_long("HVD_TEST_LINE_MS", 200), err_every = env_long("HVD_TEST_STDERR_EVERY", 0);
    long rate = env_long("HVD_TEST_RATE", 0); /* lines a second, in bursts every 10 ms (overrides LINE_MS) */
    const char *text = getenv("HVD_TEST_LINE_TEXT");
    for (long i = 1; i <= lines; i++) {
        FILE *f = err_every > 0 && i % err_every == 0 ? stderr : stdout;
        fprintf(f, "%s line %ld%s%s\n", op, i, text ? " " : "", text ? text : "");
        if (rate > 0) {
            if (i % (rate / 100 > 0 ? rate / 100 : 1) == 0) {
                fflush(stdout);
                fflush(stderr);
                sleep_ms(10);
            }
            continue;
        }
        fflush(f);
        if (every_ms > 0 && i < lines) sleep_ms(every_ms);
    }
    fflush(stdout);
    fflush(stderr);
    if (talk && env_long("HVD_TEST_ECHO_GUEST_PW", 0) == 1) {
        const char *pw = json_string_value(json_object_get(json_object_get(req, "resource_spec"), "guest_la_pw"));
        if (pw) {
            printf("setting the administrator password to %s now\n", pw);
            fprintf(stderr, "debug: {\"guest_la_pw\": \"%s\"}\n", pw);
            fflush(stdout);
        }
    }
    /* an injected permanent failure of one operation while a file exists */
    const char *fail_op = getenv("HVD_TEST_FAIL_OP"), *fail_while = getenv("HVD_TEST_FAIL_WHILE");
    const char *fail_host = getenv("HVD_TEST_FAIL_HOST"), *fail_code = getenv("HVD_TEST_FAIL_CODE");
    const char *host = json_string_value(json_object_get(json_object_get(req, "metadata"), "host"));
    bool fail_here = fail_host ? host && strcmp(fail_host, host) == 0 : fail_while && access(fail_while, F_OK) == 0;
    if (fail_op && strcmp(fail_op, op) == 0 && fail_here) {
        printf("{\"status\":\"error\",\"message\":\"injected failure\",\"code\":\"%s\",\"data\":{},"
               "\"logs\":[]}\n",
               fail_code && *fail_code ? fail_code : "INJECTED");
        json_decref(req);
        return 0;
    }
    if (argc > 1) {
        /* the request goes to the real agent through a pipe (it fits in the pipe's buffer) */
        int p[2];
        if (pipe(p) != 0) return 3;
        if (write(p[1], buf, n) != (ssize_t)n) return 3;
        close(p[1]);
        dup2(p[0], STDIN_FILENO);
        close(p[0]);
        json_decref(req);
        execvp(argv[1], argv + 1);
        return 127;
    }
    json_t *data = json_object();
    if (strcmp(op, "vm.create") == 0)
        json_object_set_new(data, "vm_id", json_string("11111111-2222-4333-8444-555555555555"));
    json_t *env = json_pack("{s:s, s:s, s:o, s:n, s:[], s:O?}", "status", "success", "message", "talked", "data", data,
                            "code", "logs", "correlation_id", json_object_get(req, "correlation_id"));
    char *out = json_dumps(env, JSON_COMPACT);
    if (out) puts(out);
    free(out);
    json_decref(env);
    json_decref(req);
    return 0;
}
