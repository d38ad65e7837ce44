/* hvdeployctl list: recent jobs, filterable by status and host. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dbutil.h"

#define LIST_MAX_LIMIT 10000

static void list_usage(FILE *f)
{
    fputs("usage: hvdeployctl list [--status STATUS] [--host HOST] [--limit N]\n"
          "                        [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Lists recent jobs from PostgreSQL, newest first: id, status, host, VM name,\n"
          "the current (or failed) stage, attempts and creation time.\n"
          "\n"
          "options:\n"
          "  --status STATUS         queued, running, retrying, succeeded, failed or cancelled\n"
          "  --host HOST             only jobs for this target host\n"
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
        {"pg-dsn", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    CtlOutput output = CTL_OUTPUT_HUMAN;
    const char *dsn_flag = NULL, *status = NULL, *host = NULL;
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
    HvdStoreStatus st = hvd_store_list(s, status, host, (size_t)limit, &v, &n, err, sizeof err);
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
        printf("no jobs%s\n", status || host ? " match" : "");
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
