/* tests/perf/store_latency: latency of the store calls a fleet makes, on the
 * database it is given (tests/perf/run.sh runs it on an empty schema and on one
 * holding 10^6 finished jobs): claim (a new job recorded and started, its host
 * slot taken), slot (a job that waited for its busy host, started once the
 * host's job finished), finish (the terminal transaction, which also picks the
 * host's next waiting job), sweep, list, status (hvd_store_get), the fleet
 * view (live part and with the finished counts) and one prune batch.
 *
 *   store_latency DSN ROUNDS   prints "call p50_ms p95_ms max_ms n" lines
 *
 * Its own jobs use ids ffffffff-ffff-4fff-8fff-NNNNNNNNNNNN and are deleted at
 * the end (the prune batch deletes real old jobs, up to 500). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store.h"
#include "store_fleet.h"

#define MAX_ROUNDS 2000
#define HOSTS 64

static const char *const stages[] = {"vm.create", "disk.create", "nic.create", "vm.initialize"};

typedef struct {
    const char *name;
    double ms[MAX_ROUNDS];
    int n;
} Series;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(Series *s)
{
    if (s->n == 0) return;
    qsort(s->ms, (size_t)s->n, sizeof s->ms[0], cmp);
    printf("%-20s %8.2f %8.2f %8.2f %5d\n", s->name, s->ms[s->n / 2], s->ms[(s->n * 95) / 100], s->ms[s->n - 1], s->n);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "store_latency: %s: %s\n", what, err);
    exit(1);
}

static const char *bench_id(int i)
{
    static char id[37];
    snprintf(id, sizeof id, "ffffffff-ffff-4fff-8fff-%012d", i);
    return id;
}

static HvdClaimVerdict claim_new(HvdStore *s, int i, const char *host, HvdJobRecord *rec)
{
    char vm[32], err[512] = "";
    snprintf(vm, sizeof vm, "perf-bench-%d", i);
    HvdJobRecord j = {0}; /* borrowed strings: not freed */
    snprintf(j.job_id, sizeof j.job_id, "%s", bench_id(i));
    j.job_type = (char *)"managed_deployment";
    j.target_host = (char *)host;
    j.vm_name = vm;
    j.reply_to = (char *)"hvdeploy.results";
    j.content_type = (char *)"application/msgpack";
    j.request_json = (char *)"{\"vm_spec\":{\"vm_name\":\"perf\"}}";
    j.options_json = (char *)"{}";
    for (size_t k = 0; k < 4; k++) snprintf(j.stages[k].name, sizeof j.stages[k].name, "%s", stages[k]);
    j.n_stages = 4;
    HvdClaim out;
    if (hvd_store_claim_new(s, &j, &out, rec, err, sizeof err) != HVD_STORE_OK) die("claim_new", err);
    return out.decision.verdict;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: store_latency DSN ROUNDS\n");
        return 2;
    }
    int rounds = atoi(argv[2]);
    if (rounds < 1 || rounds > MAX_ROUNDS / 2) rounds = 200;
    char err[512] = "";
    HvdStoreOptions o = {.dsn = argv[1],
                         .pool_size = 2,
                         .worker_id = "perf-bench",
                         .lease_ttl_s = 300,
                         .host_concurrency = 1,
                         .secret_retention_s = 3600};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    if (!s) die("open", err);
    PGconn *pg = PQconnectdb(argv[1]);
    PQclear(PQexec(pg, "DELETE FROM hvdeploy.job_events WHERE job_id::text LIKE 'ffffffff-%'"));
    PQclear(PQexec(pg, "DELETE FROM hvdeploy.jobs WHERE job_id::text LIKE 'ffffffff-%'"));
    /* finished jobs to look at, when the table has some */
    PGresult *sample = PQexec(pg, "SELECT job_id::text FROM hvdeploy.jobs TABLESAMPLE SYSTEM (1) LIMIT 200");
    int nsample = PQresultStatus(sample) == PGRES_TUPLES_OK ? PQntuples(sample) : 0;

    Series claim = {.name = "claim (new job)"}, wait = {.name = "claim (host busy)"},
           slot = {.name = "slot (host freed)"}, fin = {.name = "finish"}, sweep = {.name = "sweep"},
           list = {.name = "list (recent 20)"}, list_st = {.name = "list --status failed"},
           list_host = {.name = "list --host"}, status = {.name = "status (get)"}, view = {.name = "fleet view (live)"},
           view_all = {.name = "fleet view (+finished)"}, prune = {.name = "prune batch of 500"};
    char next[37];
    for (int r = 0; r < rounds; r++) {
        char host[32];
        snprintf(host, sizeof host, "bench%02d.lab.example", r % HOSTS);
        HvdJobRecord a = {0}, b = {0};
        double t = now_ms();
        HvdClaimVerdict oa = claim_new(s, 2 * r, host, &a);
        claim.ms[claim.n++] = now_ms() - t;
        t = now_ms();
        HvdClaimVerdict ob = claim_new(s, 2 * r + 1, host, &b);
        wait.ms[wait.n++] = now_ms() - t;
        if (oa != HVD_CLAIM_RUN || ob != HVD_CLAIM_WAIT) {
            fprintf(stderr, "round %d: outcomes %d %d\n", r, (int)oa, (int)ob);
            die("claims", "unexpected outcome (leftover jobs?)");
        }
        t = now_ms();
        if (hvd_store_finish(s, bench_id(2 * r), a.epoch, HVD_JOB_SUCCEEDED, NULL, NULL, 0, "ENV", 3, next, err,
                             sizeof err) != HVD_STORE_OK)
            die("finish", err);
        fin.ms[fin.n++] = now_ms() - t;
        hvd_job_record_free(&b);
        memset(&b, 0, sizeof b);
        HvdClaim oc;
        t = now_ms();
        if (hvd_store_claim(s, bench_id(2 * r + 1), &oc, &b, err, sizeof err) != HVD_STORE_OK) die("claim", err);
        slot.ms[slot.n++] = now_ms() - t;
        if (oc.decision.verdict != HVD_CLAIM_RUN) die("slot", "the waiting job did not get its host's slot");
        if (hvd_store_finish(s, bench_id(2 * r + 1), b.epoch, HVD_JOB_SUCCEEDED, NULL, NULL, 0, "ENV", 3, next, err,
                             sizeof err) != HVD_STORE_OK)
            die("finish", err);
        hvd_job_record_free(&a);
        hvd_job_record_free(&b);

        char ids[64][37];
        size_t n;
        t = now_ms();
        if (hvd_store_sweep(s, 64, ids, &n, err, sizeof err) != HVD_STORE_OK) die("sweep", err);
        sweep.ms[sweep.n++] = now_ms() - t;
        HvdJobRecord *v;
        struct {
            Series *s;
            const char *status, *host;
        } lists[] = {{&list, NULL, NULL}, {&list_st, "failed", NULL}, {&list_host, NULL, "hv07.lab.example"}};
        for (size_t k = 0; k < 3; k++) {
            t = now_ms();
            if (hvd_store_list(s, lists[k].status, lists[k].host, 20, &v, &n, err, sizeof err) != HVD_STORE_OK)
                die("list", err);
            lists[k].s->ms[lists[k].s->n++] = now_ms() - t;
            hvd_job_records_free(v, n);
        }
        bool found;
        HvdJobRecord g = {0};
        const char *id = nsample ? PQgetvalue(sample, r % nsample, 0) : bench_id(2 * r);
        t = now_ms();
        if (hvd_store_get(s, id, &found, &g, err, sizeof err) != HVD_STORE_OK) die("get", err);
        status.ms[status.n++] = now_ms() - t;
        hvd_job_record_free(&g);
        HvdFleetView fv;
        t = now_ms();
        if (hvd_store_fleet_view(s, false, &fv, err, sizeof err) != HVD_STORE_OK) die("fleet view", err);
        view.ms[view.n++] = now_ms() - t;
        if (r % 10 == 0) {
            t = now_ms();
            if (hvd_store_fleet_view(s, true, &fv, err, sizeof err) != HVD_STORE_OK) die("fleet view", err);
            view_all.ms[view_all.n++] = now_ms() - t;
        }
    }
    HvdPruneOptions po = {.older_than_s = 30 * 86400, .batch = 500, .max_batches = 1};
    HvdPruneResult pr;
    double t = now_ms();
    if (hvd_store_prune(s, &po, &pr, err, sizeof err) != HVD_STORE_OK) die("prune", err);
    prune.ms[prune.n++] = now_ms() - t;
    fprintf(stderr, "prune batch deleted %lld jobs and %lld events\n", (long long)pr.jobs, (long long)pr.events);

    printf("%-20s %8s %8s %8s %5s\n", "call", "p50_ms", "p95_ms", "max_ms", "n");
    Series *all[] = {&claim,   &wait,      &slot,   &fin,  &sweep,    &list,
                     &list_st, &list_host, &status, &view, &view_all, &prune};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) report(all[i]);
    PQclear(sample);
    PQclear(PQexec(pg, "DELETE FROM hvdeploy.job_events WHERE job_id::text LIKE 'ffffffff-%'"));
    PQclear(PQexec(pg, "DELETE FROM hvdeploy.jobs WHERE job_id::text LIKE 'ffffffff-%'"));
    PQfinish(pg);
    hvd_store_close(s);
    return 0;
}
