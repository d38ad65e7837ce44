/* hvdeployctl retry JOB_ID: resumes a failed job from its failed stage, as
 * `dead replay` does, whether or not it was dead-lettered. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "amqp_util.h"
#include "dbutil.h"

#define RETRY_CONFIRM_MS 30000

static void retry_usage(FILE *f)
{
    fputs("usage: hvdeployctl retry JOB_ID [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Resumes a failed job from its failed stage: in PostgreSQL the job goes back to the\n"
          "queue (stages that succeeded stay done, the others start again with fresh attempts),\n"
          "then its doorbell is rung on $HVD_AMQP_URL so that a worker takes it up at once (if\n"
          "the broker cannot be reached, the fleet's sweep takes it up within HVD_SWEEP_INTERVAL).\n"
          "The job's envelope goes to its reply queue when it ends again. Refused when the job\n"
          "did not fail, was refused before it ran, was rolled back, or its secrets are gone\n"
          "while vm.initialize is still to run. A dead letter of the job stays in the queue\n"
          "(`hvdeployctl dead purge ID` removes it; `dead replay ID` does both).\n"
          "\n"
          "options:\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"job_id\", \"retried\", \"reason\", \"stage\", \"doorbell\"}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 the job was put back to work, 1 unknown job or the retry was refused,\n"
          "2 usage or connection error.\n",
          f);
}

int ctl_cmd_retry(int argc, char **argv)
{
    HvdConfig cfg;
    int rc = CTL_EXIT_USAGE;
    HvdStore *s = NULL;
    HvdBroker *b = NULL;
    CtlOutput output = CTL_OUTPUT_HUMAN;
    if (!ctlq_load_config("retry", &argc, argv, &cfg)) goto out;
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        if (c == 'o' && ctl_parse_output("retry", optarg, &output)) continue;
        if (c == 'h') {
            retry_usage(stdout);
            rc = CTL_EXIT_OK;
        } else if (c != 'o') {
            retry_usage(stderr);
        }
        goto out;
    }
    if (argc - optind != 1) {
        ctl_error("retry", argc - optind == 0 ? "expected JOB_ID" : "expected exactly one JOB_ID");
        retry_usage(stderr);
        goto out;
    }
    const char *job_id = argv[optind];
    if (!ctl_db_job_id_ok("retry", job_id)) goto out;
    s = ctl_db_open("retry", cfg.pg_dsn);
    if (!s) goto out;

    char why[512] = "", err[512] = "";
    bool found = false;
    HvdStoreStatus st = hvd_store_replay(s, job_id, &found, why, sizeof why, err, sizeof err);
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("retry", st, err);
        goto out;
    }
    HvdJobRecord rec = {0};
    bool known = false;
    const char *stage = NULL;
    if (found && !why[0] && hvd_store_get(s, job_id, &known, &rec, err, sizeof err) == HVD_STORE_OK && known)
        for (size_t i = 0; i < rec.n_stages && !stage; i++)
            if (rec.stages[i].status != HVD_STAGE_SUCCEEDED) stage = rec.stages[i].name;
    bool rung = false;
    char ring_err[512] = "";
    if (found && !why[0]) {
        char jobs_exchange[256];
        ctlq_name(jobs_exchange, sizeof jobs_exchange, cfg.amqp_prefix, "jobs");
        b = ctlq_connect("retry", &cfg, true);
        if (b)
            rung = ctlq_ring_doorbell(b, jobs_exchange, job_id, known ? rec.job_type : NULL, RETRY_CONFIRM_MS, ring_err,
                                      sizeof ring_err);
        else
            snprintf(ring_err, sizeof ring_err, "RabbitMQ could not be reached");
    }
    bool retried = found && !why[0];
    if (!found) {
        ctl_error("retry", "job %s not found", job_id);
    } else if (!retried) {
        ctl_error("retry", "%s", why);
    }
    if (output == CTL_OUTPUT_JSON) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "job_id", job_id);
        hvd_node_map_set_bool(m, "found", found);
        hvd_node_map_set_bool(m, "retried", retried);
        hvd_node_map_set_str(m, "reason", why[0] ? why : NULL);
        hvd_node_map_set_str(m, "stage", stage);
        hvd_node_map_set_bool(m, "doorbell", rung);
        ctl_db_print_json(m);
    } else if (retried) {
        printf("job %s resumes from %s", job_id, stage ? stage : "its failed stage");
        if (rung)
            printf("; its envelope goes to %s\n", rec.reply_to ? rec.reply_to : "its reply queue");
        else
            printf("; its doorbell failed (%s): the fleet's sweep takes it up shortly\n", ring_err);
    }
    hvd_job_record_free(&rec);
    rc = retried ? CTL_EXIT_OK : CTL_EXIT_FAILED;
out:
    hvd_broker_close(b);
    hvd_store_close(s);
    hvd_config_free(&cfg);
    return rc;
}
