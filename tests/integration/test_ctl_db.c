/* Integration tests of the database subcommands of build/bin/hvdeployctl
 * (migrate, status, list, cancel) against a real PostgreSQL (a fresh database
 * per test): their output, JSON and exit codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "codec.h"
#include "it_pg.h"
#include "store.h"

#define CTL HVD_BIN_DIR "/hvdeployctl"

static const char *dsn;

static void setup(void)
{
    if (!hvd_it_env("HVD_PG_DSN")) return;
    dsn = it_pg_create();
    setenv("HVD_PG_DSN", dsn, 1);
}

static void teardown(void)
{
    if (hvd_it_env("HVD_PG_DSN")) it_pg_drop();
}

TestSuite(ctl_db, .init = setup, .fini = teardown, .timeout = 120);

typedef struct {
    int rc;
    char *out, *err;
} Run;

static void run_free(Run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs hvdeployctl with args (a shell word list); stdout and stderr apart. */
static Run ctl(const char *args)
{
    char errpath[64];
    snprintf(errpath, sizeof errpath, "/tmp/hvd-it-ctl-%ld.err", (long)getpid());
    char *cmd = hvd_xasprintf("%s %s 2>%s", CTL, args, errpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    HvdBuf out = {0}, err = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) hvd_buf_append(&out, chunk, n);
    int status = pclose(p);
    FILE *f = fopen(errpath, "r");
    if (f) {
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) hvd_buf_append(&err, chunk, n);
        fclose(f);
    }
    unlink(errpath);
    free(cmd);
    Run r = {
        .rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1, .out = hvd_buf_steal(&out), .err = hvd_buf_steal(&err)};
    return r;
}

static HvdStore *store(void)
{
    char err[512] = "";
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "w-it", .lease_ttl_s = 30, .host_concurrency = 4};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int applied;
    cr_assert_eq(hvd_store_migrate(s, HVD_SOURCE_DIR "/migrations", NULL, &applied, err, sizeof err), HVD_STORE_OK,
                 "%s", err);
    return s;
}

static const char *const stages4[] = {"vm.create", "disk.create", "nic.create", "vm.initialize"};

/* A job in the database: running its first stage (kind 0), failed in its
 * first stage (1), or succeeded (2). */
static void make_job(HvdStore *s, const char *id, const char *host, const char *vm, int kind)
{
    char err[512] = "";
    HvdJobRecord j = {0}; /* borrowed strings: not freed */
    snprintf(j.job_id, sizeof j.job_id, "%s", id);
    j.job_type = (char *)"managed_deployment";
    j.target_host = (char *)host;
    j.vm_name = (char *)vm;
    j.reply_to = (char *)"hvdeploy.results";
    j.content_type = (char *)"application/json";
    j.request_json = (char *)"{}";
    j.options_json = (char *)"{}";
    for (int i = 0; i < 4; i++) snprintf(j.stages[i].name, sizeof j.stages[i].name, "%s", stages4[i]);
    j.n_stages = 4;
    HvdClaim out;
    HvdJobRecord rec = {0};
    cr_assert_eq(hvd_store_claim_new(s, &j, &out, &rec, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(out.decision.verdict, HVD_CLAIM_RUN);
    cr_assert_eq(hvd_store_step(s, id, rec.epoch, NULL, "vm.create", NULL, NULL, err, sizeof err), HVD_STORE_OK, "%s",
                 err);
    char next[37];
    if (kind == 1) {
        HvdStage f = {.name = "vm.create",
                      .status = HVD_STAGE_FAILED,
                      .message = (char *)"network 'Nope' not found",
                      .code = (char *)"agent_error",
                      .agent_code = (char *)"NETWORK_NOT_FOUND"};
        cr_assert_eq(
            hvd_store_finish(s, id, rec.epoch, HVD_JOB_FAILED, "agent_error", &f, 1, "E", 1, next, err, sizeof err),
            HVD_STORE_OK, "%s", err);
    } else if (kind == 2) {
        HvdStage f[4];
        memset(f, 0, sizeof f);
        for (int i = 0; i < 4; i++) {
            snprintf(f[i].name, sizeof f[i].name, "%s", stages4[i]);
            f[i].status = HVD_STAGE_SUCCEEDED;
        }
        f[0].output_json = (char *)"{\"vm_id\":\"abc\"}";
        f[0].message = (char *)"Created VM 'x'"; /* the agent's message of a stage that succeeded */
        cr_assert_eq(hvd_store_finish(s, id, rec.epoch, HVD_JOB_SUCCEEDED, NULL, f, 4, "E", 1, next, err, sizeof err),
                     HVD_STORE_OK, "%s", err);
    }
    hvd_job_record_free(&rec);
}

#define J1 "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11"
#define J2 "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c12"
#define J3 "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c13"
#define JX "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9cff"

Test(ctl_db, help_of_each_command)
{
    static const char *const cmds[] = {"migrate", "status", "list", "cancel"};
    for (size_t i = 0; i < 4; i++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        Run r = ctl(args);
        cr_assert_eq(r.rc, 0, "%s", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: hvdeployctl %s", cmds[i]);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        cr_assert(strstr(r.out, "Exit status"), "%s", r.out);
        run_free(&r);
    }
}

Test(ctl_db, migrate_then_up_to_date)
{
    HVD_IT_NEED("HVD_PG_DSN");
    Run r = ctl("migrate");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "applied 0001_initial.sql\n"), "%s", r.out);
    run_free(&r);
    r = ctl("migrate");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "database is up to date\n");
    run_free(&r);
    r = ctl("migrate --output json");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK, "%s", r.out);
    cr_assert_eq(hvd_node_get(n, "applied")->type, HVD_ARRAY);
    cr_assert_eq(hvd_node_get(n, "applied")->u.arr.n, 0);
    hvd_node_free(n);
    run_free(&r);
}

Test(ctl_db, migrate_errors)
{
    HVD_IT_NEED("HVD_PG_DSN");
    /* refused connection: one line, exit 2, password masked */
    Run r = ctl("migrate --pg-dsn 'postgresql://hvd:s3cretpw@127.0.0.1:1/hvdeploy?connect_timeout=3'");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "hvdeployctl migrate: cannot connect to PostgreSQL"), "%s", r.err);
    cr_assert(strstr(r.err, "hvd:***@127.0.0.1:1"), "%s", r.err);
    cr_assert_null(strstr(r.err, "s3cretpw"), "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
    run_free(&r);
    r = ctl("migrate --migrations-dir /nonexistent");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "/nonexistent"), "%s", r.err);
    run_free(&r);
    /* an edited migration: exit 1 naming it */
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hvd-it-ctlmig-%ld", (long)getpid());
    cr_assert_eq(hvd_it_run("rm -rf %s && mkdir -p %s && cp %s/migrations/*.sql %s/", dir, dir, HVD_SOURCE_DIR, dir),
                 0);
    char args[128];
    snprintf(args, sizeof args, "migrate --migrations-dir %s", dir);
    r = ctl(args);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    run_free(&r);
    cr_assert_eq(hvd_it_run("echo '-- edit' >> %s/0001_initial.sql", dir), 0);
    r = ctl(args);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "0001_initial.sql"), "%s", r.err);
    run_free(&r);
    hvd_it_run("rm -rf %s", dir);
    r = ctl("migrate extra");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
}

Test(ctl_db, status_of_jobs)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = store();
    make_job(s, J1, "hv01", "web-01", 0);
    make_job(s, J2, "hv01", "web-02", 1);
    hvd_store_close(s);

    Run r = ctl("status " J1);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "job        " J1 "\n"), "%s", r.out);
    cr_assert(strstr(r.out, "status     running (stage vm.create)\n"), "%s", r.out);
    cr_assert(strstr(r.out, "host       hv01\n"), "%s", r.out);
    cr_assert(strstr(r.out, "lease      w-it until "), "%s", r.out);
    cr_assert(strstr(r.out, "vm.create      running      1"), "%s", r.out);
    cr_assert(strstr(r.out, "vm.initialize  pending      0"), "%s", r.out);
    run_free(&r);

    r = ctl("status " J2);
    cr_assert_eq(r.rc, 1, "a failed job: exit 1");
    cr_assert(strstr(r.out, "status     failed (agent_error)\n"), "%s", r.out);
    cr_assert(strstr(r.out, "last error vm.create: agent_error/NETWORK_NOT_FOUND: network 'Nope' not found\n"), "%s",
              r.out);
    run_free(&r);

    r = ctl("status --output json " J2);
    cr_assert_eq(r.rc, 1);
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK, "%s", r.out);
    cr_assert_str_eq(hvd_node_get_str(n, "job_id"), J2);
    cr_assert_str_eq(hvd_node_get_str(n, "status"), "failed");
    cr_assert_str_eq(hvd_node_get_str(n, "code"), "agent_error");
    int64_t attempts = 0;
    cr_assert(hvd_node_get_int(n, "attempts", &attempts));
    cr_assert_eq(attempts, 1);
    const HvdNode *stages = hvd_node_get(n, "stages");
    cr_assert_eq(stages->type, HVD_ARRAY);
    cr_assert_eq(stages->u.arr.n, 4);
    const HvdNode *first = stages->u.arr.items[0];
    cr_assert_str_eq(hvd_node_get_str(first, "name"), "vm.create");
    cr_assert_str_eq(hvd_node_get_str(first, "status"), "failed");
    cr_assert_str_eq(hvd_node_get_str(first, "agent_code"), "NETWORK_NOT_FOUND");
    cr_assert_not_null(hvd_node_get_str(first, "started_at"));
    cr_assert_not_null(hvd_node_get_str(first, "finished_at"));
    cr_assert_str_eq(hvd_node_get_str(n, "last_error"), "agent_error/NETWORK_NOT_FOUND: network 'Nope' not found");
    hvd_node_free(n);
    run_free(&r);

    r = ctl("status " JX);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "hvdeployctl status: job " JX " not found\n");
    run_free(&r);
    r = ctl("status not-a-job");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
    r = ctl("status");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
}

Test(ctl_db, status_without_schema_hints_migrate)
{
    HVD_IT_NEED("HVD_PG_DSN");
    Run r = ctl("status " J1);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "hvdeployctl migrate"), "%s", r.err);
    run_free(&r);
}

Test(ctl_db, list_filters)
{
    HVD_IT_NEED("HVD_PG_DSN");
    Run r = ctl("migrate");
    run_free(&r);
    r = ctl("list");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "no jobs\n");
    run_free(&r);
    HvdStore *s = store();
    make_job(s, J1, "hv01", "web-01", 0);
    make_job(s, J2, "hv01", "web-02", 1);
    make_job(s, J3, "hv02", "db-01", 2);
    hvd_store_close(s);
    r = ctl("list");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strncmp(r.out, "JOB_ID", 6) == 0, "%s", r.out);
    char *p1 = strstr(r.out, J1), *p2 = strstr(r.out, J2), *p3 = strstr(r.out, J3);
    cr_assert(p1 && p2 && p3, "%s", r.out);
    cr_assert(p3 < p2 && p2 < p1, "newest first: %s", r.out);
    run_free(&r);
    r = ctl("status " J3);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_null(strstr(r.out, "last error"), "a success message is no error: %s", r.out);
    cr_assert(strstr(r.out, "Created VM 'x'"), "%s", r.out);
    run_free(&r);
    r = ctl("list --status failed");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, J2) && !strstr(r.out, J1) && !strstr(r.out, J3), "%s", r.out);
    cr_assert(strstr(r.out, "agent_error"), "%s", r.out);
    run_free(&r);
    r = ctl("list --host hv02 --output json");
    cr_assert_eq(r.rc, 0);
    HvdNode *n = NULL;
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK, "%s", r.out);
    const HvdNode *jobs = hvd_node_get(n, "jobs");
    cr_assert_eq(jobs->u.arr.n, 1);
    cr_assert_str_eq(hvd_node_get_str(jobs->u.arr.items[0], "job_id"), J3);
    cr_assert_str_eq(hvd_node_get_str(jobs->u.arr.items[0], "status"), "succeeded");
    hvd_node_free(n);
    run_free(&r);
    r = ctl("list --limit 1 --output json");
    cr_assert_eq(hvd_json_to_node(r.out, strlen(r.out), 0, &n, NULL, 0), HVD_DECODE_OK, "%s", r.out);
    cr_assert_eq(hvd_node_get(n, "jobs")->u.arr.n, 1);
    hvd_node_free(n);
    run_free(&r);
    r = ctl("list --status done");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--status"), "%s", r.err);
    run_free(&r);
    r = ctl("list --limit 0");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
    r = ctl("list --limit 5x");
    cr_assert_eq(r.rc, 2);
    run_free(&r);
}

Test(ctl_db, cancel_live_finished_unknown)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = store();
    make_job(s, J1, "hv01", "web-01", 0);
    make_job(s, J3, "hv02", "db-01", 2);
    hvd_store_close(s);
    Run r = ctl("cancel " J1);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "cancel requested for job " J1 "; it stops before its next stage\n");
    run_free(&r);
    PGconn *c = it_pg_connect(dsn);
    char *v = it_pg_value(c, "SELECT cancel_requested::text FROM hvdeploy.jobs WHERE job_id = $1::uuid", J1);
    cr_assert_str_eq(v, "true");
    free(v);
    PQfinish(c);
    r = ctl("status " J1);
    cr_assert(strstr(r.out, "cancel requested"), "%s", r.out);
    run_free(&r);
    r = ctl("cancel " J3);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "already finished (succeeded)"), "%s", r.err);
    run_free(&r);
    r = ctl("cancel --output json " JX);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "not found"), "%s", r.err);
    cr_assert(strstr(r.out, "\"found\":false"), "%s", r.out);
    run_free(&r);
}
