/* hvdeployctl: dispatches to the subcommand table; the commands live in cmd_*.c. */
#include <stdio.h>
#include <string.h>
#include "ctl.h"
#include "harden.h"

/* Weak fallbacks: a ctl/cmd_<name>.c that defines the strong symbol replaces
 * its fallback at link time. */
#define CTL_WEAK_FALLBACK(fn, label)                                             \
    __attribute__((weak)) int fn(int argc, char **argv)                          \
    {                                                                            \
        (void)argc;                                                              \
        (void)argv;                                                              \
        fprintf(stderr, "hvdeployctl %s: not available in this build\n", label); \
        return CTL_EXIT_USAGE;                                                   \
    }

CTL_WEAK_FALLBACK(ctl_cmd_validate, "validate")
CTL_WEAK_FALLBACK(ctl_cmd_submit, "submit")
CTL_WEAK_FALLBACK(ctl_cmd_status, "status")
CTL_WEAK_FALLBACK(ctl_cmd_list, "list")
CTL_WEAK_FALLBACK(ctl_cmd_cancel, "cancel")
CTL_WEAK_FALLBACK(ctl_cmd_dead, "dead")
CTL_WEAK_FALLBACK(ctl_cmd_migrate, "migrate")
CTL_WEAK_FALLBACK(ctl_cmd_agent_check, "agent-check")
CTL_WEAK_FALLBACK(ctl_cmd_keygen, "keygen")
CTL_WEAK_FALLBACK(ctl_cmd_hosts, "hosts")
CTL_WEAK_FALLBACK(ctl_cmd_retry, "retry")
CTL_WEAK_FALLBACK(ctl_cmd_prune, "prune")

const CtlCommand ctl_commands[] = {
    {"validate", "check a job body (JSON, or msgpack with --msgpack) offline", ctl_cmd_validate},
    {"submit", "publish a job and wait for its result envelope", ctl_cmd_submit},
    {"status", "show a job, its stages, attempts and last error", ctl_cmd_status},
    {"list", "list recent jobs (--status, --host, --since, --code, --vm-name, ...)", ctl_cmd_list},
    {"cancel", "ask the fleet to stop a job before its next stage", ctl_cmd_cancel},
    {"retry", "resume a failed job from its failed stage", ctl_cmd_retry},
    {"hosts", "per host: slots in use, waiting jobs and why, circuit state", ctl_cmd_hosts},
    {"dead", "dead-letter queue: list | show | replay | purge", ctl_cmd_dead},
    {"migrate", "apply pending database migrations and exit", ctl_cmd_migrate},
    {"agent-check", "run the agent protocol conformance checks", ctl_cmd_agent_check},
    {"keygen", "write a new secret key file (mode 0600)", ctl_cmd_keygen},
    {"prune", "delete finished jobs older than --older-than (default HVD_JOB_RETENTION)", ctl_cmd_prune},
    {NULL, NULL, NULL},
};

const CtlCommand *ctl_command_find(const char *name)
{
    if (!name) return NULL;
    for (const CtlCommand *c = ctl_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

static void usage(FILE *f)
{
    fputs("usage: hvdeployctl COMMAND [ARGS...]\n"
          "       hvdeployctl help COMMAND   (or: hvdeployctl COMMAND --help)\n"
          "\n"
          "commands:\n",
          f);
    for (const CtlCommand *c = ctl_commands; c->name; c++) fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fputs("\n"
          "Every command takes --output json|human (human by default) where it prints results,\n"
          "and the HVD_* environment variables of the worker (HVD_AMQP_URL, HVD_PG_DSN, ...).\n"
          "Exit status: 0 success, 1 the job or check failed / is invalid, 2 usage or connection error.\n",
          f);
}

int main(int argc, char **argv)
{
    (void)hvd_harden_process(NULL, 0); /* no core dump of a decrypted secret; best effort */
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || (strcmp(name, "help") == 0 && argc == 2)) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        const CtlCommand *c = ctl_command_find(argv[2]);
        if (!c) {
            fprintf(stderr, "hvdeployctl: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
        char *hargv[] = {(char *)c->name, (char *)"--help", NULL};
        return c->run(2, hargv);
    }
    const CtlCommand *c = ctl_command_find(name);
    if (!c) {
        fprintf(stderr, "hvdeployctl: unknown command '%s'\n\n", name);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
