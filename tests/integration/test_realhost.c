/* Issue 9 through the real worker, broker and database, against
 * hvdeploy-simhost's two flavours (aether-v: Main-NewProtocol.ps1 as it
 * really is; hvdeploy: hvdeploy's host shim). This file: which profile the
 * worker detects (and HVD_AGENT_PROFILE overriding it), a vm.create whose
 * answer is lost (adopted through vm.find, replayed under idempotency, or
 * outcome_unknown against the raw agent — never sent twice), and the
 * host.resources preflight. test_realhost_checks.c has the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static char *host_agents_row(void)
{
    return wp_pg_value(R.w,
                       "SELECT coalesce(agent, '-') || '|' || profile || '|' || array_to_string(capabilities, ',') "
                       "FROM hvdeploy.host_agents WHERE target_host = 'hv01.lab.example'");
}

/* A job of minimal.json (vm.create only) that succeeds; returns its envelope. */
static void run_ok(const char *file, WpMsg *env)
{
    HvdNode *job = rh_job(file);
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    hvd_node_free(job);
}

Test(realhost, aether_v_flavour_is_detected_as_raw)
{
    rh_start(&R, "aether-v", NULL);
    WpMsg env[1];
    run_ok("minimal.json", env);
    char *row = host_agents_row();
    cr_assert_not_null(row, "host_agents has no row for the host");
    /* it answered agent.hello with OPERATION_ERROR: no name, no capabilities */
    cr_assert_str_eq(row, "-|raw|", "host_agents: %s", row);
    char *hosts = rh_ctl(&R, "hosts");
    cr_assert(strstr(hosts, "hv01.lab.example") && strstr(hosts, "PROFILE") && strstr(hosts, " raw"),
              "hvdeployctl hosts shows the raw profile:\n%s", hosts);
    free(hosts);
    free(row);
    wp_msgs_free(env, 1);
}

Test(realhost, hvdeploy_flavour_is_detected_as_hvdeploy)
{
    rh_start(&R, "hvdeploy", NULL);
    WpMsg env[1];
    run_ok("minimal.json", env);
    char *row = host_agents_row();
    cr_assert_not_null(row, "host_agents has no row for the host");
    cr_assert_str_eq(row, "hvdeploy-simhost 1.1|hvdeploy|idempotency,probe,session,output", "host_agents: %s", row);
    char *hosts = rh_ctl(&R, "hosts");
    cr_assert(strstr(hosts, "hvdeploy-simhost 1.1") && strstr(hosts, "idempotency,probe,session,output"),
              "hvdeployctl hosts shows the agent and its capabilities:\n%s", hosts);
    free(hosts);
    free(row);
    wp_msgs_free(env, 1);
}

/* The outcome_unknown evidence every surface must carry: the envelope, the
 * stage row, `hvdeployctl status`, the dead letter; and the one effect. */
static void assert_outcome_unknown(const HvdNode *job, const WpMsg *env, const char *why_part)
{
    const char *id = wp_job_id(job), *name = wp_job_vm_name(job);
    const HvdNode *b = env->body;
    cr_assert_str_eq(wp_str(b, "code"), "outcome_unknown", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(b, "status"), "partial", "a VM may be left behind: partial");
    const char *msg = wp_str(b, "message");
    cr_assert(msg && strstr(msg, "vm.create") && strstr(msg, name) && strstr(msg, "hv01.lab.example") &&
                  strstr(msg, why_part),
              "the message names the stage, the VM, the host and why (%s): %s", why_part, msg);
    const HvdNode *st = wp_env_stage(b, "vm.create");
    cr_assert_not_null(st);
    cr_assert_str_eq(wp_str(st, "status"), "failed");
    cr_assert_eq(wp_int(st, "attempts", -1), 1, "vm.create was sent once");
    /* never re-sent: one vm.create effect for the name, one VM on the host */
    cr_assert_eq(rh_effects(&R, "vm.create", name), 1, "exactly one vm.create effect for %s", name);

    char *args = hvd_xasprintf("status %s", id);
    char *out = rh_ctl(&R, args);
    cr_assert(strstr(out, "status     failed (outcome_unknown)") && strstr(out, why_part),
              "hvdeployctl status shows it:\n%s", out);
    free(out);
    free(args);
    WpMsg d[1];
    rh_dead_letter(&R, id, d);
    cr_assert_str_eq(wp_str(d->body, "code"), "outcome_unknown");
    cr_assert_str_eq(wp_str(d->body, "stage"), "vm.create");
    const char *reason = wp_str(d->body, "reason");
    cr_assert(reason && strstr(reason, name) && strstr(reason, why_part), "dead letter reason: %s", reason);
    cr_assert_str_eq(wp_msg_header(d, "x-hvdeploy-code"), "outcome_unknown");
    wp_msgs_free(d, 1);
}

/* HVD_AGENT_PROFILE=raw on an agent that could probe: the worker neither asks
 * agent.hello nor vm.find; a lost vm.create answer is outcome_unknown. */
Test(realhost, profile_raw_forced_on_the_hvdeploy_flavour)
{
    const char *extra[] = {"HVD_AGENT_PROFILE=raw", "HVD_SIM_CRASH=vm.create=1:after", NULL};
    rh_start(&R, "hvdeploy", extra);
    HvdNode *job = rh_job("minimal.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    assert_outcome_unknown(job, env, "exited");
    char *row = host_agents_row();
    cr_assert_str_eq(row, "-|raw (fixed)|", "a fixed profile is recorded as such, no agent.hello asked: %s", row);
    free(row);
    cr_assert_eq(wp_log_count(R.k, "vm.find answered"), 0, "no vm.find under the raw profile");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* HVD_AGENT_PROFILE=idempotency,probe (the shim per call): vm.create is sent
 * again with its key after a lost answer and replayed without a second
 * effect; out of attempts, vm.find adopts the VM. */
Test(realhost, profile_capability_list_resends_with_the_key)
{
    const char *extra[] = {"HVD_AGENT_PROFILE=idempotency,probe", "HVD_SIM_CRASH=vm.create=1:after",
                           "HVD_MAX_ATTEMPTS=2", NULL};
    rh_start(&R, "hvdeploy", extra);
    HvdNode *job = rh_job("minimal.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    const HvdNode *st = wp_env_stage(env->body, "vm.create");
    cr_assert_eq(wp_int(st, "attempts", -1), 2, "sent again with the same key");
    cr_assert_eq(rh_effects(&R, "vm.create", wp_job_vm_name(job)), 1, "the repeat made nothing");
    cr_assert(!rh_has_session(&R), "no session: the list does not name it");
    char *row = host_agents_row();
    cr_assert_str_eq(row, "-|partial (fixed)|idempotency,probe", "host_agents: %s", row);
    free(row);
    char *hosts = rh_ctl(&R, "hosts");
    cr_assert(strstr(hosts, "partial (fixed)") && strstr(hosts, "idempotency,probe"), "hvdeployctl hosts:\n%s", hosts);
    free(hosts);
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* The default against the shim (auto: hvdeploy, through a session): the
 * session dies after vm.create made its VM; the call is sent again with its
 * key and nothing is made twice. */
Test(realhost, auto_profile_session_lost_after_the_effect)
{
    const char *extra[] = {"HVD_SIM_CRASH=vm.create=1:after", "HVD_MAX_ATTEMPTS=2", NULL};
    rh_start(&R, "hvdeploy", extra);
    HvdNode *job = rh_job("minimal.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    cr_assert_str_eq(wp_str(env->body, "status"), "success", "%s", wp_log_tail(R.k));
    cr_assert_geq(wp_int(wp_env_stage(env->body, "vm.create"), "attempts", -1), 2, "sent again after the lost session");
    cr_assert_eq(rh_effects(&R, "vm.create", wp_job_vm_name(job)), 1, "nothing made twice");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* The adopt path (§6a): an agent with vm.find but no idempotency; vm.create
 * made its VM but the answer was lost. */
static void adopt_case(const char *const *extra)
{
    rh_start(&R, "hvdeploy", extra);
    HvdNode *job = rh_job("minimal.json");
    const char *id = wp_job_id(job), *name = wp_job_vm_name(job);
    WpMsg env[1];
    rh_run(&R, job, env);
    const HvdNode *b = env->body;
    cr_assert_str_eq(wp_str(b, "status"), "success", "%s", wp_log_tail(R.k));
    const HvdNode *st = wp_env_stage(b, "vm.create");
    cr_assert_str_eq(wp_str(st, "status"), "succeeded");
    cr_assert_eq(wp_int(st, "attempts", -1), 1, "adopted, not sent again");
    cr_assert_eq(rh_effects(&R, "vm.create", name), 1, "exactly one vm.create effect for %s", name);
    /* the adopted VM is the one the host made */
    const char *vm_id = wp_str(hvd_node_get(b, "data"), "vm_id");
    cr_assert_not_null(vm_id);
    char *vms = hvd_it_run_output("grep -c '\"%s\"' '%s/hv01.lab.example/effects.jsonl'", vm_id, R.w->sim_dir);
    cr_assert_eq(atoi(vms), 1, "the envelope's vm_id %s is the effect's", vm_id);
    free(vms);
    WpMsg ev[RH_MAX_EVENTS];
    size_t n = rh_events(&R, id, ev, RH_MAX_EVENTS);
    const HvdNode *adopted = rh_event_find(ev, n, "vm.create", "succeeded", "Adopted VM");
    cr_assert_not_null(adopted, "an event says the VM was adopted (%zu events)", n);
    cr_assert(strstr(wp_str(adopted, "message"), vm_id), "the adopt event names the VM");
    wp_msgs_free(ev, n);
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

Test(realhost, adopt_via_vm_find_after_a_crash)
{
    const char *extra[] = {"HVD_AGENT_PROFILE=probe", "HVD_SIM_CRASH=vm.create=1:after", NULL};
    adopt_case(extra);
}

Test(realhost, adopt_via_vm_find_after_a_hang_past_the_timeout)
{
    const char *extra[] = {"HVD_AGENT_PROFILE=probe", "HVD_SIM_HANG=vm.create=1:after",
                           "HVD_AGENT_TIMEOUTS=vm.create=2", NULL};
    adopt_case(extra);
}

Test(realhost, outcome_unknown_against_aether_v_after_a_crash)
{
    const char *extra[] = {"HVD_SIM_CRASH=vm.create=1:after", NULL};
    rh_start(&R, "aether-v", extra);
    HvdNode *job = rh_job("full-windows.json"); /* on_failure: rollback */
    WpMsg env[1];
    rh_run(&R, job, env);
    assert_outcome_unknown(job, env, "exited");
    /* rollback cannot find the VM safely: it says what to check */
    const char *msg = wp_str(env->body, "message");
    cr_assert(strstr(msg, "Rollback failed") && strstr(msg, "check host hv01.lab.example"), "%s", msg);
    cr_assert_eq(rh_effects(&R, "vm.delete", NULL), 0, "nothing deleted by name");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

Test(realhost, outcome_unknown_against_aether_v_after_a_hang)
{
    const char *extra[] = {"HVD_SIM_HANG=vm.create=1:after", "HVD_AGENT_TIMEOUTS=vm.create=2", NULL};
    rh_start(&R, "aether-v", extra);
    HvdNode *job = rh_job("minimal.json");
    WpMsg env[1];
    rh_run(&R, job, env);
    assert_outcome_unknown(job, env, "2000 ms");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}

/* host.resources lacks the job's storage class, network and image: a
 * validation error naming each field, before any vm.create. */
Test(realhost, preflight_names_what_the_host_lacks)
{
    rh_start(&R, "hvdeploy", NULL);
    HvdNode *job = rh_job("full-windows.json");
    hvd_node_map_set_str(wp_job_at(job, "request.vm_spec"), "storage_class", "gold-nvme");
    hvd_node_map_set_str(wp_job_at(job, "request.nic_spec"), "network", "Backup-Net");
    hvd_node_map_set_str(wp_job_at(job, "request.disk_spec"), "image_name", "Windows 3.11");
    WpMsg env[1];
    rh_run(&R, job, env);
    const HvdNode *b = env->body;
    cr_assert_str_eq(wp_str(b, "code"), "validation_error", "%s", wp_log_tail(R.k));
    cr_assert_str_eq(wp_str(b, "status"), "error", "nothing was made");
    const HvdNode *errs = hvd_node_get(b, "errors");
    cr_assert(errs && errs->type == HVD_ARRAY && errs->u.arr.n == 3, "three errors");
    static const char *const want[][2] = {{"request.vm_spec.storage_class", "gold-nvme"},
                                          {"request.disk_spec.image_name", "Windows 3.11"},
                                          {"request.nic_spec.network", "Backup-Net"}};
    for (size_t i = 0; i < 3; i++) {
        bool seen = false;
        for (size_t k = 0; k < errs->u.arr.n; k++) {
            const HvdNode *e = errs->u.arr.items[k];
            const char *loc = wp_str(e, "loc"), *msg = wp_str(e, "msg");
            if (!loc || strcmp(loc, want[i][0]) != 0) continue;
            seen = true;
            cr_assert_str_eq(wp_str(e, "type"), "host_resource_missing");
            cr_assert(msg && strstr(msg, want[i][1]), "%s: %s", loc, msg);
        }
        cr_assert(seen, "an error at %s", want[i][0]);
    }
    cr_assert_eq(rh_effects(&R, "vm.create", NULL), 0, "no vm.create was sent");
    const HvdNode *st = wp_env_stage(b, "vm.create");
    cr_assert_eq(wp_int(st, "attempts", -1), 0, "vm.create never ran");
    wp_msgs_free(env, 1);
    hvd_node_free(job);
}
