/* hvdeployctl hosts: per Hyper-V host, the slots in use, the jobs waiting
 * and why, and the host's circuit (and its agent's profile when recorded). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "amqp_util.h"
#include "dbutil.h"
#include "store_view.h"

static void hosts_usage(FILE *f)
{
    fputs("usage: hvdeployctl hosts [--waiting] [--pg-dsn DSN] [--output json|human]\n"
          "\n"
          "Every host with live jobs or a circuit record, from PostgreSQL: slots in use (of\n"
          "HVD_HOST_CONCURRENCY, which this command reads from its own settings), jobs running,\n"
          "queued and retrying, why the others wait (host_busy: every slot taken; retry: a\n"
          "backoff after a transient failure; circuit: the host's circuit is open), and the\n"
          "circuit: closed, open (until when), trial (one trial call is out) or half-open\n"
          "(cooled down, the next call is the trial). When the fleet records its agents'\n"
          "profiles (hvdeploy.host_agents), the agent, profile and capabilities too.\n"
          "\n"
          "options:\n"
          "  --waiting               also list each waiting job (id, VM, stage, why, next try)\n"
          "  --pg-dsn DSN            default: $HVD_PG_DSN, else postgresql://localhost/hvdeploy\n"
          "  -o, --output json|human json prints {\"hosts\": [{host, slots_in_use, ..., waiting: [...]}]}\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 listed (also when there are none), 2 usage or connection error.\n",
          f);
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

static HvdNode *waiting_node(const HvdWaitingJob *v, size_t n)
{
    HvdNode *arr = hvd_node_array();
    for (size_t i = 0; i < n; i++) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "job_id", v[i].job_id);
        hvd_node_map_set_str(m, "status", v[i].status);
        hvd_node_map_set_str(m, "vm_name", v[i].vm_name);
        hvd_node_map_set_str(m, "stage", v[i].stage);
        hvd_node_map_set_str(m, "reason", v[i].reason);
        hvd_node_map_set_str(m, "next_run_at", v[i].next_run_at);
        hvd_node_map_set_int(m, "attempts", v[i].attempts);
        hvd_node_array_push(arr, m);
    }
    return arr;
}

static HvdNode *host_node(const HvdHostView *h, int64_t slots)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "host", h->host);
    hvd_node_map_set_int(m, "slots_in_use", h->slots_in_use);
    hvd_node_map_set_int(m, "slots", slots);
    hvd_node_map_set_int(m, "running", h->running);
    hvd_node_map_set_int(m, "queued", h->queued);
    hvd_node_map_set_int(m, "retrying", h->retrying);
    HvdNode *w = hvd_node_map();
    hvd_node_map_set_int(w, "host_busy", h->waiting_host_busy);
    hvd_node_map_set_int(w, "retry", h->waiting_retry);
    hvd_node_map_set_int(w, "circuit_open", h->waiting_circuit);
    hvd_node_map_set_int(w, "other", h->waiting_other);
    hvd_node_map_set(m, "waiting_by_reason", w);
    hvd_node_map_set_str(m, "circuit", h->circuit);
    hvd_node_map_set_int(m, "consecutive_failures", h->consecutive_fails);
    hvd_node_map_set_str(m, "open_until", h->open_until);
    hvd_node_map_set_str(m, "trial_owner", h->trial_owner);
    if (h->agent || h->profile || h->capabilities) {
        hvd_node_map_set_str(m, "agent", h->agent);
        hvd_node_map_set_str(m, "profile", h->profile);
        hvd_node_map_set_str(m, "capabilities", h->capabilities);
    }
    return m;
}

static void print_waiting_human(const HvdWaitingJob *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("    waiting  %-36s  %-20s  %-13s  %-12s  next %s\n", v[i].job_id, dash(v[i].vm_name), dash(v[i].stage),
               dash(v[i].reason), dash(v[i].next_run_at));
}

int ctl_cmd_hosts(int argc, char **argv)
{
    HvdConfig cfg;
    int rc = CTL_EXIT_USAGE;
    HvdStore *s = NULL;
    CtlOutput output = CTL_OUTPUT_HUMAN;
    bool waiting = false;
    HvdHostView *v = NULL;
    size_t n = 0;
    if (!ctlq_load_config("hosts", &argc, argv, &cfg)) goto out;
    static const struct option longopts[] = {
        {"waiting", no_argument, NULL, 'w'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        if (c == 'w') {
            waiting = true;
            continue;
        }
        if (c == 'o' && ctl_parse_output("hosts", optarg, &output)) continue;
        if (c == 'h') {
            hosts_usage(stdout);
            rc = CTL_EXIT_OK;
        } else if (c != 'o') {
            hosts_usage(stderr);
        }
        goto out;
    }
    if (optind != argc) {
        ctl_error("hosts", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    s = ctl_db_open("hosts", cfg.pg_dsn);
    if (!s) goto out;
    char err[1024] = "";
    HvdStoreStatus st = hvd_store_hosts(s, &v, &n, err, sizeof err);
    if (st != HVD_STORE_OK) {
        rc = ctl_db_fail("hosts", st, err);
        goto out;
    }
    bool agents = false;
    for (size_t i = 0; i < n; i++) agents |= v[i].agent || v[i].profile || v[i].capabilities;
    HvdNode *arr = output == CTL_OUTPUT_JSON ? hvd_node_array() : NULL;
    if (!arr && n == 0) printf("no hosts with live jobs, a circuit record or a known agent\n");
    if (!arr && n > 0) {
        printf("%-28s %-7s %-7s %-7s %-8s %-24s %-9s %-6s %s", "HOST", "SLOTS", "RUNNING", "QUEUED", "RETRYING",
               "WAITING (busy/retry/circ)", "CIRCUIT", "FAILS", "OPEN UNTIL");
        printf(agents ? "  %-24s %-8s %s\n" : "\n", "AGENT", "PROFILE", "CAPABILITIES");
    }
    for (size_t i = 0; i < n; i++) {
        HvdWaitingJob *wj = NULL;
        size_t nw = 0;
        if (waiting && hvd_store_host_waiting(s, v[i].host, 1000, &wj, &nw, err, sizeof err) != HVD_STORE_OK) {
            hvd_node_free(arr);
            rc = ctl_db_fail("hosts", HVD_STORE_ERROR, err);
            goto out;
        }
        if (arr) {
            HvdNode *m = host_node(&v[i], cfg.host_concurrency);
            if (waiting) hvd_node_map_set(m, "waiting", waiting_node(wj, nw));
            hvd_node_array_push(arr, m);
        } else {
            char slots[24], wait[40];
            snprintf(slots, sizeof slots, "%d/%lld", v[i].slots_in_use, (long long)cfg.host_concurrency);
            snprintf(wait, sizeof wait, "%d/%d/%d", v[i].waiting_host_busy, v[i].waiting_retry, v[i].waiting_circuit);
            printf("%-28s %-7s %-7d %-7d %-8d %-24s %-9s %-6d %s", v[i].host, slots, v[i].running, v[i].queued,
                   v[i].retrying, wait, v[i].circuit, v[i].consecutive_fails, dash(v[i].open_until));
            if (agents)
                printf("  %-24s %-8s %s\n", dash(v[i].agent), dash(v[i].profile), dash(v[i].capabilities));
            else
                printf("\n");
            print_waiting_human(wj, nw);
        }
        hvd_waiting_jobs_free(wj, nw);
    }
    if (arr) {
        HvdNode *res = hvd_node_map();
        hvd_node_map_set(res, "hosts", arr);
        ctl_db_print_json(res);
    }
    rc = CTL_EXIT_OK;
out:
    hvd_host_views_free(v, n);
    hvd_store_close(s);
    hvd_config_free(&cfg);
    return rc;
}
