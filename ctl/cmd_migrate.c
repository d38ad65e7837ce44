/* hvdeployctl migrate: applies pending database migrations and exits. */
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dbutil.h"

static void migrate_usage(FILE *f)
{
    fputs("usage: hvdeployctl migrate [--migrations-dir DIR] [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Applies the pending migrations (DIR/NNNN_name.sql, in order, each once and in its\n"
          "own transaction) to the database of HVD_PG_DSN and exits. Many callers at once\n"
          "are safe (an advisory lock): a worker applies the same at its start. A migration\n"
          "that was edited after it was applied is refused, naming the file.\n"
          "\n"
          "options:\n"
          "  --migrations-dir DIR    default: $HVD_MIGRATIONS_DIR, else the migrations\n"
          "                          directory next to the program, else\n"
          "                          /usr/share/hvdeploy/migrations\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"applied\": [names], \"migrations_dir\": DIR}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 up to date, 1 a migration failed or was edited,\n"
          "2 usage or connection error.\n",
          f);
}

int ctl_cmd_migrate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"migrations-dir", required_argument, NULL, 'd'},
        {"pg-dsn", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    CtlOutput output = CTL_OUTPUT_HUMAN;
    const char *dir = NULL, *dsn_flag = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': dsn_flag = optarg; break;
        case 'o':
            if (!ctl_parse_output("migrate", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 'h': migrate_usage(stdout); return CTL_EXIT_OK;
        default: migrate_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        ctl_error("migrate", "unexpected argument '%s'", argv[optind]);
        return CTL_EXIT_USAGE;
    }
    if (!dir) dir = hvd_store_default_migrations_dir();
    struct stat sb;
    int stat_rc = stat(dir, &sb);
    if (stat_rc != 0 || !S_ISDIR(sb.st_mode)) {
        ctl_error("migrate", "migrations directory %s: %s (use --migrations-dir or HVD_MIGRATIONS_DIR)", dir,
                  stat_rc != 0 ? strerror(errno) : "not a directory");
        return CTL_EXIT_USAGE;
    }

    HvdStore *s = ctl_db_open("migrate", ctl_db_dsn(dsn_flag));
    if (!s) return CTL_EXIT_USAGE;
    char err[1024] = "";
    char *report = NULL;
    size_t report_len = 0;
    FILE *rf = open_memstream(&report, &report_len);
    int applied = 0;
    HvdStoreStatus st = hvd_store_migrate(s, dir, rf, &applied, err, sizeof err);
    fclose(rf);
    hvd_store_close(s);

    /* report: "applied NAME\n" per migration, also when a later one failed */
    HvdNode *names = hvd_node_array();
    for (char *line = report, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = '\0';
        if (strncmp(line, "applied ", 8) == 0) hvd_node_array_push(names, hvd_node_str(line + 8));
        if (output == CTL_OUTPUT_HUMAN) printf("%s\n", line);
    }
    free(report);
    int rc = CTL_EXIT_OK;
    if (st != HVD_STORE_OK) {
        ctl_error("migrate", "%s", err);
        rc = st == HVD_STORE_ERROR ? CTL_EXIT_FAILED : CTL_EXIT_USAGE;
    }
    if (output == CTL_OUTPUT_JSON) {
        HvdNode *res = hvd_node_map();
        hvd_node_map_set(res, "applied", names);
        hvd_node_map_set_str(res, "migrations_dir", dir);
        hvd_node_map_set_bool(res, "ok", st == HVD_STORE_OK);
        if (st != HVD_STORE_OK) hvd_node_map_set_str(res, "error", err);
        ctl_db_print_json(res);
    } else {
        hvd_node_free(names);
        if (st == HVD_STORE_OK && applied == 0)
            printf("database is up to date\n");
        else if (st == HVD_STORE_OK)
            printf("applied %d migration%s; database is up to date\n", applied, applied == 1 ? "" : "s");
    }
    return rc;
}
