/* hvdeployctl: the subcommand table and the small helpers subcommands share. */
#ifndef HVD_CTL_H
#define HVD_CTL_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

/* Exit codes of every subcommand (contract §1). */
#define CTL_EXIT_OK 0     /* success / valid */
#define CTL_EXIT_FAILED 1 /* the thing asked about failed or is invalid */
#define CTL_EXIT_USAGE 2  /* usage error, unreadable input, connection error */

/* One subcommand. run gets argv starting at the subcommand's name
 * (argv[0] == "validate", ...), so getopt_long can start at optind = 1.
 * Every subcommand answers --help on stdout with exit 0. */
typedef struct {
    const char *name;
    const char *summary; /* one line for `hvdeployctl --help` */
    int (*run)(int argc, char **argv);
} CtlCommand;

/* Implemented in ctl/cmd_<name>.c. ctl/main.c carries weak fallbacks that
 * print "not available in this build" and return 2, so the build stays green
 * before a subcommand exists; a strong definition replaces the fallback. */
int ctl_cmd_validate(int argc, char **argv);
int ctl_cmd_submit(int argc, char **argv);
int ctl_cmd_status(int argc, char **argv);
int ctl_cmd_list(int argc, char **argv);
int ctl_cmd_cancel(int argc, char **argv);
int ctl_cmd_dead(int argc, char **argv);
int ctl_cmd_migrate(int argc, char **argv);
int ctl_cmd_agent_check(int argc, char **argv);
int ctl_cmd_keygen(int argc, char **argv);
int ctl_cmd_hosts(int argc, char **argv);
int ctl_cmd_retry(int argc, char **argv);
int ctl_cmd_prune(int argc, char **argv);

/* The table, in the order `--help` lists it; NULL-name terminated. */
extern const CtlCommand ctl_commands[];
const CtlCommand *ctl_command_find(const char *name);

/* ---- shared helpers (ctl/util.c) ---- */

typedef enum {
    CTL_OUTPUT_HUMAN = 0,
    CTL_OUTPUT_JSON,
} CtlOutput;

/* "json" or "human" -> *out. Returns false (and prints a one-line error on
 * stderr naming prog) for anything else. */
bool ctl_parse_output(const char *prog, const char *arg, CtlOutput *out);

typedef enum {
    CTL_READ_OK = 0,
    CTL_READ_TOO_LARGE, /* more than max bytes: out holds the first max bytes */
    CTL_READ_ERROR,     /* cannot open/read: why holds "PATH: strerror" */
} CtlReadStatus;

/* Reads FILE, or stdin when path is "-", into out (appending). Reads at most
 * max + 1 bytes so that an oversized input is detected without reading it
 * all. */
CtlReadStatus ctl_read_input(const char *path, size_t max, HvdBuf *out, char *why, size_t whylen);

/* getenv, with def when the variable is unset or empty. */
const char *ctl_env(const char *name, const char *def);

/* Prints a one-line "hvdeployctl CMD: message" error on stderr. */
void ctl_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s as a JSON string literal (with quotes) to b. */
void ctl_json_string(HvdBuf *b, const char *s);

#endif
