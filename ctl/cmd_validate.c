/* hvdeployctl validate: checks a job body against contract §3 offline. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "ctl.h"
#include "envelope.h"
#include "plan.h"
#include "model.h"

static void validate_usage(FILE *f)
{
    fputs("usage: hvdeployctl validate FILE|- [--msgpack] [--output json|human]\n"
          "                            [--allowed-hosts HOST,...] [--message-id ID]\n"
          "\n"
          "Checks a job body (JSON, or msgpack with --msgpack) against the job contract\n"
          "offline and prints every error with its loc. FILE '-' reads stdin.\n"
          "\n"
          "  --msgpack             the body is msgpack (default: JSON)\n"
          "  --output json|human   json prints {\"valid\": bool, \"errors\": [{\"loc\",\"msg\",\"type\"}...]}\n"
          "  --allowed-hosts LIST  comma list of allowed target hosts (default: $HVD_ALLOWED_HOSTS;\n"
          "                        empty = any valid hostname)\n"
          "  --message-id ID       check the body's job_id against this AMQP message_id\n"
          "  -h, --help            this help\n"
          "\n"
          "Exit status: 0 valid, 1 invalid, 2 usage error or unreadable file.\n",
          f);
}

/* Prints the result; returns the exit code. */
static int report(CtlOutput output, const HvdErrors *errs, const HvdJob *job)
{
    if (output == CTL_OUTPUT_JSON) {
        HvdNode *res = hvd_node_map();
        hvd_node_map_set_bool(res, "valid", errs->n == 0);
        hvd_node_map_set(res, "errors", hvd_errors_to_node(errs));
        char *json = hvd_node_to_json(res);
        printf("%s\n", json);
        free(json);
        hvd_node_free(res);
    } else if (errs->n > 0) {
        for (size_t i = 0; i < errs->n; i++)
            printf("%s: %s [%s]\n", errs->items[i].loc, errs->items[i].msg, errs->items[i].type);
        printf("invalid: %zu error%s\n", errs->n, errs->n == 1 ? "" : "s");
    } else {
        const char *names[4];
        size_t n = hvd_plan_stages(job, names);
        printf("valid: %s job %s for %s (stages: ", job->job_type, job->job_id, job->target_host);
        for (size_t i = 0; i < n; i++) printf("%s%s", i ? ", " : "", names[i]);
        printf(")\n");
    }
    return errs->n == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

int ctl_cmd_validate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"msgpack", no_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"allowed-hosts", required_argument, NULL, 'a'},
        {"message-id", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool msgpack = false;
    CtlOutput output = CTL_OUTPUT_HUMAN;
    const char *allowed = ctl_env("HVD_ALLOWED_HOSTS", "");
    const char *message_id = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': msgpack = true; break;
        case 'o':
            if (!ctl_parse_output("validate", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 'a': allowed = optarg; break;
        case 'i': message_id = optarg; break;
        case 'h': validate_usage(stdout); return CTL_EXIT_OK;
        default: validate_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error("validate", argc - optind == 0 ? "expected FILE or -" : "expected exactly one FILE");
        validate_usage(stderr);
        return CTL_EXIT_USAGE;
    }

    const char *path = argv[optind];
    HvdBuf body = {0};
    HvdErrors errs = {0};
    HvdJob job = {0};
    HvdNode *tree = NULL;
    char **hosts = NULL;
    size_t n_hosts = hvd_hosts_parse(allowed, &hosts);
    char why[512] = "";
    int rc = CTL_EXIT_USAGE;

    CtlReadStatus rs = ctl_read_input(path, HVD_MAX_BODY, &body, why, sizeof(why));
    if (rs == CTL_READ_ERROR) {
        ctl_error("validate", "cannot read %s", why);
        goto out;
    }
    if (rs == CTL_READ_TOO_LARGE) {
        hvd_errors_add(&errs, "body", "message_too_large", "body is over the %d-byte limit", HVD_MAX_BODY);
    } else {
        HvdDecodeStatus ds =
            hvd_decode(msgpack ? HVD_CT_MSGPACK : HVD_CT_JSON, body.data, body.len, &tree, why, sizeof(why));
        if (ds == HVD_DECODE_TOO_LARGE)
            hvd_errors_add(&errs, "body", "message_too_large", "%s", why);
        else if (ds != HVD_DECODE_OK)
            hvd_errors_add(&errs, "body", "malformed_message", "%s", why[0] ? why : "cannot decode the body");
    }
    if (tree) {
        HvdValidateOpts opts = {
            .allowed_hosts = (const char *const *)hosts,
            .n_allowed_hosts = n_hosts,
            .message_id = message_id,
        };
        (void)hvd_job_validate(tree, &opts, &job, &errs);
    }
    rc = report(output, &errs, &job);
out:
    hvd_job_free(&job);
    hvd_node_free(tree);
    hvd_errors_free(&errs);
    hvd_hosts_free(hosts, n_hosts);
    hvd_buf_free(&body);
    return rc;
}
