/* Unit tests of the session-mode client (session.c, contract §6a) against
 * the simulated host in --session mode and a fake session agent that
 * misbehaves on request (tests/agents/session_fake.py): several requests in
 * flight, answers out of order, cancel, timeouts, a session killed
 * mid-request, garbage and unknown request_id lines, no hello, idle close,
 * the per-host cap and live output lines. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "session.h"

#define FAKE HVD_SOURCE_DIR "/tests/agents/session_fake.py"

static HvdAgentCfg agent_cfg;
static char *argv_words[8];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sessions of the fake agent in mode (or of argv when mode is NULL). */
static HvdSessions *fake(const char *mode, HvdSessionCfg *over)
{
    hvd_agent_cfg_init(&agent_cfg);
    agent_cfg.kill_grace_ms = 200;
    argv_words[0] = "python3";
    argv_words[1] = FAKE;
    argv_words[2] = (char *)mode;
    argv_words[3] = NULL;
    HvdSessionCfg c = {.agent = &agent_cfg,
                       .argv = argv_words,
                       .max_per_host = 4,
                       .depth = 16,
                       .idle_ms = 60000,
                       .hello_ms = 5000,
                       .cancel_grace_ms = 1000};
    if (over) {
        if (over->max_per_host) c.max_per_host = over->max_per_host;
        if (over->depth) c.depth = over->depth;
        if (over->idle_ms) c.idle_ms = over->idle_ms;
        if (over->hello_ms) c.hello_ms = over->hello_ms;
    }
    return hvd_sessions_start(&c);
}

static void done(HvdSessions *s)
{
    hvd_sessions_stop(s);
    hvd_agent_cfg_free(&agent_cfg);
}

static char *request(const char *op)
{
    return hvd_xasprintf("{\"operation\":\"%s\",\"resource_spec\":{},\"correlation_id\":\"c\","
                         "\"metadata\":{\"host\":\"hv01\",\"attempt\":1}}\n",
                         op);
}

static HvdOutcome call(HvdSessions *s, const char *op, const HvdAgentCallOpts *opts, HvdAgentResult *res)
{
    char *req = request(op);
    HvdOutcome o = hvd_session_call(s, opts, "hv01", op, req, strlen(req), res);
    free(req);
    return o;
}

Test(session, echo_answers_and_one_session_serves_many_calls)
{
    HvdSessions *s = fake("echo", NULL);
    for (int i = 0; i < 20; i++) {
        HvdAgentResult res;
        cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_SUCCESS, "%s", res.detail);
        cr_assert_str_eq(hvd_node_get_str(res.data, "operation"), "vm.create");
        cr_assert_null(hvd_node_get(res.envelope, "request_id"), "the request_id is ours, not the answer's");
        hvd_agent_result_free(&res);
    }
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.started, 1, "one process for twenty calls");
    cr_assert_eq(hvd_sessions_count(s, "hv01"), 1);
    done(s);
}

typedef struct {
    HvdSessions *s;
    const char *op;
    HvdOutcome out;
    char got[32];
    int64_t at;
} Caller;

static void *caller(void *arg)
{
    Caller *c = arg;
    HvdAgentResult res;
    c->out = call(c->s, c->op, NULL, &res);
    snprintf(c->got, sizeof c->got, "%s", hvd_node_get_str(res.data, "operation") ?: "");
    c->at = mono_ms();
    hvd_agent_result_free(&res);
    return NULL;
}

Test(session, two_in_flight_answered_out_of_order_reach_their_callers)
{
    HvdSessions *s = fake("reverse", NULL);
    Caller a = {.s = s, .op = "vm.create"}, b = {.s = s, .op = "disk.create"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, caller, &a);
    usleep(200 * 1000); /* a is written first: the fake answers b first */
    pthread_create(&tb, NULL, caller, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.out, HVD_OUT_SUCCESS);
    cr_assert_eq(b.out, HVD_OUT_SUCCESS);
    cr_assert_str_eq(a.got, "vm.create", "each caller gets the answer to its own request");
    cr_assert_str_eq(b.got, "disk.create");
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.started, 1, "both on one session");
    done(s);
}

static atomic_int flag;
static void *raise_flag(void *arg)
{
    usleep(300 * 1000);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

Test(session, cancel_stops_a_request_the_agent_can_stop)
{
    HvdSessions *s = fake("hang", NULL);
    atomic_store(&flag, 0);
    HvdAgentCallOpts o = {.cancel = &flag};
    pthread_t t;
    pthread_create(&t, NULL, raise_flag, &flag);
    int64_t t0 = mono_ms();
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", &o, &res), HVD_OUT_CANCELLED, "%s", res.detail);
    cr_assert_lt(mono_ms() - t0, 1500, "answered soon after the cancel");
    cr_assert_str_eq(res.code, "CANCELLED");
    hvd_agent_result_free(&res);
    pthread_join(t, NULL);
    done(s);
}

Test(session, a_request_past_its_deadline_is_cancelled_and_times_out)
{
    HvdSessions *s = fake("hang", NULL);
    HvdAgentCallOpts o = {.timeout_ms = 300};
    int64_t t0 = mono_ms();
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", &o, &res), HVD_OUT_TIMEOUT, "%s", res.detail);
    int64_t took = mono_ms() - t0;
    cr_assert(took >= 300 && took < 1500, "%lld ms", (long long)took);
    hvd_agent_result_free(&res);
    done(s);
}

Test(session, a_session_that_dies_mid_request_loses_it_and_a_new_one_starts)
{
    HvdSessions *s = fake("die", NULL);
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_TRANSPORT, "%s", res.detail);
    cr_assert(strstr(res.detail, "session ended"), "%s", res.detail);
    cr_assert(hvd_outcome_unknown(res.outcome), "a lost request's outcome is unknown");
    hvd_agent_result_free(&res);
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_TRANSPORT);
    hvd_agent_result_free(&res);
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.started, 2, "each call got a fresh session");
    cr_assert_eq(st.lost, 2);
    done(s);
}

/* Callers racing a session that dies at once: the reader frees a dead session
 * only after its last caller has looked at it (ASan saw a use after free). */
static void *die_caller(void *arg)
{
    HvdSessions *s = arg;
    for (int i = 0; i < 6; i++) {
        HvdAgentResult res;
        HvdOutcome o = call(s, "vm.create", NULL, &res);
        cr_assert(o == HVD_OUT_TRANSPORT || o == HVD_OUT_NOT_SENT, "%s", res.detail);
        hvd_agent_result_free(&res);
    }
    return NULL;
}

Test(session, a_session_gone_at_once_is_not_freed_under_its_caller)
{
    HvdSessions *s = fake("die", NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, die_caller, s);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_geq(st.lost, 1, "the sessions died with requests in flight");
    cr_assert_eq(st.open, 0, "no dead session counts as open");
    done(s);
}

Test(session, garbage_and_unknown_request_ids_are_ignored_and_counted)
{
    HvdSessions *s = fake("noise", NULL);
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_SUCCESS, "%s", res.detail);
    hvd_agent_result_free(&res);
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_geq(st.bad_lines, 2, "the non-JSON line and the object without request_id");
    cr_assert_geq(st.unknown_ids, 1);
    done(s);
}

Test(session, an_agent_that_never_says_hello_gets_no_request)
{
    HvdSessions *s = fake("silent", &(HvdSessionCfg){.hello_ms = 400});
    HvdAgentResult res;
    int64_t t0 = mono_ms();
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_NOT_SENT, "%s", res.detail);
    cr_assert(strstr(res.detail, "no hello"), "%s", res.detail);
    cr_assert_lt(mono_ms() - t0, 2000);
    hvd_agent_result_free(&res);
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.no_hello, 1);
    done(s);

    s = fake("nohello", NULL);
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_NOT_SENT, "%s", res.detail);
    cr_assert(strstr(res.detail, "hello"), "%s", res.detail);
    hvd_agent_result_free(&res);
    done(s);
}

Test(session, an_idle_session_is_closed)
{
    HvdSessions *s = fake("echo", &(HvdSessionCfg){.idle_ms = 200});
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_SUCCESS);
    hvd_agent_result_free(&res);
    cr_assert_eq(hvd_sessions_count(s, "hv01"), 1);
    int64_t t0 = mono_ms();
    while (hvd_sessions_count(s, "hv01") != 0 && mono_ms() - t0 < 5000) usleep(50 * 1000);
    cr_assert_eq(hvd_sessions_count(s, "hv01"), 0, "closed after its idle time");
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.closed_idle, 1);
    cr_assert_eq(call(s, "vm.create", NULL, &res), HVD_OUT_SUCCESS, "a new one starts when needed");
    hvd_agent_result_free(&res);
    done(s);
}

typedef struct {
    HvdSessions *s;
    HvdOutcome out;
} Hanger;

static void *hang_call(void *arg)
{
    Hanger *h = arg;
    HvdAgentCallOpts o = {.timeout_ms = 800};
    HvdAgentResult res;
    h->out = call(h->s, "vm.create", &o, &res);
    hvd_agent_result_free(&res);
    return NULL;
}

Test(session, sessions_per_host_are_capped)
{
    HvdSessions *s = fake("hang", &(HvdSessionCfg){.max_per_host = 2, .depth = 1});
    Hanger h[5];
    pthread_t t[5];
    for (int i = 0; i < 5; i++) {
        h[i] = (Hanger){.s = s};
        pthread_create(&t[i], NULL, hang_call, &h[i]);
    }
    /* sessions start one at a time: poll rather than guess how long python takes */
    size_t most = 0;
    for (int64_t t0 = mono_ms(); mono_ms() - t0 < 5000 && most < 3; usleep(20 * 1000)) {
        size_t n = hvd_sessions_count(s, "hv01");
        if (n > most) most = n;
        if (most == 2 && mono_ms() - t0 > 600) break;
    }
    for (int i = 0; i < 5; i++) pthread_join(t[i], NULL);
    size_t after = hvd_sessions_count(s, "hv01");
    if (after > most) most = after;
    cr_assert_eq(most, 2, "five requests, at most two sessions (saw %zu)", most);
    for (int i = 0; i < 5; i++) cr_assert_eq(h[i].out, HVD_OUT_TIMEOUT);
    done(s);
}

typedef struct {
    int n;
    HvdAgentStream stream[4];
    char text[4][64];
} Lines;

static void on_line(void *arg, HvdAgentStream stream, const char *line, size_t len, bool truncated)
{
    Lines *l = arg;
    (void)truncated;
    if (l->n < 4) {
        l->stream[l->n] = stream;
        snprintf(l->text[l->n], sizeof l->text[0], "%.*s", (int)len, line);
    }
    l->n++;
}

Test(session, output_lines_reach_the_callback_of_their_request)
{
    HvdSessions *s = fake("output", NULL);
    Lines l = {0};
    HvdAgentCallOpts o = {.on_line = on_line, .line_arg = &l};
    HvdAgentResult res;
    cr_assert_eq(call(s, "vm.create", &o, &res), HVD_OUT_SUCCESS, "%s", res.detail);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.text[0], "progress 1 of 2");
    cr_assert_eq(l.stream[0], HVD_AGENT_STDOUT);
    cr_assert_eq(l.stream[1], HVD_AGENT_STDERR);
    hvd_agent_result_free(&res);
    done(s);
}

/* ---- against the simulated host ---- */

typedef struct {
    HvdSessions *s;
    int i;
    HvdOutcome out;
} SimCall;

static void *sim_call(void *arg)
{
    SimCall *c = arg;
    char *req = hvd_xasprintf("{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"sess-%d\",\"gb_ram\":2,"
                              "\"cpu_cores\":1,\"os_family\":\"linux\"},\"correlation_id\":\"c%d\","
                              "\"metadata\":{\"host\":\"hv01\",\"job_id\":\"j%d\",\"attempt\":1,"
                              "\"idempotency_key\":\"j%d:vm.create\"}}\n",
                              c->i, c->i, c->i, c->i);
    HvdAgentResult res;
    c->out = hvd_session_call(c->s, NULL, "hv01", "vm.create", req, strlen(req), &res);
    if (c->out != HVD_OUT_SUCCESS) cr_log_error("call %d: %s", c->i, res.detail);
    hvd_agent_result_free(&res);
    free(req);
    return NULL;
}

Test(session, the_simulated_host_serves_requests_at_once)
{
    char dir[] = "/tmp/hvd-session-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("HVD_SIM_LATENCY_MS", "vm.create=300", 1);
    hvd_agent_cfg_init(&agent_cfg);
    char *words[] = {HVD_BIN_DIR "/hvdeploy-simhost", "--state-dir", dir, "--session", NULL};
    HvdSessionCfg c = {.agent = &agent_cfg, .argv = words, .max_per_host = 1, .depth = 64, .idle_ms = 60000};
    HvdSessions *s = hvd_sessions_start(&c);
    SimCall calls[8];
    pthread_t t[8];
    int64_t t0 = mono_ms();
    for (int i = 0; i < 8; i++) {
        calls[i] = (SimCall){.s = s, .i = i};
        pthread_create(&t[i], NULL, sim_call, &calls[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    int64_t took = mono_ms() - t0;
    for (int i = 0; i < 8; i++) cr_assert_eq(calls[i].out, HVD_OUT_SUCCESS, "call %d", i);
    cr_assert_lt(took, 8 * 300, "eight 300 ms calls on one session overlapped (%lld ms)", (long long)took);
    HvdSessionStats st;
    hvd_sessions_stats(s, &st);
    cr_assert_eq(st.started, 1);
    hvd_sessions_stop(s);
    hvd_agent_cfg_free(&agent_cfg);
    unsetenv("HVD_SIM_LATENCY_MS");
    char *rm = hvd_xasprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(rm), 0);
    free(rm);
}
