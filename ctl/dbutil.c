/* hvdeployctl: opening the database, reporting its errors, JSON printing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "dbutil.h"

#define CTL_DEFAULT_DSN "postgresql://localhost/hvdeploy"

const char *ctl_db_dsn(const char *flag)
{
    return flag && *flag ? flag : ctl_env("HVD_PG_DSN", CTL_DEFAULT_DSN);
}

HvdStore *ctl_db_open(const char *cmd, const char *dsn)
{
    char err[1024] = "", masked[512];
    HvdStoreOptions o = {.dsn = dsn, .pool_size = 1, .worker_id = "hvdeployctl", .lease_ttl_s = 30,
                         .host_concurrency = 1};
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
        if (i == 8 || i == 13 || i == 18 || i == 23) ok = s[i] == '-';
        else ok = isxdigit((unsigned char)s[i]) != 0;
    }
    if (!ok) ctl_error(cmd, "JOB_ID must be a UUID (36 characters, e.g. 6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11), not '%s'",
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
