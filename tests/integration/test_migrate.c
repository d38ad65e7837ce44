/* Integration tests of hvd_store_migrate against a real PostgreSQL (a fresh
 * database per test): each migration applied once, also by four workers at
 * once; an edited applied migration refused; a failing one rolled back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "it_pg.h"
#include "store.h"

#define SRC_MIGRATIONS HVD_SOURCE_DIR "/migrations"

static const char *dsn;
static char tmpdir[64];

static void setup(void)
{
    if (!hvd_it_env("HVD_PG_DSN")) return;
    dsn = it_pg_create();
}

static void teardown(void)
{
    if (tmpdir[0]) hvd_it_run("rm -rf '%s'", tmpdir);
    if (hvd_it_env("HVD_PG_DSN")) it_pg_drop();
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 120);

static HvdStore *open_store(void)
{
    char err[512] = "";
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "migrator"};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "open: %s", err);
    return s;
}

/* The number of NNNN_*.sql files in the source tree's migrations. */
static int source_migrations(void)
{
    char *out = hvd_it_run_output("ls '%s' | grep -cE '^[0-9]+_.+\\.sql$'", SRC_MIGRATIONS);
    int n = atoi(out);
    free(out);
    cr_assert_gt(n, 0);
    return n;
}

/* A private copy of the migrations directory. */
static const char *copy_migrations(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hvd-it-migr-%ld", (long)getpid());
    cr_assert_eq(
        hvd_it_run("rm -rf '%s' && mkdir -p '%s' && cp '%s'/*.sql '%s'/", tmpdir, tmpdir, SRC_MIGRATIONS, tmpdir), 0);
    return tmpdir;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(migrate, applies_each_once)
{
    HVD_IT_NEED("HVD_PG_DSN");
    int n = source_migrations();
    HvdStore *s = open_store();
    char err[512] = "";
    int applied = -1;
    char *report = NULL;
    size_t rlen = 0;
    FILE *rf = open_memstream(&report, &rlen);
    cr_assert_eq(hvd_store_migrate(s, SRC_MIGRATIONS, rf, &applied, err, sizeof err), HVD_STORE_OK, "%s", err);
    fclose(rf);
    cr_assert_eq(applied, n);
    cr_assert(strstr(report, "applied 0001_initial.sql\n"), "%s", report);
    free(report);
    PGconn *c = it_pg_connect(dsn);
    cr_assert_eq(it_pg_long(c, "SELECT count(*) FROM hvdeploy.schema_migrations", NULL), n);
    char *v = it_pg_value(c,
                          "SELECT name || ' ' || length(checksum) FROM hvdeploy.schema_migrations "
                          "WHERE version = 1",
                          NULL);
    cr_assert_str_eq(v, "0001_initial.sql 64");
    free(v);
    cr_assert_eq(it_pg_long(c,
                            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hvdeploy' "
                            "AND table_name IN ('jobs', 'job_stages', 'job_events', 'job_secrets')",
                            NULL),
                 4);
    /* again: nothing to do */
    cr_assert_eq(hvd_store_migrate(s, SRC_MIGRATIONS, NULL, &applied, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(applied, 0);
    cr_assert_eq(it_pg_long(c, "SELECT count(*) FROM hvdeploy.schema_migrations", NULL), n);
    PQfinish(c);
    hvd_store_close(s);
}

typedef struct {
    int applied;
    HvdStoreStatus st;
    char err[512];
} MigrArg;

static void *migrate_thread(void *p)
{
    MigrArg *a = p;
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "migrator"};
    HvdStore *s = hvd_store_open(&o, a->err, sizeof a->err);
    a->st = HVD_STORE_ERROR;
    if (!s) return NULL;
    a->st = hvd_store_migrate(s, SRC_MIGRATIONS, NULL, &a->applied, a->err, sizeof a->err);
    hvd_store_close(s);
    return NULL;
}

Test(migrate, four_at_once_apply_each_once)
{
    HVD_IT_NEED("HVD_PG_DSN");
    int n = source_migrations();
    pthread_t t[4];
    MigrArg a[4];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, migrate_thread, &a[i]);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(a[i].st, HVD_STORE_OK, "worker %d: %s", i, a[i].err);
        total += a[i].applied;
    }
    cr_assert_eq(total, n, "each migration applied by exactly one of them");
    PGconn *c = it_pg_connect(dsn);
    cr_assert_eq(it_pg_long(c, "SELECT count(*) FROM hvdeploy.schema_migrations", NULL), n);
    PQfinish(c);
}

Test(migrate, four_processes_at_once_apply_each_once)
{
    HVD_IT_NEED("HVD_PG_DSN");
    int n = source_migrations();
    int fds[4][2];
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pipe(fds[i]), 0);
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            MigrArg a = {0};
            migrate_thread(&a);
            int res = a.st == HVD_STORE_OK ? a.applied : -1;
            if (write(fds[i][1], &res, sizeof res) != sizeof res) _exit(2);
            _exit(0);
        }
        close(fds[i][1]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        int res = -1;
        cr_assert_eq(read(fds[i][0], &res, sizeof res), (ssize_t)sizeof res);
        close(fds[i][0]);
        waitpid(pids[i], NULL, 0);
        cr_assert_geq(res, 0, "process %d failed", i);
        total += res;
    }
    cr_assert_eq(total, n);
}

Test(migrate, edited_applied_migration_is_an_error_naming_it)
{
    HVD_IT_NEED("HVD_PG_DSN");
    const char *dir = copy_migrations();
    HvdStore *s = open_store();
    char err[512] = "";
    int applied = 0;
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(hvd_it_run("echo '-- an edit' >> '%s/0001_initial.sql'", dir), 0);
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "0001_initial.sql"), "%s", err);
    cr_assert(strstr(err, "changed"), "%s", err);
    cr_assert_eq(applied, 0);
    hvd_store_close(s);
}

Test(migrate, new_migration_applied_alone_and_failing_one_rolled_back)
{
    HVD_IT_NEED("HVD_PG_DSN");
    const char *dir = copy_migrations();
    int n = source_migrations();
    HvdStore *s = open_store();
    char err[512] = "";
    int applied = 0;
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_OK, "%s", err);
    write_file(dir, "9001_extra.sql",
               "CREATE TABLE hvdeploy.it_extra (x int);\n"
               "INSERT INTO hvdeploy.it_extra VALUES (1);\n");
    write_file(dir, "README.md", "not a migration\n");
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(applied, 1);
    /* a migration that fails halfway leaves nothing behind */
    write_file(dir, "9002_broken.sql", "CREATE TABLE hvdeploy.it_broken (x int);\nSELECT nonsense FROM nowhere;\n");
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "9002_broken.sql"), "%s", err);
    cr_assert(strstr(err, "nowhere"), "%s", err);
    PGconn *c = it_pg_connect(dsn);
    cr_assert_eq(it_pg_long(c, "SELECT count(*) FROM hvdeploy.schema_migrations", NULL), n + 1);
    cr_assert_eq(it_pg_long(c, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'it_broken'", NULL),
                 0);
    /* the advisory lock was let go: another session can take it at once */
    char *v = it_pg_value(c, "SELECT pg_try_advisory_lock(29382459722229618)::text", NULL);
    cr_assert_str_eq(v, "true");
    free(v);
    PQfinish(c);
    /* two files with one number */
    write_file(dir, "9002_broken.sql", "SELECT 1;\n");
    write_file(dir, "9002_twin.sql", "SELECT 2;\n");
    cr_assert_eq(hvd_store_migrate(s, dir, NULL, &applied, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "9002_broken.sql") && strstr(err, "9002_twin.sql"), "%s", err);
    hvd_store_close(s);
}

Test(migrate, missing_directory_is_an_error)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store();
    char err[512] = "";
    int applied = 7;
    cr_assert_eq(hvd_store_migrate(s, "/nonexistent/migrations", NULL, &applied, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "/nonexistent/migrations"), "%s", err);
    cr_assert_eq(applied, 0);
    hvd_store_close(s);
}

Test(migrate, default_directory)
{
    setenv("HVD_MIGRATIONS_DIR", "/some/where", 1);
    cr_assert_str_eq(hvd_store_default_migrations_dir(), "/some/where");
    unsetenv("HVD_MIGRATIONS_DIR");
    const char *d = hvd_store_default_migrations_dir();
    struct stat st;
    char path[4200];
    snprintf(path, sizeof path, "%s/0001_initial.sql", d);
    cr_assert_eq(stat(path, &st), 0, "found %s", d);
}
