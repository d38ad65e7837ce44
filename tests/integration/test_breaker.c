/* Integration test of the per-host circuit breaker (issue 5): a host whose
 * agent hangs opens its circuit after HVD_BREAKER_THRESHOLD failures; while it
 * is open the jobs wait without spending attempts; once the host answers again
 * one trial call closes the circuit and every job succeeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
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

TestSuite(breaker, .fini = fini, .timeout = 240);

#define JOBS 3

Test(breaker, a_failing_host_opens_its_circuit_and_jobs_wait_without_spending_attempts)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    W = wp_world_new(NULL);

    /* The agent: the simulated host, except that it hangs while a flag file exists. */
    char flag[512], agent[512], cmd[1400];
    snprintf(flag, sizeof flag, "%s/host-broken", W->dir);
    snprintf(agent, sizeof agent, "%s/agent.sh", W->dir);
    FILE *f = fopen(agent, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\nif [ -e '%s' ]; then sleep 30; exit 1; fi\nexec '%s/hvdeploy-simhost' --state-dir '%s'\n",
            flag, HVD_BIN_DIR, W->sim_dir);
    fclose(f);
    cr_assert_eq(chmod(agent, 0755), 0);
    FILE *fl = fopen(flag, "w");
    cr_assert_not_null(fl);
    fclose(fl);

    const char *extra[] = {"HVD_AGENT_TIMEOUTS=vm.create=1,disk.create=5,nic.create=5,vm.initialize=5,vm.delete=5",
                           "HVD_AGENT_KILL_GRACE=0",
                           "HVD_BREAKER_THRESHOLD=2",
                           "HVD_BREAKER_COOLDOWN=2",
                           "HVD_MAX_ATTEMPTS=3",
                           "HVD_SWEEP_INTERVAL=1",
                           NULL};
    snprintf(cmd, sizeof cmd, "%s", agent);
    WpWorker *k =
        wp_start(W, &(WpOptions){.agent_cmd = cmd, .host_concurrency = "3", .retry_delays = "1", .extra = extra});
    cr_assert(wp_wait_ready(k, 30000), "%s", wp_log_tail(k));

    char reply[128];
    wp_private_queue(W, reply, sizeof reply);
    char ids[JOBS][37];
    for (int i = 0; i < JOBS; i++) {
        HvdNode *job = wp_job_load("minimal.json", "hv09.lab.example");
        snprintf(ids[i], sizeof ids[i], "%s", wp_job_id(job));
        wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = reply, .message_id = WP_JOB_ID});
        hvd_node_free(job);
    }

    /* The circuit opens after two host failures ... */
    long long t0 = hvd_it_now_ms();
    while (wp_pg_long(W, "SELECT count(*) FROM hvdeploy.host_health WHERE target_host = 'hv09.lab.example'"
                         " AND open_until IS NOT NULL") == 0) {
        cr_assert_lt(hvd_it_now_ms() - t0, 30000, "the circuit never opened:\n%s", wp_log_tail(k));
        usleep(200 * 1000);
    }
    cr_assert(wp_wait_log(k, "host circuit open", 5000));
    /* ... and while the host stays broken, the jobs wait instead of running out of attempts
     * (3 attempts at 1 s timeouts and 1 s retries would be spent within ~10 s without it). */
    sleep(8);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE status IN ('failed','succeeded')"), 0,
                 "a job ended while its host's circuit was open:\n%s", wp_log_tail(k));
    long waited = wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_events WHERE detail = 'circuit_open'");
    cr_assert_gt(waited, 0, "no job waited for the circuit");
    long spent = wp_pg_long(W, "SELECT coalesce(max(attempts), 0) FROM hvdeploy.job_stages WHERE stage = 'vm.create'");
    cr_assert_lt(spent, 3, "attempts were spent while the circuit was open: %ld", spent);

    /* The host heals: one trial call closes the circuit and every job succeeds. */
    cr_assert_eq(unlink(flag), 0);
    WpSeen seen[JOBS];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < JOBS; i++) memcpy(seen[i].id, ids[i], sizeof seen[i].id);
    wp_collect_jobs(W, reply, seen, JOBS, 90000, true);
    cr_assert_eq(wp_seen_missing(seen, JOBS), 0, "jobs unanswered after the host healed:\n%s", wp_log_tail(k));
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE status = 'succeeded'"), JOBS, "%s",
                 wp_log_tail(k));
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.host_health WHERE target_host = 'hv09.lab.example'"
                               " AND open_until IS NULL AND consecutive_fails = 0"),
                 1, "the circuit did not close");
    cr_assert(wp_wait_log(k, "host circuit closed", 1000));
    cr_assert_eq(wp_stop(k, 20000), 0);
}
