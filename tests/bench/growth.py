"""The growth row's database: N finished jobs (with their stages and events)
already in the tables. A short warm-up round of real jobs creates the schema
and a finished job whose rows are then copied N times in SQL (new job ids,
VM names and correlation ids; everything else as the worker wrote it). The
database is kept between benchmark runs (seeding 10^6 jobs takes minutes) and
recognised by its bench_seed marker."""
import time

from probes import db_dsn, psql

# Columns filled per copy (g = the copy's number); the rest are copied as is,
# and those with a default of their own (seq, bigserial ids) are left to it.
FRESH = {
    "job_id": "md5('seed-' || g)::uuid",
    "vm_name": "'seed-' || g",
    "correlation_id": "md5('corr-' || g)",
}


def seeded(base_dsn, db, n):
    if psql(base_dsn, "SELECT 1 FROM pg_database WHERE datname = '%s'" % db) != "1":
        return False
    try:
        return psql(db_dsn(base_dsn, db), "SELECT n FROM bench_seed") == str(n)
    except Exception:  # noqa: BLE001 - no marker: not seeded
        return False


def _columns(dsn, table):
    rows = psql(dsn, "SELECT column_name, coalesce(column_default, ''), is_identity FROM information_schema.columns "
                     "WHERE table_schema = 'hvdeploy' AND table_name = '%s' ORDER BY ordinal_position" % table)
    cols = []
    for line in rows.splitlines():
        name, default, ident = line.split("|")
        if default.startswith("nextval(") or ident == "YES":
            continue
        cols.append(name)
    return cols


def _copy(dsn, table, template, n):
    cols = _columns(dsn, table)
    sel = ", ".join(FRESH.get(c, "t." + c) for c in cols)
    psql(dsn, "SET synchronous_commit = off; INSERT INTO hvdeploy.%s (%s) SELECT %s FROM hvdeploy.%s t, "
              "generate_series(1, %d) g WHERE t.job_id = '%s' ORDER BY g" % (table, ", ".join(cols), sel, table, n,
                                                                             template))


def seed(base_dsn, db, n, warm_up, log):
    """warm_up(db) runs a few real jobs into db (creating it and its schema)."""
    t0 = time.time()
    warm_up(db)
    dsn = db_dsn(base_dsn, db)
    template = psql(dsn, "SELECT job_id FROM hvdeploy.jobs WHERE status = 'succeeded' "
                         "AND envelope_sent_at IS NOT NULL LIMIT 1")
    if not template:
        raise RuntimeError("growth: the warm-up round finished no job")
    for table in ("jobs", "job_stages", "job_events"):
        _copy(dsn, table, template, n)
        log("growth: %s copied %d times (%.0f s)" % (table, n, time.time() - t0))
    psql(dsn, "VACUUM ANALYZE")
    psql(dsn, "CREATE TABLE bench_seed (n bigint); INSERT INTO bench_seed VALUES (%d)" % n)
    counts = psql(dsn, "SELECT (SELECT count(*) FROM hvdeploy.jobs), (SELECT count(*) FROM hvdeploy.job_stages), "
                       "(SELECT count(*) FROM hvdeploy.job_events)")
    log("growth: seeded %s in %.0f s (jobs|stages|events: %s)" % (db, time.time() - t0, counts))
