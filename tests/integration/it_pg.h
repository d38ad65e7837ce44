/* PostgreSQL helpers of the store, migrate and ctl integration tests: a fresh
 * database (created from $HVD_PG_DSN, dropped at the end) with an empty
 * schema for every test, DSNs for it, and small query helpers. Header-only (static inline) so each test binary
 * carries its own copy. */
#ifndef HVD_IT_PG_H
#define HVD_IT_PG_H
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"

/* The database of the current test: name and DSN (valid until it_pg_drop). */
static char it_pg_name[64];
static char *it_pg_dsn_str;

/* $HVD_PG_DSN with dbname replaced by db (key=value form; caller frees). */
static inline char *it_pg_dsn_for(const char *db)
{
    const char *base = hvd_it_env("HVD_PG_DSN");
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(base ? base : "", &why);
    HvdBuf b = {0};
    if (!opts) {
        cr_log_error("bad HVD_PG_DSN: %s", why ? why : "?");
        PQfreemem(why);
        return hvd_xstrdup("");
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
        if (!v) continue;
        hvd_buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\'' || *p == '\\') hvd_buf_puts(&b, "\\");
            hvd_buf_append(&b, p, 1);
        }
        hvd_buf_puts(&b, "'");
    }
    if (!strstr(b.data ? b.data : "", "dbname=")) hvd_buf_printf(&b, " dbname='%s'", db);
    PQconninfoFree(opts);
    return hvd_buf_steal(&b);
}

static inline void it_pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static inline PGconn *it_pg_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    cr_assert(PQstatus(c) == CONNECTION_OK, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, it_pg_quiet, NULL);
    return c;
}

/* Runs a statement on the maintenance database (postgres). */
static inline void it_pg_admin(const char *sql)
{
    char *dsn = it_pg_dsn_for("postgres");
    PGconn *c = it_pg_connect(dsn);
    PGresult *r = PQexec(c, sql);
    ExecStatusType t = PQresultStatus(r);
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) cr_log_warn("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    free(dsn);
}

/* Drops databases left behind by test processes that died. */
static inline void it_pg_drop_stale(void)
{
    char *dsn = it_pg_dsn_for("postgres");
    PGconn *c = it_pg_connect(dsn);
    PGresult *r = PQexec(c, "SELECT datname FROM pg_database WHERE datname LIKE 'hvd\\_it\\_%'");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        long pid = strtol(name + 7, NULL, 10);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char sql[160];
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
            PQclear(PQexec(c, sql));
        }
    }
    PQclear(r);
    PQfinish(c);
    free(dsn);
}

/* Creates a database named name (from template0: nothing in it). */
static inline void it_pg_create_db(const char *name)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", name);
    it_pg_admin(sql);
}

/* Gives the test a database with no hvdeploy schema and returns its DSN: the
 * binary's database (below) with its schema dropped (tests of a binary run
 * one at a time: ctest passes --jobs 1), or else a new one for the test. */
static inline const char *it_pg_create(void)
{
    static int counter;
    const char *shared = getenv("HVD_IT_PG_DB");
    free(it_pg_dsn_str);
    if (shared && *shared) {
        snprintf(it_pg_name, sizeof(it_pg_name), "%s", shared);
        it_pg_dsn_str = it_pg_dsn_for(it_pg_name);
        PGconn *c = it_pg_connect(it_pg_dsn_str);
        PGresult *r = PQexec(c, "DROP SCHEMA IF EXISTS hvdeploy CASCADE");
        cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK, "reset: %s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        return it_pg_dsn_str;
    }
    it_pg_drop_stale();
    snprintf(it_pg_name, sizeof(it_pg_name), "hvd_it_%ld_%d", (long)getpid(), ++counter);
    it_pg_create_db(it_pg_name);
    it_pg_dsn_str = it_pg_dsn_for(it_pg_name);
    return it_pg_dsn_str;
}

static inline void it_pg_drop(void)
{
    char sql[160];
    if (!it_pg_name[0]) return;
    const char *shared = getenv("HVD_IT_PG_DB");
    if (!shared || strcmp(shared, it_pg_name) != 0) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", it_pg_name);
        it_pg_admin(sql);
    }
    it_pg_name[0] = '\0';
    free(it_pg_dsn_str);
    it_pg_dsn_str = NULL;
}

/* One database for the whole test binary (creating and dropping one per
 * test costs a second each on a PostgreSQL that syncs to disk): made before
 * the first test, dropped after the last, named in $HVD_IT_PG_DB for the
 * test processes. Include this header in one file per test binary. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    static char name[64];
    (void)set;
    if (!hvd_it_env("HVD_PG_DSN")) return;
    it_pg_drop_stale();
    snprintf(name, sizeof(name), "hvd_it_%ld_0", (long)getpid());
    it_pg_create_db(name);
    setenv("HVD_IT_PG_DB", name, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    const char *name = getenv("HVD_IT_PG_DB");
    char sql[160];
    (void)stats;
    if (!name || !*name) return;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    it_pg_admin(sql);
}

/* A query with text parameters (NULL-terminated list) that must succeed. */
static inline PGresult *it_pg_q(PGconn *c, const char *sql, ...)
{
    const char *vals[16];
    int n = 0;
    va_list ap;
    va_start(ap, sql);
    for (const char *v = va_arg(ap, const char *); v && n < 16; v = va_arg(ap, const char *)) vals[n++] = v;
    va_end(ap);
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType t = PQresultStatus(r);
    cr_assert(t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

/* The single value of a query as a new string ("" for NULL, "(no row)" for none). */
static inline char *it_pg_value(PGconn *c, const char *sql, const char *param)
{
    PGresult *r = it_pg_q(c, sql, param, NULL);
    char *v = hvd_xstrdup(PQntuples(r) == 0 ? "(no row)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static inline long it_pg_long(PGconn *c, const char *sql, const char *param)
{
    char *v = it_pg_value(c, sql, param);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

#endif
