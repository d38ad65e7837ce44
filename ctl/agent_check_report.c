/* hvdeployctl agent-check: its report, human or JSON — each check with its
 * status and reason, the profile the worker would use with the agent, and
 * the guarantees that do not hold with it, and why. */
#include <stdio.h>
#include <stdlib.h>
#include "agent_check.h"
#include "codec.h"
#include "ctl.h"

#define MAX_MISSING 8

static const char *status_name(CheckStatus s)
{
    static const char *const names[] = {"pass", "fail", "warn", "skip"};
    return names[s];
}

static HvdNode *caps_node(const HvdAgentCaps *c)
{
    HvdNode *a = hvd_node_array();
    if (c->idempotency) hvd_node_array_push(a, hvd_node_str("idempotency"));
    if (c->probe) hvd_node_array_push(a, hvd_node_str("probe"));
    if (c->session) hvd_node_array_push(a, hvd_node_str("session"));
    if (c->output) hvd_node_array_push(a, hvd_node_str("output"));
    return a;
}

static void report_json(const Ctx *x, const Check *checks, size_t n, const int counts[3], const char **missing,
                        size_t n_missing)
{
    HvdNode *root = hvd_node_map();
    hvd_node_map_set_str(root, "host", x->host);
    hvd_node_map_set_bool(root, "ok", counts[1] == 0);
    hvd_node_map_set_int(root, "passed", counts[0]);
    hvd_node_map_set_int(root, "failed", counts[1]);
    hvd_node_map_set_int(root, "warnings", counts[2]);
    hvd_node_map_set_str(root, "profile", hvd_plan_profile_name(&x->hello.caps));
    hvd_node_map_set_str(root, "agent", x->hello.agent[0] ? x->hello.agent : NULL);
    hvd_node_map_set(root, "capabilities", caps_node(&x->hello.caps));
    HvdNode *g = hvd_node_array();
    for (size_t i = 0; i < n_missing; i++) hvd_node_array_push(g, hvd_node_str(missing[i]));
    hvd_node_map_set(root, "guarantees_not_held", g);
    HvdNode *arr = hvd_node_array();
    for (size_t i = 0; i < n; i++) {
        HvdNode *c = hvd_node_map();
        hvd_node_map_set_str(c, "name", checks[i].name);
        hvd_node_map_set_str(c, "status", status_name(checks[i].status));
        hvd_node_map_set_str(c, "reason", checks[i].reason);
        hvd_node_map_set_int(c, "elapsed_ms", checks[i].elapsed_ms);
        hvd_node_array_push(arr, c);
    }
    hvd_node_map_set(root, "checks", arr);
    char *json = hvd_node_to_json(root);
    printf("%s\n", json);
    free(json);
    hvd_node_free(root);
}

static void report_human(const Ctx *x, const Check *checks, size_t n, const int counts[3], const char **missing,
                         size_t n_missing)
{
    printf("agent-check of %s:", x->host);
    for (size_t i = 0; i < x->cfg.argc; i++) printf(" %s", x->cfg.argv[i]);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        static const char *const tags[] = {"PASS", "FAIL", "WARN", "SKIP"};
        printf("  %s  %-18s %s\n", tags[checks[i].status], checks[i].name, checks[i].reason);
    }
    const HvdAgentCaps *c = &x->hello.caps;
    printf("profile: %s (idempotency %s, probe %s, session %s, output %s)%s\n", hvd_plan_profile_name(c),
           c->idempotency ? "yes" : "no", c->probe ? "yes" : "no", c->session ? "yes" : "no", c->output ? "yes" : "no",
           x->hello.said ? "" : ", as HVD_AGENT_PROFILE=auto finds it");
    if (n_missing == 0) {
        printf("guarantees: all hold with what this agent honours\n");
    } else {
        printf("guarantees that do not hold with this agent:\n");
        for (size_t i = 0; i < n_missing; i++) printf("  - %s\n", missing[i]);
    }
    printf("%s: %d passed, %d failed, %d warning%s\n", counts[1] ? "FAILED" : "OK", counts[0], counts[1], counts[2],
           counts[2] == 1 ? "" : "s");
}

int ac_report(CtlOutput out, const Ctx *x, const Check *checks, size_t n)
{
    int counts[3] = {0, 0, 0}; /* passed, failed, warnings */
    for (size_t i = 0; i < n; i++) {
        if (checks[i].status == CHECK_PASS) counts[0]++;
        if (checks[i].status == CHECK_FAIL) counts[1]++;
        if (checks[i].status == CHECK_WARN) counts[2]++;
    }
    const char *missing[MAX_MISSING];
    size_t n_missing = ac_missing_guarantees(x, missing, MAX_MISSING);
    if (out == CTL_OUTPUT_JSON)
        report_json(x, checks, n, counts, missing, n_missing);
    else
        report_human(x, checks, n, counts, missing, n_missing);
    fflush(stdout);
    return counts[1] ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}
