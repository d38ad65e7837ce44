/* hvdeployctl cancel JOB_ID: asks the fleet to stop a job before its next stage. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "dbutil.h"

static void cancel_usage(FILE *f)
{
    fputs("usage: hvdeployctl cancel JOB_ID [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Records a cancel request for a job that has not ended. The worker running it\n"
          "stops before its next stage (a stage already running is let finish) and ends\n"
          "the job as cancelled, rolling back what it made when the job asked for\n"
          "on_failure=rollback. A job waiting for a retry is taken up at once to end it.\n"
          "\n"
          "options:\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"job_id\", \"cancel_requested\", \"status\"}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 cancel requested, 1 unknown job or already finished,\n"
          "2 usage or connection error.\n",
          f);
}

int ctl_cmd_cancel(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"pg-dsn", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    CtlOutput output = CTL_OUTPUT_HUMAN;
    const char *dsn_flag = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': dsn_flag = optarg; break;
        case 'o':
            if (!ctl_parse_output("cancel", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 'h': cancel_usage(stdout); return CTL_EXIT_OK;
        default: cancel_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error("cancel", argc - optind == 0 ? "expected JOB_ID" : "expected exactly one JOB_ID");
        cancel_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *job_id = argv[optind];
    if (!ctl_db_job_id_ok("cancel", job_id)) return CTL_EXIT_USAGE;

    HvdStore *s = ctl_db_open("cancel", ctl_db_dsn(dsn_flag));
    if (!s) return CTL_EXIT_USAGE;
    char err[1024] = "";
    bool found = false, finished = false;
    HvdJobRecord rec = {0};
    HvdStoreStatus st = hvd_store_request_cancel(s, job_id, &found, &finished, err, sizeof err);
    if (st == HVD_STORE_OK && found) {
        bool again = false;
        st = hvd_store_get(s, job_id, &again, &rec, err, sizeof err);
    }
    hvd_store_close(s);
    int rc = CTL_EXIT_OK;
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("cancel", st, err);
    } else if (!found) {
        ctl_error("cancel", "job %s not found", job_id);
        rc = CTL_EXIT_FAILED;
    } else if (finished) {
        ctl_error("cancel", "job %s already finished (%s%s%s); nothing to cancel", job_id, rec.status,
                  rec.code ? ", " : "", rec.code ? rec.code : "");
        rc = CTL_EXIT_FAILED;
    }
    if (st == HVD_STORE_OK && output == CTL_OUTPUT_JSON) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "job_id", job_id);
        hvd_node_map_set_bool(m, "found", found);
        hvd_node_map_set_bool(m, "cancel_requested", found && !finished);
        hvd_node_map_set_str(m, "status", found ? rec.status : NULL);
        ctl_db_print_json(m);
    } else if (rc == CTL_EXIT_OK) {
        printf("cancel requested for job %s; it stops before its next stage\n", job_id);
    }
    hvd_job_record_free(&rec);
    return rc;
}
