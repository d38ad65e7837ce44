/* Integration tests of the store's fleet duties (issue 13) against a real
 * PostgreSQL: retention (pruning by age and batch, nothing live or unsent, events,
 * stages and secrets gone with their job, a pruned job id sent again is a new job),
 * the fleet view, the fleet role, and failover errors (a server that is no longer
 * the primary is a lost connection; a multi-host DSN skips a dead host). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "it_pg.h"
#include "store.h"
#include "store_fleet.h"

static const char *dsn;
static const char *const all_stages[] = {"vm.create", "disk.create", "nic.create", "vm.initialize"};

static void setup(void)
{
    if (!hvd_it_env("HVD_PG_DSN")) return;
    dsn = it_pg_create();
}

static void teardown(void)
{
    if (hvd_it_env("HVD_PG_DSN")) it_pg_drop();
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(fleet, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(failover, .init = setup, .fini = teardown, .timeout = 120);

static HvdStore *open_dsn(const char *d, int host_conc, bool migrate)
{
    char err[512] = "";
    HvdStoreOptions o = {.dsn = d,
                         .pool_size = 2,
                         .worker_id = "w-fleet",
                         .lease_ttl_s = 30,
                         .host_concurrency = host_conc,
                         .secret_retention_s = 3600};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "open: %s", err);
    int applied = -1;
    if (migrate)
        cr_assert_eq(hvd_store_migrate(s, HVD_SOURCE_DIR "/migrations", NULL, &applied, err, sizeof err), HVD_STORE_OK,
                     "migrate: %s", err);
    return s;
}

static PGconn *db(void)
{
    static PGconn *c;
    static char *for_dsn;
    if (c && for_dsn && strcmp(for_dsn, dsn) != 0) {
        PQfinish(c);
        c = NULL;
    }
    if (!c) {
        c = it_pg_connect(dsn);
        free(for_dsn);
        for_dsn = hvd_xstrdup(dsn);
    }
    return c;
}

static const char *jid(int n)
{
    static char ids[128][37];
    snprintf(ids[n], sizeof(ids[n]), "00000000-0000-4000-8000-%012d", n);
    return ids[n];
}

/* Job n on host (its VM name "vm-<n>", static storage: one at a time; the
 * strings are borrowed: never hvd_job_record_free a job made here). */
static HvdJobRecord job_of(int n, const char *host)
{
    static char vm[32];
    snprintf(vm, sizeof vm, "vm-%d", n);
    HvdJobRecord j = {0};
    snprintf(j.job_id, sizeof j.job_id, "%s", jid(n));
    j.job_type = (char *)"managed_deployment";
    j.target_host = (char *)host;
    j.vm_name = vm;
    j.reply_to = (char *)"hvdeploy.results";
    j.content_type = (char *)"application/msgpack";
    j.request_json = (char *)"{}";
    j.options_json = (char *)"{}";
    for (size_t i = 0; i < 4; i++) snprintf(j.stages[i].name, sizeof j.stages[i].name, "%s", all_stages[i]);
    j.n_stages = 4;
    return j;
}

/* Job n on host, recorded and started (RUN) or waiting for its busy host. */
static HvdClaimVerdict add_job(HvdStore *s, int n, const char *host, HvdJobRecord *rec, bool with_secret)
{
    static const unsigned char blob[] = "sealed";
    char err[512] = "";
    HvdJobRecord j = job_of(n, host);
    if (with_secret) {
        j.secret_blob = (HvdBuf){.data = (char *)blob, .len = sizeof blob, .cap = sizeof blob};
        j.secret_key_id = (char *)"k1";
    }
    HvdClaim out;
    cr_assert_eq(hvd_store_claim_new(s, &j, &out, rec, err, sizeof err), HVD_STORE_OK, "claim_new: %s", err);
    return out.decision.verdict;
}

/* Job n, run and finished with status, its envelope sent when sent; finished
 * days_ago days ago. */
static void add_finished(HvdStore *s, int n, const char *status, bool sent, int days_ago)
{
    HvdJobStatus js;
    cr_assert(hvd_job_status_parse(status, &js), "job status %s", status);
    HvdJobRecord r = {0};
    char host[32], next[37], err[512] = "";
    snprintf(host, sizeof host, "hv%02d", n);
    cr_assert_eq(add_job(s, n, host, &r, strcmp(status, "failed") == 0), HVD_CLAIM_RUN);
    cr_assert_eq(hvd_store_finish(s, jid(n), r.epoch, js, strcmp(status, "succeeded") ? "agent_error" : NULL, NULL, 0,
                                  "ENV", 3, next, err, sizeof err),
                 HVD_STORE_OK, "finish: %s", err);
    if (sent) {
        const char *ids[] = {jid(n)};
        cr_assert_eq(hvd_store_mark_sent(s, ids, 1, err, sizeof err), HVD_STORE_OK, "%s", err);
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE hvdeploy.jobs SET finished_at = now() - interval '%d days', created_at = now() - interval "
             "'%d days' WHERE job_id = $1::uuid",
             days_ago, days_ago + 1);
    PQclear(it_pg_q(db(), sql, jid(n), NULL));
    hvd_job_record_free(&r);
}

static long rows_of(const char *table, int n)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM hvdeploy.%s WHERE job_id = $1::uuid", table);
    return it_pg_long(db(), sql, jid(n));
}

static HvdPruneResult prune(HvdStore *s, int64_t older_than_s, size_t batch, size_t max_batches, bool dry)
{
    HvdPruneOptions o = {.older_than_s = older_than_s, .batch = batch, .max_batches = max_batches, .dry_run = dry};
    HvdPruneResult r;
    char err[512] = "";
    cr_assert_eq(hvd_store_prune(s, &o, &r, err, sizeof err), HVD_STORE_OK, "prune: %s", err);
    return r;
}

Test(retention, prunes_by_age_in_batches_and_nothing_live_or_unsent)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    /* 1..5: finished 40 days ago, sent (succeeded, failed with retained secrets, cancelled) */
    add_finished(s, 1, "succeeded", true, 40);
    add_finished(s, 2, "succeeded", true, 41);
    add_finished(s, 3, "failed", true, 42);
    add_finished(s, 4, "cancelled", true, 43);
    add_finished(s, 5, "succeeded", true, 44);
    /* 6: finished 40 days ago but its envelope never confirmed; 7: finished yesterday */
    add_finished(s, 6, "succeeded", false, 40);
    add_finished(s, 7, "succeeded", true, 1);
    /* 8: running, 9: queued behind it on the same host, both created 60 days ago */
    HvdJobRecord r8 = {0}, r9 = {0};
    cr_assert_eq(add_job(s, 8, "hv-busy", &r8, true), HVD_CLAIM_RUN);
    cr_assert_eq(add_job(s, 9, "hv-busy", &r9, false), HVD_CLAIM_WAIT);
    PQclear(it_pg_q(
        db(), "UPDATE hvdeploy.jobs SET created_at = now() - interval '60 days' WHERE status <> 'succeeded'", NULL));
    cr_assert(rows_of("job_events", 1) >= 2);
    cr_assert_eq(rows_of("job_stages", 1), 4);
    cr_assert_eq(rows_of("job_secrets", 3), 1, "a failed job keeps its secrets for a replay");

    /* a dry run counts and deletes nothing */
    HvdPruneResult dry = prune(s, 30 * 86400, 2, 0, true);
    cr_assert_eq(dry.jobs, 5);
    cr_assert_eq(dry.events, it_pg_long(db(),
                                        "SELECT count(*) FROM hvdeploy.job_events WHERE job_id IN "
                                        "(SELECT job_id FROM hvdeploy.jobs WHERE finished_at < now() - interval '30 "
                                        "days' AND envelope_sent_at IS NOT NULL)",
                                        NULL));
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs", NULL), 9);

    /* two batches of 2 at most: the two oldest go first (5 and 4) */
    HvdPruneResult r = prune(s, 30 * 86400, 2, 1, false);
    cr_assert_eq(r.jobs, 2);
    cr_assert_eq(r.batches, 1);
    cr_assert(r.more);
    cr_assert_eq(rows_of("jobs", 5) + rows_of("jobs", 4), 0);
    cr_assert_eq(rows_of("jobs", 1) + rows_of("jobs", 2) + rows_of("jobs", 3), 3);
    /* the rest, batch by batch until a short batch */
    r = prune(s, 30 * 86400, 2, 0, false);
    cr_assert_eq(r.jobs, 3);
    cr_assert_eq(r.batches, 2);
    cr_assert_not(r.more);
    for (int n = 1; n <= 5; n++) {
        cr_assert_eq(rows_of("jobs", n), 0, "job %d", n);
        cr_assert_eq(rows_of("job_events", n), 0, "events of job %d", n);
        cr_assert_eq(rows_of("job_stages", n), 0, "stages of job %d", n);
        cr_assert_eq(rows_of("job_secrets", n), 0, "secrets of job %d", n);
    }
    /* what must stay, stays, with its events */
    for (int n = 6; n <= 9; n++) {
        cr_assert_eq(rows_of("jobs", n), 1, "job %d", n);
        cr_assert(rows_of("job_events", n) >= 1, "events of job %d", n);
        cr_assert_eq(rows_of("job_stages", n), 4, "stages of job %d", n);
    }
    cr_assert_eq(rows_of("job_secrets", 8), 1);
    /* again: nothing left old enough */
    r = prune(s, 30 * 86400, 2, 0, false);
    cr_assert_eq(r.jobs, 0);
    cr_assert_eq(r.batches, 1);
    /* a shorter age takes the one of yesterday, never the unsent or the live ones */
    r = prune(s, 3600, 100, 0, false);
    cr_assert_eq(r.jobs, 1);
    cr_assert_eq(rows_of("jobs", 7), 0);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs", NULL), 3);
    hvd_job_record_free(&r8);
    hvd_job_record_free(&r9);
    hvd_store_close(s);
}

Test(retention, a_pruned_job_id_sent_again_is_a_new_job)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    add_finished(s, 1, "succeeded", true, 40);
    HvdJobRecord r = {0};
    /* before pruning, the id is the finished job: its stored envelope comes back */
    cr_assert_eq(add_job(s, 1, "hv01", &r, false), HVD_CLAIM_FINISHED);
    cr_assert_eq(r.envelope.len, 3);
    hvd_job_record_free(&r);
    cr_assert_eq(prune(s, 86400, 10, 0, false).jobs, 1);
    memset(&r, 0, sizeof r);
    cr_assert_eq(add_job(s, 1, "hv01", &r, false), HVD_CLAIM_RUN, "a new job, run from its first stage");
    cr_assert_eq(r.status, HVD_JOB_RUNNING);
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(it_pg_long(db(),
                            "SELECT count(*) FROM hvdeploy.job_events WHERE job_id = $1::uuid AND stage IS NULL"
                            " AND from_status IS NULL",
                            jid(1)),
                 1, "one history, the new job's");
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(retention, bad_options_are_refused)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    HvdPruneOptions o = {.older_than_s = 0, .batch = 10};
    HvdPruneResult r;
    char err[256] = "";
    cr_assert_eq(hvd_store_prune(s, &o, &r, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "the age must be over 0 s"), "%s", err);
    o = (HvdPruneOptions){.older_than_s = 10, .batch = 0};
    cr_assert_eq(hvd_store_prune(s, &o, &r, err, sizeof err), HVD_STORE_ERROR);
    hvd_store_close(s);
}

/* ---- the fleet view ---- */

static int64_t state_jobs(const HvdFleetView *v, const char *status, const char *reason)
{
    for (size_t i = 0; i < v->n_states; i++)
        if (strcmp(v->by_state[i].status, status) == 0 && strcmp(v->by_state[i].waiting_reason, reason) == 0)
            return v->by_state[i].jobs;
    return 0;
}

Test(fleet, view_counts_jobs_by_state_ages_outbox_circuits_and_secrets)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    HvdFleetView v;
    char err[512] = "";
    cr_assert_eq(hvd_store_fleet_view(s, true, &v, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(v.n_states, 0);
    cr_assert(v.finished_counted);
    cr_assert_eq(v.oldest_queued_s, 0);

    add_finished(s, 1, "succeeded", true, 2);
    add_finished(s, 2, "failed", false, 0); /* unsent, retained secrets */
    HvdJobRecord r3 = {0}, r4 = {0}, r5 = {0};
    cr_assert_eq(add_job(s, 3, "hv-a", &r3, true), HVD_CLAIM_RUN);
    cr_assert_eq(add_job(s, 4, "hv-a", &r4, false), HVD_CLAIM_WAIT); /* host busy */
    cr_assert_eq(add_job(s, 5, "hv-b", &r5, false), HVD_CLAIM_RUN);
    char next[37];
    HvdStage busy = {.name = "vm.create",
                     .message = (char *)"busy",
                     .code = (char *)"agent_error",
                     .agent_code = (char *)"HOST_BUSY"};
    cr_assert_eq(hvd_store_wait_retry(s, jid(5), r5.epoch, &busy, 60000, HVD_WAIT_RETRY, next, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    PQclear(it_pg_q(db(),
                    "UPDATE hvdeploy.jobs SET created_at = now() - interval '100 seconds',"
                    " updated_at = now() - interval '40 seconds' WHERE job_id = $1::uuid",
                    jid(4), NULL));
    PQclear(it_pg_q(db(),
                    "UPDATE hvdeploy.jobs SET lease_expires_at = now() - interval '1 second' WHERE job_id = $1::uuid",
                    jid(3), NULL));
    bool open = false;
    cr_assert_eq(hvd_store_host_report(s, "hv-c", true, 1, 60000, &open, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert(open);

    cr_assert_eq(hvd_store_fleet_view(s, false, &v, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_not(v.finished_counted);
    cr_assert_eq(state_jobs(&v, "running", ""), 1);
    cr_assert_eq(state_jobs(&v, "queued", "host_busy"), 1);
    cr_assert_eq(state_jobs(&v, "retrying", "retry"), 1);
    cr_assert_eq(state_jobs(&v, "succeeded", ""), 0, "finished ones only when asked");
    cr_assert(v.oldest_queued_s >= 99 && v.oldest_queued_s < 200, "%f", v.oldest_queued_s);
    bool seen = false;
    for (size_t i = 0; i < v.n_waiting; i++)
        if (strcmp(v.waiting[i].waiting_reason, "host_busy") == 0) {
            seen = true;
            cr_assert(v.waiting[i].seconds >= 39 && v.waiting[i].seconds < 100, "%f", v.waiting[i].seconds);
        }
    cr_assert(seen);
    cr_assert_eq(v.unsent_envelopes, 1);
    cr_assert(v.oldest_unsent_s >= 0 && v.oldest_unsent_s < 60, "%f", v.oldest_unsent_s);
    cr_assert_eq(v.expired_leases, 1);
    cr_assert_eq(v.open_circuits, 1);
    cr_assert_eq(v.secrets_needed, 1);
    cr_assert_eq(v.secrets_retained, 1);

    cr_assert_eq(hvd_store_fleet_view(s, true, &v, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(state_jobs(&v, "succeeded", ""), 1);
    cr_assert_eq(state_jobs(&v, "failed", ""), 1);
    cr_assert_eq(state_jobs(&v, "cancelled", ""), 0);
    hvd_job_record_free(&r3);
    hvd_job_record_free(&r4);
    hvd_job_record_free(&r5);
    hvd_store_close(s);
}

Test(fleet, one_role_holder_at_a_time_and_a_successor_when_it_goes)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *a = open_dsn(dsn, 1, true), *b = open_dsn(dsn, 1, false);
    HvdStoreRole *ra = hvd_store_role_new(a, HVD_STORE_ROLE_FLEET), *rb = hvd_store_role_new(b, HVD_STORE_ROLE_FLEET);
    char err[256] = "";
    bool changed = false;
    cr_assert(hvd_store_role_hold(ra, &changed, err, sizeof err), "%s", err);
    cr_assert(changed);
    cr_assert_not(hvd_store_role_hold(rb, &changed, err, sizeof err));
    cr_assert_not(changed);
    cr_assert(hvd_store_role_hold(ra, &changed, err, sizeof err));
    cr_assert_not(changed, "held already");
    /* the holder's session ends (its worker died, or a failover): the other takes over */
    PQclear(it_pg_q(db(),
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objid = ($1::bigint & 4294967295)::oid",
                    "7527314218264388980", NULL));
    usleep(200 * 1000);
    cr_assert(hvd_store_role_hold(rb, &changed, err, sizeof err), "the successor takes it: %s", err);
    cr_assert(changed);
    /* the old holder learns at its next check that it lost it, and does not get it back */
    cr_assert_not(hvd_store_role_hold(ra, &changed, err, sizeof err));
    cr_assert(changed);
    cr_assert(hvd_store_role_hold(rb, &changed, err, sizeof err));
    cr_assert_not(changed);
    hvd_store_role_free(ra);
    hvd_store_role_free(rb);
    hvd_store_close(a);
    hvd_store_close(b);
}

/* ---- failover ---- */

/* The test database's DSN with extra key=value settings appended (later ones win). */
static char *dsn_with(const char *extra)
{
    return hvd_xasprintf("%s %s", dsn, extra);
}

/* host and port of $HVD_PG_DSN. */
static void server_of(char *host, size_t hl, char *port, size_t pl)
{
    PQconninfoOption *o = PQconninfoParse(dsn, NULL);
    cr_assert_not_null(o);
    snprintf(host, hl, "127.0.0.1");
    snprintf(port, pl, "5432");
    for (PQconninfoOption *p = o; p->keyword; p++) {
        if (strcmp(p->keyword, "host") == 0 && p->val && *p->val) snprintf(host, hl, "%s", p->val);
        if (strcmp(p->keyword, "port") == 0 && p->val && *p->val) snprintf(port, pl, "%s", p->val);
    }
    PQconninfoFree(o);
}

Test(failover, a_multi_host_dsn_skips_a_dead_host)
{
    HVD_IT_NEED("HVD_PG_DSN");
    char host[256], port[16];
    server_of(host, sizeof host, port, sizeof port);
    char extra[600];
    snprintf(extra, sizeof extra, "host=127.0.0.1,%s port=1,%s connect_timeout=3", host, port);
    char *d = dsn_with(extra);
    HvdStore *s = open_dsn(d, 1, true);
    HvdJobRecord r = {0};
    cr_assert_eq(add_job(s, 1, "hv01", &r, false), HVD_CLAIM_RUN);
    hvd_job_record_free(&r);
    hvd_store_close(s);
    free(d);
}

Test(failover, a_read_only_server_is_refused_at_connect)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    hvd_store_close(s);
    char sql[200];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", it_pg_name);
    it_pg_admin(sql);
    /* a standby, or a demoted primary: not a server the store may use */
    char err[512] = "";
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "w", .lease_ttl_s = 30, .host_concurrency = 1};
    cr_assert_null(hvd_store_open(&o, err, sizeof err));
    cr_assert(strstr(err, "cannot connect to PostgreSQL") && strstr(err, "read-only"), "%s", err);
    fprintf(stderr, "read-only server: %s\n", err);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s RESET default_transaction_read_only", it_pg_name);
    it_pg_admin(sql);
}

/* The backend pid of the store's connection (application_name hvdeploy) to the test db. */
static long store_backend(void)
{
    return it_pg_long(db(),
                      "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = 'hvdeploy'"
                      " AND datname = current_database()",
                      NULL);
}

Test(failover, no_longer_the_primary_is_a_lost_connection_and_retried)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_dsn(dsn, 1, true);
    hvd_store_close(s);
    char sql[200];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", it_pg_name);
    it_pg_admin(sql);
    /* a DSN that accepts any server lands on the read-only one, as a pooled
     * connection to a primary that was demoted under it would be */
    char *d = dsn_with("target_session_attrs=any");
    HvdStoreOptions o = {.dsn = d, .pool_size = 1, .worker_id = "w", .lease_ttl_s = 30, .host_concurrency = 1};
    char err[512] = "";
    s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    long before = store_backend();
    cr_assert(before > 0);
    HvdJobRecord r = {0};
    HvdClaim out;
    HvdJobRecord j = job_of(1, "hv01");
    cr_assert_eq(hvd_store_claim_new(s, &j, &out, &r, err, sizeof err), HVD_STORE_RETRY, "%s", err);
    cr_assert(strstr(err, "no longer the primary (25006, read-only)"), "%s", err);
    fprintf(stderr, "demoted primary: %s\n", err);
    /* the failover is over: the next call opens a new session and works */
    snprintf(sql, sizeof sql, "ALTER DATABASE %s RESET default_transaction_read_only", it_pg_name);
    it_pg_admin(sql);
    cr_assert_eq(hvd_store_claim_new(s, &j, &out, &r, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(out.decision.verdict, HVD_CLAIM_RUN);
    long after = store_backend();
    cr_assert(after > 0 && after != before, "the connection was not opened again (%ld, %ld)", before, after);
    hvd_job_record_free(&r);
    hvd_store_close(s);
    free(d);
}
