/* hvdeployctl list: recent jobs, filterable by status, host, age, code, VM
 * name, correlation id and current stage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "dbutil.h"
#include "store_view.h"

#define LIST_MAX_LIMIT 10000

static void list_usage(FILE *f)
{
    fputs("usage: hvdeployctl list [--status STATUS] [--host HOST] [--since AGE|TIME] [--code CODE]\n"
          "                        [--vm-name NAME] [--correlation-id ID] [--stage STAGE]\n"
          "                        [--limit N] [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Lists recent jobs from PostgreSQL, newest first: id, status, host, VM name,\n"
          "the current (or failed) stage, attempts and creation time.\n"
          "\n"
          "options:\n"
          "  --status STATUS         queued, running, retrying, succeeded, failed or cancelled\n"
          "  --host HOST             only jobs for this target host\n"
          "  --since AGE|TIME        only jobs created in the last AGE (90s, 30m, 2h, 7d) or since\n"
          "                          an RFC 3339 time (2026-11-25T20:00:00Z)\n"
          "  --code CODE             only jobs that ended with this code (retries_exhausted, ...)\n"
          "  --vm-name NAME          only jobs of this VM name (case-insensitive)\n"
          "  --correlation-id ID     only jobs with this correlation id\n"
          "  --stage STAGE           only jobs whose current (running, else first unfinished)\n"
          "                          stage is STAGE (vm.create, disk.create, nic.create, vm.initialize)\n"
          "  --limit N               at most N jobs (1-10000, default 20)\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"jobs\": [{job_id, status, ...}]}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 listed (also when none matched), 2 usage or connection error.\n",
          f);
}

static bool valid_status(const char *s)
{
    static const char *const all[] = {"queued", "running", "retrying", "succeeded", "failed", "cancelled"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, all[i]) == 0) return true;
    return false;
}

/* The stage a job is at (NULL when all succeeded). */
static const char *current_stage(const HvdJobRecord *r)
{
    const HvdStage *st = hvd_job_current_stage(r);
    return st ? st->name : NULL;
}

/* "90s", "30m", "2h", "7d" ago, or an RFC 3339 time, as Unix ms. */
static bool parse_since(const char *s, int64_t *out)
{
    int64_t t;
    if (hvd_time_parse_rfc3339(s, &t)) {
        *out = t;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || v > 100LL * 365 * 86400) return false;
    long long mult = 1;
    if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60;
    else if (strcmp(end, "h") == 0)
        mult = 3600;
    else if (strcmp(end, "d") == 0)
        mult = 86400;
    else
        return false;
    *out = hvd_now_ms() - v * mult * 1000;
    return true;
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

int ctl_cmd_list(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"status", required_argument, NULL, 's'},
        {"host", required_argument, NULL, 'H'},
        {"limit", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 'S'},
        {"code", required_argument, NULL, 'c'},
        {"vm-name", required_argument, NULL, 'v'},
        {"correlation-id", required_argument, NULL, 'C'},
        {"stage", required_argument, NULL, 'g'},
        {"pg-dsn", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    CtlOutput output = CTL_OUTPUT_HUMAN;
    const char *dsn_flag = NULL, *status = NULL, *host = NULL;
    HvdListFilter f = {0};
    long limit = 20;
    char *end = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!valid_status(optarg)) {
                ctl_error("list",
                          "--status must be queued, running, retrying, succeeded, failed or "
                          "cancelled, not '%s'",
                          optarg);
                return CTL_EXIT_USAGE;
            }
            status = optarg;
            break;
        case 'H': host = optarg; break;
        case 'S':
            if (!parse_since(optarg, &f.since_ms)) {
                ctl_error("list", "--since must be an age (90s, 30m, 2h, 7d) or an RFC 3339 time, not '%s'", optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'c': f.code = optarg; break;
        case 'v': f.vm_name = optarg; break;
        case 'C': f.correlation_id = optarg; break;
        case 'g': f.stage = optarg; break;
        case 'n':
            errno = 0;
            limit = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || limit < 1 || limit > LIST_MAX_LIMIT) {
                ctl_error("list", "--limit must be a whole number from 1 to %d, not '%s'", LIST_MAX_LIMIT, optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'p': dsn_flag = optarg; break;
        case 'o':
            if (!ctl_parse_output("list", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 'h': list_usage(stdout); return CTL_EXIT_OK;
        default: list_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        ctl_error("list", "unexpected argument '%s'", argv[optind]);
        return CTL_EXIT_USAGE;
    }
    HvdStore *s = ctl_db_open("list", ctl_db_dsn(dsn_flag));
    if (!s) return CTL_EXIT_USAGE;
    HvdJobRecord *v = NULL;
    size_t n = 0;
    char err[1024] = "";
    f.status = status;
    f.host = host;
    f.limit = (size_t)limit;
    HvdStoreStatus st = hvd_store_list_filtered(s, &f, &v, &n, err, sizeof err);
    hvd_store_close(s);
    if (st != HVD_STORE_OK) return ctl_db_fail("list", st, err);

    if (output == CTL_OUTPUT_JSON) {
        HvdNode *jobs = hvd_node_array();
        for (size_t i = 0; i < n; i++) {
            HvdNode *m = hvd_node_map();
            hvd_node_map_set_str(m, "job_id", v[i].job_id);
            hvd_node_map_set_str(m, "status", hvd_job_status_name(v[i].status));
            hvd_node_map_set_str(m, "code", v[i].code);
            hvd_node_map_set_str(m, "job_type", v[i].job_type);
            hvd_node_map_set_str(m, "target_host", v[i].target_host);
            hvd_node_map_set_str(m, "vm_name", v[i].vm_name);
            hvd_node_map_set_str(m, "stage", current_stage(&v[i]));
            hvd_node_map_set_int(m, "attempts", v[i].attempts);
            hvd_node_map_set_bool(m, "cancel_requested", v[i].cancel_requested);
            hvd_node_map_set_str(m, "created_at", v[i].created_at);
            hvd_node_map_set_str(m, "updated_at", v[i].updated_at);
            hvd_node_map_set_str(m, "finished_at", v[i].finished_at);
            hvd_node_array_push(jobs, m);
        }
        HvdNode *res = hvd_node_map();
        hvd_node_map_set(res, "jobs", jobs);
        ctl_db_print_json(res);
    } else if (n == 0) {
        bool filtered = status || host || f.since_ms || f.code || f.vm_name || f.correlation_id || f.stage;
        printf("no jobs%s\n", filtered ? " match" : "");
    } else {
        printf("%-36s  %-9s  %-20s  %-20s  %-13s  %-8s  %-24s  %s\n", "JOB_ID", "STATUS", "HOST", "VM", "STAGE",
               "ATTEMPTS", "CREATED", "CODE");
        for (size_t i = 0; i < n; i++) {
            printf("%-36s  %-9s  %-20s  %-20s  %-13s  %-8d  %-24s  %s\n", v[i].job_id, hvd_job_status_name(v[i].status),
                   dash(v[i].target_host), dash(v[i].vm_name), dash(current_stage(&v[i])), v[i].attempts,
                   dash(v[i].created_at), dash(v[i].code));
        }
    }
    hvd_job_records_free(v, n);
    return CTL_EXIT_OK;
}
