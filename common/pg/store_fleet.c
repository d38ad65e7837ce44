/* The fleet role (a session advisory lock on a connection of its own) and the
 * fleet view of /metrics (see store_fleet.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fleet.h"
#include "store_priv.h"

struct HvdStoreRole {
    HvdStore *s;
    int64_t key;
    StoreConn c; /* not in the pool: the lock lives as long as this session */
    bool held;
};

HvdStoreRole *hvd_store_role_new(HvdStore *s, int64_t key)
{
    HvdStoreRole *r = hvd_xcalloc(1, sizeof *r);
    r->s = s;
    r->key = key;
    return r;
}

bool hvd_store_role_held(const HvdStoreRole *r)
{
    return r && r->held;
}

static const char SQL_ROLE_TRY[] = "SELECT pg_try_advisory_lock($1::bigint)";
static const char SQL_ROLE_ALIVE[] = "SELECT 1";

bool hvd_store_role_hold(HvdStoreRole *r, bool *changed, char *err, size_t errlen)
{
    bool was = r->held;
    HvdStoreStatus st;
    if (changed) *changed = false;
    if (r->held) {
        /* the lock is the session's: if the session still answers, it is ours */
        PGresult *res = r->c.conn && !r->c.broken ? store_exec(&r->c, SQL_ROLE_ALIVE, NULL, &st, err, errlen) : NULL;
        if (res) {
            PQclear(res);
            return true;
        }
        r->held = false;
        r->c.broken = true;
    }
    if (store_conn_ensure(r->s, &r->c, err, errlen) == HVD_STORE_OK) {
        StoreParams p = {0};
        store_p_int(&p, r->key);
        PGresult *res = store_exec(&r->c, SQL_ROLE_TRY, &p, &st, err, errlen);
        if (res) {
            r->held = store_col_bool(res, 0, 0);
            PQclear(res);
        }
    }
    if (changed) *changed = was != r->held;
    return r->held;
}

void hvd_store_role_free(HvdStoreRole *r)
{
    if (!r) return;
    if (r->c.conn) PQfinish(r->c.conn); /* ends the session: the server lets the lock go */
    free(r);
}

/* One statement, one row per figure: (kind, label, value). Each part reads a
 * small index (migration 0003's jobs_live_state, 0001's outbox index) and
 * costs well under a millisecond with 10^6 finished jobs in the table. */
/* clang-format off */
static const char SQL_FLEET_LIVE[] =
    "SELECT 'state', status || '/' || coalesce(waiting_reason, ''), count(*)::float8"
    "  FROM hvdeploy.jobs WHERE status IN " STORE_LIVE " GROUP BY status, waiting_reason"
    " UNION ALL SELECT 'oldest_queued', '', coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8"
    "  FROM hvdeploy.jobs WHERE status = 'queued'"
    " UNION ALL SELECT 'waiting', waiting_reason, extract(epoch FROM now() - min(updated_at))::float8"
    "  FROM hvdeploy.jobs WHERE status IN " STORE_LIVE " AND waiting_reason IS NOT NULL GROUP BY waiting_reason"
    " UNION ALL SELECT 'expired_leases', '', count(*)::float8 FROM hvdeploy.jobs"
    "  WHERE status = 'running' AND lease_expires_at < now()"
    " UNION ALL SELECT 'unsent', '', count(*)::float8 FROM hvdeploy.jobs"
    "  WHERE envelope IS NOT NULL AND envelope_sent_at IS NULL"
    " UNION ALL SELECT 'oldest_unsent', '', coalesce(extract(epoch FROM now() - min(finished_at)), 0)::float8"
    "  FROM hvdeploy.jobs WHERE envelope IS NOT NULL AND envelope_sent_at IS NULL"
    " UNION ALL SELECT 'open_circuits', '', count(*)::float8 FROM hvdeploy.host_health WHERE open_until > now()"
    " UNION ALL SELECT 'secrets', CASE WHEN erase_after IS NULL THEN 'needed' ELSE 'retained' END, count(*)::float8"
    "  FROM hvdeploy.job_secrets GROUP BY 2";

/* Finished jobs by status: an index-only scan of jobs_finished_status, which
 * grows with the table (about 50 ms per 10^6 jobs): the caller runs it less
 * often than the live part. */
static const char SQL_FLEET_FINISHED[] =
    "SELECT 'state', status || '/', count(*)::float8"
    "  FROM hvdeploy.jobs WHERE status IN " STORE_TERMINAL " GROUP BY status";
/* clang-format on */

static void add_state(HvdFleetView *v, const char *label, double n)
{
    const char *slash = strchr(label, '/');
    if (!slash || v->n_states == HVD_FLEET_MAX_ROWS) return;
    size_t i = v->n_states++;
    snprintf(v->by_state[i].status, sizeof v->by_state[i].status, "%.*s", (int)(slash - label), label);
    snprintf(v->by_state[i].waiting_reason, sizeof v->by_state[i].waiting_reason, "%s", slash + 1);
    v->by_state[i].jobs = (int64_t)n;
}

static void add_rows(HvdFleetView *v, const PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, 0), *label = PQgetvalue(r, i, 1);
        double x = strtod(PQgetvalue(r, i, 2), NULL);
        if (strcmp(kind, "state") == 0) {
            add_state(v, label, x);
        } else if (strcmp(kind, "waiting") == 0 && v->n_waiting < sizeof v->waiting / sizeof v->waiting[0]) {
            snprintf(v->waiting[v->n_waiting].waiting_reason, sizeof v->waiting[0].waiting_reason, "%s", label);
            v->waiting[v->n_waiting++].seconds = x;
        } else if (strcmp(kind, "oldest_queued") == 0) {
            v->oldest_queued_s = x;
        } else if (strcmp(kind, "expired_leases") == 0) {
            v->expired_leases = (int64_t)x;
        } else if (strcmp(kind, "unsent") == 0) {
            v->unsent_envelopes = (int64_t)x;
        } else if (strcmp(kind, "oldest_unsent") == 0) {
            v->oldest_unsent_s = x;
        } else if (strcmp(kind, "open_circuits") == 0) {
            v->open_circuits = (int64_t)x;
        } else if (strcmp(kind, "secrets") == 0) {
            if (strcmp(label, "needed") == 0)
                v->secrets_needed = (int64_t)x;
            else
                v->secrets_retained = (int64_t)x;
        }
    }
}

HvdStoreStatus hvd_store_fleet_view(HvdStore *s, bool with_finished, HvdFleetView *v, char *err, size_t errlen)
{
    HvdStoreStatus st;
    memset(v, 0, sizeof *v);
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_FLEET_LIVE, NULL, &st, err, errlen);
    PGresult *f = r && with_finished ? store_exec1(s, c, SQL_FLEET_FINISHED, NULL, &st, err, errlen) : NULL;
    store_checkin(s, c);
    if (!r || (with_finished && !f)) {
        PQclear(r);
        return st;
    }
    add_rows(v, r);
    if (f) add_rows(v, f);
    v->finished_counted = f != NULL;
    PQclear(r);
    PQclear(f);
    return HVD_STORE_OK;
}
