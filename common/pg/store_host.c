/* The fleet-wide per-host circuit breaker in hvdeploy.host_health: a host
 * whose calls keep failing (unreachable, timeout, HOST_BUSY) is opened for a
 * cooldown; then one trial call goes through, and its outcome closes the
 * circuit or opens it again for twice as long (at most 32 cooldowns). */
#include <stdio.h>
#include <string.h>
#include "store_priv.h"

/* One statement: the state of the host and, when the cooldown is over, the
 * trial for this job if nobody else holds a live one. */
static const char SQL_GATE[] =
    "WITH h AS (SELECT target_host, consecutive_fails, open_until, trial_owner, trial_expires_at"
    "  FROM hvdeploy.host_health WHERE target_host = $1::text),"
    " t AS (UPDATE hvdeploy.host_health x SET trial_owner = $2::text,"
    "  trial_expires_at = now() + $3::bigint * interval '1 millisecond', updated_at = now()"
    "  FROM h WHERE x.target_host = h.target_host AND h.open_until IS NOT NULL AND h.open_until <= now()"
    "  AND (h.trial_owner IS NULL OR h.trial_owner = $2::text OR h.trial_expires_at <= now())"
    "  RETURNING 1)"
    " SELECT (SELECT consecutive_fails FROM h),"
    "  (SELECT open_until IS NOT NULL FROM h),"
    "  (SELECT greatest(0, floor(extract(epoch FROM (coalesce(h.trial_expires_at, h.open_until) - now())) * 1000))"
    "   FROM h),"
    "  (SELECT count(*) FROM t)";

HvdStoreStatus hvd_store_host_gate(HvdStore *s, const char *host, const char *job_id, int64_t trial_ms,
                                   HvdHostGate *gate, int *fails, int64_t *wait_ms, char *err, size_t errlen)
{
    StoreParams p = {0};
    store_p_text(&p, host);
    store_p_text(&p, job_id);
    store_p_int(&p, trial_ms);
    HvdStoreStatus st;
    *gate = HVD_HOST_CLOSED;
    *fails = 0;
    *wait_ms = 0;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_GATE, &p, &st, err, errlen);
    if (r) {
        *fails = PQgetisnull(r, 0, 0) ? 0 : (int)store_col_int(r, 0, 0);
        bool open = !PQgetisnull(r, 0, 1) && store_col_bool(r, 0, 1);
        int64_t wait = PQgetisnull(r, 0, 2) ? 0 : store_col_int(r, 0, 2);
        bool trial = store_col_int(r, 0, 3) > 0;
        if (open) {
            *gate = trial ? HVD_HOST_TRIAL : HVD_HOST_OPEN;
            *wait_ms = trial ? 0 : (wait > 0 ? wait : 1000);
        }
        PQclear(r);
    }
    store_checkin(s, c);
    return st;
}

/* A success closes the circuit; a host failure counts, and the threshold-th
 * one (or a failed trial) opens it for cooldown * 2^(times opened in a row). */
static const char SQL_REPORT[] =
    "INSERT INTO hvdeploy.host_health AS h (target_host, consecutive_fails, open_until, opened_count, updated_at)"
    " VALUES ($1::text, CASE WHEN $2::bool THEN 1 ELSE 0 END,"
    "  CASE WHEN $2::bool AND $3::int <= 1 THEN now() + $4::bigint * interval '1 millisecond' END,"
    "  CASE WHEN $2::bool AND $3::int <= 1 THEN 1 ELSE 0 END, now())"
    " ON CONFLICT (target_host) DO UPDATE SET"
    "  consecutive_fails = CASE WHEN $2::bool THEN h.consecutive_fails + 1 ELSE 0 END,"
    "  open_until = CASE WHEN NOT $2::bool THEN NULL"
    "   WHEN h.consecutive_fails + 1 >= $3::int OR h.trial_owner IS NOT NULL"
    "   THEN now() + $4::bigint * interval '1 millisecond' * power(2, least(h.opened_count, 5))"
    "   ELSE h.open_until END,"
    "  opened_count = CASE WHEN NOT $2::bool THEN 0"
    "   WHEN h.consecutive_fails + 1 >= $3::int OR h.trial_owner IS NOT NULL THEN h.opened_count + 1"
    "   ELSE h.opened_count END,"
    "  trial_owner = NULL, trial_expires_at = NULL, updated_at = now()"
    " RETURNING open_until IS NOT NULL";

HvdStoreStatus hvd_store_host_report(HvdStore *s, const char *host, bool host_failed, int threshold,
                                     int64_t cooldown_ms, bool *open, char *err, size_t errlen)
{
    StoreParams p = {0};
    store_p_text(&p, host);
    store_p_bool(&p, host_failed);
    store_p_int(&p, threshold);
    store_p_int(&p, cooldown_ms);
    HvdStoreStatus st;
    *open = false;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_REPORT, &p, &st, err, errlen);
    if (r) {
        *open = store_col_bool(r, 0, 0);
        PQclear(r);
    }
    store_checkin(s, c);
    return st;
}

/* ---- what each host's agent said of itself ---- */

/* clang-format off */
static const char SQL_HOST_AGENT[] =
    "INSERT INTO hvdeploy.host_agents AS a (target_host, agent, capabilities, profile, seen_at)"
    " VALUES ($1::text, $2::text, $3::text[], $4::text, now())"
    " ON CONFLICT (target_host) DO UPDATE SET agent = excluded.agent, capabilities = excluded.capabilities,"
    "  profile = excluded.profile, seen_at = now()";
/* clang-format on */

HvdStoreStatus hvd_store_host_agent(HvdStore *s, const char *host, const char *agent, const char *const *caps,
                                    size_t n_caps, const char *profile, char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdBuf arr = {0};
    for (size_t i = 0; i < n_caps; i++) store_array_add(&arr, caps[i]);
    store_array_end(&arr);
    store_p_text(&p, host);
    store_p_text(&p, agent);
    store_p_text(&p, arr.data);
    store_p_text(&p, profile);
    HvdStoreStatus st;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (c) {
        PGresult *r = store_exec1(s, c, SQL_HOST_AGENT, &p, &st, err, errlen);
        if (r) st = HVD_STORE_OK;
        PQclear(r);
        store_checkin(s, c);
    }
    hvd_buf_free(&arr);
    return st;
}
