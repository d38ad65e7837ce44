/* Schema migrations: migrations/NNNN_name.sql applied in order, each once and
 * in its own transaction, under a session advisory lock, with a checksum so
 * that an applied file that was edited afterwards is refused. */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* pg_advisory_lock key of migrations: "hvdmigr" in ASCII. */
/* clang-format off */
#define STORE_MIGRATE_LOCK "SELECT pg_advisory_lock(29382459722229618)"
/* clang-format on */
#define STORE_MIGRATE_UNLOCK "SELECT pg_advisory_unlock(29382459722229618)"

typedef struct {
    int version;
    char *name; /* the file name, e.g. 0001_initial.sql */
    char *sql;
    char sha256[65];
} Migration;

static void migrations_free(Migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].sql);
    }
    free(m);
}

static int by_version(const void *a, const void *b)
{
    const Migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* NNNN_name.sql: digits, an underscore, a name, ".sql". Returns the version or -1. */
static int migration_version(const char *fname)
{
    size_t len = strlen(fname);
    char *end = NULL;
    if (len < 7 || strcmp(fname + len - 4, ".sql") != 0) return -1;
    if (fname[0] < '0' || fname[0] > '9') return -1;
    errno = 0;
    long v = strtol(fname, &end, 10);
    if (errno || !end || *end != '_' || end + 1 >= fname + len - 4 || v < 0 || v > 1000000) return -1;
    return (int)v;
}

static bool read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    HvdBuf b = {0};
    char chunk[8192];
    size_t n;
    if (!f) {
        store_set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) hvd_buf_append(&b, chunk, n);
    bool ok = !ferror(f);
    if (!ok) store_set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (ok && memchr(b.data ? b.data : "", '\0', b.len)) {
        store_set_err(err, errlen, "%s contains a NUL byte", path);
        ok = false;
    }
    if (!ok) {
        hvd_buf_free(&b);
        return false;
    }
    *out = hvd_buf_steal(&b);
    return true;
}

static HvdStoreStatus load_migrations(const char *dir, Migration **out, size_t *n_out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    Migration *m = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    if (!d) {
        store_set_err(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
        return HVD_STORE_ERROR;
    }
    while ((e = readdir(d)) != NULL) {
        int v = migration_version(e->d_name);
        if (v < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            m = hvd_xrealloc(m, cap * sizeof(*m));
        }
        memset(&m[n], 0, sizeof(m[n]));
        m[n].version = v;
        m[n].name = hvd_xstrdup(e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        store_set_err(err, errlen, "no migrations (NNNN_name.sql) in %s", dir);
        free(m);
        return HVD_STORE_ERROR;
    }
    qsort(m, n, sizeof(*m), by_version);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && m[i].version == m[i - 1].version) {
            store_set_err(err, errlen, "migrations %s and %s have the same number", m[i - 1].name, m[i].name);
            goto fail;
        }
        char *path = hvd_xasprintf("%s/%s", dir, m[i].name);
        bool ok = read_file(path, &m[i].sql, err, errlen);
        free(path);
        if (!ok) goto fail;
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)m[i].sql, strlen(m[i].sql));
        sodium_bin2hex(m[i].sha256, sizeof(m[i].sha256), h, sizeof(h));
    }
    *out = m;
    *n_out = n;
    return HVD_STORE_OK;
fail:
    migrations_free(m, n);
    return HVD_STORE_ERROR;
}

static const char SQL_APPLIED[] = "SELECT version, name, checksum FROM hvdeploy.schema_migrations ORDER BY version";
static const char SQL_RECORD[] = "INSERT INTO hvdeploy.schema_migrations (version, name, checksum, applied_at) "
                                 "VALUES ($1::int, $2::text, $3::text, now())";

/* Applies one migration in its own transaction. */
static HvdStoreStatus apply_one(HvdStore *s, StoreConn *c, const Migration *m, char *err, size_t errlen)
{
    char why[768];
    StoreParams p = {0};
    HvdStoreStatus st = store_begin(c, err, errlen);
    if (st != HVD_STORE_OK) return st;
    st = store_exec_script(c, m->sql, why, sizeof(why));
    if (st != HVD_STORE_OK) {
        store_set_err(err, errlen, "migration %s failed: %s", m->name, why);
        goto fail;
    }
    store_p_int(&p, m->version);
    store_p_text(&p, m->name);
    store_p_text(&p, m->sha256);
    PGresult *r = store_exec(c, SQL_RECORD, &p, &st, err, errlen);
    if (!r) goto fail;
    PQclear(r);
    return store_commit(s, c, err, errlen);
fail:
    store_rollback(c);
    return st;
}

HvdStoreStatus hvd_store_migrate(HvdStore *s, const char *migrations_dir, FILE *report, int *applied, char *err,
                                 size_t errlen)
{
    Migration *m = NULL;
    size_t n = 0;
    HvdStoreStatus st;
    StoreConn *c = NULL;
    PGresult *r = NULL;
    bool locked = false;
    int count = 0;

    if (applied) *applied = 0;
    if (sodium_init() < 0) {
        store_set_err(err, errlen, "libsodium failed to initialise");
        return HVD_STORE_ERROR;
    }
    st = load_migrations(migrations_dir ? migrations_dir : hvd_store_default_migrations_dir(), &m, &n, err, errlen);
    if (st != HVD_STORE_OK) return st;
    c = store_checkout(s, &st, err, errlen);
    if (!c) goto out;
    st = store_exec_script(c, STORE_MIGRATE_LOCK, err, errlen);
    if (st != HVD_STORE_OK) goto out;
    locked = true;
    st = store_exec_script(c,
                           "CREATE SCHEMA IF NOT EXISTS hvdeploy;"
                           "CREATE TABLE IF NOT EXISTS hvdeploy.schema_migrations ("
                           " version integer PRIMARY KEY,"
                           " name text NOT NULL,"
                           " checksum text NOT NULL,"
                           " applied_at timestamptz NOT NULL DEFAULT now())",
                           err, errlen);
    if (st != HVD_STORE_OK) goto out;
    r = store_exec(c, SQL_APPLIED, NULL, &st, err, errlen);
    if (!r) goto out;

    /* every applied migration must still be what was applied */
    for (int row = 0; row < PQntuples(r); row++) {
        int v = (int)store_col_int(r, row, 0);
        const char *sum = PQgetvalue(r, row, 2);
        for (size_t i = 0; i < n; i++) {
            if (m[i].version != v) continue;
            if (strcmp(m[i].sha256, sum) != 0) {
                store_set_err(err, errlen,
                              "migration %s was changed after it was applied (recorded as %s with "
                              "sha256 %.12s..., the file now has %.12s...); add a new migration instead",
                              m[i].name, PQgetvalue(r, row, 1), sum, m[i].sha256);
                st = HVD_STORE_ERROR;
                goto out;
            }
            m[i].version = -m[i].version - 1; /* mark as applied */
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (m[i].version < 0) continue;
        st = apply_one(s, c, &m[i], err, errlen);
        if (st != HVD_STORE_OK) goto out;
        count++;
        if (report) fprintf(report, "applied %s\n", m[i].name);
    }
    st = HVD_STORE_OK;
out:
    PQclear(r);
    if (c && locked) {
        char ignore[256];
        if (store_exec_script(c, STORE_MIGRATE_UNLOCK, ignore, sizeof(ignore)) != HVD_STORE_OK)
            c->broken = true; /* a reset drops the session lock */
    }
    store_checkin(s, c);
    migrations_free(m, n);
    if (applied) *applied = count;
    return st;
}
