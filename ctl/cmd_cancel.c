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
    CtlOutput output;
    const char *job_id;
    HvdStore *s;
    int rc = ctl_db_job_command("cancel", argc, argv, cancel_usage, &output, &job_id, &s);
    if (rc >= 0) return rc;
    char err[1024] = "";
    bool found = false, finished = false;
    HvdJobRecord rec = {0};
    HvdStoreStatus st = hvd_store_request_cancel(s, job_id, &found, &finished, err, sizeof err);
    if (st == HVD_STORE_OK && found) {
        bool again = false;
        st = hvd_store_get(s, job_id, &again, &rec, err, sizeof err);
    }
    hvd_store_close(s);
    rc = CTL_EXIT_OK;
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("cancel", st, err);
    } else if (!found) {
        ctl_error("cancel", "job %s not found", job_id);
        rc = CTL_EXIT_FAILED;
    } else if (finished) {
        ctl_error("cancel", "job %s already finished (%s%s%s); nothing to cancel", job_id,
                  hvd_job_status_name(rec.status), rec.code ? ", " : "", rec.code ? rec.code : "");
        rc = CTL_EXIT_FAILED;
    }
    if (st == HVD_STORE_OK && output == CTL_OUTPUT_JSON) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "job_id", job_id);
        hvd_node_map_set_bool(m, "found", found);
        hvd_node_map_set_bool(m, "cancel_requested", found && !finished);
        hvd_node_map_set_str(m, "status", found ? hvd_job_status_name(rec.status) : NULL);
        ctl_db_print_json(m);
    } else if (rc == CTL_EXIT_OK) {
        printf("cancel requested for job %s; it stops before its next stage\n", job_id);
    }
    hvd_job_record_free(&rec);
    return rc;
}
