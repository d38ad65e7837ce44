/* hvdeployctl prune (contract §1, v1.1): deletes finished jobs whose envelope
 * was sent, older than --older-than (default HVD_JOB_RETENTION), with their
 * stages, secrets and events, a batch per transaction. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "amqp_util.h"
#include "dbutil.h"
#include "store_fleet.h"

#define PRUNE_CMD "prune"
#define PRUNE_DEFAULT_BATCH 1000
#define PRUNE_MAX_BATCH 100000
#define PRUNE_MAX_AGE 315360000 /* 10 years, as HVD_JOB_RETENTION */

static void prune_usage(FILE *f)
{
    fputs("usage: hvdeployctl prune [--older-than DURATION] [--batch N] [--dry-run]\n"
          "                         [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Deletes finished jobs (succeeded, failed, cancelled) whose result envelope was\n"
          "sent and that ended more than DURATION ago, oldest first, with their stages,\n"
          "secrets and events, N jobs per transaction. Live jobs and jobs whose envelope\n"
          "is not yet sent are never deleted. A job id sent again after its job was\n"
          "pruned is a new job. The workers prune by themselves (one at a time) after\n"
          "HVD_JOB_RETENTION; this command prunes now, e.g. with a shorter age.\n"
          "\n"
          "options:\n"
          "  --older-than DURATION   seconds, or with a suffix s, m, h, d (30d); at least 1 s;\n"
          "                          default $HVD_JOB_RETENTION (30d)\n"
          "  --batch N               jobs per transaction (1-100000, default 1000)\n"
          "  --dry-run               count what would be deleted, delete nothing\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"dry_run\", \"older_than_s\", \"jobs\", \"events\", \"batches\"}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 done (also when nothing was old enough), 2 usage or connection error.\n",
          f);
}

static bool parse_batch(const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > PRUNE_MAX_BATCH) {
        ctl_error(PRUNE_CMD, "--batch must be a whole number from 1 to %d, not '%s'", PRUNE_MAX_BATCH, s);
        return false;
    }
    *out = (size_t)v;
    return true;
}

static void print_result(CtlOutput output, const HvdPruneOptions *o, const HvdPruneResult *r)
{
    char age[32];
    ctlq_age(o->older_than_s, age, sizeof age);
    if (output == CTL_OUTPUT_JSON) {
        printf("{\"dry_run\":%s,\"older_than_s\":%lld,\"jobs\":%lld,\"events\":%lld,\"batches\":%zu}\n",
               o->dry_run ? "true" : "false", (long long)o->older_than_s, (long long)r->jobs, (long long)r->events,
               r->batches);
    } else if (o->dry_run) {
        printf("would prune %lld finished job%s (%lld event%s) that ended more than %s ago\n", (long long)r->jobs,
               r->jobs == 1 ? "" : "s", (long long)r->events, r->events == 1 ? "" : "s", age);
    } else {
        printf("pruned %lld finished job%s (%lld event%s) that ended more than %s ago, in %zu batch%s\n",
               (long long)r->jobs, r->jobs == 1 ? "" : "s", (long long)r->events, r->events == 1 ? "" : "s", age,
               r->batches, r->batches == 1 ? "" : "es");
    }
}

int ctl_cmd_prune(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"older-than", required_argument, NULL, 'a'},
        {"batch", required_argument, NULL, 'b'},
        {"dry-run", no_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    HvdConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    CtlOutput output = CTL_OUTPUT_HUMAN;
    HvdPruneOptions o = {.batch = PRUNE_DEFAULT_BATCH};
    const char *age_flag = NULL;
    int rc = CTL_EXIT_USAGE, c;
    /* the settings flags (--pg-dsn, --job-retention...) are taken out of argv here */
    if (!ctlq_load_config(PRUNE_CMD, &argc, argv, &cfg)) goto out;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': age_flag = optarg; break;
        case 'b':
            if (!parse_batch(optarg, &o.batch)) goto out;
            break;
        case 'n': o.dry_run = true; break;
        case 'o':
            if (!ctl_parse_output(PRUNE_CMD, optarg, &output)) goto out;
            break;
        case 'h':
            prune_usage(stdout);
            rc = CTL_EXIT_OK;
            goto out;
        default: prune_usage(stderr); goto out;
        }
    }
    if (optind != argc) {
        ctl_error(PRUNE_CMD, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (age_flag) {
        if (!hvd_config_parse_duration(age_flag, PRUNE_MAX_AGE, &o.older_than_s) || o.older_than_s < 1) {
            ctl_error(PRUNE_CMD,
                      "--older-than must be a duration of 1 s to 10 years (e.g. 3600, 90m, 12h, 30d), not '%s'",
                      age_flag);
            goto out;
        }
    } else if ((o.older_than_s = cfg.job_retention) == 0) {
        if (output == CTL_OUTPUT_JSON)
            printf("{\"dry_run\":%s,\"older_than_s\":0,\"jobs\":0,\"events\":0,\"batches\":0}\n",
                   o.dry_run ? "true" : "false");
        else
            printf("HVD_JOB_RETENTION is 0 (finished jobs are kept): nothing pruned; give --older-than to prune\n");
        rc = CTL_EXIT_OK;
        goto out;
    }
    HvdStore *s = ctl_db_open(PRUNE_CMD, cfg.pg_dsn);
    if (!s) goto out;
    HvdPruneResult res;
    char err[1024] = "";
    HvdStoreStatus st = hvd_store_prune(s, &o, &res, err, sizeof err);
    hvd_store_close(s);
    if (st != HVD_STORE_OK) {
        if (res.jobs)
            fprintf(stderr, "hvdeployctl %s: %lld job(s) were pruned before the error\n", PRUNE_CMD,
                    (long long)res.jobs);
        rc = ctl_db_fail(PRUNE_CMD, st, err);
        goto out;
    }
    print_result(output, &o, &res);
    rc = CTL_EXIT_OK;
out:
    hvd_config_free(&cfg);
    return rc;
}
