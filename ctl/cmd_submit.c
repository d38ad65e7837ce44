/* hvdeployctl submit: publishes a job, waits for its envelope on a private reply queue and prints it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "amqp_util.h"
#include "buf.h"
#include "clock.h"
#include "codec.h"
#include "ctl.h"
#include "follow.h"
#include "model.h"

#define SUBMIT_CMD "submit"
#define SUBMIT_DEFAULT_TIMEOUT 600
#define SUBMIT_CONFIRM_MS 30000

typedef struct {
    bool msgpack, no_wait, follow;
    long timeout_s;
    CtlOutput output;
    const char *prefix; /* --prefix, overrides HVD_AMQP_PREFIX */
    const char *path;
} SubmitArgs;

/* What the wait loop matches and prints. */
typedef struct {
    const SubmitArgs *a;
    const char *job_id;
    const char *correlation_id;
    char events_exchange[256];
} SubmitWait;

static void submit_usage(FILE *f)
{
    fputs("usage: hvdeployctl submit FILE|- [--msgpack] [--no-wait] [--follow]\n"
          "                          [--timeout SECONDS] [--output json|human] [--prefix PREFIX]\n"
          "\n"
          "Publishes a job body (JSON, or msgpack with --msgpack) to the fleet's job exchange\n"
          "<prefix>.jobs with routing key = job_type, adding a job_id (a random UUID) when the\n"
          "body has none, then waits for the job's result envelope on a private reply queue and\n"
          "prints it. FILE '-' reads stdin.\n"
          "\n"
          "  --msgpack             the body is msgpack and is published as application/msgpack\n"
          "                        (default: JSON, published as application/json)\n"
          "  --no-wait             print only the job id once RabbitMQ confirmed the job\n"
          "  --follow              print the job's progress events as they come: stage transitions and\n"
          "                        the agent's live output lines (\"12:00:01.500  vm.create | text\")\n"
          "  --timeout SECONDS     how long to wait for the envelope (default 600)\n"
          "  --output json|human   json prints the envelope as one JSON line (after --follow's\n"
          "                        events, one JSON object per line; the envelope is the last line)\n"
          "  --prefix PREFIX       exchange and queue prefix (default: $HVD_AMQP_PREFIX or hvdeploy)\n"
          "  -h, --help            this help\n"
          "\n"
          "The broker is $HVD_AMQP_URL (or --amqp-url; the other HVD_AMQP_* settings apply too).\n"
          "\n"
          "Exit status: 0 the job succeeded (or was accepted, with --no-wait); 1 the job ended\n"
          "partial or error, is invalid, or no fleet handles its job type; 2 usage error,\n"
          "unreadable input, connection error or no envelope within the timeout.\n",
          f);
}

/* A decode error without the parser's "near '...'" excerpt of the input, which could
 * be part of a password. */
static void strip_excerpt(char *why)
{
    char *near = strstr(why, " near ");
    if (near) *near = '\0';
}

/* Parses the options; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, SubmitArgs *a)
{
    static const struct option longopts[] = {
        {"msgpack", no_argument, NULL, 'm'},      {"no-wait", no_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},       {"timeout", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'}, {"prefix", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': a->msgpack = true; break;
        case 'n': a->no_wait = true; break;
        case 'f': a->follow = true; break;
        case 't': {
            char *end = NULL;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 7 * 86400) {
                ctl_error(SUBMIT_CMD, "--timeout: '%s' is not a number of seconds between 1 and 604800", optarg);
                return CTL_EXIT_USAGE;
            }
            a->timeout_s = v;
            break;
        }
        case 'o':
            if (!ctl_parse_output(SUBMIT_CMD, optarg, &a->output)) return CTL_EXIT_USAGE;
            break;
        case 'p':
            if (!*optarg) {
                ctl_error(SUBMIT_CMD, "--prefix must not be empty");
                return CTL_EXIT_USAGE;
            }
            a->prefix = optarg;
            break;
        case 'h': submit_usage(stdout); return CTL_EXIT_OK;
        default: submit_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error(SUBMIT_CMD, argc - optind == 0 ? "expected FILE or -" : "expected exactly one FILE");
        submit_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (a->no_wait && a->follow) {
        ctl_error(SUBMIT_CMD, "--no-wait and --follow exclude each other");
        return CTL_EXIT_USAGE;
    }
    a->path = argv[optind];
    return -1;
}

/* ---- printing ---- */

static const char *str_or(const HvdNode *map, const char *key, const char *def)
{
    const char *s = hvd_node_get_str(map, key);
    return s && *s ? s : def;
}

/* A scalar or list value as one line of text. */
static void value_text(const HvdNode *v, HvdBuf *out)
{
    if (!v || v->type == HVD_NIL) {
        hvd_buf_puts(out, "-");
    } else if (v->type == HVD_STR) {
        hvd_buf_append(out, v->u.s.ptr, strlen(v->u.s.ptr));
    } else if (v->type == HVD_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i) hvd_buf_puts(out, ", ");
            value_text(v->u.arr.items[i], out);
        }
    } else {
        char *j = hvd_node_to_json(v);
        hvd_buf_puts(out, j);
        free(j);
    }
}

static void print_envelope_human(const HvdNode *env)
{
    int64_t attempts = 0;
    printf("job       %s\n", str_or(env, "job_id", "-"));
    printf("status    %s\n", str_or(env, "status", "-"));
    printf("code      %s\n", str_or(env, "code", "-"));
    printf("message   %s\n", str_or(env, "message", "-"));
    if (hvd_node_get_int(env, "attempts", &attempts)) printf("attempts  %lld\n", (long long)attempts);
    printf("created   %s\n", str_or(env, "created_at", "-"));
    printf("finished  %s\n", str_or(env, "finished_at", "-"));

    const HvdNode *stages = hvd_node_get(env, "stages");
    if (stages && stages->type == HVD_ARRAY && stages->u.arr.n) {
        printf("stages:\n");
        for (size_t i = 0; i < stages->u.arr.n; i++) {
            const HvdNode *s = stages->u.arr.items[i];
            int64_t att = 0;
            (void)hvd_node_get_int(s, "attempts", &att);
            printf("  %-14s %-12s attempts %-3lld %s -> %s", str_or(s, "name", "?"), str_or(s, "status", "?"),
                   (long long)att, str_or(s, "started_at", "-"), str_or(s, "finished_at", "-"));
            const char *code = hvd_node_get_str(s, "code"), *acode = hvd_node_get_str(s, "agent_code");
            if (code || acode) printf("  [%s%s%s]", code ? code : "", code && acode ? " / " : "", acode ? acode : "");
            const char *msg = hvd_node_get_str(s, "message");
            if (msg && *msg) printf("  %s", msg);
            printf("\n");
        }
    }
    const HvdNode *data = hvd_node_get(env, "data");
    if (data && data->type == HVD_MAP && data->u.map.n) {
        printf("data:\n");
        for (size_t i = 0; i < data->u.map.n; i++) {
            HvdBuf v = {0};
            value_text(data->u.map.vals[i], &v);
            printf("  %-18s %s\n", data->u.map.keys[i], v.data ? v.data : "");
            hvd_buf_free(&v);
        }
    }
    const HvdNode *errors = hvd_node_get(env, "errors");
    if (errors && errors->type == HVD_ARRAY && errors->u.arr.n) {
        printf("errors:\n");
        for (size_t i = 0; i < errors->u.arr.n; i++) {
            const HvdNode *e = errors->u.arr.items[i];
            printf("  %s: %s [%s]\n", str_or(e, "loc", "?"), str_or(e, "msg", "?"), str_or(e, "type", "?"));
        }
    }
}

/* ---- waiting ---- */

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Handles one delivery: 1 = the envelope came (*exit_code set), 0 = go on. */
static int on_delivery(const SubmitWait *w, const HvdDelivery *d, int *exit_code)
{
    bool is_event = d->exchange && strcmp(d->exchange, w->events_exchange) == 0;
    HvdNode *n = ctl_follow_decode(d);
    int done = 0;
    if (!n) goto out;
    if (is_event) {
        if (w->a->follow && (same(hvd_node_get_str(n, "job_id"), w->job_id) ||
                             same(hvd_node_get_str(n, "correlation_id"), w->correlation_id)))
            ctl_follow_print_event(n, w->a->output);
        goto out;
    }
    /* an envelope: ours when it names our correlation id or job id */
    if (!same(d->correlation_id, w->correlation_id) &&
        !same(hvd_node_get_str(n, "correlation_id"), w->correlation_id) &&
        !(w->job_id && same(hvd_node_get_str(n, "job_id"), w->job_id)))
        goto out;
    if (w->a->output == CTL_OUTPUT_JSON) {
        char *j = hvd_node_to_json(n);
        printf("%s\n", j);
        free(j);
    } else {
        print_envelope_human(n);
    }
    fflush(stdout);
    *exit_code = same(hvd_node_get_str(n, "status"), "success") ? CTL_EXIT_OK : CTL_EXIT_FAILED;
    done = 1;
out:
    hvd_node_free(n);
    return done;
}

static int wait_envelope(HvdBroker *b, const SubmitWait *w)
{
    int64_t deadline = hvd_mono_ms() + w->a->timeout_s * 1000;
    int rc = CTL_EXIT_USAGE;
    for (;;) {
        int64_t left = deadline - hvd_mono_ms();
        if (left <= 0) {
            ctl_error(
                SUBMIT_CMD, "no envelope for job %s within %ld s; it may still be running (see: hvdeployctl status %s)",
                w->job_id ? w->job_id : w->correlation_id, w->a->timeout_s, w->job_id ? w->job_id : w->correlation_id);
            return CTL_EXIT_USAGE;
        }
        HvdDelivery d;
        memset(&d, 0, sizeof d);
        HvdBrokerStatus st = hvd_broker_next(b, left > 1000 ? 1000 : (int)left, &d);
        if (st == HVD_BROKER_DELIVERY) {
            int done = on_delivery(w, &d, &rc);
            if (d.delivery_tag) (void)hvd_broker_ack(b, d.delivery_tag);
            hvd_delivery_free(&d);
            if (done) return rc;
        } else if (st == HVD_BROKER_CLOSED || st == HVD_BROKER_CANCELLED) {
            ctl_error(SUBMIT_CMD, "lost the connection to RabbitMQ (%s) while waiting for the envelope of job %s",
                      hvd_broker_describe(b), w->job_id ? w->job_id : w->correlation_id);
            return CTL_EXIT_USAGE;
        }
    }
}

/* ---- the body ---- */

/* Reads and decodes the job; adds a job_id when missing. Fills the ids and the
 * encoded bytes. Returns -1 on success, else the exit code. */
static int prepare_body(const SubmitArgs *a, HvdContentType ct, HvdBuf *wire, char **job_id, char **corr,
                        char **routing_key)
{
    HvdBuf in = {0};
    HvdNode *body = NULL;
    char why[512] = "";
    int rc = CTL_EXIT_USAGE;
    CtlReadStatus rs = ctl_read_input(a->path, HVD_MAX_BODY, &in, why, sizeof why);
    if (rs == CTL_READ_ERROR) {
        ctl_error(SUBMIT_CMD, "cannot read %s", why);
        goto out;
    }
    rc = CTL_EXIT_FAILED;
    if (rs == CTL_READ_TOO_LARGE) {
        ctl_error(SUBMIT_CMD, "the body is over the %d-byte limit of a job message (message_too_large)", HVD_MAX_BODY);
        goto out;
    }
    HvdDecodeStatus ds = hvd_decode(ct, in.data, in.len, &body, why, sizeof why);
    if (ds != HVD_DECODE_OK) {
        strip_excerpt(why);
        ctl_error(SUBMIT_CMD, "%s is not a valid %s job body: %s", strcmp(a->path, "-") == 0 ? "stdin" : a->path,
                  ct == HVD_CT_MSGPACK ? "msgpack" : "JSON", why);
        goto out;
    }
    if (body->type != HVD_MAP) {
        ctl_error(SUBMIT_CMD, "the job body must be a map, not %s", hvd_node_type_name(body->type));
        goto out;
    }
    const HvdNode *jt = hvd_node_get(body, "job_type");
    if (!jt || jt->type != HVD_STR || !*jt->u.s.ptr) {
        ctl_error(SUBMIT_CMD, "the job body has no job_type (a string such as \"%s\"): it cannot be routed",
                  HVD_JOB_TYPE_MANAGED);
        goto out;
    }
    *routing_key = hvd_xstrdup(jt->u.s.ptr);
    const HvdNode *id = hvd_node_get(body, "job_id");
    if (!id || id->type == HVD_NIL) {
        char uuid[37];
        ctlq_uuid4(uuid);
        hvd_node_map_set_str(body, "job_id", uuid);
        id = hvd_node_get(body, "job_id");
    }
    if (id->type == HVD_STR) {
        *job_id = hvd_xstrdup(id->u.s.ptr);
        *corr = hvd_xstrdup(id->u.s.ptr);
    } else {
        /* a job_id of another type: the fleet answers it invalid; correlate by a fresh id */
        char uuid[37];
        ctlq_uuid4(uuid);
        *corr = hvd_xstrdup(uuid);
    }
    hvd_encode(ct, body, wire);
    rc = -1;
out:
    hvd_node_free(body);
    /* the input may hold passwords: do not leave them in freed memory */
    if (in.data) memset(in.data, 0, in.len);
    hvd_buf_free(&in);
    return rc;
}

int ctl_cmd_submit(int argc, char **argv)
{
    SubmitArgs a = {.timeout_s = SUBMIT_DEFAULT_TIMEOUT, .output = CTL_OUTPUT_HUMAN};
    HvdConfig cfg;
    HvdBroker *b = NULL;
    HvdBuf wire = {0};
    char *job_id = NULL, *corr = NULL, *routing_key = NULL;
    char err[512] = "";
    int rc = CTL_EXIT_USAGE;

    if (!ctlq_load_config(SUBMIT_CMD, &argc, argv, &cfg)) goto out;
    rc = parse_args(argc, argv, &a);
    if (rc >= 0) goto out;
    rc = CTL_EXIT_USAGE;
    const char *prefix = a.prefix ? a.prefix : cfg.amqp_prefix;
    HvdContentType ct = a.msgpack ? HVD_CT_MSGPACK : HVD_CT_JSON;
    rc = prepare_body(&a, ct, &wire, &job_id, &corr, &routing_key);
    if (rc >= 0) goto out;
    rc = CTL_EXIT_USAGE;

    b = ctlq_connect(SUBMIT_CMD, &cfg, true);
    if (!b) goto out;
    char jobs_exchange[256], jobs_queue[256], queue[256];
    SubmitWait w = {.a = &a, .job_id = job_id, .correlation_id = corr};
    ctlq_name(jobs_exchange, sizeof jobs_exchange, prefix, "jobs");
    ctlq_name(jobs_queue, sizeof jobs_queue, prefix, "jobs");
    ctlq_name(w.events_exchange, sizeof w.events_exchange, prefix, "events");
    /* No job queue means no worker of this prefix ever started: say so plainly
     * rather than as a closed channel. */
    if (hvd_broker_queue_info(b, jobs_queue, NULL, NULL, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(SUBMIT_CMD,
                  "RabbitMQ at %s has no queue '%s': no hvdeploy worker with prefix '%s' has started "
                  "(check HVD_AMQP_PREFIX)",
                  hvd_broker_describe(b), jobs_queue, prefix);
        goto out;
    }
    if (hvd_broker_declare_private_queue(b, queue, sizeof queue, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(SUBMIT_CMD, "%s", err);
        goto out;
    }
    if (a.follow) {
        static const char *const keys[] = {"job.#", "stage.#"};
        for (size_t i = 0; i < 2; i++)
            if (hvd_broker_bind(b, queue, w.events_exchange, keys[i], err, sizeof err) != HVD_BROKER_OK) {
                ctl_error(SUBMIT_CMD, "cannot follow the job's events: %s", err);
                goto out;
            }
    }
    if (!a.no_wait && hvd_broker_consume(b, queue, 64, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(SUBMIT_CMD, "%s", err);
        goto out;
    }

    HvdPublish p = {
        .exchange = jobs_exchange,
        .routing_key = routing_key,
        .body = wire.data,
        .len = wire.len,
        .content_type = hvd_content_type_name(ct),
        .message_id = job_id,
        .correlation_id = corr,
        .reply_to = queue,
        .persistent = true,
        .mandatory = true,
    };
    HvdConfirm c = ctlq_publish_wait(b, &p, SUBMIT_CONFIRM_MS, err, sizeof err);
    /* the encoded body holds the job's passwords */
    memset(wire.data, 0, wire.len);
    if (c == HVD_CONFIRM_RETURNED) {
        ctl_error(SUBMIT_CMD,
                  "no fleet handles job type '%s' (nothing is bound to exchange '%s' with that routing key)",
                  routing_key, jobs_exchange);
        rc = CTL_EXIT_FAILED;
        goto out;
    }
    if (c == HVD_CONFIRM_NACKED) {
        ctl_error(SUBMIT_CMD, "RabbitMQ refused the job (is '%s' full?)", jobs_queue);
        goto out;
    }
    if (c != HVD_CONFIRM_ACKED) {
        ctl_error(SUBMIT_CMD, "the job may not have been published: %s", err);
        goto out;
    }
    if (a.no_wait) {
        if (a.output == CTL_OUTPUT_JSON) {
            HvdBuf j = {0};
            hvd_buf_puts(&j, "{\"job_id\":");
            ctl_json_string(&j, job_id ? job_id : corr);
            hvd_buf_puts(&j, ",\"correlation_id\":");
            ctl_json_string(&j, corr);
            hvd_buf_puts(&j, "}");
            printf("%s\n", j.data);
            hvd_buf_free(&j);
        } else {
            printf("%s\n", job_id ? job_id : corr);
        }
        rc = CTL_EXIT_OK;
        goto out;
    }
    if (a.output == CTL_OUTPUT_HUMAN && a.follow) {
        printf("submitted job %s; waiting for its envelope (timeout %ld s)\n", job_id ? job_id : corr, a.timeout_s);
        fflush(stdout);
    }
    rc = wait_envelope(b, &w);
out:
    hvd_broker_close(b);
    hvd_buf_free(&wire);
    free(job_id);
    free(corr);
    free(routing_key);
    hvd_config_free(&cfg);
    return rc;
}
