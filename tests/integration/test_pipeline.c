/* Integration tests of the whole pipeline (issue 4) against the private RabbitMQ and
 * PostgreSQL: real hvdeploy-worker processes with the simhost as their agent, jobs
 * published as upstream would, envelopes checked field by field against contract §4,
 * the database against §8, and secrets looked for everywhere they must not be. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include <unistd.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "model.h"
#include "worker_proc.h"
/* CMake links integration tests with harness.c only: the helper is compiled in here.
 * Define HVD_IT_WORKER_PROC_LINKED when it is linked as its own object instead. */
#ifndef HVD_IT_WORKER_PROC_LINKED
#include "worker_proc.c"
#endif

#define ENVELOPE_WAIT_MS 30000

static WpWorld *W;

static void fini(void)
{
    wp_world_free(W);
    W = NULL;
}

TestSuite(pipeline, .fini = fini, .timeout = 120);

/* ---- helpers ---- */

static WpWorker *start_worker(const WpOptions *o)
{
    WpWorker *k = wp_start(W, o);
    cr_assert(wp_wait_ready(k, 30000), "worker %s did not start (exit %d); its log:\n%s", wp_name(k),
              wp_wait_exit(k, 0), wp_log_tail(k));
    return k;
}

/* One message from queue, or a failure naming the worker's log. */
static void one_envelope(const char *queue, WpWorker *k, WpMsg *m, const char *what)
{
    size_t got = wp_collect(W->broker, queue, 1, ENVELOPE_WAIT_MS, m);
    cr_assert_eq(got, 1, "no envelope for %s on %s within %d ms; worker log:\n%s", what, queue, ENVELOPE_WAIT_MS,
                 k ? wp_log_tail(k) : "(none)");
    cr_assert_not_null(m->body, "the envelope for %s is not decodable as %s", what,
                       m->d.content_type ? m->d.content_type : "(no content type)");
}

static bool is_rfc3339_utc(const char *s, int64_t *ms)
{
    int64_t v = 0;
    if (!s || !hvd_time_parse_rfc3339(s, &v)) return false;
    size_t n = strlen(s);
    if (n == 0 || s[n - 1] != 'Z') return false;
    if (ms) *ms = v;
    return true;
}

static bool is_uuid(const char *s)
{
    return s && hvd_uuid_valid(s, strlen(s));
}

static const char *const ENVELOPE_KEYS[] = {"job_id", "correlation_id", "job_type",   "status",
                                            "code",   "message",        "data",       "stages",
                                            "errors", "attempts",       "created_at", "finished_at"};
#define N_ENVELOPE_KEYS (sizeof ENVELOPE_KEYS / sizeof *ENVELOPE_KEYS)

/* Every key of §4 is present, and no other. */
static void check_envelope_keys(const HvdNode *env)
{
    cr_assert_eq(env->type, HVD_MAP, "the envelope is not a map");
    for (size_t i = 0; i < N_ENVELOPE_KEYS; i++)
        cr_assert_not_null(hvd_node_get(env, ENVELOPE_KEYS[i]), "the envelope has no '%s' key", ENVELOPE_KEYS[i]);
    cr_assert_eq(env->u.map.n, N_ENVELOPE_KEYS, "the envelope has %zu keys, §4 has %zu", env->u.map.n, N_ENVELOPE_KEYS);
}

/* A sorted, comma-joined copy of an array of strings (caller frees). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *sorted_names(const HvdNode *arr)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    if (!arr || arr->type != HVD_ARRAY) return hvd_buf_steal(&b);
    const char **v = hvd_xcalloc(arr->u.arr.n + 1, sizeof *v);
    for (size_t i = 0; i < arr->u.arr.n; i++)
        v[i] = arr->u.arr.items[i]->type == HVD_STR ? arr->u.arr.items[i]->u.s.ptr : "?";
    qsort(v, arr->u.arr.n, sizeof *v, cmp_str);
    for (size_t i = 0; i < arr->u.arr.n; i++) hvd_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    free(v);
    return hvd_buf_steal(&b);
}

static char *sorted_csv(const char *csv)
{
    HvdNode *arr = hvd_node_array();
    char *copy = hvd_xstrdup(csv);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        hvd_node_array_push(arr, hvd_node_str(t));
    free(copy);
    char *s = sorted_names(arr);
    hvd_node_free(arr);
    return s;
}

typedef struct {
    const char *content_type;   /* expected AMQP content type */
    const char *correlation_id; /* expected (NULL = the job id) */
    const char *stages;         /* "vm.create,disk.create,..." */
    const char *os_family;
    const char *adapter_name; /* expected data.adapter_name when a NIC is made (NULL = any) */
    const char *guest_keys;   /* expected guest_config_keys as a csv (any order), NULL = none */
} Expect;

/* A success envelope for job, checked field by field against §4. */
static void check_success(const WpMsg *m, const HvdNode *job, const Expect *x)
{
    const char *id = wp_job_id(job);
    const char *corr = x->correlation_id ? x->correlation_id : id;
    /* AMQP properties */
    cr_assert_str_eq(m->d.content_type ? m->d.content_type : "(none)", x->content_type, "content type");
    cr_assert_str_eq(m->d.message_id ? m->d.message_id : "(none)", id, "message_id property = job id");
    cr_assert_str_eq(m->d.correlation_id ? m->d.correlation_id : "(none)", corr, "correlation_id property");
    cr_assert_eq(m->d.delivery_mode, 2, "the envelope is persistent");

    const HvdNode *env = m->body;
    check_envelope_keys(env);
    cr_assert_str_eq(wp_str(env, "job_id"), id);
    cr_assert_str_eq(wp_str(env, "correlation_id"), corr);
    cr_assert_str_eq(wp_str(env, "job_type"), "managed_deployment");
    cr_assert_str_eq(wp_str(env, "status"), "success", "status: %s (code %s): %s", wp_str(env, "status"),
                     wp_str(env, "code") ? wp_str(env, "code") : "nil",
                     wp_str(env, "message") ? wp_str(env, "message") : "?");
    cr_assert(wp_is_nil(env, "code"), "code is nil on success");
    cr_assert(wp_str(env, "message") && *wp_str(env, "message"), "message is one sentence");
    cr_assert_eq(wp_int(env, "attempts", -1), 1, "attempts");
    const HvdNode *errs = hvd_node_get(env, "errors");
    cr_assert(errs && errs->type == HVD_ARRAY && errs->u.arr.n == 0, "errors is []");
    int64_t created = 0, finished = 0;
    cr_assert(is_rfc3339_utc(wp_str(env, "created_at"), &created), "created_at: %s", wp_str(env, "created_at"));
    cr_assert(is_rfc3339_utc(wp_str(env, "finished_at"), &finished), "finished_at: %s", wp_str(env, "finished_at"));
    cr_assert_leq(created, finished, "created_at <= finished_at");

    /* data */
    const HvdNode *data = hvd_node_get(env, "data");
    cr_assert(data && data->type == HVD_MAP, "data is a map");
    bool disk = strstr(x->stages, "disk.create") != NULL;
    bool nic = strstr(x->stages, "nic.create") != NULL;
    bool guest = strstr(x->stages, "vm.initialize") != NULL;
    cr_assert(is_uuid(wp_str(data, "vm_id")), "data.vm_id is a GUID: %s", wp_str(data, "vm_id"));
    cr_assert_str_eq(wp_str(data, "vm_name"), wp_job_vm_name(job));
    cr_assert_str_eq(wp_str(data, "target_host"), wp_job_host(job));
    cr_assert_str_eq(wp_str(data, "os_family"), x->os_family);
    size_t want_keys = 4;
    if (disk) {
        cr_assert(wp_str(data, "disk_id") && *wp_str(data, "disk_id"), "data.disk_id");
        cr_assert(wp_str(data, "disk_path") && *wp_str(data, "disk_path"), "data.disk_path");
        want_keys += 2;
    } else {
        cr_assert_null(hvd_node_get(data, "disk_id"), "no disk, no data.disk_id");
        cr_assert_null(hvd_node_get(data, "disk_path"), "no disk, no data.disk_path");
    }
    if (nic) {
        cr_assert(wp_str(data, "nic_id") && *wp_str(data, "nic_id"), "data.nic_id");
        cr_assert(wp_str(data, "adapter_name") && *wp_str(data, "adapter_name"), "data.adapter_name");
        if (x->adapter_name) cr_assert_str_eq(wp_str(data, "adapter_name"), x->adapter_name);
        const char *mac = wp_str(data, "mac_address");
        cr_assert(mac && strlen(mac) >= 12, "data.mac_address: %s", mac ? mac : "(none)");
        want_keys += 3;
    } else {
        cr_assert_null(hvd_node_get(data, "nic_id"), "no NIC, no data.nic_id");
        cr_assert_null(hvd_node_get(data, "mac_address"), "no NIC, no data.mac_address");
    }
    if (guest) {
        char *got = sorted_names(hvd_node_get(data, "guest_config_keys"));
        char *want = sorted_csv(x->guest_keys);
        cr_assert_str_eq(got, want, "data.guest_config_keys (names only, §7)");
        free(got);
        free(want);
        want_keys += 1;
    } else {
        cr_assert_null(hvd_node_get(data, "guest_config_keys"), "no guest config, no data.guest_config_keys");
    }
    cr_assert_eq(data->u.map.n, want_keys, "data has %zu keys, expected %zu (only those that exist)", data->u.map.n,
                 want_keys);

    /* stages */
    char *names = wp_env_stage_names(env);
    cr_assert_str_eq(names, x->stages, "the planned stages in order");
    free(names);
    const HvdNode *stages = hvd_node_get(env, "stages");
    int64_t prev_end = created;
    static const char *const stage_keys[] = {"name",        "status",  "attempts", "started_at",
                                             "finished_at", "message", "code",     "agent_code"};
    for (size_t i = 0; i < stages->u.arr.n; i++) {
        const HvdNode *s = stages->u.arr.items[i];
        const char *name = wp_str(s, "name");
        for (size_t k = 0; k < sizeof stage_keys / sizeof *stage_keys; k++)
            cr_assert_not_null(hvd_node_get(s, stage_keys[k]), "stage %s has no '%s'", name, stage_keys[k]);
        cr_assert_eq(s->u.map.n, sizeof stage_keys / sizeof *stage_keys, "stage %s has extra keys", name);
        cr_assert_str_eq(wp_str(s, "status"), "succeeded", "stage %s", name);
        cr_assert_eq(wp_int(s, "attempts", -1), 1, "stage %s attempts", name);
        int64_t a = 0, b = 0;
        cr_assert(is_rfc3339_utc(wp_str(s, "started_at"), &a), "stage %s started_at: %s", name,
                  wp_str(s, "started_at"));
        cr_assert(is_rfc3339_utc(wp_str(s, "finished_at"), &b), "stage %s finished_at: %s", name,
                  wp_str(s, "finished_at"));
        cr_assert_leq(a, b, "stage %s: started_at <= finished_at", name);
        cr_assert_geq(a + 1000, prev_end, "stage %s starts after the previous one ended", name);
        prev_end = b;
        cr_assert(wp_is_nil(s, "code"), "stage %s code is nil", name);
        cr_assert(wp_is_nil(s, "agent_code"), "stage %s agent_code is nil", name);
    }
    cr_assert_leq(prev_end, finished + 1000, "the last stage ends before the job");
}

static const char *const WINDOWS_GUEST_KEYS = "guest_la_uid,guest_la_pw,guest_domain_join_target,"
                                              "guest_domain_join_uid,guest_domain_join_pw,guest_domain_join_ou";
static const char *const LINUX_GUEST_KEYS = "guest_la_uid,guest_la_pw,cnf_ansible_ssh_user,cnf_ansible_ssh_key,"
                                            "guest_v4_ip_addr,guest_v4_cidr_prefix,guest_v4_default_gw,"
                                            "guest_v4_dns1,guest_v4_dns2,guest_net_dns_suffix";

/* linux-static-ip.json carries a deadline that may be in the past by now. */
static HvdNode *linux_job(const char *host)
{
    HvdNode *job = wp_job_load("linux-static-ip.json", host);
    HvdNode *opts = hvd_node_get_mut(job, "options");
    if (opts) hvd_node_map_set_str(opts, "deadline", "2099-01-01T00:00:00Z");
    return job;
}

/* The stored envelope's bytes as hex (from the jobs row). */
static char *stored_envelope_hex(const char *job_id)
{
    return wp_pg_value(W, "SELECT encode(envelope, 'hex') FROM hvdeploy.jobs WHERE job_id = '%s'", job_id);
}

static char *hex_of(const void *p, size_t n)
{
    char *out = hvd_xmalloc(n * 2 + 1);
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
    out[2 * n] = '\0';
    return out;
}

/* The job's row says it ended as status, with exactly the bytes that were received,
 * and that the envelope was marked sent (confirmed) within a few seconds. */
static void check_stored(const char *job_id, const char *status, const WpMsg *m)
{
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s'", job_id), 1,
                 "one jobs row for %s", job_id);
    char *st = wp_pg_value(W, "SELECT status FROM hvdeploy.jobs WHERE job_id = '%s'", job_id);
    cr_assert_str_eq(st, status, "jobs.status of %s", job_id);
    free(st);
    char *want = hex_of(m->d.body, m->d.len);
    char *got = stored_envelope_hex(job_id);
    cr_assert_str_eq(got, want, "jobs.envelope holds the published envelope byte for byte");
    free(got);
    free(want);
    long sent = 0;
    for (long long until = hvd_it_now_ms() + 10000; hvd_it_now_ms() < until; usleep(100 * 1000)) {
        sent = wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s' AND envelope_sent_at IS NOT NULL",
                          job_id);
        if (sent == 1) break;
    }
    cr_assert_eq(sent, 1, "envelope_sent_at is set once the broker confirmed the envelope");
}

static void assert_no_secret(char **secrets, const void *p, size_t n, const char *where);

/* ---- full deployments ---- */

Test(pipeline, full_deployment_msgpack)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    HvdNode *job = wp_job_load("full-windows.json", NULL);
    char q[128], corr[80];
    wp_private_queue(W, q, sizeof q);
    snprintf(corr, sizeof corr, "upstream-corr-%.8s", wp_job_id(job));
    wp_publish_job(W, job,
                   &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q, .correlation_id = corr, .message_id = WP_JOB_ID});
    WpMsg m[1];
    one_envelope(q, k, m, "the msgpack job");
    check_success(m, job,
                  &(Expect){.content_type = "application/msgpack",
                            .correlation_id = corr,
                            .stages = "vm.create,disk.create,nic.create,vm.initialize",
                            .os_family = "windows",
                            .adapter_name = "Primary",
                            .guest_keys = WINDOWS_GUEST_KEYS});
    check_stored(wp_job_id(job), "succeeded", m);
    wp_msgs_free(m, 1);
    WpMsg extra[1];
    cr_assert_eq(wp_drain(W->broker, q, 1, 1500, extra), 0, "exactly one envelope");
    cr_assert_eq(wp_stop(k, 15000), 0, "the worker exits 0 on SIGTERM; log:\n%s", wp_log_tail(k));
    hvd_node_free(job);
}

Test(pipeline, full_deployment_json)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    HvdNode *job = linux_job(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    /* no correlation id and no message_id: the correlation id defaults to the job id */
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q});
    WpMsg m[1];
    one_envelope(q, k, m, "the JSON job");
    cr_assert(m->d.len > 0 && ((const char *)m->d.body)[0] == '{', "a JSON job is answered in JSON");
    check_success(m, job,
                  &(Expect){.content_type = "application/json",
                            .stages = "vm.create,disk.create,nic.create,vm.initialize",
                            .os_family = "linux",
                            .guest_keys = LINUX_GUEST_KEYS});
    check_stored(wp_job_id(job), "succeeded", m);
    wp_msgs_free(m, 1);
    cr_assert_eq(wp_stop(k, 15000), 0, "log:\n%s", wp_log_tail(k));
    hvd_node_free(job);
}

Test(pipeline, subsets_run_only_their_stages)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    /* VM only */
    HvdNode *vm_only = wp_job_load("minimal.json", "hv-sub-a.lab.example");
    /* VM + NIC, explicit linux */
    HvdNode *vm_nic = wp_job_load("minimal.json", "hv-sub-b.lab.example");
    HvdNode *nic = hvd_node_map();
    hvd_node_map_set_str(nic, "network", "Development");
    hvd_node_map_set(hvd_node_get_mut(vm_nic, "request"), "nic_spec", nic);
    hvd_node_map_set_str(wp_job_at(vm_nic, "request.vm_spec"), "os_family", "linux");
    wp_publish_job(W, vm_only, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    wp_publish_job(W, vm_nic, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q});
    WpMsg m[2];
    cr_assert_eq(wp_collect(W->broker, q, 2, ENVELOPE_WAIT_MS, m), 2, "two envelopes; log:\n%s", wp_log_tail(k));
    for (size_t i = 0; i < 2; i++) {
        cr_assert_not_null(m[i].body);
        bool first = strcmp(wp_str(m[i].body, "job_id"), wp_job_id(vm_only)) == 0;
        if (first)
            check_success(
                &m[i], vm_only,
                &(Expect){.content_type = "application/msgpack", .stages = "vm.create", .os_family = "windows"});
        else
            check_success(
                &m[i], vm_nic,
                &(Expect){.content_type = "application/json", .stages = "vm.create,nic.create", .os_family = "linux"});
    }
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = '%s'", wp_job_id(vm_only)), 1);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = '%s'", wp_job_id(vm_nic)), 2);
    wp_msgs_free(m, 2);
    hvd_node_free(vm_only);
    hvd_node_free(vm_nic);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* ---- answers that are not deployments ---- */

Test(pipeline, no_reply_to_goes_to_results_queue)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    HvdNode *job = wp_job_load("minimal.json", NULL);
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK});
    char results[200];
    snprintf(results, sizeof results, "%s.results", W->prefix);
    WpMsg m[1];
    one_envelope(results, k, m, "a job without reply_to");
    check_success(m, job,
                  &(Expect){.content_type = "application/msgpack", .stages = "vm.create", .os_family = "windows"});
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* An error envelope: every key, status error, the code, no stage ran. job_id: the
 * expected one, NIL_ID for nil, NULL for either. */
#define NIL_ID ((const char *)1)
static void check_error(const WpMsg *m, const char *code, const char *job_id, const char *corr, const char *ct)
{
    const HvdNode *env = m->body;
    cr_assert_not_null(env, "the answer is decodable");
    check_envelope_keys(env);
    cr_assert_str_eq(wp_str(env, "status"), "error", "status of a %s answer", code);
    cr_assert_str_eq(wp_str(env, "code") ? wp_str(env, "code") : "nil", code, "code; message: %s",
                     wp_str(env, "message") ? wp_str(env, "message") : "?");
    cr_assert(wp_str(env, "message") && *wp_str(env, "message"), "message");
    if (job_id == NIL_ID) {
        cr_assert(wp_is_nil(env, "job_id"), "job_id is nil when the message had none");
    } else if (job_id) {
        cr_assert_str_eq(wp_str(env, "job_id") ? wp_str(env, "job_id") : "nil", job_id, "job_id echoed");
        cr_assert_str_eq(m->d.message_id ? m->d.message_id : "(none)", job_id, "message_id property");
    }
    if (corr) {
        cr_assert_str_eq(wp_str(env, "correlation_id") ? wp_str(env, "correlation_id") : "nil", corr);
        cr_assert_str_eq(m->d.correlation_id ? m->d.correlation_id : "(none)", corr, "correlation_id property");
    }
    if (ct) cr_assert_str_eq(m->d.content_type ? m->d.content_type : "(none)", ct, "content type");
    const HvdNode *st = hvd_node_get(env, "stages");
    cr_assert(st && st->type == HVD_ARRAY, "stages is a list");
    for (size_t i = 0; i < st->u.arr.n; i++)
        cr_assert_str_eq(wp_str(st->u.arr.items[i], "status"), "not_started", "no stage ran");
    cr_assert(is_rfc3339_utc(wp_str(env, "created_at"), NULL), "created_at");
    cr_assert(is_rfc3339_utc(wp_str(env, "finished_at"), NULL), "finished_at");
    const HvdNode *d = hvd_node_get(env, "data");
    cr_assert(d && d->type == HVD_MAP, "data is a map");
    cr_assert_null(hvd_node_get(d, "vm_id"), "nothing was made");
}

/* The errors of the envelope are exactly those of the validator, in order. */
static void check_errors_equal(const HvdNode *env, const HvdNode *body, const char *message_id)
{
    HvdJob job;
    HvdErrors errs = {0};
    HvdValidateOpts vo = {.message_id = message_id};
    cr_assert_not(hvd_job_validate(body, &vo, &job, &errs), "the body was meant to be invalid");
    const HvdNode *got = hvd_node_get(env, "errors");
    cr_assert(got && got->type == HVD_ARRAY, "errors is a list");
    HvdBuf a = {0}, b = {0};
    hvd_buf_puts(&a, "");
    hvd_buf_puts(&b, "");
    for (size_t i = 0; i < errs.n; i++)
        hvd_buf_printf(&a, "%s|%s|%s\n", errs.items[i].loc, errs.items[i].type, errs.items[i].msg);
    for (size_t i = 0; i < got->u.arr.n; i++) {
        const HvdNode *e = got->u.arr.items[i];
        cr_assert_eq(e->u.map.n, 3, "each error is {loc, msg, type}");
        hvd_buf_printf(&b, "%s|%s|%s\n", wp_str(e, "loc"), wp_str(e, "type"), wp_str(e, "msg"));
    }
    cr_assert_str_eq(b.data, a.data, "every validation error is listed (envelope vs validator)");
    cr_assert_geq(errs.n, 2);
    hvd_buf_free(&a);
    hvd_buf_free(&b);
    hvd_errors_free(&errs);
    hvd_job_free(&job);
}

Test(pipeline, validation_errors_are_all_listed)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);

    /* invalid.json: many errors, and no usable job id */
    HvdNode *bad = NULL;
    char *path = hvd_xasprintf("%s/tests/data/jobs/invalid.json", HVD_SOURCE_DIR);
    char *text = wp_read_file(path);
    cr_assert_eq(hvd_json_to_node(text, strlen(text), 0, &bad, NULL, 0), HVD_DECODE_OK);
    wp_publish_job(W, bad, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q, .correlation_id = "corr-invalid"});
    WpMsg m[1];
    one_envelope(q, k, m, "invalid.json");
    check_error(m, "validation_error", NIL_ID, "corr-invalid", "application/json");
    check_errors_equal(m->body, bad, NULL);
    const HvdNode *errs = hvd_node_get(m->body, "errors");
    cr_assert_geq(errs->u.arr.n, 10, "invalid.json has many errors, got %zu", errs->u.arr.n);
    wp_msgs_free(m, 1);

    /* a valid id and two errors: answered with the id, recorded as failed */
    HvdNode *job = wp_job_load("full-windows.json", NULL);
    hvd_node_map_set_int(wp_job_at(job, "request.vm_spec"), "gb_ram", 513);
    hvd_node_map_set_str(wp_job_at(job, "request.vm_spec"), "cpu_cores", "4");
    hvd_node_map_set_str(wp_job_at(job, "request.guest_config"), "guest_domain_join_ou", "");
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    one_envelope(q, k, m, "an invalid job with an id");
    check_error(m, "validation_error", wp_job_id(job), wp_job_id(job), "application/msgpack");
    check_errors_equal(m->body, job, NULL);
    char *locs = hvd_xstrdup("");
    errs = hvd_node_get(m->body, "errors");
    for (size_t i = 0; i < errs->u.arr.n; i++) {
        char *n = hvd_xasprintf("%s%s;", locs, wp_str(errs->u.arr.items[i], "loc"));
        free(locs);
        locs = n;
    }
    cr_assert(strstr(locs, "request.vm_spec.gb_ram;"), "%s", locs);
    cr_assert(strstr(locs, "request.vm_spec.cpu_cores;"), "%s", locs);
    cr_assert(strstr(locs, "request.guest_config;"), "all-or-none at the group's parent: %s", locs);
    free(locs);
    cr_assert_eq(wp_pg_long(W,
                            "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s' AND status = 'failed' "
                            "AND code = 'validation_error'",
                            wp_job_id(job)),
                 1, "an invalid job with an id is recorded as failed");
    char **secrets = NULL;
    wp_job_secrets(job, &secrets);
    wp_job_secrets(bad, &secrets);
    assert_no_secret(secrets, m->d.body, m->d.len, "the validation envelope");
    char *dump = wp_pg_dump_schema(W);
    cr_assert(strstr(dump, wp_job_vm_name(job)), "the rejected job is recorded");
    assert_no_secret(secrets, dump, strlen(dump), "the database after a rejected job");
    free(dump);
    char *log = wp_log(k);
    assert_no_secret(secrets, log, strlen(log), "the worker's log after rejected jobs");
    free(log);
    wp_strv_free(secrets);
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    hvd_node_free(bad);
    free(text);
    free(path);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* A message that cannot be decoded: answered with code and copied to <prefix>.dead
 * as received, with its reason. */
static void check_dead_copy(const void *body, size_t len, const char *code)
{
    char dead[200];
    snprintf(dead, sizeof dead, "%s.dead", W->prefix);
    WpMsg d[1];
    cr_assert_eq(wp_collect(W->broker, dead, 1, 10000, d), 1, "a copy of the %s message in %s", code, dead);
    cr_assert_eq(d->d.len, len, "the dead letter is the message as received (%zu bytes, sent %zu)", d->d.len, len);
    cr_assert_eq(memcmp(d->d.body, body, len), 0, "the dead letter is the message as received");
    const char *reason = wp_msg_header(d, "x-hvdeploy-reason");
    cr_assert(reason && *reason, "the dead letter carries an x-hvdeploy-reason header");
    wp_msgs_free(d, 1);
}

Test(pipeline, undecodable_is_answered_and_dead_lettered)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128], id[37];
    wp_private_queue(W, q, sizeof q);

    static const unsigned char garbage[] = {0xc1, 0xff, 0x00, 'n', 'o', 't', ' ', 'm', 's', 'g', 'p', 'a', 'c', 'k'};
    wp_uuid(id);
    wp_publish_job(W, NULL,
                   &(WpSend){.ct = HVD_CT_MSGPACK,
                             .raw = garbage,
                             .raw_len = sizeof garbage,
                             .reply_to = q,
                             .correlation_id = "corr-garbage",
                             .message_id = id});
    WpMsg m[1];
    one_envelope(q, k, m, "an undecodable msgpack body");
    check_error(m, "malformed_message", NULL, "corr-garbage", "application/msgpack");
    /* job_id may be nil or the message_id: both are allowed by §4 */
    const char *jid = wp_str(m->body, "job_id");
    cr_assert(!jid || strcmp(jid, id) == 0, "job_id is nil or the message id: %s", jid);
    wp_msgs_free(m, 1);
    check_dead_copy(garbage, sizeof garbage, "malformed_message");

    static const char bad_json[] = "{\"job_id\": \"x\", \"request\": {";
    wp_publish_job(W, NULL,
                   &(WpSend){.ct = HVD_CT_JSON,
                             .raw = bad_json,
                             .raw_len = strlen(bad_json),
                             .reply_to = q,
                             .correlation_id = "corr-bad-json"});
    one_envelope(q, k, m, "a truncated JSON body");
    check_error(m, "malformed_message", NIL_ID, "corr-bad-json", "application/json");
    wp_msgs_free(m, 1);
    check_dead_copy(bad_json, strlen(bad_json), "malformed_message");
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(pipeline, unsupported_job_type)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *job = wp_job_load("minimal.json", NULL);
    hvd_node_map_set_str(job, "job_type", "other");
    /* routing key managed_deployment: it reaches the queue anyway */
    wp_publish_job(W, job, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q, .message_id = WP_JOB_ID});
    WpMsg m[1];
    one_envelope(q, k, m, "a job of type 'other'");
    check_error(m, "unsupported_job_type", wp_job_id(job), wp_job_id(job), "application/msgpack");
    cr_assert_str_eq(wp_str(m->body, "job_type") ? wp_str(m->body, "job_type") : "nil", "other", "job_type echoed");
    const HvdNode *errs = hvd_node_get(m->body, "errors");
    bool at_job_type = false;
    for (size_t i = 0; errs && i < errs->u.arr.n; i++)
        if (wp_str(errs->u.arr.items[i], "loc") && strcmp(wp_str(errs->u.arr.items[i], "loc"), "job_type") == 0)
            at_job_type = true;
    cr_assert(at_job_type, "an error at loc job_type");
    wp_msgs_free(m, 1);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(pipeline, unsupported_content_type)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *job = wp_job_load("minimal.json", NULL);
    HvdBuf sent = {0};
    wp_publish_job(
        W, job,
        &(WpSend){
            .ct = HVD_CT_JSON, .content_type = "text/plain", .reply_to = q, .message_id = WP_JOB_ID, .sent = &sent});
    WpMsg m[1];
    one_envelope(q, k, m, "a text/plain body");
    check_error(m, "unsupported_content_type", NULL, NULL, NULL);
    wp_msgs_free(m, 1);
    check_dead_copy(sent.data, sent.len, "unsupported_content_type");
    cr_assert_eq(wp_effects_count(W, wp_job_host(job)), 0, "nothing ran");
    hvd_buf_free(&sent);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

Test(pipeline, duplicate_vm_name_on_one_host)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(&(WpOptions){.sim_latency_ms = "vm.create=2000"});
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *first = wp_job_load("minimal.json", "hv-dup.lab.example");
    HvdNode *second = wp_job_load("minimal.json", "hv-dup.lab.example");
    HvdNode *other_host = wp_job_load("minimal.json", "hv-dup2.lab.example");
    hvd_node_map_set_str(wp_job_at(second, "request.vm_spec"), "vm_name", wp_job_vm_name(first));
    hvd_node_map_set_str(wp_job_at(other_host, "request.vm_spec"), "vm_name", wp_job_vm_name(first));
    wp_publish_job(W, first, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    cr_assert(wp_wait_job_status(W, wp_job_id(first), "running", 20000), "the first job runs; log:\n%s",
              wp_log_tail(k));
    wp_publish_job(W, second, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    wp_publish_job(W, other_host, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});

    WpMsg m[3];
    cr_assert_eq(wp_collect(W->broker, q, 3, ENVELOPE_WAIT_MS, m), 3, "three envelopes; log:\n%s", wp_log_tail(k));
    /* the duplicate is answered first: the others wait 2 s in vm.create */
    cr_assert_str_eq(wp_str(m[0].body, "job_id"), wp_job_id(second), "the duplicate is answered at once");
    check_error(&m[0], "duplicate_vm_name", wp_job_id(second), wp_job_id(second), "application/msgpack");
    for (size_t i = 1; i < 3; i++) {
        const char *id = wp_str(m[i].body, "job_id");
        const HvdNode *job = strcmp(id, wp_job_id(first)) == 0 ? first : other_host;
        check_success(&m[i], job,
                      &(Expect){.content_type = "application/msgpack", .stages = "vm.create", .os_family = "windows"});
    }
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s' AND code = 'duplicate_vm_name'",
                            wp_job_id(second)),
                 1, "the duplicate is recorded with its code");
    wp_msgs_free(m, 3);
    hvd_node_free(first);
    hvd_node_free(second);
    hvd_node_free(other_host);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* ---- the same job again ---- */

Test(pipeline, finished_job_sent_again_gets_the_same_envelope)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(NULL);
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *job = wp_job_load("full-windows.json", NULL);
    const char *host = wp_job_host(job);
    WpSend send = {.ct = HVD_CT_JSON, .reply_to = q, .message_id = WP_JOB_ID, .correlation_id = "corr-again"};
    wp_publish_job(W, job, &send);
    WpMsg a[1], b[1];
    one_envelope(q, k, a, "the first run");
    check_success(a, job,
                  &(Expect){.content_type = "application/json",
                            .correlation_id = "corr-again",
                            .stages = "vm.create,disk.create,nic.create,vm.initialize",
                            .os_family = "windows",
                            .adapter_name = "Primary",
                            .guest_keys = WINDOWS_GUEST_KEYS});
    size_t effects = wp_effects_count(W, host);
    cr_assert_eq(effects, 4, "four effects after the first run (one per stage), got %zu", effects);

    wp_publish_job(W, job, &send);
    one_envelope(q, k, b, "the same message again");
    cr_assert_eq(b->d.len, a->d.len, "the same envelope size (%zu vs %zu)", b->d.len, a->d.len);
    cr_assert_eq(memcmp(a->d.body, b->d.body, a->d.len), 0, "the stored envelope, byte for byte");
    cr_assert_str_eq(b->d.message_id, a->d.message_id);
    cr_assert_str_eq(b->d.correlation_id, a->d.correlation_id);
    cr_assert_str_eq(b->d.content_type, a->d.content_type);
    WpMsg extra[1];
    cr_assert_eq(wp_drain(W->broker, q, 1, 2000, extra), 0, "one envelope per message");
    cr_assert_eq(wp_effects_count(W, host), effects, "no new effect in effects.jsonl");
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job)), 1);
    cr_assert_eq(wp_pg_long(W, "SELECT attempts FROM hvdeploy.jobs WHERE job_id = '%s'", wp_job_id(job)), 1,
                 "the job did not run again");
    wp_msgs_free(a, 1);
    wp_msgs_free(b, 1);
    hvd_node_free(job);
    cr_assert_eq(wp_stop(k, 15000), 0);
}

/* ---- the database and secrets ---- */

/* The job's events: in time order, each chain (the job's, each stage's) starting from
 * NULL (a stage may start from pending) and continuing where it was, ending in
 * succeeded; the job's own chain is queued > running > succeeded. */
static void check_event_rows(const char *job_id, size_t n_stages)
{
    PGresult *r = wp_pg_query(W,
                              "SELECT coalesce(stage, ''), coalesce(from_status, 'NULL'), to_status, "
                              "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
                              "FROM hvdeploy.job_events WHERE job_id = '%s' ORDER BY id",
                              job_id);
    int n = PQntuples(r);
    cr_assert_gt(n, 0, "job %s has events", job_id);
    HvdBuf job_chain = {0};
    hvd_buf_puts(&job_chain, "");
    char stages_seen[8][24] = {{0}};
    size_t n_seen = 0;
    for (int i = 0; i < n; i++) {
        const char *stage = PQgetvalue(r, i, 0), *from = PQgetvalue(r, i, 1), *to = PQgetvalue(r, i, 2);
        if (i > 0)
            cr_assert_geq(strcmp(PQgetvalue(r, i, 3), PQgetvalue(r, i - 1, 3)), 0,
                          "job_events of %s are in time order (row %d at %s after %s)", job_id, i, PQgetvalue(r, i, 3),
                          PQgetvalue(r, i - 1, 3));
        const char *prev = NULL;
        for (int k = i - 1; k >= 0 && !prev; k--)
            if (strcmp(PQgetvalue(r, k, 0), stage) == 0) prev = PQgetvalue(r, k, 2);
        if (!prev)
            cr_assert(strcmp(from, "NULL") == 0 || (*stage && strcmp(from, "pending") == 0),
                      "the first event of %s '%s' starts from NULL%s, not %s", job_id, *stage ? stage : "(job)",
                      *stage ? " or pending" : "", from);
        else
            cr_assert_str_eq(from, prev, "%s '%s' event %d: from %s but the chain was at %s (a gap)", job_id,
                             *stage ? stage : "(job)", i, from, prev);
        if (!*stage) {
            hvd_buf_printf(&job_chain, "%s%s", job_chain.len ? ">" : "", to);
        } else {
            size_t s = 0;
            while (s < n_seen && strcmp(stages_seen[s], stage) != 0) s++;
            if (s == n_seen && n_seen < 8) snprintf(stages_seen[n_seen++], sizeof stages_seen[0], "%s", stage);
        }
    }
    cr_assert_str_eq(job_chain.data, "queued>running>succeeded", "the job's own transitions");
    cr_assert_eq(n_seen, n_stages, "every stage has events");
    for (size_t s = 0; s < n_seen; s++) {
        HvdBuf chain = {0};
        hvd_buf_puts(&chain, "");
        for (int i = 0; i < n; i++)
            if (strcmp(PQgetvalue(r, i, 0), stages_seen[s]) == 0)
                hvd_buf_printf(&chain, "%s%s", chain.len ? ">" : "", PQgetvalue(r, i, 2));
        const char *c = chain.data;
        if (strncmp(c, "pending>", 8) == 0) c += 8;
        cr_assert_str_eq(c, "running>succeeded", "stage %s of %s", stages_seen[s], job_id);
        hvd_buf_free(&chain);
    }
    hvd_buf_free(&job_chain);
    PQclear(r);
}

static void check_rows(const HvdNode *job, const char *stages_csv, size_t n_stages)
{
    const char *id = wp_job_id(job);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s'", id), 1, "one jobs row");
    char *v = wp_pg_value(W,
                          "SELECT status || '|' || job_type || '|' || target_host || '|' || vm_name || '|' || attempts "
                          "|| '|' || (finished_at IS NOT NULL) || '|' || coalesce(code, 'nil') "
                          "FROM hvdeploy.jobs WHERE job_id = '%s'",
                          id);
    char *want = hvd_xasprintf("succeeded|managed_deployment|%s|%s|1|true|nil", wp_job_host(job), wp_job_vm_name(job));
    cr_assert_str_eq(v, want, "the jobs row");
    free(v);
    free(want);
    v = wp_pg_value(W, "SELECT string_agg(stage, ',' ORDER BY position) FROM hvdeploy.job_stages WHERE job_id = '%s'",
                    id);
    cr_assert_str_eq(v, stages_csv, "one job_stages row per planned stage, in order");
    free(v);
    cr_assert_eq(wp_pg_long(W,
                            "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = '%s' AND status = "
                            "'succeeded' AND attempts = 1 AND started_at IS NOT NULL AND finished_at >= started_at",
                            id),
                 (long)n_stages, "every stage row succeeded once, with times");
    check_event_rows(id, n_stages);
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.job_secrets WHERE job_id = '%s'", id), 0,
                 "the secrets are erased once vm.initialize succeeded (§8)");
}

static void assert_no_secret(char **secrets, const void *p, size_t n, const char *where)
{
    for (size_t i = 0; secrets[i]; i++)
        cr_assert_not(wp_contains(p, n, secrets[i]), "secret #%zu (of tests/data/secrets.txt or the job) found in %s",
                      i, where);
}

Test(pipeline, database_rows_events_and_no_secret_anywhere)
{
    W = wp_world_new(NULL);
    WpWorker *k = start_worker(&(WpOptions){.log_level = "debug"});
    char q[128], tap[128];
    wp_private_queue(W, q, sizeof q);
    wp_events_tap(W, tap, sizeof tap);
    HvdNode *win = wp_job_load("full-windows.json", "hv-sec-a.lab.example");
    HvdNode *lin = linux_job("hv-sec-b.lab.example");
    char **secrets = NULL;
    wp_job_secrets(win, &secrets);
    wp_job_secrets(lin, &secrets);
    wp_publish_job(W, win, &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    wp_publish_job(W, lin, &(WpSend){.ct = HVD_CT_JSON, .reply_to = q});
    WpMsg m[2];
    cr_assert_eq(wp_collect(W->broker, q, 2, ENVELOPE_WAIT_MS, m), 2, "two envelopes; log:\n%s", wp_log_tail(k));
    for (size_t i = 0; i < 2; i++) {
        cr_assert_str_eq(wp_str(m[i].body, "status"), "success", "%s", wp_str(m[i].body, "message"));
        assert_no_secret(secrets, m[i].d.body, m[i].d.len, "an envelope");
    }

    /* events: read until both jobs' job.succeeded arrived, then a little more */
    WpMsg ev[128];
    size_t n_ev = 0, done = 0;
    long long until = hvd_it_now_ms() + 10000;
    while (done < 2 && n_ev < 128 && hvd_it_now_ms() < until) {
        if (wp_collect(W->broker, tap, 1, 1000, &ev[n_ev]) != 1) continue;
        if (ev[n_ev].d.routing_key && strcmp(ev[n_ev].d.routing_key, "job.succeeded") == 0) done++;
        n_ev++;
    }
    n_ev += wp_drain(W->broker, tap, 128 - n_ev, 500, &ev[n_ev]);
    cr_assert_eq(done, 2, "a job.succeeded event for each job (%zu events seen)", n_ev);
    int queued_events = 0;
    for (size_t j = 0; j < 2; j++) {
        const HvdNode *job = j == 0 ? win : lin;
        const char *ct = j == 0 ? "application/msgpack" : "application/json";
        /* this job's events: in the database's order, every transition at least from running on */
        PGresult *r = wp_pg_query(W,
                                  "SELECT CASE WHEN stage IS NULL THEN 'job.' || to_status ELSE 'stage.' || stage "
                                  "|| '.' || to_status END FROM hvdeploy.job_events WHERE job_id = '%s' ORDER BY id",
                                  wp_job_id(job));
        HvdBuf want = {0}, got = {0};
        hvd_buf_puts(&want, "");
        hvd_buf_puts(&got, "");
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, 0), "job.queued") != 0 && !strstr(PQgetvalue(r, i, 0), ".pending"))
                hvd_buf_printf(&want, "%s ", PQgetvalue(r, i, 0));
        PQclear(r);
        for (size_t i = 0; i < n_ev; i++) {
            const HvdNode *b = ev[i].body;
            cr_assert_not_null(b, "an event is decodable in its content type");
            if (!wp_str(b, "job_id") || strcmp(wp_str(b, "job_id"), wp_job_id(job)) != 0) continue;
            const char *rk0 = ev[i].d.routing_key ? ev[i].d.routing_key : "";
            size_t rkl = strlen(rk0);
            if (rkl > 7 && strcmp(rk0 + rkl - 7, ".output") == 0) continue; /* live output: its own shape (§5 v1.1) */
            cr_assert_str_eq(ev[i].d.content_type ? ev[i].d.content_type : "(none)", ct,
                             "events in the job's content type");
            static const char *const keys[] = {"job_id", "correlation_id", "stage", "status", "attempt",
                                               "at",     "message"};
            for (size_t kk = 0; kk < 7; kk++)
                cr_assert_not_null(hvd_node_get(b, keys[kk]), "event %s has no '%s'", ev[i].d.routing_key, keys[kk]);
            cr_assert(is_rfc3339_utc(wp_str(b, "at"), NULL), "event at: %s", wp_str(b, "at"));
            char rk[128];
            if (wp_str(b, "stage"))
                snprintf(rk, sizeof rk, "stage.%s.%s", wp_str(b, "stage"), wp_str(b, "status"));
            else
                snprintf(rk, sizeof rk, "job.%s", wp_str(b, "status"));
            cr_assert_str_eq(ev[i].d.routing_key, rk, "routing key of an event");
            if (strcmp(rk, "job.queued") == 0) queued_events++;
            if (strcmp(rk, "job.queued") != 0 && !strstr(rk, ".pending")) hvd_buf_printf(&got, "%s ", rk);
        }
        cr_assert_str_eq(got.data, want.data, "the events of job %zu, in order, match its job_events rows", j);
        hvd_buf_free(&want);
        hvd_buf_free(&got);
    }
    /* §5 asks for every transition; the NULL -> queued one is written at claim time. Reported, not asserted. */
    fprintf(stderr, "[pipeline events] %zu events for 2 jobs; job.queued events: %d\n", n_ev, queued_events);
    for (size_t i = 0; i < n_ev; i++) assert_no_secret(secrets, ev[i].d.body, ev[i].d.len, "an event");

    check_rows(win, "vm.create,disk.create,nic.create,vm.initialize", 4);
    check_rows(lin, "vm.create,disk.create,nic.create,vm.initialize", 4);

    char *dump = wp_pg_dump_schema(W);
    cr_assert(strstr(dump, wp_job_vm_name(win)), "the dump covers the jobs table");
    cr_assert(strstr(dump, "Administrator"), "the dump covers the redacted request");
    assert_no_secret(secrets, dump, strlen(dump), "the database (every column of schema hvdeploy)");
    free(dump);
    cr_assert_eq(wp_stop(k, 15000), 0);
    char *log = wp_log(k);
    cr_assert(strstr(log, wp_job_id(win)), "the log mentions the job");
    assert_no_secret(secrets, log, strlen(log), "the worker's log (level debug)");
    free(log);

    wp_msgs_free(m, 2);
    wp_msgs_free(ev, n_ev);
    wp_strv_free(secrets);
    hvd_node_free(win);
    hvd_node_free(lin);
}

/* ---- migrations ---- */

static long count_migration_files(void)
{
    char *dir = hvd_xasprintf("%s/migrations", HVD_SOURCE_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    long n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".sql") == 0 && isdigit((unsigned char)e->d_name[0])) n++;
    }
    closedir(d);
    free(dir);
    return n;
}

/* "applied N migration(s)" in a log: N, or 0. */
static long applied_in_log(WpWorker *k)
{
    char *log = wp_log(k);
    long n = 0;
    for (const char *p = log; (p = strstr(p, "applied ")); p += 8) {
        char *end;
        long v = strtol(p + 8, &end, 10);
        if (end != p + 8 && strncmp(end, " migration", 10) == 0) n += v;
    }
    free(log);
    return n;
}

Test(pipeline, four_workers_migrate_an_empty_database_once)
{
    W = wp_world_new(&(WpWorldOptions){.no_topology = true});
    long files = count_migration_files();
    cr_assert_gt(files, 0);
    WpWorker *k[4];
    /* one job at a time each, and vm.create takes 1 s: the four jobs below need all four */
    for (int i = 0; i < 4; i++)
        k[i] = wp_start(W, &(WpOptions){.concurrency = "1", .sim_latency_ms = "vm.create=1000"});
    for (int i = 0; i < 4; i++)
        cr_assert(wp_wait_ready(k[i], 30000), "worker %d did not start; log:\n%s", i, wp_log_tail(k[i]));
    cr_assert_eq(wp_pg_long(W, "SELECT count(*) FROM hvdeploy.schema_migrations"), files,
                 "one schema_migrations row per migration file");
    cr_assert_eq(wp_pg_long(W, "SELECT count(DISTINCT version) FROM hvdeploy.schema_migrations"), files);
    long applied = 0;
    for (int i = 0; i < 4; i++) applied += applied_in_log(k[i]);
    cr_assert_eq(applied, files, "the four logs together applied each migration once (%ld applied)", applied);
    /* all four run: each takes a job (one per host, concurrency 1 each) */
    char q[128];
    wp_private_queue(W, q, sizeof q);
    HvdNode *jobs[4];
    for (int i = 0; i < 4; i++) {
        char host[64];
        snprintf(host, sizeof host, "hv-mig-%d.lab.example", i);
        jobs[i] = wp_job_load("minimal.json", host);
        wp_publish_job(W, jobs[i], &(WpSend){.ct = HVD_CT_MSGPACK, .reply_to = q});
    }
    WpMsg m[4];
    cr_assert_eq(wp_collect(W->broker, q, 4, ENVELOPE_WAIT_MS, m), 4, "four envelopes");
    for (int i = 0; i < 4; i++) cr_assert_str_eq(wp_str(m[i].body, "status"), "success");
    wp_msgs_free(m, 4);
    cr_assert_eq(wp_pg_long(W, "SELECT count(DISTINCT worker) FROM hvdeploy.job_events WHERE stage IS NULL "
                               "AND to_status = 'running'"),
                 4, "each of the four workers ran a job");
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(wp_stop(k[i], 15000), 0, "worker %d exits 0; log:\n%s", i, wp_log_tail(k[i]));
        hvd_node_free(jobs[i]);
    }
}
