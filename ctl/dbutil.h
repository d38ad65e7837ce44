/* hvdeployctl: the database side shared by migrate, status, list and cancel. */
#ifndef HVD_CTL_DBUTIL_H
#define HVD_CTL_DBUTIL_H
#include <stdio.h>
#include "ctl.h"
#include "node.h"
#include "store.h"

/* The DSN: the --pg-dsn flag when given, else $HVD_PG_DSN, else the default of
 * contract §1 (postgresql://localhost/hvdeploy). */
const char *ctl_db_dsn(const char *flag);

/* Opens a one-connection store for cmd; on failure prints one line naming the
 * DSN with its password masked and returns NULL (exit CTL_EXIT_USAGE). */
HvdStore *ctl_db_open(const char *cmd, const char *dsn);

/* Reports a failed store call for cmd on stderr (with a hint when the schema
 * is missing) and returns the exit code (CTL_EXIT_USAGE). */
int ctl_db_fail(const char *cmd, HvdStoreStatus st, const char *err);

/* True when s is a job id (UUID, 36 chars); otherwise prints a usage error. */
bool ctl_db_job_id_ok(const char *cmd, const char *s);

/* The command line of a subcommand that takes one JOB_ID (status, cancel):
 * parses --pg-dsn, --output and --help, checks the job id and opens the
 * store. Returns -1 when the command goes on (with *output, *job_id and *store
 * set; close the store), else the exit code to return at once. */
int ctl_db_job_command(const char *cmd, int argc, char **argv, void (*usage)(FILE *), CtlOutput *output,
                       const char **job_id, HvdStore **store);

/* Prints node as JSON and a newline on stdout, and frees it. */
void ctl_db_print_json(HvdNode *node);

#endif
