/* Integration tests of common/store against a real PostgreSQL (a fresh database
 * per test): claiming, leases and fencing, takeover, stage steps and their event
 * chains, per-host slots in arrival order, duplicate names, retries, release,
 * the outbox, renewals, cancellation, secrets, rejected jobs and errors. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "it_pg.h"
#include "store.h"

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

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

/* Opens a store on the test database as worker `worker`, migrated. */
static HvdStore *open_store(const char *worker, int ttl, int host_conc)
{
    char err[512] = "";
    HvdStoreOptions o = {.dsn = dsn,
                         .pool_size = 2,
                         .worker_id = worker,
                         .lease_ttl_s = ttl,
                         .host_concurrency = host_conc,
                         .secret_retention_s = 3600};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    cr_assert_not_null(s, "open: %s", err);
    int applied = -1;
    HvdStoreStatus st = hvd_store_migrate(s, HVD_SOURCE_DIR "/migrations", NULL, &applied, err, sizeof err);
    cr_assert_eq(st, HVD_STORE_OK, "migrate: %s", err);
    return s;
}

static PGconn *db(void)
{
    static PGconn *c;
    if (!c) c = it_pg_connect(dsn);
    return c;
}

/* Job ids: 00000000-0000-4000-8000-0000000000NN */
static const char *jid(int n)
{
    static char ids[64][37];
    snprintf(ids[n], sizeof(ids[n]), "00000000-0000-4000-8000-%012d", n);
    return ids[n];
}

static HvdJobRecord new_job(int n, const char *host, const char *vm)
{
    /* the strings are borrowed: never hvd_job_record_free a job made here */
    HvdJobRecord j = {0};
    snprintf(j.job_id, sizeof j.job_id, "%s", jid(n));
    j.job_type = (char *)"managed_deployment";
    j.target_host = (char *)host;
    j.vm_name = (char *)vm;
    j.reply_to = (char *)"hvdeploy.results";
    j.content_type = (char *)"application/msgpack";
    j.request_json = (char *)"{\"target_host\":\"x\",\"vm_spec\":{\"vm_name\":\"v\"}}";
    j.options_json = (char *)"{\"on_failure\":\"keep\"}";
    for (size_t i = 0; i < 4; i++) snprintf(j.stages[i].name, sizeof j.stages[i].name, "%s", all_stages[i]);
    j.n_stages = 4;
    return j;
}

static void set_secret(HvdJobRecord *j, const unsigned char *blob, size_t len)
{
    j->secret_blob = (HvdBuf){.data = (char *)blob, .len = len, .cap = len};
    j->secret_key_id = (char *)"k1";
}

static HvdClaimVerdict claim_new(HvdStore *s, const HvdJobRecord *j, HvdJobRecord *rec)
{
    char err[512] = "";
    HvdClaim out;
    HvdStoreStatus st = hvd_store_claim_new(s, j, &out, rec, err, sizeof err);
    cr_assert_eq(st, HVD_STORE_OK, "claim_new %s: %s", j->job_id, err);
    return out.decision.verdict;
}

static HvdClaimVerdict claim(HvdStore *s, const char *id, HvdJobRecord *rec, bool *takeover)
{
    char err[512] = "";
    HvdClaim out;
    HvdStoreStatus st = hvd_store_claim(s, id, &out, rec, err, sizeof err);
    cr_assert_eq(st, HVD_STORE_OK, "claim %s: %s", id, err);
    if (takeover) *takeover = out.decision.takeover;
    return out.decision.verdict;
}

/* A stage as the runner hands it to the store. */
static HvdStage stage_of(const char *name, const char *status, const char *output)
{
    HvdStage st = {0};
    snprintf(st.name, sizeof st.name, "%s", name ? name : "");
    if (status) cr_assert(hvd_stage_status_parse(status, &st.status), "stage status %s", status);
    st.output_json = (char *)output;
    return st;
}

static HvdStoreStatus step(HvdStore *s, const char *id, int64_t epoch, const char *stage, const char *status,
                           const char *output, const char *next, bool *cancel, int *attempt)
{
    char err[512] = "";
    HvdStage ended = stage_of(stage, status, output);
    HvdStoreStatus r = hvd_store_step(s, id, epoch, stage ? &ended : NULL, next, cancel, attempt, err, sizeof err);
    cr_assert(r == HVD_STORE_OK || r == HVD_STORE_FENCED, "step: %s", err);
    return r;
}

static HvdStoreStatus finish(HvdStore *s, const char *id, int64_t epoch, const char *status, const char *code,
                             const HvdStage *f, size_t nf, const void *env, size_t envlen, char next[37])
{
    char err[512] = "";
    char scratch[37];
    HvdJobStatus js;
    cr_assert(hvd_job_status_parse(status, &js), "job status %s", status);
    HvdStoreStatus r =
        hvd_store_finish(s, id, epoch, js, code, f, nf, env, envlen, next ? next : scratch, err, sizeof err);
    cr_assert(r == HVD_STORE_OK || r == HVD_STORE_FENCED, "finish: %s", err);
    return r;
}

/* wait_retry of stage (NULL: none) with the given record. */
static HvdStoreStatus wait_retry(HvdStore *s, const char *id, int64_t epoch, const char *stage, const char *error,
                                 const char *code, const char *agent_code, const char *agent_log, int64_t delay_ms,
                                 char next[37], char *err, size_t errlen)
{
    HvdStage st = stage_of(stage, NULL, NULL);
    st.message = (char *)error;
    st.code = (char *)code;
    st.agent_code = (char *)agent_code;
    st.agent_log = (char *)agent_log;
    return hvd_store_wait_retry(s, id, epoch, stage ? &st : NULL, delay_ms, HVD_WAIT_RETRY, next, err, errlen);
}

static char *col(const char *sql, const char *id)
{
    return it_pg_value(db(), sql, id);
}

/* Every chain of events of the job (the job's own, and each stage's) starts
 * from NULL and each event starts where the previous one ended. Returns the
 * job chain as "queued>running>..." (caller frees). */
static char *check_chains(const char *id)
{
    PGresult *r = it_pg_q(db(),
                          "SELECT coalesce(stage, ''), coalesce(from_status, 'NULL'), to_status FROM "
                          "hvdeploy.job_events WHERE job_id = $1::uuid ORDER BY id",
                          id, NULL);
    HvdBuf chain = {0};
    for (int i = 0; i < PQntuples(r); i++) {
        const char *stage = PQgetvalue(r, i, 0);
        const char *from = PQgetvalue(r, i, 1);
        const char *prev = "NULL";
        for (int k = i - 1; k >= 0; k--)
            if (strcmp(PQgetvalue(r, k, 0), stage) == 0) {
                prev = PQgetvalue(r, k, 2);
                break;
            }
        cr_assert_str_eq(from, prev, "job %s stage '%s' event %d: from %s but the chain was at %s", id, stage, i, from,
                         prev);
        if (!*stage) hvd_buf_printf(&chain, "%s%s", chain.len ? ">" : "", PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return hvd_buf_steal(&chain);
}

/* ---- claiming ---- */

Test(store, claim_new_runs_with_epoch_1_and_stage_rows)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord rec = {0};
    HvdJobRecord j = new_job(1, "hv01", "web-01");
    uint64_t tx0 = hvd_store_tx_count(s);
    cr_assert_eq(claim_new(s, &j, &rec), HVD_CLAIM_RUN);
    cr_assert_eq(hvd_store_tx_count(s), tx0 + 1, "claim_new is one transaction");
    cr_assert_eq(rec.epoch, 1);
    cr_assert_eq(rec.attempts, 1);
    cr_assert_str_eq(hvd_job_status_name(rec.status), "running");
    cr_assert_str_eq(rec.job_id, jid(1));
    cr_assert_str_eq(rec.correlation_id, jid(1), "correlation id defaults to the job id");
    cr_assert_str_eq(rec.target_host, "hv01");
    cr_assert_eq(rec.n_stages, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(rec.stages[i].name, all_stages[i]);
        cr_assert_str_eq(hvd_stage_status_name(rec.stages[i].status), "pending");
    }
    cr_assert_eq(rec.secret_blob.len, 0);
    cr_assert_not_null(rec.created_at);
    cr_assert_eq(strlen(rec.created_at), 24, "RFC 3339 with ms: %s", rec.created_at);
    cr_assert_eq(rec.created_at[23], 'Z');
    char *v = col("SELECT status || ' ' || lease_owner || ' ' || lease_epoch || ' ' || holds_slot "
                  "FROM hvdeploy.jobs WHERE job_id = $1::uuid",
                  jid(1));
    cr_assert_str_eq(v, "running w-a 1 true");
    free(v);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = $1::uuid", jid(1)), 4);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running");
    free(v);
    /* the same id again while it runs: no second row, HELD */
    cr_assert_eq(claim_new(s, &j, &rec), HVD_CLAIM_HELD);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = $1::uuid", jid(1)), 1);
    /* unknown and malformed ids */
    cr_assert_eq(claim(s, jid(2), &rec, NULL), HVD_CLAIM_NOT_FOUND);
    cr_assert_eq(claim(s, "not-a-uuid", &rec, NULL), HVD_CLAIM_NOT_FOUND);
    hvd_job_record_free(&rec);
    hvd_store_close(s);
}

Test(store, held_then_takeover_after_expiry_then_old_holder_is_fenced)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *a = open_store("w-a", 1, 1);
    HvdStore *b = open_store("w-b", 1, 1);
    HvdJobRecord ra = {0}, rb = {0};
    HvdJobRecord j = new_job(1, "hv01", "web-01");
    bool takeover = true;
    cr_assert_eq(claim_new(a, &j, &ra), HVD_CLAIM_RUN);
    int attempt = 0;
    cr_assert_eq(step(a, jid(1), ra.epoch, NULL, NULL, NULL, "vm.create", NULL, &attempt), HVD_STORE_OK);
    cr_assert_eq(attempt, 1);
    cr_assert_eq(claim(b, jid(1), &rb, &takeover), HVD_CLAIM_HELD);
    cr_assert_not(takeover);
    usleep(1300 * 1000);
    cr_assert_eq(claim(b, jid(1), &rb, &takeover), HVD_CLAIM_RUN);
    cr_assert(takeover);
    cr_assert_eq(rb.epoch, 2);
    cr_assert_eq(rb.attempts, 2);
    cr_assert_str_eq(hvd_stage_status_name(rb.stages[0].status), "pending", "the interrupted stage is pending again");
    cr_assert_eq(rb.stages[0].attempts, 1);
    /* the old holder can change nothing */
    cr_assert_eq(step(a, jid(1), ra.epoch, "vm.create", "succeeded", "{\"vm_id\":\"x\"}", "disk.create", NULL, NULL),
                 HVD_STORE_FENCED);
    cr_assert_eq(finish(a, jid(1), ra.epoch, "failed", "internal_error", NULL, 0, "e", 1, NULL), HVD_STORE_FENCED);
    char err[256];
    cr_assert_eq(hvd_store_erase_secrets(a, jid(1), ra.epoch, err, sizeof err), HVD_STORE_FENCED);
    const char *ids[] = {jid(1)};
    int64_t eps[] = {ra.epoch};
    bool lost = false;
    cr_assert_eq(hvd_store_renew(a, ids, eps, 1, &lost, err, sizeof err), HVD_STORE_OK);
    cr_assert(lost);
    /* the new holder runs the stage again: attempt 2 */
    cr_assert_eq(step(b, jid(1), rb.epoch, NULL, NULL, NULL, "vm.create", NULL, &attempt), HVD_STORE_OK);
    cr_assert_eq(attempt, 2);
    eps[0] = rb.epoch;
    cr_assert_eq(hvd_store_renew(b, ids, eps, 1, &lost, err, sizeof err), HVD_STORE_OK);
    cr_assert_not(lost);
    char *v = col("SELECT outputs::text FROM hvdeploy.jobs WHERE job_id = $1::uuid", jid(1));
    cr_assert_str_eq(v, "{}", "the fenced step wrote nothing");
    free(v);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>running");
    free(v);
    v = col("SELECT string_agg(coalesce(detail, '-'), ',' ORDER BY id) FROM hvdeploy.job_events "
            "WHERE job_id = $1::uuid AND stage IS NULL",
            jid(1));
    cr_assert_str_eq(v, "received,claimed,takeover");
    free(v);
    hvd_job_record_free(&ra);
    hvd_job_record_free(&rb);
    hvd_store_close(a);
    hvd_store_close(b);
}

Test(store, four_stages_then_finish_chain_without_gaps)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord rec = {0};
    HvdJobRecord j = new_job(1, "hv01", "web-01");
    cr_assert_eq(claim_new(s, &j, &rec), HVD_CLAIM_RUN);
    const char *outputs[] = {"{\"vm_id\":\"11111111-2222-3333-4444-555555555555\"}",
                             "{\"disk_id\":\"d1\",\"disk_path\":\"C:\\\\vm\\\\d1.vhdx\"}",
                             "{\"nic_id\":\"n1\",\"mac_address\":\"00:15:5D:00:00:01\"}", "{}"};
    bool cancel = true;
    int attempt = 0;
    uint64_t tx0 = hvd_store_tx_count(s);
    cr_assert_eq(step(s, jid(1), rec.epoch, NULL, NULL, NULL, "vm.create", &cancel, &attempt), HVD_STORE_OK);
    cr_assert_not(cancel);
    cr_assert_eq(attempt, 1);
    for (int i = 0; i < 4; i++) {
        const char *next = i < 3 ? all_stages[i + 1] : NULL;
        cr_assert_eq(step(s, jid(1), rec.epoch, all_stages[i], "succeeded", outputs[i], next, &cancel, &attempt),
                     HVD_STORE_OK);
        cr_assert_eq(attempt, next ? 1 : 0);
    }
    cr_assert_eq(hvd_store_tx_count(s), tx0 + 5, "each step is one transaction");
    static const char envelope[] = "\x85\xa6job_id\xa0\x00binary";
    char next[37] = "x";
    cr_assert_eq(finish(s, jid(1), rec.epoch, "succeeded", NULL, NULL, 0, envelope, sizeof envelope, next),
                 HVD_STORE_OK);
    cr_assert_eq(hvd_store_tx_count(s), tx0 + 6, "finish is one transaction");
    cr_assert_str_eq(next, "");
    char *v = col("SELECT string_agg(status || ':' || attempts, ',' ORDER BY position) FROM "
                  "hvdeploy.job_stages WHERE job_id = $1::uuid",
                  jid(1));
    cr_assert_str_eq(v, "succeeded:1,succeeded:1,succeeded:1,succeeded:1");
    free(v);
    v = col("SELECT outputs->>'vm_id' || ' ' || (outputs->>'disk_id') || ' ' || (outputs->>'mac_address') "
            "FROM hvdeploy.jobs WHERE job_id = $1::uuid",
            jid(1));
    cr_assert_str_eq(v, "11111111-2222-3333-4444-555555555555 d1 00:15:5D:00:00:01");
    free(v);
    v = col("SELECT count(*) FILTER (WHERE started_at IS NOT NULL AND finished_at >= started_at) FROM "
            "hvdeploy.job_stages WHERE job_id = $1::uuid",
            jid(1));
    cr_assert_str_eq(v, "4");
    free(v);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>succeeded");
    free(v);
    v = col("SELECT string_agg(coalesce(from_status, 'NULL') || '>' || to_status, ',' ORDER BY id) "
            "FROM hvdeploy.job_events WHERE job_id = $1::uuid AND stage = 'disk.create'",
            jid(1));
    cr_assert_str_eq(v, "NULL>pending,pending>running,running>succeeded");
    free(v);
    v = col("SELECT status || ' ' || (lease_owner IS NULL) || ' ' || holds_slot || ' ' || (finished_at IS "
            "NOT NULL) FROM hvdeploy.jobs WHERE job_id = $1::uuid",
            jid(1));
    cr_assert_str_eq(v, "succeeded true false true");
    free(v);
    /* a finished job: claim -> FINISHED with the same bytes, also for the message sent again */
    cr_assert_eq(claim(s, jid(1), &rec, NULL), HVD_CLAIM_FINISHED);
    cr_assert_eq(rec.envelope.len, sizeof envelope);
    cr_assert_eq(memcmp(rec.envelope.data, envelope, sizeof envelope), 0);
    cr_assert_not(rec.envelope_sent);
    HvdJobRecord again = {0};
    cr_assert_eq(claim_new(s, &j, &again), HVD_CLAIM_FINISHED);
    cr_assert_eq(again.envelope.len, sizeof envelope);
    cr_assert_eq(memcmp(again.envelope.data, envelope, sizeof envelope), 0);
    hvd_job_record_free(&again);
    hvd_job_record_free(&rec);
    hvd_store_close(s);
}

Test(store, step_rejects_unplanned_stage_and_bad_status)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord rec = {0};
    HvdJobRecord j = new_job(1, "hv01", "web-01");
    j.n_stages = 1; /* vm.create only */
    cr_assert_eq(claim_new(s, &j, &rec), HVD_CLAIM_RUN);
    cr_assert_eq(rec.n_stages, 1);
    char err[256] = "";
    cr_assert_eq(hvd_store_step(s, jid(1), rec.epoch, NULL, "nic.create", NULL, NULL, err, sizeof err),
                 HVD_STORE_ERROR);
    cr_assert(strstr(err, "nic.create"), "%s", err);
    HvdStage bad = stage_of("vm.create", "running", NULL);
    cr_assert_eq(hvd_store_step(s, jid(1), rec.epoch, &bad, NULL, NULL, NULL, err, sizeof err), HVD_STORE_ERROR);
    hvd_job_record_free(&rec);
    hvd_store_close(s);
}

/* ---- host slots ---- */

Test(store, host_concurrency_one_waits_and_serves_in_arrival_order)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r1 = {0}, r2 = {0}, r3 = {0}, rk = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2"), j3 = new_job(3, "hv01", "vm-3");
    HvdJobRecord k = new_job(4, "hv02", "vm-1");
    cr_assert_eq(claim_new(s, &j1, &r1), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j2, &r2), HVD_CLAIM_WAIT);
    cr_assert_eq(claim_new(s, &j3, &r3), HVD_CLAIM_WAIT);
    cr_assert_eq(claim_new(s, &k, &rk), HVD_CLAIM_RUN, "another host runs in parallel");
    char *v = col("SELECT status || ' ' || waiting_reason || ' ' || holds_slot || ' ' || (next_run_at > now()) "
                  "FROM hvdeploy.jobs WHERE job_id = $1::uuid",
                  jid(2));
    cr_assert_str_eq(v, "queued host_busy false true");
    free(v);
    /* a doorbell while the host is busy: still waiting */
    cr_assert_eq(claim(s, jid(3), &r3, NULL), HVD_CLAIM_WAIT);
    char next[37] = "";
    cr_assert_eq(step(s, jid(1), r1.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(finish(s, jid(1), r1.epoch, "succeeded", NULL, NULL, 0, "e", 1, next), HVD_STORE_OK);
    cr_assert_str_eq(next, jid(2), "finish names the oldest waiting job");
    /* job 3 rings first, but job 2 arrived earlier and waits: 3 keeps waiting */
    cr_assert_eq(claim(s, jid(3), &r3, NULL), HVD_CLAIM_WAIT);
    cr_assert_eq(claim(s, jid(2), &r2, NULL), HVD_CLAIM_RUN);
    cr_assert_eq(r2.epoch, 1);
    cr_assert_eq(claim(s, jid(3), &r3, NULL), HVD_CLAIM_WAIT);
    cr_assert_eq(finish(s, jid(2), r2.epoch, "failed", "agent_error", NULL, 0, "e", 1, next), HVD_STORE_OK);
    cr_assert_str_eq(next, jid(3));
    cr_assert_eq(claim(s, jid(3), &r3, NULL), HVD_CLAIM_RUN);
    v = check_chains(jid(3));
    cr_assert_str_eq(v, "queued>running");
    free(v);
    hvd_job_record_free(&r1);
    hvd_job_record_free(&r2);
    hvd_job_record_free(&r3);
    hvd_job_record_free(&rk);
    hvd_store_close(s);
}

Test(store, host_concurrency_two)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 2);
    HvdJobRecord r = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2"), j3 = new_job(3, "hv01", "vm-3");
    cr_assert_eq(claim_new(s, &j1, &r), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j2, &r), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j3, &r), HVD_CLAIM_WAIT);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(store, expired_holder_loses_its_slot_to_the_next_job)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *a = open_store("w-a", 1, 1);
    HvdStore *b = open_store("w-b", 30, 1);
    HvdJobRecord r1 = {0}, r2 = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2");
    cr_assert_eq(claim_new(a, &j1, &r1), HVD_CLAIM_RUN);
    cr_assert_eq(step(a, jid(1), r1.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(claim_new(b, &j2, &r2), HVD_CLAIM_WAIT);
    usleep(1300 * 1000);
    /* job 1's holder is presumed dead; job 1 arrived first, so it is taken over first */
    cr_assert_eq(claim(b, jid(2), &r2, NULL), HVD_CLAIM_WAIT);
    bool takeover = false;
    cr_assert_eq(claim(b, jid(1), &r1, &takeover), HVD_CLAIM_RUN);
    cr_assert(takeover);
    cr_assert_eq(claim(b, jid(2), &r2, NULL), HVD_CLAIM_WAIT, "job 1 holds the slot again");
    hvd_job_record_free(&r1);
    hvd_job_record_free(&r2);
    hvd_store_close(a);
    hvd_store_close(b);
}

Test(store, later_job_takes_expired_slot_and_fences_its_holder)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *a = open_store("w-a", 1, 1);
    HvdStore *b = open_store("w-b", 30, 1);
    HvdJobRecord r1 = {0}, r2 = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2");
    /* job 2 arrived first but waits for its retry; job 1 runs meanwhile */
    cr_assert_eq(claim_new(b, &j2, &r2), HVD_CLAIM_RUN);
    char next[37], err[256];
    cr_assert_eq(wait_retry(b, jid(2), r2.epoch, NULL, NULL, NULL, NULL, NULL, 1000, next, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    cr_assert_eq(claim_new(a, &j1, &r1), HVD_CLAIM_RUN);
    usleep(1300 * 1000);
    /* job 1's lease expired and job 2 is due: job 2 takes the slot */
    cr_assert_eq(claim(b, jid(2), &r2, NULL), HVD_CLAIM_RUN);
    cr_assert_eq(step(a, jid(1), r1.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_FENCED,
                 "a holder whose slot went to another job is fenced");
    cr_assert_eq(claim(b, jid(1), &r1, NULL), HVD_CLAIM_WAIT);
    char *v = col("SELECT status || ' ' || waiting_reason FROM hvdeploy.jobs WHERE job_id = $1::uuid", jid(1));
    cr_assert_str_eq(v, "queued host_busy");
    free(v);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>queued");
    free(v);
    hvd_job_record_free(&r1);
    hvd_job_record_free(&r2);
    hvd_store_close(a);
    hvd_store_close(b);
}

/* ---- duplicate names ---- */

Test(store, duplicate_live_name_on_a_host)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "web-01"), j2 = new_job(2, "hv01", "WEB-01");
    HvdJobRecord other_host = new_job(3, "hv02", "web-01");
    cr_assert_eq(claim_new(s, &j1, &r), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j2, &r), HVD_CLAIM_DUPLICATE_NAME);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = $1::uuid", jid(2)), 0,
                 "nothing recorded");
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_events WHERE job_id = $1::uuid", jid(2)), 0);
    cr_assert_eq(claim_new(s, &other_host, &r), HVD_CLAIM_RUN);
    /* once job 1 ended, the name is free again */
    HvdJobRecord r1 = {0};
    cr_assert_eq(claim(s, jid(1), &r1, NULL), HVD_CLAIM_HELD);
    char *v = col("SELECT lease_epoch FROM hvdeploy.jobs WHERE job_id = $1::uuid", jid(1));
    cr_assert_eq(finish(s, jid(1), strtol(v, NULL, 10), "failed", "agent_error", NULL, 0, "e", 1, NULL), HVD_STORE_OK);
    free(v);
    cr_assert_eq(claim_new(s, &j2, &r), HVD_CLAIM_RUN);
    hvd_job_record_free(&r);
    hvd_job_record_free(&r1);
    hvd_store_close(s);
}

typedef struct {
    int n;
    HvdClaimVerdict out;
} RaceArg;

static void *race_claim(void *p)
{
    RaceArg *a = p;
    char err[256];
    char worker[16];
    snprintf(worker, sizeof worker, "w-%d", a->n);
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = worker, .lease_ttl_s = 30, .host_concurrency = 1};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    if (!s) return NULL;
    HvdJobRecord j = new_job(10 + a->n, "hv01", "same-name");
    HvdStoreStatus st;
    HvdClaim c;
    do st = hvd_store_claim_new(s, &j, &c, NULL, err, sizeof err);
    while (st == HVD_STORE_RETRY);
    a->out = c.decision.verdict;
    if (st != HVD_STORE_OK) a->out = (HvdClaimVerdict)-1;
    hvd_store_close(s);
    return NULL;
}

Test(store, duplicate_name_race_across_workers)
{
    HVD_IT_NEED("HVD_PG_DSN");
    hvd_store_close(open_store("w-m", 30, 1));
    for (int i = 0; i < 4; i++) (void)jid(10 + i);
    pthread_t t[4];
    RaceArg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (RaceArg){.n = i, .out = (HvdClaimVerdict)-2};
        pthread_create(&t[i], NULL, race_claim, &a[i]);
    }
    int run = 0, dup = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        run += a[i].out == HVD_CLAIM_RUN;
        dup += a[i].out == HVD_CLAIM_DUPLICATE_NAME;
    }
    cr_assert_eq(run, 1);
    cr_assert_eq(dup, 3);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs WHERE vm_name = $1", "same-name"), 1);
}

/* ---- retries, release, sweep ---- */

Test(store, wait_retry_then_sweep_when_due)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0}, r2 = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2");
    char next[37] = "x", err[256] = "";
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j2, &r2), HVD_CLAIM_WAIT);
    cr_assert_eq(step(s, jid(1), r.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(wait_retry(s, jid(1), r.epoch, "vm.create", "host busy", "agent_error", "HOST_BUSY", "log line", 1500,
                            next, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    cr_assert_str_eq(next, jid(2), "the slot went back to the host");
    char *v = col("SELECT status || ' ' || waiting_reason || ' ' || holds_slot || ' ' || (lease_owner IS NULL) || "
                  "' ' || (next_run_at > now() + interval '1 second') FROM hvdeploy.jobs WHERE job_id = $1::uuid",
                  jid(1));
    cr_assert_str_eq(v, "retrying retry false true true");
    free(v);
    v = col("SELECT status || ' ' || attempts || ' ' || error || ' ' || agent_code || ' ' || agent_log FROM "
            "hvdeploy.job_stages WHERE job_id = $1::uuid AND stage = 'vm.create'",
            jid(1));
    cr_assert_str_eq(v, "pending 1 host busy HOST_BUSY log line");
    free(v);
    /* a late write after the wait is fenced */
    cr_assert_eq(step(s, jid(1), r.epoch, "vm.create", "succeeded", NULL, NULL, NULL, NULL), HVD_STORE_FENCED);
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_WAIT, "the retry is not due");
    char ids[8][37];
    size_t n = 9;
    cr_assert_eq(hvd_store_sweep(s, 8, ids, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 0, "nothing due yet");
    /* job 2 takes the slot meanwhile and ends */
    cr_assert_eq(claim(s, jid(2), &r2, NULL), HVD_CLAIM_RUN);
    cr_assert_eq(finish(s, jid(2), r2.epoch, "succeeded", NULL, NULL, 0, "e", 1, next), HVD_STORE_OK);
    usleep(1600 * 1000);
    cr_assert_eq(hvd_store_sweep(s, 8, ids, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], jid(1));
    bool takeover = true;
    cr_assert_eq(claim(s, jid(1), &r, &takeover), HVD_CLAIM_RUN);
    cr_assert_not(takeover);
    cr_assert_eq(r.epoch, 2);
    cr_assert_eq(r.attempts, 2);
    int attempt = 0;
    cr_assert_eq(step(s, jid(1), r.epoch, NULL, NULL, NULL, "vm.create", NULL, &attempt), HVD_STORE_OK);
    cr_assert_eq(attempt, 2);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>retrying>running");
    free(v);
    v = col("SELECT string_agg(coalesce(from_status, 'NULL') || '>' || to_status, ',' ORDER BY id) "
            "FROM hvdeploy.job_events WHERE job_id = $1::uuid AND stage = 'vm.create'",
            jid(1));
    cr_assert_str_eq(v, "NULL>pending,pending>running,running>pending,pending>running");
    free(v);
    hvd_job_record_free(&r);
    hvd_job_record_free(&r2);
    hvd_store_close(s);
}

Test(store, sweep_finds_expired_leases)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 1, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    char ids[4][37], err[256];
    size_t n = 0;
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    cr_assert_eq(hvd_store_sweep(s, 4, ids, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 0);
    usleep(1300 * 1000);
    cr_assert_eq(hvd_store_sweep(s, 4, ids, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], jid(1));
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(store, release_lets_the_job_go)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *a = open_store("w-a", 30, 1);
    HvdStore *b = open_store("w-b", 30, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2");
    char next[37] = "x", err[256];
    cr_assert_eq(claim_new(a, &j, &r), HVD_CLAIM_RUN);
    cr_assert_eq(step(a, jid(1), r.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(claim_new(b, &j2, NULL), HVD_CLAIM_WAIT);
    cr_assert_eq(hvd_store_release(a, jid(1), r.epoch, next, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_str_eq(next, "", "job 1 arrived first: it is next itself");
    char *v = col("SELECT status || ' ' || holds_slot || ' ' || (next_run_at <= now()) FROM hvdeploy.jobs "
                  "WHERE job_id = $1::uuid",
                  jid(1));
    cr_assert_str_eq(v, "queued false true");
    free(v);
    cr_assert_eq(hvd_store_release(a, jid(1), r.epoch, next, err, sizeof err), HVD_STORE_FENCED);
    cr_assert_eq(claim(b, jid(2), NULL, NULL), HVD_CLAIM_WAIT, "arrival order");
    bool takeover = true;
    cr_assert_eq(claim(b, jid(1), &r, &takeover), HVD_CLAIM_RUN);
    cr_assert_not(takeover);
    cr_assert_str_eq(hvd_stage_status_name(r.stages[0].status), "pending");
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>queued>running");
    free(v);
    hvd_job_record_free(&r);
    hvd_store_close(a);
    hvd_store_close(b);
}

/* ---- outbox, renew, cancel ---- */

Test(store, outbox_until_marked_sent)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    j.correlation_id = "corr-1";
    j.reply_to = "my.replies";
    char err[256];
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    HvdOutboxItem items[4];
    size_t n = 9;
    cr_assert_eq(hvd_store_outbox(s, 0, 4, items, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(finish(s, jid(1), r.epoch, "succeeded", NULL, NULL, 0, "ENV\0x", 5, NULL), HVD_STORE_OK);
    cr_assert_eq(hvd_store_outbox(s, 60000, 4, items, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 0, "not older than a minute");
    cr_assert_eq(hvd_store_outbox(s, 0, 4, items, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(items[0].job_id, jid(1));
    cr_assert_str_eq(items[0].reply_to, "my.replies");
    cr_assert_str_eq(items[0].correlation_id, "corr-1");
    cr_assert_str_eq(items[0].content_type, "application/msgpack");
    cr_assert_eq(items[0].envelope.len, 5);
    cr_assert_eq(memcmp(items[0].envelope.data, "ENV\0x", 5), 0);
    hvd_outbox_item_free(&items[0]);
    const char *ids[] = {jid(1), "garbage"};
    cr_assert_eq(hvd_store_mark_sent(s, ids, 2, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(hvd_store_outbox(s, 0, 4, items, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_FINISHED);
    cr_assert(r.envelope_sent);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(store, renew_extends_and_detects_lost_leases)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 2, 2);
    HvdJobRecord r1 = {0}, r2 = {0};
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2");
    cr_assert_eq(claim_new(s, &j1, &r1), HVD_CLAIM_RUN);
    cr_assert_eq(claim_new(s, &j2, &r2), HVD_CLAIM_RUN);
    char err[256];
    const char *ids[] = {jid(1), jid(2), jid(3)};
    int64_t eps[] = {r1.epoch, r2.epoch + 5, 1};
    bool lost[3] = {true, false, false};
    for (int i = 0; i < 3; i++) {
        usleep(800 * 1000);
        eps[1] = i == 2 ? r2.epoch + 5 : r2.epoch;
        cr_assert_eq(hvd_store_renew(s, ids, eps, 3, lost, err, sizeof err), HVD_STORE_OK, "%s", err);
        cr_assert_not(lost[0]);
        cr_assert_eq(lost[1], i == 2);
        cr_assert(lost[2], "unknown job");
    }
    /* renewed three times 0.8 s apart with a 2 s ttl: never expired */
    HvdStore *b = open_store("w-b", 2, 2);
    cr_assert_eq(claim(b, jid(1), NULL, NULL), HVD_CLAIM_HELD);
    hvd_store_close(b);
    hvd_job_record_free(&r1);
    hvd_job_record_free(&r2);
    hvd_store_close(s);
}

Test(store, cancel_is_seen_by_the_next_step)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    char err[256];
    bool found = true, fin = true, cancel = false;
    int attempt = 7;
    cr_assert_eq(hvd_store_request_cancel(s, jid(9), &found, &fin, err, sizeof err), HVD_STORE_OK);
    cr_assert_not(found);
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    cr_assert_not(r.cancel_requested);
    cr_assert_eq(step(s, jid(1), r.epoch, NULL, NULL, NULL, "vm.create", &cancel, &attempt), HVD_STORE_OK);
    cr_assert_not(cancel);
    cr_assert_eq(hvd_store_request_cancel(s, jid(1), &found, &fin, err, sizeof err), HVD_STORE_OK);
    cr_assert(found);
    cr_assert_not(fin);
    cr_assert_eq(
        step(s, jid(1), r.epoch, "vm.create", "succeeded", "{\"vm_id\":\"v\"}", "disk.create", &cancel, &attempt),
        HVD_STORE_OK);
    cr_assert(cancel);
    cr_assert_eq(attempt, 0, "the next stage is not started");
    char *v = col("SELECT status FROM hvdeploy.job_stages WHERE job_id = $1::uuid AND stage = 'disk.create'", jid(1));
    cr_assert_str_eq(v, "pending");
    free(v);
    HvdStage f[] = {stage_of("vm.create", "rolled_back", NULL)};
    cr_assert_eq(finish(s, jid(1), r.epoch, "cancelled", "cancelled", f, 1, "E", 1, NULL), HVD_STORE_OK);
    cr_assert_eq(hvd_store_request_cancel(s, jid(1), &found, &fin, err, sizeof err), HVD_STORE_OK);
    cr_assert(found);
    cr_assert(fin);
    v = col("SELECT string_agg(coalesce(from_status, 'NULL') || '>' || to_status, ',' ORDER BY id) "
            "FROM hvdeploy.job_events WHERE job_id = $1::uuid AND stage = 'vm.create'",
            jid(1));
    cr_assert_str_eq(v, "NULL>pending,pending>running,running>succeeded,succeeded>rolled_back");
    free(v);
    v = check_chains(jid(1));
    cr_assert_str_eq(v, "queued>running>cancelled");
    free(v);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(store, cancel_of_a_retry_wait_makes_it_due)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    char err[256], next[37];
    bool found, fin;
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    cr_assert_eq(wait_retry(s, jid(1), r.epoch, NULL, NULL, NULL, NULL, NULL, 600000, next, err, sizeof err),
                 HVD_STORE_OK);
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_WAIT);
    cr_assert_eq(hvd_store_request_cancel(s, jid(1), &found, &fin, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_RUN);
    cr_assert(r.cancel_requested);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

/* ---- secrets ---- */

static const unsigned char blob[] = {0x01, 'k', '1', 0x00, 0xff, 0x10, 'c', 'i', 'p', 'h', 'e', 'r'};

Test(store, secrets_kept_as_given_and_erased)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 4);
    HvdJobRecord r = {0};
    char err[256];
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    set_secret(&j, blob, sizeof blob);
    cr_assert_eq(claim_new(s, &j, &r), HVD_CLAIM_RUN);
    cr_assert_eq(r.secret_blob.len, sizeof blob);
    cr_assert_eq(memcmp(r.secret_blob.data, blob, sizeof blob), 0);
    char *v = col("SELECT encode(ciphertext, 'hex') || ' ' || key_id || ' ' || (erase_after IS NULL) FROM "
                  "hvdeploy.job_secrets WHERE job_id = $1::uuid",
                  jid(1));
    cr_assert_str_eq(v, "016b3100ff10636970686572 k1 true");
    free(v);
    /* erased once vm.initialize succeeded */
    cr_assert_eq(hvd_store_erase_secrets(s, jid(1), r.epoch, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_secrets WHERE job_id = $1::uuid", jid(1)), 0);
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_HELD);
    /* erased when the job succeeds */
    HvdJobRecord j2 = new_job(2, "hv01", "vm-2");
    set_secret(&j2, blob, sizeof blob);
    cr_assert_eq(claim_new(s, &j2, &r), HVD_CLAIM_RUN);
    cr_assert_eq(finish(s, jid(2), r.epoch, "succeeded", NULL, NULL, 0, "e", 1, NULL), HVD_STORE_OK);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_secrets WHERE job_id = $1::uuid", jid(2)), 0);
    /* kept for the retention when it failed */
    HvdJobRecord j3 = new_job(3, "hv01", "vm-3");
    set_secret(&j3, blob, sizeof blob);
    cr_assert_eq(claim_new(s, &j3, &r), HVD_CLAIM_RUN);
    cr_assert_eq(finish(s, jid(3), r.epoch, "failed", "agent_error", NULL, 0, "e", 1, NULL), HVD_STORE_OK);
    v = col("SELECT (erase_after > now() + interval '3500 seconds')::text FROM hvdeploy.job_secrets "
            "WHERE job_id = $1::uuid",
            jid(3));
    cr_assert_str_eq(v, "true");
    free(v);
    size_t purged = 9;
    cr_assert_eq(hvd_store_purge_secrets(s, &purged, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(purged, 0);
    PQclear(it_pg_q(db(), "UPDATE hvdeploy.job_secrets SET erase_after = now() - interval '1 second'", NULL));
    cr_assert_eq(hvd_store_purge_secrets(s, &purged, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(purged, 1);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_secrets", NULL), 0);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

/* ---- rejected jobs, get, list ---- */

Test(store, record_rejected_once)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord j = new_job(1, NULL, NULL);
    j.n_stages = 0;
    char err[256];
    bool existing = true;
    HvdBuf env = {0};
    cr_assert_eq(hvd_store_record_rejected(s, &j, "validation_error", "ENV1", 4, &existing, &env, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    cr_assert_not(existing);
    cr_assert_eq(hvd_store_record_rejected(s, &j, "validation_error", "ENV2", 4, &existing, &env, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    cr_assert(existing);
    cr_assert_eq(env.len, 4);
    cr_assert_eq(memcmp(env.data, "ENV1", 4), 0);
    hvd_buf_free(&env);
    HvdJobRecord r = {0};
    cr_assert_eq(claim(s, jid(1), &r, NULL), HVD_CLAIM_FINISHED);
    cr_assert_str_eq(hvd_job_status_name(r.status), "failed");
    cr_assert_str_eq(r.code, "validation_error");
    cr_assert_eq(r.envelope.len, 4);
    char *v = check_chains(jid(1));
    cr_assert_str_eq(v, "failed");
    free(v);
    /* a duplicate-name job is recorded with its stages */
    HvdJobRecord d = new_job(2, "hv01", "vm-1");
    cr_assert_eq(hvd_store_record_rejected(s, &d, "duplicate_vm_name", "E", 1, &existing, NULL, err, sizeof err),
                 HVD_STORE_OK, "%s", err);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = $1::uuid", jid(2)), 4);
    /* and does not block a live job of that name */
    HvdJobRecord live = new_job(3, "hv01", "vm-1");
    cr_assert_eq(claim_new(s, &live, &r), HVD_CLAIM_RUN);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

Test(store, get_and_list)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    char err[256];
    bool found = true;
    cr_assert_eq(hvd_store_get(s, jid(1), &found, &r, err, sizeof err), HVD_STORE_OK);
    cr_assert_not(found);
    HvdJobRecord j1 = new_job(1, "hv01", "vm-1"), j2 = new_job(2, "hv01", "vm-2"), j3 = new_job(3, "hv02", "vm-3");
    cr_assert_eq(claim_new(s, &j1, &r), HVD_CLAIM_RUN);
    cr_assert_eq(step(s, jid(1), r.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(claim_new(s, &j2, NULL), HVD_CLAIM_WAIT);
    cr_assert_eq(claim_new(s, &j3, &r), HVD_CLAIM_RUN);
    HvdStage f[] = {stage_of("vm.create", "failed", NULL)};
    f[0].message = (char *)"no such network";
    f[0].code = (char *)"agent_error";
    f[0].agent_code = (char *)"NETWORK_NOT_FOUND";
    cr_assert_eq(step(s, jid(3), r.epoch, NULL, NULL, NULL, "vm.create", NULL, NULL), HVD_STORE_OK);
    cr_assert_eq(finish(s, jid(3), r.epoch, "failed", "agent_error", f, 1, "E", 1, NULL), HVD_STORE_OK);
    cr_assert_eq(hvd_store_get(s, jid(3), &found, &r, err, sizeof err), HVD_STORE_OK);
    cr_assert(found);
    cr_assert_str_eq(hvd_job_status_name(r.status), "failed");
    cr_assert_str_eq(r.code, "agent_error");
    cr_assert_not_null(r.finished_at);
    cr_assert_str_eq(hvd_stage_status_name(r.stages[0].status), "failed");
    cr_assert_str_eq(r.stages[0].message, "no such network");
    cr_assert_str_eq(r.stages[0].agent_code, "NETWORK_NOT_FOUND");
    cr_assert_not_null(r.stages[0].started_at);
    cr_assert_not_null(r.stages[0].finished_at);
    cr_assert_str_eq(hvd_stage_status_name(r.stages[1].status), "pending");
    cr_assert_null(r.stages[1].started_at);

    HvdJobRecord *v = NULL;
    size_t n = 0;
    cr_assert_eq(hvd_store_list(s, NULL, NULL, 20, &v, &n, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0].job_id, jid(3), "newest first");
    cr_assert_str_eq(hvd_job_current_stage(&v[0])->name, "vm.create");
    cr_assert_str_eq(hvd_job_current_stage(&v[2])->name, "vm.create");
    cr_assert_str_eq(hvd_job_status_name(v[1].status), "queued");
    hvd_job_records_free(v, n);
    cr_assert_eq(hvd_store_list(s, "running", NULL, 20, &v, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].job_id, jid(1));
    hvd_job_records_free(v, n);
    cr_assert_eq(hvd_store_list(s, NULL, "HV01", 1, &v, &n, err, sizeof err), HVD_STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].job_id, jid(2));
    hvd_job_records_free(v, n);
    hvd_job_record_free(&r);
    hvd_store_close(s);
}

/* ---- connections and errors ---- */

Test(store, bad_dsn_is_one_clear_line_without_password)
{
    char err[512] = "";
    HvdStoreOptions o = {
        .dsn = "postgresql://hvd:s3cretpw@127.0.0.1:1/hvdeploy?connect_timeout=3", .pool_size = 1, .worker_id = "w"};
    cr_assert_null(hvd_store_open(&o, err, sizeof err));
    cr_assert(strncmp(err, "cannot connect to PostgreSQL: ", 30) == 0, "%s", err);
    cr_assert(strstr(err, "refused"), "%s", err);
    cr_assert_null(strchr(err, '\n'), "%s", err);
    cr_assert_null(strstr(err, "s3cretpw"), "%s", err);
}

Test(store, mask_dsn)
{
    char out[256];
    hvd_store_mask_dsn("postgresql://u:pw@h:5/db?sslmode=require&password=x2", out, sizeof out);
    cr_assert_str_eq(out, "postgresql://u:***@h:5/db?sslmode=require&password=***");
    hvd_store_mask_dsn("postgres://h/db", out, sizeof out);
    cr_assert_str_eq(out, "postgres://h/db");
    hvd_store_mask_dsn("host=h password='a b\\'c' user=u", out, sizeof out);
    cr_assert_str_eq(out, "host=h password=*** user=u");
    hvd_store_mask_dsn("host=h password = secret", out, sizeof out);
    cr_assert_str_eq(out, "host=h password = ***"); /* core/mask.c keeps the spacing as written */
}

Test(store, killed_connection_is_retry_then_reconnects)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord r = {0};
    char err[512] = "";
    bool found;
    cr_assert(hvd_store_healthy(s));
    /* end every backend of this store from the outside (57P01 admin shutdown) */
    PQclear(it_pg_q(db(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                    "AND application_name = 'hvdeploy'",
                    it_pg_name, NULL));
    usleep(200 * 1000);
    HvdStoreStatus st = hvd_store_get(s, jid(1), &found, &r, err, sizeof err);
    cr_assert_eq(st, HVD_STORE_RETRY, "%d %s", st, err);
    cr_assert(strlen(err) > 0);
    cr_assert_null(strchr(err, '\n'), "%s", err);
    /* the next call reconnects */
    cr_assert_eq(hvd_store_get(s, jid(1), &found, &r, err, sizeof err), HVD_STORE_OK, "%s", err);
    cr_assert(hvd_store_healthy(s));
    hvd_store_close(s);
}

Test(store, constraint_violation_is_error_with_message)
{
    HVD_IT_NEED("HVD_PG_DSN");
    HvdStore *s = open_store("w-a", 30, 1);
    HvdJobRecord j = new_job(1, "hv01", "vm-1");
    j.request_json = (char *)"{not json";
    char err[512] = "";
    HvdClaim out;
    cr_assert_eq(hvd_store_claim_new(s, &j, &out, NULL, err, sizeof err), HVD_STORE_ERROR);
    cr_assert(strstr(err, "22P02"), "%s", err);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs", NULL), 0);
    /* the connection is usable afterwards (no transaction left open) */
    j.request_json = (char *)"{}";
    cr_assert_eq(claim_new(s, &j, NULL), HVD_CLAIM_RUN);
    hvd_store_close(s);
}

/* ---- many workers at once ---- */

#define FLEET_JOBS 16
#define FLEET_WORKERS 4

typedef struct {
    pthread_mutex_t mu;
    char bells[256][37];
    size_t n_bells;
    int finished;
    int errors;
} Fleet;

static void fleet_ring(Fleet *f, const char *id)
{
    pthread_mutex_lock(&f->mu);
    if (id[0] && f->n_bells < 256) snprintf(f->bells[f->n_bells++], 37, "%.36s", id);
    pthread_mutex_unlock(&f->mu);
}

static bool fleet_take(Fleet *f, char id[37], int *finished)
{
    pthread_mutex_lock(&f->mu);
    bool got = f->n_bells > 0;
    if (got) snprintf(id, 37, "%s", f->bells[--f->n_bells]);
    *finished = f->finished;
    pthread_mutex_unlock(&f->mu);
    return got;
}

typedef struct {
    Fleet *fleet;
    int n;
} FleetArg;

/* A worker: claims what its doorbells and sweeps name, runs two stages,
 * finishes, rings the next job of the host. */
static void *fleet_worker(void *p)
{
    FleetArg *a = p;
    Fleet *f = a->fleet;
    char worker[16], err[256], id[37], next[37];
    snprintf(worker, sizeof worker, "fw-%d", a->n);
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 2, .worker_id = worker, .lease_ttl_s = 2, .host_concurrency = 1};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    if (!s) {
        f->errors++;
        return NULL;
    }
    for (int i = a->n; i < FLEET_JOBS; i += FLEET_WORKERS) {
        HvdJobRecord j = new_job(i, i % 4 == 3 ? "hv02" : "hv01", jid(i));
        j.n_stages = 2;
        HvdClaim c;
        HvdJobRecord rec = {0};
        HvdStoreStatus st = hvd_store_claim_new(s, &j, &c, &rec, err, sizeof err);
        HvdClaimVerdict out = c.decision.verdict;
        if (st == HVD_STORE_OK && out == HVD_CLAIM_RUN) fleet_ring(f, j.job_id); /* run it below */
        if (st == HVD_STORE_OK && out == HVD_CLAIM_RUN) {
            /* give it up at once: exercises release and the doorbell path */
            hvd_store_release(s, j.job_id, rec.epoch, next, err, sizeof err);
            fleet_ring(f, next);
        }
        if (st != HVD_STORE_OK) f->errors++;
        hvd_job_record_free(&rec);
    }
    long long deadline = hvd_it_now_ms() + 30000;
    int finished = 0;
    while (hvd_it_now_ms() < deadline) {
        if (!fleet_take(f, id, &finished)) {
            if (finished >= FLEET_JOBS) break;
            char ids[8][37];
            size_t n = 0;
            if (hvd_store_sweep(s, 8, ids, &n, err, sizeof err) == HVD_STORE_OK)
                for (size_t k = 0; k < n; k++) fleet_ring(f, ids[k]);
            if (n == 0) usleep(50 * 1000);
            continue;
        }
        HvdJobRecord rec = {0};
        HvdClaim out;
        HvdStoreStatus st = hvd_store_claim(s, id, &out, &rec, err, sizeof err);
        if (st == HVD_STORE_OK && out.decision.verdict == HVD_CLAIM_RUN) {
            HvdStage s2 = stage_of("vm.create", "succeeded", "{\"vm_id\":\"x\"}");
            bool ok = hvd_store_step(s, id, rec.epoch, NULL, "vm.create", NULL, NULL, err, sizeof err) == HVD_STORE_OK;
            usleep(10 * 1000);
            ok =
                ok && hvd_store_step(s, id, rec.epoch, &s2, "disk.create", NULL, NULL, err, sizeof err) == HVD_STORE_OK;
            usleep(10 * 1000);
            HvdStage fin = stage_of("disk.create", "succeeded", NULL);
            ok = ok && hvd_store_finish(s, id, rec.epoch, HVD_JOB_SUCCEEDED, NULL, &fin, 1, "E", 1, next, err,
                                        sizeof err) == HVD_STORE_OK;
            pthread_mutex_lock(&f->mu);
            if (ok)
                f->finished++;
            else
                f->errors++;
            pthread_mutex_unlock(&f->mu);
            if (ok) fleet_ring(f, next);
        } else if (st != HVD_STORE_OK && st != HVD_STORE_RETRY) {
            pthread_mutex_lock(&f->mu);
            f->errors++;
            pthread_mutex_unlock(&f->mu);
        }
        hvd_job_record_free(&rec);
    }
    hvd_store_close(s);
    return NULL;
}

Test(store, fleet_of_workers_keeps_one_job_per_host_at_a_time)
{
    HVD_IT_NEED("HVD_PG_DSN");
    hvd_store_close(open_store("w-m", 30, 1));
    for (int i = 0; i < FLEET_JOBS; i++) (void)jid(i);
    Fleet f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t t[FLEET_WORKERS];
    FleetArg a[FLEET_WORKERS];
    for (int i = 0; i < FLEET_WORKERS; i++) {
        a[i] = (FleetArg){.fleet = &f, .n = i};
        pthread_create(&t[i], NULL, fleet_worker, &a[i]);
    }
    for (int i = 0; i < FLEET_WORKERS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(f.errors, 0);
    cr_assert_eq(f.finished, FLEET_JOBS);
    cr_assert_eq(it_pg_long(db(), "SELECT count(*) FROM hvdeploy.jobs WHERE status = 'succeeded'", NULL), FLEET_JOBS);
    /* each job ran once, and on each host no two jobs' runs overlap */
    cr_assert_eq(it_pg_long(db(),
                            "SELECT count(*) FROM hvdeploy.job_events WHERE stage IS NULL AND "
                            "to_status = 'succeeded'",
                            NULL),
                 FLEET_JOBS);
    cr_assert_eq(it_pg_long(db(),
                            "WITH runs AS (SELECT j.target_host, e.job_id, e.at AS s, (SELECT min(x.at) FROM "
                            "hvdeploy.job_events x WHERE x.job_id = e.job_id AND x.stage IS NULL AND x.id > e.id "
                            "AND x.to_status <> 'running') AS e FROM hvdeploy.job_events e JOIN hvdeploy.jobs j "
                            "USING (job_id) WHERE e.stage IS NULL AND e.to_status = 'running'),"
                            " o AS (SELECT s, lag(e) OVER (PARTITION BY target_host ORDER BY s) AS prev_e FROM runs)"
                            " SELECT count(*) FROM o WHERE prev_e > s",
                            NULL),
                 0);
    for (int i = 0; i < FLEET_JOBS; i++) free(check_chains(jid(i)));
}
