/* Read-only queries of the operator's view: a job's timeline from
 * job_events, job lists with filters and paging, and per-host slots, waiting
 * jobs and circuit state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "codec.h"
#include "store_priv.h"
#include "store_view.h"

/* ---- the timeline ---- */

/* clang-format off */
static const char SQL_EVENTS[] =
    "SELECT id, " STORE_TS("at") ", stage, from_status, to_status, attempt, worker, detail"
    " FROM hvdeploy.job_events WHERE job_id = $1::uuid AND id > $2::bigint ORDER BY id LIMIT $3::int";
/* clang-format on */

HvdStoreStatus hvd_store_job_events(HvdStore *s, const char *job_id, int64_t after_id, size_t max, HvdJobEvent **v,
                                    size_t *n, char *err, size_t errlen)
{
    *v = NULL;
    *n = 0;
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    StoreParams p = {0};
    store_p_text(&p, job_id);
    store_p_int(&p, after_id);
    store_p_int(&p, max > 100000 ? 100000 : (int64_t)max);
    HvdStoreStatus st;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_EVENTS, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    int k = PQntuples(r);
    HvdJobEvent *e = hvd_xcalloc(k > 0 ? (size_t)k : 1, sizeof *e);
    for (int i = 0; i < k; i++) {
        e[i].id = store_col_int(r, i, 0);
        e[i].at = store_col_dup(r, i, 1);
        e[i].stage = store_col_dup(r, i, 2);
        e[i].from_status = store_col_dup(r, i, 3);
        e[i].to_status = store_col_dup(r, i, 4);
        e[i].attempt = (int)store_col_int(r, i, 5);
        e[i].worker = store_col_dup(r, i, 6);
        e[i].detail = store_col_dup(r, i, 7);
    }
    PQclear(r);
    *v = e;
    *n = (size_t)k;
    return HVD_STORE_OK;
}

void hvd_job_events_free(HvdJobEvent *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].at);
        free(v[i].stage);
        free(v[i].from_status);
        free(v[i].to_status);
        free(v[i].worker);
        free(v[i].detail);
    }
    free(v);
}

/* ---- filtered lists ---- */

/* The current stage is the running one, else the first not succeeded. */
/* clang-format off */
static const char SQL_LIST_FILTERED[] =
    "SELECT f.job_id::text, f.status, f.job_type, f.target_host, f.vm_name, f.code, f.attempts,"
    " f.cancel_requested, f.created_ts, f.updated_ts, f.finished_ts, s.stage, s.status, s.attempts"
    " FROM (SELECT j.job_id, j.status, j.job_type, j.target_host, j.vm_name, j.code, j.attempts,"
    " j.cancel_requested, " STORE_TS("j.created_at") " AS created_ts, " STORE_TS("j.updated_at") " AS updated_ts,"
    " " STORE_TS("j.finished_at") " AS finished_ts, j.created_at, j.seq"
    " FROM hvdeploy.jobs j LEFT JOIN LATERAL (SELECT s.stage FROM hvdeploy.job_stages s"
    "  WHERE s.job_id = j.job_id AND s.status <> 'succeeded'"
    "  ORDER BY (s.status = 'running') DESC, s.position LIMIT 1) cur ON true"
    " WHERE ($1::text IS NULL OR j.status = $1::text)"
    " AND ($2::text IS NULL OR lower(j.target_host) = lower($2::text))"
    " AND ($3::bigint IS NULL OR j.created_at >= to_timestamp($3::bigint / 1000.0))"
    " AND ($4::text IS NULL OR j.code = $4::text)"
    " AND ($5::text IS NULL OR lower(j.vm_name) = lower($5::text))"
    " AND ($6::text IS NULL OR j.correlation_id = $6::text)"
    " AND ($7::text IS NULL OR cur.stage = $7::text)"
    " AND ($8::text IS NULL OR strpos(lower(j.job_id::text || ' ' || coalesce(j.vm_name, '') || ' ' ||"
    "  coalesce(j.target_host, '') || ' ' || j.correlation_id), lower($8::text)) > 0)"
    " ORDER BY j.created_at DESC, j.seq DESC LIMIT $9::int OFFSET $10::int) f"
    " LEFT JOIN hvdeploy.job_stages s ON s.job_id = f.job_id"
    " ORDER BY f.created_at DESC, f.seq DESC, s.position";
/* clang-format on */

static const char *opt(const char *s)
{
    return s && *s ? s : NULL;
}

HvdStoreStatus hvd_store_list_filtered(HvdStore *s, const HvdListFilter *f, HvdJobRecord **out, size_t *n, char *err,
                                       size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    *out = NULL;
    *n = 0;
    store_p_text(&p, opt(f->status));
    store_p_text(&p, opt(f->host));
    if (f->since_ms > 0)
        store_p_int(&p, f->since_ms);
    else
        store_p_text(&p, NULL);
    store_p_text(&p, opt(f->code));
    store_p_text(&p, opt(f->vm_name));
    store_p_text(&p, opt(f->correlation_id));
    store_p_text(&p, opt(f->stage));
    store_p_text(&p, opt(f->search));
    store_p_int(&p, f->limit == 0 ? 20 : f->limit > 100000 ? 100000 : (int64_t)f->limit);
    store_p_int(&p, f->offset > 10000000 ? 10000000 : (int64_t)f->offset);
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_LIST_FILTERED, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    int rows = PQntuples(r);
    HvdJobRecord *v = hvd_xcalloc(rows > 0 ? (size_t)rows : 1, sizeof *v);
    size_t k = 0; /* one row per stage: a job's rows follow each other */
    for (int i = 0; i < rows; i++) {
        if (k == 0 || strcmp(v[k - 1].job_id, PQgetvalue(r, i, 0)) != 0) {
            HvdJobRecord *j = &v[k++];
            store_col_copy(r, i, 0, j->job_id, sizeof j->job_id);
            j->status = store_col_job_status(r, i, 1);
            j->job_type = store_col_dup(r, i, 2);
            j->target_host = store_col_dup(r, i, 3);
            j->vm_name = store_col_dup(r, i, 4);
            j->code = store_col_dup(r, i, 5);
            j->attempts = (int)store_col_int(r, i, 6);
            j->cancel_requested = store_col_bool(r, i, 7);
            j->created_at = store_col_dup(r, i, 8);
            j->updated_at = store_col_dup(r, i, 9);
            j->finished_at = store_col_dup(r, i, 10);
        }
        HvdJobRecord *j = &v[k - 1];
        if (PQgetisnull(r, i, 11) || j->n_stages >= HVD_MAX_STAGES) continue;
        HvdStage *sg = &j->stages[j->n_stages++];
        store_col_copy(r, i, 11, sg->name, sizeof sg->name);
        sg->status = store_col_stage_status(r, i, 12);
        sg->attempts = (int)store_col_int(r, i, 13);
    }
    PQclear(r);
    *out = v;
    *n = k;
    return HVD_STORE_OK;
}

/* ---- hosts ---- */

/* clang-format off */
/* NAMES_MORE: the hosts whose agent said what it is (host_agents, 0005) are
 * listed too, so its profile shows after its jobs have ended. */
#define SQL_HOSTS_WITH(NAMES_MORE) \
    "WITH live AS (SELECT target_host," \
    "  count(*) FILTER (WHERE status = 'running' AND holds_slot AND lease_expires_at > now()) AS slots," \
    "  count(*) FILTER (WHERE status = 'running') AS running," \
    "  count(*) FILTER (WHERE status = 'queued') AS queued," \
    "  count(*) FILTER (WHERE status = 'retrying') AS retrying," \
    "  count(*) FILTER (WHERE status <> 'running' AND waiting_reason = 'host_busy') AS w_busy," \
    "  count(*) FILTER (WHERE status <> 'running' AND waiting_reason = 'retry') AS w_retry," \
    "  count(*) FILTER (WHERE status <> 'running' AND waiting_reason = 'circuit_open') AS w_circuit," \
    "  count(*) FILTER (WHERE status <> 'running' AND (waiting_reason IS NULL OR waiting_reason NOT IN" \
    "   ('host_busy', 'retry', 'circuit_open'))) AS w_other" \
    "  FROM hvdeploy.jobs WHERE status IN " STORE_LIVE " AND target_host IS NOT NULL GROUP BY target_host)," \
    " names AS (SELECT target_host FROM live UNION SELECT target_host FROM hvdeploy.host_health" NAMES_MORE ")" \
    " SELECT n.target_host, coalesce(l.slots, 0), coalesce(l.running, 0), coalesce(l.queued, 0)," \
    "  coalesce(l.retrying, 0), coalesce(l.w_busy, 0), coalesce(l.w_retry, 0), coalesce(l.w_circuit, 0)," \
    "  coalesce(l.w_other, 0)," \
    "  CASE WHEN h.open_until IS NULL THEN 'closed'" \
    "   WHEN h.trial_owner IS NOT NULL AND h.trial_expires_at > now() THEN 'trial'" \
    "   WHEN h.open_until > now() THEN 'open' ELSE 'half-open' END," \
    "  coalesce(h.consecutive_fails, 0), " STORE_TS("h.open_until") ", h.trial_owner" \
    " FROM names n LEFT JOIN live l USING (target_host) LEFT JOIN hvdeploy.host_health h USING (target_host)" \
    " ORDER BY n.target_host"
static const char SQL_HOSTS[] = SQL_HOSTS_WITH("");
static const char SQL_HOSTS_AGENTS[] = SQL_HOSTS_WITH(" UNION SELECT target_host FROM hvdeploy.host_agents");
/* clang-format on */

/* The agents' profiles, when some part of the fleet records them: read as
 * JSON so that the table's exact columns do not matter here. */
static const char SQL_HOST_AGENTS_EXIST[] = "SELECT to_regclass('hvdeploy.host_agents') IS NOT NULL";
static const char SQL_HOST_AGENTS[] = "SELECT to_jsonb(a)::text FROM hvdeploy.host_agents a";

/* A JSON value as text: strings as they are, lists joined with commas. */
static char *json_field_text(const HvdNode *v)
{
    if (!v || v->type == HVD_NIL) return NULL;
    if (v->type == HVD_STR) return hvd_xstrdup(v->u.s.ptr);
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    if (v->type == HVD_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n; i++) {
            const HvdNode *it = v->u.arr.items[i];
            if (it->type != HVD_STR) continue;
            hvd_buf_printf(&b, "%s%s", b.len ? "," : "", it->u.s.ptr);
        }
        return hvd_buf_steal(&b);
    }
    char *j = hvd_node_to_json(v);
    hvd_buf_puts(&b, j);
    free(j);
    return hvd_buf_steal(&b);
}

static void read_host_agents(HvdStore *s, StoreConn *c, HvdHostView *v, size_t n)
{
    HvdStoreStatus st;
    char err[256];
    PGresult *r = store_exec1(s, c, SQL_HOST_AGENTS_EXIST, NULL, &st, err, sizeof err);
    bool exists = r && PQntuples(r) == 1 && store_col_bool(r, 0, 0);
    if (r) PQclear(r);
    if (!exists) return;
    r = store_exec1(s, c, SQL_HOST_AGENTS, NULL, &st, err, sizeof err);
    if (!r) return;
    for (int i = 0; i < PQntuples(r); i++) {
        HvdNode *row = NULL;
        const char *text = PQgetvalue(r, i, 0);
        if (hvd_json_to_node(text, strlen(text), 0, &row, NULL, 0) != HVD_DECODE_OK) continue;
        const char *host = hvd_node_get_str(row, "target_host");
        if (!host) host = hvd_node_get_str(row, "host");
        for (size_t k = 0; host && k < n; k++) {
            if (strcasecmp(v[k].host, host) != 0) continue;
            v[k].agent = json_field_text(hvd_node_get(row, "agent"));
            v[k].profile = json_field_text(hvd_node_get(row, "profile"));
            v[k].capabilities = json_field_text(hvd_node_get(row, "capabilities"));
        }
        hvd_node_free(row);
    }
    PQclear(r);
}

HvdStoreStatus hvd_store_hosts(HvdStore *s, HvdHostView **out, size_t *n, char *err, size_t errlen)
{
    HvdStoreStatus st;
    *out = NULL;
    *n = 0;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_HOST_AGENTS_EXIST, NULL, &st, err, errlen);
    bool agents = r && PQntuples(r) == 1 && store_col_bool(r, 0, 0);
    if (r) PQclear(r);
    r = store_exec1(s, c, agents ? SQL_HOSTS_AGENTS : SQL_HOSTS, NULL, &st, err, errlen);
    if (!r) {
        store_checkin(s, c);
        return st;
    }
    int rows = PQntuples(r);
    HvdHostView *v = hvd_xcalloc(rows > 0 ? (size_t)rows : 1, sizeof *v);
    for (int i = 0; i < rows; i++) {
        v[i].host = store_col_dup(r, i, 0);
        v[i].slots_in_use = (int)store_col_int(r, i, 1);
        v[i].running = (int)store_col_int(r, i, 2);
        v[i].queued = (int)store_col_int(r, i, 3);
        v[i].retrying = (int)store_col_int(r, i, 4);
        v[i].waiting_host_busy = (int)store_col_int(r, i, 5);
        v[i].waiting_retry = (int)store_col_int(r, i, 6);
        v[i].waiting_circuit = (int)store_col_int(r, i, 7);
        v[i].waiting_other = (int)store_col_int(r, i, 8);
        store_col_copy(r, i, 9, v[i].circuit, sizeof v[i].circuit);
        v[i].consecutive_fails = (int)store_col_int(r, i, 10);
        v[i].open_until = store_col_dup(r, i, 11);
        v[i].trial_owner = store_col_dup(r, i, 12);
    }
    PQclear(r);
    read_host_agents(s, c, v, (size_t)rows);
    store_checkin(s, c);
    *out = v;
    *n = (size_t)rows;
    return HVD_STORE_OK;
}

void hvd_host_views_free(HvdHostView *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].host);
        free(v[i].open_until);
        free(v[i].trial_owner);
        free(v[i].agent);
        free(v[i].profile);
        free(v[i].capabilities);
    }
    free(v);
}

/* clang-format off */
static const char SQL_HOST_WAITING[] =
    "SELECT j.job_id::text, j.status, j.vm_name,"
    " (SELECT s.stage FROM hvdeploy.job_stages s WHERE s.job_id = j.job_id AND s.status <> 'succeeded'"
    "  ORDER BY s.position LIMIT 1),"
    " coalesce(j.waiting_reason, 'queued'), " STORE_TS("j.next_run_at") ", j.attempts"
    " FROM hvdeploy.jobs j WHERE lower(j.target_host) = lower($1::text) AND j.status IN ('queued', 'retrying')"
    " ORDER BY j.seq LIMIT $2::int";
/* clang-format on */

HvdStoreStatus hvd_store_host_waiting(HvdStore *s, const char *host, size_t max, HvdWaitingJob **out, size_t *n,
                                      char *err, size_t errlen)
{
    StoreParams p = {0};
    HvdStoreStatus st;
    *out = NULL;
    *n = 0;
    store_p_text(&p, host);
    store_p_int(&p, max > 10000 ? 10000 : (int64_t)max);
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_HOST_WAITING, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    int rows = PQntuples(r);
    HvdWaitingJob *v = hvd_xcalloc(rows > 0 ? (size_t)rows : 1, sizeof *v);
    for (int i = 0; i < rows; i++) {
        store_col_copy(r, i, 0, v[i].job_id, sizeof v[i].job_id);
        store_col_copy(r, i, 1, v[i].status, sizeof v[i].status);
        v[i].vm_name = store_col_dup(r, i, 2);
        v[i].stage = store_col_dup(r, i, 3);
        v[i].reason = store_col_dup(r, i, 4);
        v[i].next_run_at = store_col_dup(r, i, 5);
        v[i].attempts = (int)store_col_int(r, i, 6);
    }
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return HVD_STORE_OK;
}

void hvd_waiting_jobs_free(HvdWaitingJob *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].vm_name);
        free(v[i].stage);
        free(v[i].reason);
        free(v[i].next_run_at);
    }
    free(v);
}
