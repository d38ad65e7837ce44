/* Issue 12 through the path a user's message takes: a real hvdeploy-worker
 * against the private RabbitMQ and PostgreSQL with a misbehaving agent
 * (tests/agents/agent_leaky.c, agent_orphan.c). This file: what the agent
 * sends back: output not in UTF-8 (item 1), secrets in its output (item 4),
 * answers for another request (item 10), leftovers that escape with setsid. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "utf8.h"
#include "worker_proc.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

#define WAIT_MS 40000

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(hardening_agent, .fini = fini, .timeout = 240);

static WpWorker *start_with(const char *mode, const char *const *extra)
{
    W = wp_world_new(NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/agent_leaky %s", HVD_TEST_AGENT_DIR, mode);
    WpWorker *k = wp_start(W, &(WpOptions){.agent_cmd = cmd, .log_level = "debug", .extra = extra});
    cr_assert(wp_wait_ready(k, 30000), "the worker did not start:\n%s", wp_log_tail(k));
    return k;
}

static void one(const char *queue, WpWorker *k, WpMsg *m, const char *what)
{
    cr_assert_eq(wp_collect(W->broker, queue, 1, WAIT_MS, m), 1, "no envelope for %s within %d ms; worker log:\n%s",
                 what, WAIT_MS, wp_log_tail(k));
    cr_assert_not_null(m->body, "the envelope for %s is not decodable", what);
}

static const HvdNode *stage_of(const HvdNode *env, const char *name)
{
    return wp_env_stage(env, name);
}

/* Item 1: stderr in a Windows code page (and an answer not in UTF-8) reached
 * a text column as invalid UTF-8: recording the stage's end failed (22021),
 * the lease expired and the agent ran again, for ever. */
Test(hardening_agent, agent_output_not_in_utf8_does_not_stall_the_job)
{
    WpWorker *k = start_with("cp1252", NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *job = wp_job_load("minimal.json", NULL);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    WpMsg m[1];
    one(q, k, m, "a job whose agent writes Windows-1252");
    cr_assert_str_eq(wp_str(m->body, "code"), "agent_error", "%s", wp_str(m->body, "message"));
    const char *msg = wp_str(stage_of(m->body, "vm.create"), "message");
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, "Acc\xef\xbf\xbds refus\xef\xbf\xbd"), "the agent's message, made UTF-8: %s", msg);
    char *st = wp_pg_value(W, "SELECT status FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job));
    cr_assert_str_eq(st, "failed");
    free(st);
    char *err = wp_pg_value(W,
                            "SELECT coalesce(error, '') FROM hvdeploy.job_stages WHERE job_id = '%s' AND stage = "
                            "'vm.create'",
                            wp_job_id(job));
    cr_assert(hvd_utf8_valid(err, strlen(err)), "job_stages.error is UTF-8");
    free(err);
    cr_assert_eq(wp_log_count(k, "22021"), 0, "PostgreSQL refused a text:\n%s", wp_log_tail(k));
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

static void assert_no_secret(char **secrets, const void *p, size_t n, const char *where)
{
    for (size_t i = 0; secrets[i]; i++)
        cr_assert_not(wp_contains(p, n, secrets[i]), "secret #%zu found in %s: %.*s", i, where,
                      (int)(n < 600 ? n : 600), (const char *)p);
}

/* Item 4: the agent's message, logs and stderr tail went unmasked into the
 * envelope, events, job_stages, the dead letter and its x-hvdeploy-reason. */
Test(hardening_agent, secrets_the_agent_echoes_are_masked_everywhere)
{
    const char *const extra[] = {"HVD_MAX_ATTEMPTS=2", "HVD_RETRY_DELAYS=1", NULL};
    WpWorker *k = start_with("leaktransient", extra);
    char q[128], tap[128], dead[200];
    wp_private_queue(W, q, sizeof q);
    wp_events_tap(W, tap, sizeof tap);
    snprintf(dead, sizeof dead, "%s.dead", W->prefix);
    HvdNode *job = wp_job_load("full-windows.json", NULL);
    char **secrets = NULL;
    wp_job_secrets(job, &secrets);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q});
    WpMsg m[1];
    one(q, k, m, "a job whose agent echoes the password");
    cr_assert_str_eq(wp_str(m->body, "code"), "retries_exhausted", "%s", wp_str(m->body, "message"));
    cr_assert_not_null(strstr(wp_str(m->body, "message"), "the password *** does not meet"), "%s",
                       wp_str(m->body, "message"));
    assert_no_secret(secrets, m->d.body, m->d.len, "the envelope");
    WpMsg d[1];
    cr_assert_eq(wp_collect(W->broker, dead, 1, 10000, d), 1, "the job is dead-lettered");
    assert_no_secret(secrets, d->d.body, d->d.len, "the dead letter");
    const char *reason = wp_msg_header(d, "x-hvdeploy-reason");
    cr_assert_not_null(reason);
    cr_assert_not_null(strstr(reason, "***"), "%s", reason);
    assert_no_secret(secrets, reason, strlen(reason), "the x-hvdeploy-reason header");
    cr_assert(wp_contains(d->d.body, d->d.len, "$env:GuestLaPw = '***'"), "the agent's log is kept, masked");
    WpMsg ev[64];
    size_t n_ev = wp_drain(W->broker, tap, 64, 1000, ev);
    cr_assert_gt(n_ev, 4);
    for (size_t i = 0; i < n_ev; i++) assert_no_secret(secrets, ev[i].d.body, ev[i].d.len, "an event");
    char *dump = wp_pg_dump_schema(W);
    cr_assert(strstr(dump, "does not meet the policy"), "the dump holds the agent's message");
    assert_no_secret(secrets, dump, strlen(dump), "the database");
    free(dump);
    cr_assert_eq(wp_stop(k, 15000), 0);
    char *log = wp_log(k);
    assert_no_secret(secrets, log, strlen(log), "the worker's log");
    free(log);
    wp_msgs_free(ev, n_ev);
    wp_msgs_free(d, 1);
    wp_msgs_free(m, 1);
    wp_strv_free(secrets);
    hvd_node_free(job);
}

/* Item 10: an answer's correlation_id was never compared; vm_id "" or a
 * non-GUID passed and later reached rollback's vm.delete. */
Test(hardening_agent, answers_for_another_request_are_protocol_errors)
{
    static const char *const modes[] = {"wrongcorr", "badvmid"};
    for (size_t i = 0; i < 2; i++) {
        WpWorker *k = start_with(modes[i], NULL);
        char q[128];
        wp_private_queue(W, q, sizeof q);
        HvdNode *job = wp_job_load("minimal.json", NULL);
        wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q, .correlation_id = "corr-mine"});
        WpMsg m[1];
        one(q, k, m, modes[i]);
        cr_assert_str_eq(wp_str(m->body, "code"), "agent_protocol_error", "%s: %s", modes[i],
                         wp_str(m->body, "message"));
        cr_assert_null(hvd_node_get(hvd_node_get(m->body, "data"), "vm_id"), "nothing of the answer is used");
        wp_msgs_free(m, 1);
        hvd_node_free(job);
        cr_assert_eq(wp_stop(k, 15000), 0);
        wp_world_free(W);
        W = NULL;
    }
}

/* An agent whose child calls setsid escaped the process-group kill: 4 orphans
 * after 4 calls. The worker is a subreaper: none survives. */
Test(hardening_agent, agent_leftovers_in_their_own_session_do_not_survive)
{
    W = wp_world_new(NULL);
    char pidfile[512], cmd[1024];
    snprintf(pidfile, sizeof pidfile, "%s/orphans", W->dir);
    snprintf(cmd, sizeof cmd, "%s/agent_orphan %s setsid", HVD_TEST_AGENT_DIR, pidfile);
    /* one call per job: no agent.hello or host.resources call leaves a process too */
    const char *extra[] = {"HVD_AGENT_PROFILE=raw", NULL};
    WpWorker *k = wp_start(W, &(WpOptions){.agent_cmd = cmd, .extra = extra});
    cr_assert(wp_wait_ready(k, 30000), "%s", wp_log_tail(k));
    char q[128];
    wp_private_queue(W, q, sizeof q);
    const size_t N = 4;
    for (size_t i = 0; i < N; i++) {
        HvdNode *job = wp_job_load("minimal.json", NULL);
        wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
        hvd_node_free(job);
    }
    WpMsg m[4];
    cr_assert_eq(wp_collect(W->broker, q, N, WAIT_MS, m), N, "%s", wp_log_tail(k));
    wp_msgs_free(m, N);
    size_t listed = 0, alive = 0;
    for (int round = 0; round < 50; round++) {
        FILE *f = fopen(pidfile, "r");
        listed = alive = 0;
        for (int pid; f && fscanf(f, "%d", &pid) == 1; listed++) {
            char path[64], st[512] = "";
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            FILE *p = fopen(path, "r");
            if (p && fgets(st, sizeof st, p)) {
                const char *rp = strrchr(st, ')');
                if (rp && rp[2] != 'Z' && rp[2] != 'X') alive++;
            }
            if (p) fclose(p);
        }
        if (f) fclose(f);
        if (listed == N && alive == 0) break;
        usleep(100 * 1000);
    }
    cr_assert_eq(listed, N, "each call left one process behind");
    cr_assert_eq(alive, 0, "%zu of %zu leftovers survived", alive, N);
    /* item 8: the worker dumps no core */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)wp_pid(k));
    char *limits = wp_read_file(path);
    const char *core = strstr(limits, "Max core file size");
    cr_assert_not_null(core, "%s", limits);
    long soft = -1, hard = -1;
    cr_assert_eq(sscanf(core, "Max core file size %ld %ld", &soft, &hard), 2, "%.80s", core);
    cr_assert_eq(soft, 0);
    cr_assert_eq(hard, 0);
    free(limits);
    cr_assert_eq(wp_stop(k, 15000), 0);
}
