/* Integration tests of `hvdeployctl submit` against a real worker (simhost agent,
 * fresh database, private prefix): human and JSON envelopes, --no-wait, invalid
 * jobs, unknown job types, --follow's stage events, msgpack, timeouts, and a
 * broker that is not there. */
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it_ctl.h"

#define JOBS HVD_SOURCE_DIR "/tests/data/jobs"
#define SECRET1 "S3cret!pw-TEST"
#define SECRET2 "J0in!pw-TEST"

static const char *prefix;
static const char *dsn;
static char *tmp;
static ItWorker worker;

static void base_setup(void)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    prefix = hvd_it_prefix();
    tmp = it_tmpdir("submit");
    setenv("HVD_AMQP_PREFIX", prefix, 1);
}

/* With a worker: a fresh database and the simhost. */
static void setup_worker(void)
{
    base_setup();
    HVD_IT_NEED("HVD_PG_DSN");
    HVD_IT_NEED("HVD_SECRET_KEY_FILE");
    dsn = it_pg_create();
    setenv("HVD_PG_DSN", dsn, 1);
    worker = it_worker_start(prefix, dsn, tmp, NULL);
}

/* Without a worker: only the topology, declared by the test. */
static void setup_topology(void)
{
    base_setup();
    HvdBroker *b = hvd_it_broker("submit topology");
    hvd_it_declare(b, prefix);
    hvd_broker_close(b);
}

static void teardown(void)
{
    if (!prefix) return;
    if (worker.pid > 0) {
        it_worker_stop(&worker);
        if (dsn) it_pg_drop();
    }
    hvd_it_cleanup_prefix(prefix, NULL, 0);
    it_rmtree(tmp);
}

TestSuite(ctl_submit, .fini = teardown, .timeout = 240);

static void assert_no_secrets(const ItCtl *r)
{
    cr_assert_null(strstr(r->out, SECRET1), "a password was printed on stdout");
    cr_assert_null(strstr(r->out, SECRET2), "a password was printed on stdout");
    cr_assert_null(strstr(r->err, SECRET1), "a password was printed on stderr");
    cr_assert_null(strstr(r->err, SECRET2), "a password was printed on stderr");
}

static bool is_uuid4(const char *s)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n?$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* A copy of a sample job without its job_id, in tmp. */
static char *job_without_id(const char *sample, const char *vm_name)
{
    json_error_t e;
    json_t *j = json_load_file(sample, 0, &e);
    cr_assert_not_null(j, "%s: %s", sample, e.text);
    json_object_del(j, "job_id");
    if (vm_name)
        json_object_set_new(json_object_get(json_object_get(j, "request"), "vm_spec"), "vm_name", json_string(vm_name));
    char *path = hvd_xasprintf("%s/job-%lld.json", tmp, hvd_it_now_ms());
    cr_assert_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
    return path;
}

Test(ctl_submit, full_job_human, .init = setup_worker)
{
    ItCtl r = it_ctl(tmp, "submit %s/full-windows.json --timeout 120", JOBS);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "job       6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11"), "no job id line");
    cr_assert(strstr(r.out, "status    success"), "no success status");
    cr_assert_eq(it_count(r.out, " succeeded "), 4, "not 4 succeeded stages:\n%s", r.out);
    for (const char *s = "vm.create\0disk.create\0nic.create\0vm.initialize\0"; *s; s += strlen(s) + 1)
        cr_assert(strstr(r.out, s), "stage %s missing", s);
    cr_assert(strstr(r.out, "vm_id"), "no data.vm_id");
    cr_assert(strstr(r.out, "guest_config_keys"), "no data.guest_config_keys");
    assert_no_secrets(&r);
    it_ctl_free(&r);
}

Test(ctl_submit, full_job_json, .init = setup_worker)
{
    ItCtl r = it_ctl(tmp, "submit %s/full-windows.json --output json --timeout 120", JOBS);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    json_error_t e;
    json_t *env = json_loads(r.out, 0, &e);
    cr_assert_not_null(env, "stdout is not one JSON document: %s\n%s", e.text, r.out);
    cr_assert_str_eq(json_string_value(json_object_get(env, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(env, "job_id")), "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11");
    cr_assert_str_eq(json_string_value(json_object_get(env, "correlation_id")), "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11");
    cr_assert(json_is_null(json_object_get(env, "code")));
    json_t *stages = json_object_get(env, "stages");
    cr_assert_eq(json_array_size(stages), 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(stages, i), "status")), "succeeded");
    cr_assert_eq(json_array_size(json_object_get(env, "errors")), 0);
    assert_no_secrets(&r);
    json_decref(env);
    it_ctl_free(&r);
}

Test(ctl_submit, no_wait_prints_a_new_uuid, .init = setup_worker)
{
    char *path = job_without_id(JOBS "/minimal.json", NULL);
    ItCtl r = it_ctl(tmp, "submit %s --no-wait", path);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    cr_assert(is_uuid4(r.out), "not one UUID v4 line: '%s'", r.out);
    /* the job it names is the one the fleet runs */
    char id[37];
    snprintf(id, sizeof id, "%s", r.out);
    PGconn *c = it_pg_connect(dsn);
    long long deadline = hvd_it_now_ms() + 60000;
    char *status = NULL;
    for (;;) {
        free(status);
        status = it_pg_value(c, "SELECT status FROM hvdeploy.jobs WHERE job_id = $1::uuid", id);
        if (strcmp(status, "succeeded") == 0 || hvd_it_now_ms() > deadline) break;
        usleep(200000);
    }
    cr_assert_str_eq(status, "succeeded");
    free(status);
    PQfinish(c);
    it_ctl_free(&r);
    free(path);
}

Test(ctl_submit, invalid_job_exits_1_with_errors, .init = setup_worker)
{
    ItCtl r = it_ctl(tmp, "submit %s/invalid.json --timeout 60", JOBS);
    cr_assert_eq(r.rc, 1, "exit %d: %s", r.rc, r.err);
    cr_assert(strstr(r.out, "status    error"), "no error status");
    cr_assert(strstr(r.out, "code      validation_error"), "no validation_error code");
    cr_assert(strstr(r.out, "errors:"), "no errors section");
    cr_assert(strstr(r.out, "request.vm_spec.gb_ram:"), "no loc of the gb_ram error");
    cr_assert(strstr(r.out, "request.target_host:"), "no loc of the target_host error");
    assert_no_secrets(&r);
    it_ctl_free(&r);

    r = it_ctl(tmp, "submit %s/invalid.json --timeout 60 --output json", JOBS);
    cr_assert_eq(r.rc, 1);
    json_t *env = json_loads(r.out, 0, NULL);
    cr_assert_not_null(env);
    cr_assert_str_eq(json_string_value(json_object_get(env, "code")), "validation_error");
    cr_assert_gt(json_array_size(json_object_get(env, "errors")), 5);
    json_decref(env);
    it_ctl_free(&r);
}

Test(ctl_submit, unknown_job_type_is_returned, .init = setup_topology)
{
    char *path = hvd_xasprintf("%s/teleport.json", tmp);
    it_write_file(path,
                  "{\"job_type\": \"teleport\", \"request\": {\"guest_config\": {\"guest_la_pw\": \"" SECRET1 "\"}}}");
    ItCtl r = it_ctl(tmp, "submit %s --timeout 10", path);
    cr_assert_eq(r.rc, 1, "exit %d", r.rc);
    cr_assert(strstr(r.err, "no fleet handles job type 'teleport'"), "stderr: %s", r.err);
    assert_no_secrets(&r);
    it_ctl_free(&r);
    free(path);
}

Test(ctl_submit, follow_shows_stage_events_in_order, .init = setup_worker)
{
    ItCtl r = it_ctl(tmp, "submit %s/full-windows.json --follow --timeout 120", JOBS);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    static const char *const want[] = {
        "stage vm.create      running",   "stage vm.create      succeeded",
        "stage disk.create    running",   "stage disk.create    succeeded",
        "stage nic.create     running",   "stage nic.create     succeeded",
        "stage vm.initialize  running",   "stage vm.initialize  succeeded",
        "job                  succeeded", "status    success",
    };
    const char *at = r.out;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *p = strstr(at, want[i]);
        cr_assert_not_null(p, "'%s' missing or out of order in:\n%s", want[i], r.out);
        at = p + strlen(want[i]);
    }
    cr_assert(strstr(r.out, "(attempt 1)"), "events show no attempt");
    assert_no_secrets(&r);
    it_ctl_free(&r);

    /* JSON: one event object per line, the envelope last */
    char *path = job_without_id(JOBS "/full-windows.json", "app-win-02");
    r = it_ctl(tmp, "submit %s --follow --output json --timeout 120", path);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    size_t lines = 0, events = 0;
    json_t *last = NULL;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        json_decref(last);
        last = json_loads(line, 0, NULL);
        cr_assert_not_null(last, "not JSON: %s", line);
        lines++;
        if (json_object_get(last, "stages") == NULL) events++;
    }
    cr_assert_geq(events, 8, "only %zu events", events);
    cr_assert_eq(lines, events + 1);
    cr_assert_str_eq(json_string_value(json_object_get(last, "status")), "success");
    json_decref(last);
    it_ctl_free(&r);
    free(path);
}

Test(ctl_submit, msgpack_job, .init = setup_worker)
{
    ItCtl r = it_ctl(tmp, "submit %s/linux-static-ip.msgpack --msgpack --output json --timeout 120", JOBS);
    cr_assert_eq(r.rc, 0, "exit %d: %s", r.rc, r.err);
    json_t *env = json_loads(r.out, 0, NULL);
    cr_assert_not_null(env, "not JSON: %s", r.out);
    cr_assert_str_eq(json_string_value(json_object_get(env, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(env, "data"), "os_family")), "linux");
    json_decref(env);
    it_ctl_free(&r);
}

Test(ctl_submit, timeout_without_a_worker, .init = setup_topology)
{
    ItCtl r = it_ctl(tmp, "submit %s/minimal.json --timeout 2", JOBS);
    cr_assert_eq(r.rc, 2, "exit %d", r.rc);
    cr_assert(strstr(r.err, "no envelope for job 3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a within 2 s"), "stderr: %s",
              r.err);
    it_ctl_free(&r);
}

Test(ctl_submit, no_broker_is_exit_2_without_password, .init = base_setup)
{
    ItCtl r = it_ctl(tmp, "submit %s/full-windows.json --amqp-url 'amqp://guest:Sup3rS3cretPw@127.0.0.1:1/%%2f'", JOBS);
    cr_assert_eq(r.rc, 2, "exit %d", r.rc);
    cr_assert(strstr(r.err, "cannot connect to RabbitMQ at 127.0.0.1:1"), "stderr: %s", r.err);
    cr_assert_null(strstr(r.err, "Sup3rS3cretPw"), "the password was printed: %s", r.err);
    cr_assert_eq(strlen(r.out), 0);
    assert_no_secrets(&r);
    it_ctl_free(&r);

    /* the same through the environment */
    char *good = hvd_xstrdup(getenv("HVD_AMQP_URL"));
    setenv("HVD_AMQP_URL", "amqp://guest:Sup3rS3cretPw@127.0.0.1:1/%2f", 1);
    r = it_ctl(tmp, "submit %s/minimal.json", JOBS);
    cr_assert_eq(r.rc, 2);
    cr_assert_null(strstr(r.err, "Sup3rS3cretPw"));
    cr_assert(strstr(r.err, "***"), "the URL is not shown masked: %s", r.err);
    it_ctl_free(&r);
    setenv("HVD_AMQP_URL", good, 1);
    free(good);
}

Test(ctl_submit, usage_errors, .init = base_setup)
{
    ItCtl r = it_ctl(tmp, "submit");
    cr_assert_eq(r.rc, 2);
    it_ctl_free(&r);
    r = it_ctl(tmp, "submit %s/minimal.json --timeout 0", JOBS);
    cr_assert_eq(r.rc, 2);
    it_ctl_free(&r);
    r = it_ctl(tmp, "submit /nonexistent.json");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "/nonexistent.json"));
    it_ctl_free(&r);
    r = it_ctl(tmp, "submit --help");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "--follow"));
    it_ctl_free(&r);
    /* a body that is not JSON: invalid (1), and the parser's excerpt (a password?) not shown */
    char *path = hvd_xasprintf("%s/broken.json", tmp);
    it_write_file(path, "{\"job_type\": \"managed_deployment\", \"guest_la_pw\": \"" SECRET1);
    r = it_ctl(tmp, "submit %s", path);
    cr_assert_eq(r.rc, 1, "exit %d", r.rc);
    assert_no_secrets(&r);
    it_ctl_free(&r);
    free(path);
}
