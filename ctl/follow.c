/* hvdeployctl: progress events as lines, shared by submit --follow and status --follow. */
#include "follow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "amqp_util.h"
#include "clock.h"
#include "codec.h"
#include "store_view.h"

HvdNode *ctl_follow_decode(const HvdDelivery *d)
{
    static const HvdDecodeLimits lim = {.max_body = 64u << 20, .max_string = 4u << 20, .max_depth = 32};
    HvdContentType ct = hvd_content_type_parse(d->content_type);
    HvdNode *n = NULL;
    char why[256];
    if (ct == HVD_CT_UNKNOWN) {
        if (hvd_decode_limited(HVD_CT_MSGPACK, d->body, d->len, &lim, &n, why, sizeof why) != HVD_DECODE_OK) {
            n = NULL;
            ct = HVD_CT_JSON;
        }
    }
    if (!n && hvd_decode_limited(ct, d->body, d->len, &lim, &n, why, sizeof why) != HVD_DECODE_OK) return NULL;
    if (n->type != HVD_MAP) {
        hvd_node_free(n);
        return NULL;
    }
    return n;
}

void ctl_follow_clock(const char *at, char *out, size_t outlen)
{
    int64_t ms;
    if (!at || !hvd_time_parse_rfc3339(at, &ms)) {
        snprintf(out, outlen, "%s", at ? at : "--:--:--.---");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    snprintf(out, outlen, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

bool ctl_follow_is_terminal(const char *rk)
{
    return rk &&
           (strcmp(rk, "job.succeeded") == 0 || strcmp(rk, "job.failed") == 0 || strcmp(rk, "job.cancelled") == 0);
}

static const char *str_or(const HvdNode *map, const char *key, const char *def)
{
    const char *s = hvd_node_get_str(map, key);
    return s && *s ? s : def;
}

/* A line of the agent as one terminal line: control characters as '?'. */
static void put_clean(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        putchar((*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : *p);
}

void ctl_follow_print_event(const HvdNode *ev, CtlOutput output)
{
    if (output == CTL_OUTPUT_JSON) {
        char *j = hvd_node_to_json(ev);
        printf("%s\n", j);
        free(j);
        fflush(stdout);
        return;
    }
    char when[40];
    ctl_follow_clock(hvd_node_get_str(ev, "at"), when, sizeof when);
    const char *stage = hvd_node_get_str(ev, "stage");
    const HvdNode *lines = hvd_node_get(ev, "lines");
    if (lines && lines->type == HVD_ARRAY) {
        bool err = strcmp(str_or(ev, "stream", "stdout"), "stderr") == 0;
        for (size_t i = 0; i < lines->u.arr.n; i++) {
            const HvdNode *l = lines->u.arr.items[i];
            if (l->type != HVD_STR) continue;
            printf("%s  %-14s %s ", when, stage ? stage : "?", err ? "!" : "|");
            put_clean(l->u.s.ptr);
            putchar('\n');
        }
        fflush(stdout);
        return;
    }
    int64_t attempt = 0;
    if (stage)
        printf("%s  stage %-14s %-10s", when, stage, str_or(ev, "status", "?"));
    else
        printf("%s  job   %-14s %-10s", when, "", str_or(ev, "status", "?"));
    if (hvd_node_get_int(ev, "attempt", &attempt) && attempt > 0) printf("  (attempt %lld)", (long long)attempt);
    const char *msg = hvd_node_get_str(ev, "message");
    if (msg && *msg) {
        printf("  ");
        put_clean(msg);
    }
    printf("\n");
    fflush(stdout);
}

/* ---- status --follow ---- */

#define FOLLOW_DB_CHECK_MS 3000

static bool terminal_status(const char *s)
{
    return strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

/* The job's status from PostgreSQL: 1 found, 0 unknown, -1 error (reported). */
static int db_status(const char *cmd, HvdStore *store, const char *job_id, char status[16])
{
    HvdJobRecord rec = {0};
    bool found = false;
    char err[512] = "";
    HvdStoreStatus st = hvd_store_get(store, job_id, &found, &rec, err, sizeof err);
    if (st == HVD_STORE_OK && found) snprintf(status, 16, "%s", hvd_job_status_name(rec.status));
    hvd_job_record_free(&rec);
    if (st != HVD_STORE_OK) {
        ctl_error(cmd, "%s", err);
        return -1;
    }
    return found ? 1 : 0;
}

/* The output lines stored so far, as output events of their batches. */
static void print_stored_output(HvdStore *store, const char *job_id, CtlOutput output)
{
    HvdOutputRow *rows = NULL;
    size_t n = 0;
    char err[256];
    if (hvd_store_output_read(store, job_id, 0, 100000, &rows, &n, err, sizeof err) != HVD_STORE_OK) return;
    for (size_t i = 0; i < n; i++) {
        HvdNode *ev = hvd_node_map();
        hvd_node_map_set_str(ev, "job_id", job_id);
        hvd_node_map_set_str(ev, "stage", rows[i].stage);
        hvd_node_map_set_int(ev, "attempt", rows[i].attempt);
        hvd_node_map_set_str(ev, "at", rows[i].at);
        hvd_node_map_set_str(ev, "stream", rows[i].stream);
        HvdNode *l = hvd_node_array();
        hvd_node_array_push(l, hvd_node_str(rows[i].line));
        hvd_node_map_set(ev, "lines", l);
        ctl_follow_print_event(ev, output);
        hvd_node_free(ev);
    }
    hvd_output_rows_free(rows, n);
}

int ctl_follow_job(const char *cmd, const HvdConfig *cfg, HvdStore *store, const char *job_id, CtlOutput output,
                   char final_status[16])
{
    char err[512] = "", queue[256], exchange[256];
    int rc = CTL_EXIT_USAGE;
    final_status[0] = '\0';
    HvdBroker *b = ctlq_connect(cmd, cfg, false);
    if (!b) return CTL_EXIT_USAGE;
    ctlq_name(exchange, sizeof exchange, cfg->amqp_prefix, "events");
    static const char *const keys[] = {"job.#", "stage.#"};
    if (hvd_broker_declare_private_queue(b, queue, sizeof queue, err, sizeof err) != HVD_BROKER_OK) goto broker_fail;
    for (size_t i = 0; i < 2; i++)
        if (hvd_broker_bind(b, queue, exchange, keys[i], err, sizeof err) != HVD_BROKER_OK) goto broker_fail;
    if (hvd_broker_consume(b, queue, 256, err, sizeof err) != HVD_BROKER_OK) goto broker_fail;

    int found = db_status(cmd, store, job_id, final_status);
    if (found < 0) goto out;
    if (found == 0) {
        ctl_error(cmd, "job %s not found", job_id);
        rc = CTL_EXIT_FAILED;
        goto out;
    }
    if (output == CTL_OUTPUT_HUMAN) {
        printf("following job %s (%s)%s\n", job_id, final_status,
               terminal_status(final_status) ? "" : "; it is printed until it ends");
        fflush(stdout);
    }
    print_stored_output(store, job_id, output);
    int64_t next_check = hvd_mono_ms() + FOLLOW_DB_CHECK_MS;
    while (!terminal_status(final_status)) {
        HvdDelivery d;
        memset(&d, 0, sizeof d);
        HvdBrokerStatus st = hvd_broker_next(b, 1000, &d);
        if (st == HVD_BROKER_DELIVERY) {
            HvdNode *ev = ctl_follow_decode(&d);
            const char *id = hvd_node_get_str(ev, "job_id");
            bool mine = id && strcasecmp(id, job_id) == 0;
            if (mine) ctl_follow_print_event(ev, output);
            if (mine && ctl_follow_is_terminal(d.routing_key))
                snprintf(final_status, 16, "%s", d.routing_key + strlen("job."));
            hvd_node_free(ev);
            if (d.delivery_tag) (void)hvd_broker_ack(b, d.delivery_tag);
            hvd_delivery_free(&d);
        } else if (st == HVD_BROKER_CLOSED || st == HVD_BROKER_CANCELLED) {
            ctl_error(cmd, "lost the connection to RabbitMQ (%s) while following job %s", hvd_broker_describe(b),
                      job_id);
            goto out;
        }
        if (!terminal_status(final_status) && hvd_mono_ms() >= next_check) {
            if (db_status(cmd, store, job_id, final_status) < 0) goto out;
            next_check = hvd_mono_ms() + FOLLOW_DB_CHECK_MS;
        }
    }
    rc = -1;
    goto out;
broker_fail:
    ctl_error(cmd, "cannot follow the job's events on %s: %s", exchange, err);
out:
    hvd_broker_close(b);
    return rc;
}
