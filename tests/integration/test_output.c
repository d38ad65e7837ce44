/* Integration tests of live stage output (contract §5 stage.<stage>.output):
 * a real worker whose agent (tests/agents/agent_talky in front of the
 * simhost) prints lines while it works. The lines arrive as events while
 * the stage runs, are kept in hvdeploy.job_output (the last HVD_OUTPUT_KEEP
 * per stage), never carry a secret, and an agent printing 10 000 lines a
 * second is held to a few messages a second with a "lines dropped" marker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(output, .fini = fini, .timeout = 180);

static char *talky_cmd(void)
{
    return hvd_xasprintf("%s/agent_talky %s/hvdeploy-simhost --state-dir %s", HVD_TEST_AGENT_DIR, HVD_BIN_DIR,
                         W->sim_dir);
}

static WpWorker *start(const char *const *extra)
{
    char *cmd = talky_cmd();
    WpWorker *k = wp_start(W, &(WpOptions){.agent_cmd = cmd, .extra = extra});
    free(cmd);
    cr_assert(wp_wait_ready(k, 30000), "the worker did not start:\n%s", wp_log_tail(k));
    return k;
}

/* Every event of the tap until the job's envelope came (or timeout). */
static size_t run_job(const char *file, const char *tap, const char *reply, WpMsg *ev, size_t max, HvdNode **job_out)
{
    HvdNode *job = wp_job_load(file, NULL);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = reply});
    WpMsg env[1];
    cr_assert_eq(wp_collect(W->broker, reply, 1, 60000, env), 1, "no envelope");
    cr_assert_str_eq(wp_str(env[0].body, "status"), "success");
    wp_msgs_free(env, 1);
    size_t n = wp_drain(W->broker, tap, max, 1500, ev);
    *job_out = job;
    return n;
}

static bool is_output(const WpMsg *m)
{
    const char *rk = m->d.routing_key;
    size_t l = rk ? strlen(rk) : 0;
    return l > 7 && strcmp(rk + l - 7, ".output") == 0;
}

Test(output, lines_arrive_live_and_are_kept)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=5", "HVD_TEST_LINE_MS=300", "HVD_TEST_STDERR_EVERY=5",
                           "HVD_TEST_ONLY_OP=vm.create", NULL};
    WpWorker *k = start(extra);
    char tap[128], reply[128];
    wp_events_tap(W, tap, sizeof tap);
    wp_private_queue(W, reply, sizeof reply);
    static WpMsg ev[200];
    HvdNode *job;
    size_t n = run_job("minimal.json", tap, reply, ev, 200, &job);
    const char *id = wp_job_id(job);

    /* output events of vm.create, in order, before the stage's success */
    size_t first_output = 0, succeeded = 0, lines = 0;
    bool stderr_seen = false;
    for (size_t i = 0; i < n; i++) {
        const char *rk = ev[i].d.routing_key;
        if (rk && strcmp(rk, "stage.vm.create.succeeded") == 0) succeeded = i + 1;
        if (!is_output(&ev[i])) continue;
        cr_assert_str_eq(rk, "stage.vm.create.output");
        const HvdNode *b = ev[i].body;
        cr_assert_str_eq(wp_str(b, "job_id"), id);
        cr_assert_str_eq(wp_str(b, "stage"), "vm.create");
        cr_assert_eq(wp_int(b, "attempt", 0), 1);
        cr_assert_not_null(wp_str(b, "at"));
        const char *stream = wp_str(b, "stream");
        cr_assert(stream && (strcmp(stream, "stdout") == 0 || strcmp(stream, "stderr") == 0));
        if (strcmp(stream, "stderr") == 0) stderr_seen = true;
        const HvdNode *l = hvd_node_get(b, "lines");
        cr_assert(l && l->type == HVD_ARRAY && l->u.arr.n > 0);
        for (size_t j = 0; j < l->u.arr.n; j++) {
            cr_assert_null(strstr(l->u.arr.items[j]->u.s.ptr, "\"status\""), "the agent's answer is not output");
            /* the talky agent's lines; the simulated host behind it adds its own Write-Host lines */
            if (strncmp(l->u.arr.items[j]->u.s.ptr, "vm.create line", 14) == 0) lines++;
        }
        if (!first_output) first_output = i + 1;
    }
    cr_assert_eq(lines, 5, "5 lines published, got %zu; worker log:\n%s", lines, wp_log_tail(k));
    cr_assert(stderr_seen);
    cr_assert(first_output && succeeded && first_output < succeeded,
              "the first output event (#%zu) came before the stage ended (#%zu)", first_output, succeeded);
    /* more than one batch: the lines went out while the stage ran (1.2 s), not at its end */
    size_t batches = 0;
    for (size_t i = 0; i < n; i++) batches += is_output(&ev[i]);
    cr_assert(batches >= 2, "output came in %zu message(s)", batches);

    /* (the simulated host's own Write-Host lines, which follow, are left out here) */
    PGresult *r = wp_pg_query(W,
                              "SELECT stage, attempt, stream, line FROM hvdeploy.job_output WHERE job_id = '%s'"
                              " AND line LIKE 'vm.create line %%' ORDER BY seq",
                              id);
    cr_assert_eq(PQntuples(r), 5);
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "vm.create line %d", i + 1);
        cr_assert_str_eq(PQgetvalue(r, i, 0), "vm.create");
        cr_assert_str_eq(PQgetvalue(r, i, 1), "1");
        cr_assert_str_eq(PQgetvalue(r, i, 2), i == 4 ? "stderr" : "stdout");
        cr_assert_str_eq(PQgetvalue(r, i, 3), want);
    }
    PQclear(r);
    wp_msgs_free(ev, n);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(output, secrets_never_in_output)
{
    W = wp_world_new(NULL);
    const char *extra[] = {"HVD_TEST_LINES=2", "HVD_TEST_LINE_MS=50", "HVD_TEST_ECHO_GUEST_PW=1",
                           "HVD_TEST_ONLY_OP=vm.initialize", NULL};
    WpWorker *k = start(extra);
    char tap[128], reply[128];
    wp_events_tap(W, tap, sizeof tap);
    wp_private_queue(W, reply, sizeof reply);
    static WpMsg ev[200];
    HvdNode *job;
    size_t n = run_job("full-windows.json", tap, reply, ev, 200, &job);
    char **secrets = NULL;
    wp_job_secrets(job, &secrets);
    size_t masked = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; secrets && secrets[s]; s++)
            cr_assert_not(wp_contains(ev[i].d.body, ev[i].d.len, secrets[s]), "a secret in event %s",
                          ev[i].d.routing_key);
        if (is_output(&ev[i]) && wp_contains(ev[i].d.body, ev[i].d.len, "administrator password to *** now")) masked++;
    }
    cr_assert_eq(masked, 1, "the echoed password line was published masked once");
    char *dump = wp_pg_dump_schema(W);
    for (size_t s = 0; secrets && secrets[s]; s++) cr_assert_null(strstr(dump, secrets[s]), "a secret in the database");
    cr_assert(strstr(dump, "setting the administrator password to *** now"));
    cr_assert(strstr(dump, "{\"guest_la_pw\": \"***\"}"), "the JSON-looking stderr line is masked too");
    char *log = wp_log(k);
    for (size_t s = 0; secrets && secrets[s]; s++) cr_assert_null(strstr(log, secrets[s]));
    free(log);
    free(dump);
    wp_strv_free(secrets);
    wp_msgs_free(ev, n);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(output, rate_limit_holds_against_a_flood)
{
    W = wp_world_new(NULL);
    /* 30 000 lines at 10 000 a second: three seconds of flood on vm.create */
    const char *extra[] = {"HVD_TEST_LINES=30000",       "HVD_TEST_RATE=10000", "HVD_TEST_STDERR_EVERY=3",
                           "HVD_TEST_ONLY_OP=vm.create", "HVD_OUTPUT_KEEP=50",  NULL};
    WpWorker *k = start(extra);
    char tap[128], reply[128];
    wp_events_tap(W, tap, sizeof tap);
    wp_private_queue(W, reply, sizeof reply);
    static WpMsg ev[2000];
    HvdNode *job;
    long long t0 = hvd_it_now_ms();
    size_t n = run_job("minimal.json", tap, reply, ev, 2000, &job);
    long long elapsed = hvd_it_now_ms() - t0;
    size_t msgs = 0, lines = 0, markers = 0;
    unsigned long long dropped = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_output(&ev[i])) continue;
        msgs++;
        const HvdNode *l = hvd_node_get(ev[i].body, "lines");
        for (size_t j = 0; l && j < l->u.arr.n; j++) {
            const char *t = l->u.arr.items[j]->u.s.ptr;
            unsigned long long d = 0;
            if (sscanf(t, "[hvdeploy] %llu line", &d) == 1) {
                markers++;
                dropped += d;
            } else {
                lines++;
            }
        }
    }
    cr_log_info("flood: %zu output messages, %zu lines published, %llu dropped in %zu markers, %lld ms", msgs, lines,
                dropped, markers, elapsed);
    /* the simulated host behind the talky agent prints its three Write-Host lines of vm.create too */
    cr_assert(lines + dropped >= 30000 && lines + dropped <= 30003,
              "every line is either published or counted as dropped (%zu + %llu)", lines, dropped);
    cr_assert(markers >= 1 && dropped > 20000);
    /* at most two flushes a second per stage (a stdout and a stderr message each), plus the stage's last one */
    double seconds = (double)elapsed / 1000.0;
    cr_assert(msgs <= (size_t)(seconds * 4) + 2, "%zu messages in %.1f s", msgs, seconds);
    long rows = wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_output WHERE job_id = '%s'", wp_job_id(job));
    cr_assert_eq(rows, 50, "HVD_OUTPUT_KEEP=50 rows kept, not %ld", rows);
    cr_assert(wp_log_count(k, "live output rate-limited") == 1);
    wp_msgs_free(ev, n);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}
