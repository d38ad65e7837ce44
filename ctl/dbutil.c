/* hvdeployctl: opening the database, reporting its errors, JSON printing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "dbutil.h"
#include <getopt.h>

#define CTL_DEFAULT_DSN "postgresql://localhost/hvdeploy"

const char *ctl_db_dsn(const char *flag)
{
    return flag && *flag ? flag : ctl_env("HVD_PG_DSN", CTL_DEFAULT_DSN);
}

HvdStore *ctl_db_open(const char *cmd, const char *dsn)
{
    char err[1024] = "", masked[512];
    HvdStoreOptions o = {
        .dsn = dsn, .pool_size = 1, .worker_id = "hvdeployctl", .lease_ttl_s = 30, .host_concurrency = 1};
    HvdStore *s = hvd_store_open(&o, err, sizeof err);
    if (!s) {
        hvd_store_mask_dsn(dsn, masked, sizeof masked);
        ctl_error(cmd, "%s (dsn %s)", err, masked);
    }
    return s;
}

int ctl_db_fail(const char *cmd, HvdStoreStatus st, const char *err)
{
    if (st == HVD_STORE_ERROR && strstr(err, "(42P01)"))
        ctl_error(cmd, "%s (has `hvdeployctl migrate` been run on this database?)", err);
    else
        ctl_error(cmd, "%s", err && *err ? err : "database error");
    return CTL_EXIT_USAGE;
}

bool ctl_db_job_id_ok(const char *cmd, const char *s)
{
    bool ok = s && strlen(s) == 36;
    for (int i = 0; ok && i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ok = s[i] == '-';
        else
            ok = isxdigit((unsigned char)s[i]) != 0;
    }
    if (!ok)
        ctl_error(cmd, "JOB_ID must be a UUID (36 characters, e.g. 6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11), not '%s'",
                  s ? s : "");
    return ok;
}

void ctl_db_print_json(HvdNode *node)
{
    char *json = hvd_node_to_json(node);
    printf("%s\n", json);
    free(json);
    hvd_node_free(node);
}

int ctl_db_job_command(const char *cmd, int argc, char **argv, void (*usage)(FILE *), CtlOutput *output,
                       const char **job_id, HvdStore **store)
{
    static const struct option longopts[] = {
        {"pg-dsn", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dsn_flag = NULL;
    int c;
    *output = CTL_OUTPUT_HUMAN;
    *store = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': dsn_flag = optarg; break;
        case 'o':
            if (!ctl_parse_output(cmd, optarg, output)) return CTL_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CTL_EXIT_OK;
        default: usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error(cmd, argc - optind == 0 ? "expected JOB_ID" : "expected exactly one JOB_ID");
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    *job_id = argv[optind];
    if (!ctl_db_job_id_ok(cmd, *job_id)) return CTL_EXIT_USAGE;
    *store = ctl_db_open(cmd, ctl_db_dsn(dsn_flag));
    return *store ? -1 : CTL_EXIT_USAGE;
}
