/* Issue 9 through the real worker, broker and database (continued from
 * test_realhost.c): the real agent's transient errors recognised by their
 * message (HVD_AGENT_RETRYABLE_MESSAGES defaults), an HVD_AGENT_CMD whose
 * path has a space ("C:/Program Files/Aether-V"), a UTF-8 VM name through
 * the per-call and the session transport, and rollback under each profile,
 * including a vm.delete whose outcome is unknown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "it_realhost.h"
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

static Rh R;

static void fini(void)
{
    rh_free(&R);
}

TestSuite(realhost, .fini = fini, .timeout = 240);

static const HvdNode *stage(const WpMsg *env, const char *name)
{
    const HvdNode *st = wp_env_stage(env->body, name);
    cr_assert_not_null(st, "no stage %s in the envelope", name);
    return st;
}

/* A file lock (IOException) on vm.initialize, worded as Main-NewProtocol.ps1
 * words it with OPERATION_ERROR: a default retryable message, so the stage
 * is tried again and the job succeeds. */
Test(realhost, retryable_message_is_retried_and_succeeds)
{
    HvdNode *job = rh_job("full-windows.json");
    char tmp[] = "/tmp/hvd-it-seed-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    unsigned seed = rh_seed_once("aether-v", "HVD_SIM_FAIL", "vm.initialize", "0.5:OPERATION_ERROR/file-lock",
                                 wp_job_id(job), "being used by another process", tmp);
    (void)hvd_it_run("rm -rf '%s'", tmp);
    char seed_env[64];
    snprintf(seed_env, sizeof seed_env, "HVD_SIM_SEED=%u", seed);
    const char *extra[] = {seed_env, "HVD_SIM_FAIL=vm.initialize=0.5:OPERATION_ERROR/file-lock", NULL};
    rh_start(&R, "aether-v", extra);
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    cr_assert_eq(wp_int(stage(env, "vm.initialize"), "attempts", -1), 2, "tried again once");
    WpMsg ev[RH_MAX_EVENTS];
    size_t n = rh_events(&R, wp_job_id(job), ev, RH_MAX_EVENTS);
    cr_assert_not_null(rh_event_find(ev, n, "vm.initialize", "pending", "being used by another process"),
                       "a pending event carries the agent's message (%zu events)", n);
    cr_assert_eq(rh_effects(&R, "vm.create", wp_job_vm_name(job)), 1);
    wp_msgs_free(ev, n);
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* An OPERATION_ERROR whose message matches none of the defaults is permanent. */
Test(realhost, unmatched_message_fails_at_once)
{
    const char *extra[] = {"HVD_SIM_FAIL=vm.initialize=1", NULL};
    rh_start(&R, "aether-v", extra);
    HvdNode *job = rh_job("full-windows.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    const HvdNode *st = stage(env, "vm.initialize");
    cr_assert_str_eq(wp_str(env->body, "code"), "agent_error", "%s", wp_log_tail(R.k));
    cr_assert_eq(wp_int(st, "attempts", -1), 1, "not tried again");
    const char *msg = wp_str(st, "message");
    cr_assert(msg && strstr(msg, "did not reach 'waitingforaeskey'"), "the agent's message: %s", msg);
    cr_assert_str_eq(wp_str(st, "agent_code"), "OPERATION_ERROR");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* "C:/Program Files/Aether-V" here: a directory with a space holding a link
 * to the simhost, named by a quoted word of HVD_AGENT_CMD. */
Test(realhost, quoted_agent_path_with_a_space)
{
    WpWorld *w = wp_world_new(NULL);
    char *dir = hvd_xasprintf("%s/Program Files/Aether-V", w->dir);
    cr_assert_eq(
        hvd_it_run("mkdir -p '%s' && ln -s '%s/hvdeploy-simhost' '%s/Main-NewProtocol'", dir, HVD_BIN_DIR, dir), 0);
    char *cmd = hvd_xasprintf("\"%s/Main-NewProtocol\" --state-dir '%s' --flavor aether-v", dir, w->sim_dir);
    R.w = w;
    R.k = wp_start(w, &(WpOptions){.agent_cmd = cmd, .log_level = "debug"});
    cr_assert(wp_wait_ready(R.k, 30000), "the worker did not start:\n%s", wp_log_tail(R.k));
    wp_private_queue(w, R.reply, sizeof R.reply);
    wp_events_tap(w, R.events, sizeof R.events);
    HvdNode *job = rh_job("full-windows.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    cr_assert_eq(rh_effects(&R, "vm.create", wp_job_vm_name(job)), 1, "the agent ran from the path with a space");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
    free(cmd);
    free(dir);
}

/* A non-ASCII name end to end: envelope, database, effects, status. */
static void utf8_case(const char *flavor)
{
    rh_start(&R, flavor, NULL);
    HvdNode *job = rh_job("full-windows.json");
    char name[64];
    snprintf(name, sizeof name,
             "vm-\xc3\xb1"
             "and\xc3\xba-\xe6\x9d\xb1\xe4\xba\xac-%.6s",
             wp_job_id(job));
    hvd_node_map_set_str(wp_job_at(job, "request.vm_spec"), "vm_name", name);
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(hvd_node_get(env->body, "data"), "vm_name"), name);
    char *db = wp_pg_value(R.w, "SELECT vm_name FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job));
    cr_assert_str_eq(db, name, "jobs.vm_name");
    free(db);
    /* every stage reached the host under that name */
    cr_assert_eq(rh_effects(&R, "vm.create", name), 1, "vm.create effect under the UTF-8 name");
    cr_assert_eq(rh_effects(&R, "vm.initialize", name), 1, "vm.initialize effect under the UTF-8 name");
    char *args = hvd_xasprintf("status %s", wp_job_id(job));
    char *out = rh_ctl(&R, args);
    cr_assert(strstr(out, name), "hvdeployctl status shows the name:\n%s", out);
    free(out);
    free(args);
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

Test(realhost, utf8_vm_name_per_call)
{
    utf8_case("aether-v");
    cr_assert(!rh_has_session(&R), "the aether-v flavour was called per process");
}

Test(realhost, utf8_vm_name_through_a_session)
{
    utf8_case("hvdeploy");
    cr_assert(rh_has_session(&R), "the hvdeploy flavour was used through a session");
}

/* disk.create fails for good after vm.create made the VM: the rollback deletes it. */
static void rollback_case(const char *flavor, const char *fail)
{
    const char *extra[] = {fail, NULL};
    rh_start(&R, flavor, extra);
    HvdNode *job = rh_job("full-windows.json");
    const char *name = wp_job_vm_name(job);
    WpMsg env[1];
    rh_run(&R, job, env);
    const HvdNode *b = env->body;
    cr_assert_str_eq(wp_str(b, "code"), "agent_error", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(b, "status"), "error", "nothing is left: error, not partial");
    cr_assert_str_eq(wp_str(stage(env, "vm.create"), "status"), "rolled_back");
    const char *msg = wp_str(b, "message");
    cr_assert(msg && strstr(msg, "Everything it made was rolled back."), "%s", msg);
    cr_assert_eq(rh_effects(&R, "vm.create", name), 1);
    cr_assert_eq(rh_effects(&R, "vm.delete", name), 1, "the VM was deleted");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

Test(realhost, rollback_under_the_hvdeploy_profile)
{
    rollback_case("hvdeploy", "HVD_SIM_FAIL=disk.create=1:DISK_FULL");
}

Test(realhost, rollback_under_the_raw_profile_by_vm_id)
{
    rollback_case("aether-v", "HVD_SIM_FAIL=disk.create=1");
}

/* The rollback's vm.delete never answers: the envelope says its outcome is
 * unknown and what to check, and does not claim the VM is gone or left. */
Test(realhost, rollback_whose_delete_outcome_is_unknown)
{
    const char *extra[] = {"HVD_SIM_FAIL=disk.create=1", "HVD_SIM_CRASH=vm.delete=1:before", "HVD_MAX_ATTEMPTS=2",
                           NULL};
    rh_start(&R, "aether-v", extra);
    HvdNode *job = rh_job("full-windows.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    const HvdNode *b = env->body;
    cr_assert_str_eq(wp_str(b, "code"), "agent_error", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(b, "status"), "partial", "the VM may be left");
    const char *msg = wp_str(b, "message");
    cr_assert(msg && strstr(msg, "outcome of vm.delete is unknown") && strstr(msg, wp_job_vm_name(job)) &&
                  strstr(msg, "hv01.lab.example"),
              "the envelope says the delete's outcome is unknown and what to check: %s", msg);
    cr_assert_str_eq(wp_str(stage(env, "vm.create"), "status"), "succeeded", "not rolled back");
    cr_assert_eq(rh_effects(&R, "vm.delete", NULL), 0);
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* vm.delete deleted the VM but its answer was lost: sent again, "VM not
 * found" means it is gone, and the rollback is complete. */
Test(realhost, rollback_whose_first_delete_answer_was_lost)
{
    HvdNode *job = rh_job("full-windows.json");
    char tmp[] = "/tmp/hvd-it-seed-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    unsigned seed = rh_seed_once("aether-v", "HVD_SIM_CRASH", "vm.delete", "0.5:after", wp_job_id(job), NULL, tmp);
    (void)hvd_it_run("rm -rf '%s'", tmp);
    char seed_env[64];
    snprintf(seed_env, sizeof seed_env, "HVD_SIM_SEED=%u", seed);
    const char *extra[] = {seed_env, "HVD_SIM_FAIL=disk.create=1", "HVD_SIM_CRASH=vm.delete=0.5:after", NULL};
    rh_start(&R, "aether-v", extra);
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "error", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(stage(env, "vm.create"), "status"), "rolled_back");
    cr_assert_eq(rh_effects(&R, "vm.delete", wp_job_vm_name(job)), 1, "one delete");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}
