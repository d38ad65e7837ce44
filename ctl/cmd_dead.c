/* hvdeployctl dead: lists, shows, replays and purges the dead letters of <prefix>.dead. */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "amqp_util.h"
#include "deadq.h"
#include "buf.h"
#include "clock.h"
#include "codec.h"
#include "ctl.h"
#include "guestcfg.h"
#include "mask.h"
#include "model.h"
#include "store.h"

#define DEAD_CMD "dead"
#define DEAD_DEFAULT_LIMIT 10000
#define DEAD_DEFAULT_RATE 5
#define DEAD_CONFIRM_MS 30000
#define DEAD_PREVIEW_BYTES 4096 /* raw bodies shown by `show` (human) */

typedef struct {
    const char *verb;
    CtlOutput output;
    const char *prefix;
    long limit, rate;
    bool all, yes;
    const char *target; /* ID of show/replay/purge */
} DeadArgs;

typedef struct {
    DeadArgs a;
    HvdConfig cfg;
    const char *prefix;
    char dead_queue[256], jobs_exchange[256], jobs_queue[256];
    HvdBroker *b;
    HvdStore *store; /* opened on first need (replay) */
    DeadItem *items;
    size_t n;
    uint32_t in_queue; /* messages the queue reported before reading */
} DeadCtx;

static void dead_usage(FILE *f)
{
    fputs("usage: hvdeployctl dead list [--limit N]\n"
          "       hvdeployctl dead show ID\n"
          "       hvdeployctl dead replay ID | --all [--rate N]\n"
          "       hvdeployctl dead purge ID | --all --yes\n"
          "       (each also takes --output json|human and --prefix PREFIX)\n"
          "\n"
          "The dead-letter queue <prefix>.dead: messages that could not be decoded (kept as\n"
          "received), jobs whose retries ran out (the worker's record: redacted request, stage,\n"
          "host, codes, last agent log lines), and messages RabbitMQ dead-lettered itself (a job\n"
          "message past the delivery limit). Reading is non-destructive: messages are taken\n"
          "without acknowledgement and go back to the queue, in order, when the command ends.\n"
          "\n"
          "ID is the message's message_id (the job id), or raw-<hash> for one without an id, as\n"
          "`list` shows it; every dead letter with that ID is acted on.\n"
          "\n"
          "  list            each dead letter with its ID, code, age, size and reason\n"
          "  show ID         one in full: properties, reason and the body (JSON pretty-printed,\n"
          "                  secrets masked; an undecodable body as a hex preview)\n"
          "  replay ID       a failed job resumes from its failed stage: it is reset in PostgreSQL\n"
          "                  ($HVD_PG_DSN) while its secrets are still retained, its doorbell is\n"
          "                  rung, and the dead letter removed. A message that is not a known job\n"
          "                  is published again to <prefix>.jobs with its original properties.\n"
          "  replay --all    every dead letter, at most --rate N per second (default 5)\n"
          "  purge ID        removes that dead letter\n"
          "  purge --all --yes   empties the queue\n"
          "\n"
          "  --limit N             read at most N dead letters (default 10000)\n"
          "  --output json|human   human tables (default) or JSON\n"
          "  --prefix PREFIX       exchange and queue prefix (default: $HVD_AMQP_PREFIX or hvdeploy)\n"
          "  -h, --help            this help\n"
          "\n"
          "Exit status: 0 done; 1 no dead letter with that ID, or a replay was refused (the job\n"
          "is not failed, its secrets were erased...); 2 usage or connection error.\n",
          f);
}

/* Connects and, unless skip_read, takes up to limit dead letters unacked.
 * Returns -1 on success, else the exit code. */
static int dead_open(DeadCtx *c, bool confirms, bool skip_read)
{
    char err[512] = "";
    c->b = ctlq_connect(DEAD_CMD, &c->cfg, confirms);
    if (!c->b) return CTL_EXIT_USAGE;
    if (hvd_broker_queue_info(c->b, c->dead_queue, &c->in_queue, NULL, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(DEAD_CMD,
                  "RabbitMQ at %s has no queue '%s': no hvdeploy worker with prefix '%s' has started "
                  "(check HVD_AMQP_PREFIX)",
                  hvd_broker_describe(c->b), c->dead_queue, c->prefix);
        return CTL_EXIT_USAGE;
    }
    if (skip_read) return -1;
    if (deadq_read(c->b, c->dead_queue, (size_t)c->a.limit, &c->items, &c->n, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(DEAD_CMD, "cannot read '%s': %s", c->dead_queue, err);
        return CTL_EXIT_USAGE;
    }
    return -1;
}

static size_t matches(const DeadCtx *c, const char *id, size_t *first)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const DeadItem *it = &c->items[i];
        if (strcmp(it->id, id) == 0 || (it->job_id && strcasecmp(it->job_id, id) == 0)) {
            if (n++ == 0 && first) *first = i;
        }
    }
    return n;
}

static void print_json(const HvdNode *n)
{
    char *j = hvd_node_to_json(n);
    printf("%s\n", j);
    free(j);
}

/* ---- list ---- */

static int dead_list(DeadCtx *c)
{
    int rc = dead_open(c, false, false);
    if (rc >= 0) return rc;
    if (c->a.output == CTL_OUTPUT_JSON) {
        HvdNode *res = hvd_node_map();
        HvdNode *arr = hvd_node_array();
        for (size_t i = 0; i < c->n; i++) hvd_node_array_push(arr, deadq_item_summary_node(&c->items[i]));
        hvd_node_map_set_str(res, "queue", c->dead_queue);
        hvd_node_map_set_int(res, "count", (int64_t)c->in_queue);
        hvd_node_map_set(res, "dead_letters", arr);
        print_json(res);
        hvd_node_free(res);
        return CTL_EXIT_OK;
    }
    if (c->n == 0) {
        printf("no dead letters in %s\n", c->dead_queue);
        return CTL_EXIT_OK;
    }
    printf("%-38s %-24s %-6s %-7s %s\n", "ID", "CODE", "AGE", "SIZE", "REASON");
    for (size_t i = 0; i < c->n; i++) {
        const DeadItem *it = &c->items[i];
        char age[16] = "-", size[16];
        if (it->at_ms) ctlq_age(deadq_item_age_s(it), age, sizeof age);
        deadq_size_text(it->d.len, size, sizeof size);
        char *code = deadq_one_line(it->code, 24), *reason = deadq_one_line(it->reason, 100);
        printf("%-38s %-24s %-6s %-7s %s\n", it->id, code, age, size, reason);
        free(code);
        free(reason);
    }
    printf("%zu dead letter%s in %s", c->n, c->n == 1 ? "" : "s", c->dead_queue);
    if (c->in_queue > c->n) printf(" (showing %zu of %u: --limit)", c->n, c->in_queue);
    printf("\n");
    return CTL_EXIT_OK;
}

/* ---- show ---- */

static void hexdump(const unsigned char *p, size_t len)
{
    for (size_t off = 0; off < len; off += 16) {
        printf("  %08zx  ", off);
        for (size_t k = 0; k < 16; k++) {
            if (off + k < len)
                printf("%02x ", p[off + k]);
            else
                printf("   ");
            if (k == 7) printf(" ");
        }
        printf(" |");
        for (size_t k = 0; k < 16 && off + k < len; k++) {
            unsigned char ch = p[off + k];
            putchar(ch >= 0x20 && ch < 0x7f ? ch : '.');
        }
        printf("|\n");
    }
}

static void show_one_human(const DeadItem *it)
{
    char age[16] = "-", at[HVD_RFC3339_LEN] = "";
    if (it->at_ms) {
        ctlq_age(deadq_item_age_s(it), age, sizeof age);
        hvd_time_rfc3339(it->at_ms, at);
    }
    char *reason = deadq_one_line(it->reason, 0), *mid = deadq_one_line(it->d.message_id, 0),
         *corr = deadq_one_line(it->d.correlation_id, 0), *ctype = deadq_one_line(it->d.content_type, 0),
         *rk = deadq_one_line(it->routing_key, 0);
    printf("id              %s\n", it->id);
    printf("job id          %s\n", it->job_id ? it->job_id : "-");
    printf("code            %s\n", it->code);
    printf("reason          %s\n", reason);
    printf("source          %s\n", it->source);
    printf("age             %s%s%s%s\n", age, at[0] ? " (" : "", at, at[0] ? ")" : "");
    printf("size            %zu bytes\n", it->d.len);
    printf("content type    %s\n", it->d.content_type ? ctype : "-");
    printf("routing key     %s\n", rk);
    printf("message id      %s\n", it->d.message_id ? mid : "-");
    printf("correlation id  %s\n", it->d.correlation_id ? corr : "-");
    if (it->record) {
        int64_t attempts = 0;
        (void)hvd_node_get_int(it->body, "attempts", &attempts);
        printf("failed stage    %s on %s after %lld run%s\n",
               hvd_node_get_str(it->body, "stage") ? hvd_node_get_str(it->body, "stage") : "-",
               hvd_node_get_str(it->body, "target_host") ? hvd_node_get_str(it->body, "target_host") : "-",
               (long long)attempts, attempts == 1 ? "" : "s");
    }
    free(reason);
    free(mid);
    free(corr);
    free(ctype);
    free(rk);
    if (it->body) {
        HvdNode *red = ctlq_redact_all(it->body);
        char *pretty = ctlq_pretty_json(red);
        printf("body:\n%s\n", pretty);
        free(pretty);
        hvd_node_free(red);
    } else {
        size_t clen = 0;
        unsigned char *copy = deadq_masked_raw(it, &clen);
        size_t n = clen < DEAD_PREVIEW_BYTES ? clen : DEAD_PREVIEW_BYTES;
        printf("body (could not be decoded: shown as received, %s; secret fields masked):\n",
               n < clen ? "first 4096 bytes" : "in full");
        hexdump(copy, n);
        free(copy);
    }
}

static HvdNode *show_one_node(const DeadItem *it)
{
    HvdNode *m = deadq_item_summary_node(it);
    hvd_node_map_set_str(m, "message_id", it->d.message_id);
    hvd_node_map_set_str(m, "correlation_id", it->d.correlation_id);
    hvd_node_map_set_str(m, "reply_to", it->d.reply_to);
    /* the headers as received, but the worker's reason as list shows it (no parser excerpt) */
    HvdNode *headers = hvd_node_clone(it->headers);
    if (hvd_node_get_str(headers, "x-hvdeploy-reason")) hvd_node_map_set_str(headers, "x-hvdeploy-reason", it->reason);
    hvd_node_map_set(m, "headers", headers);
    if (it->body) {
        hvd_node_map_set(m, "body", ctlq_redact_all(it->body));
        hvd_node_map_set(m, "body_base64", hvd_node_nil());
    } else {
        size_t clen = 0;
        unsigned char *copy = deadq_masked_raw(it, &clen);
        size_t blen = sodium_base64_encoded_len(clen, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = hvd_xmalloc(blen);
        sodium_bin2base64(b64, blen, copy, clen, sodium_base64_VARIANT_ORIGINAL);
        hvd_node_map_set(m, "body", hvd_node_nil());
        hvd_node_map_set_str(m, "body_base64", b64);
        free(b64);
        free(copy);
    }
    return m;
}

static int dead_show(DeadCtx *c)
{
    int rc = dead_open(c, false, false);
    if (rc >= 0) return rc;
    size_t first = 0, n = matches(c, c->a.target, &first);
    if (n == 0) {
        char *id = deadq_one_line(c->a.target, 80);
        ctl_error(DEAD_CMD, "no dead letter with ID '%s' in %s (see: hvdeployctl dead list)", id, c->dead_queue);
        free(id);
        return CTL_EXIT_FAILED;
    }
    HvdNode *arr = hvd_node_array();
    bool printed = false;
    for (size_t i = first; i < c->n; i++) {
        if (!deadq_item_matches(&c->items[i], c->a.target)) continue;
        if (c->a.output == CTL_OUTPUT_JSON) {
            hvd_node_array_push(arr, show_one_node(&c->items[i]));
        } else {
            if (printed) printf("\n");
            show_one_human(&c->items[i]);
            printed = true;
        }
    }
    if (c->a.output == CTL_OUTPUT_JSON) {
        /* one dead letter: the object; several with one ID: a list */
        print_json(n == 1 ? arr->u.arr.items[0] : arr);
    }
    hvd_node_free(arr);
    return CTL_EXIT_OK;
}

/* ---- replay ---- */

typedef enum { REPLAY_DONE, REPLAY_REFUSED, REPLAY_FATAL } ReplayResult;

static bool open_store(DeadCtx *c)
{
    if (c->store) return true;
    char err[512] = "", host[128] = "localhost", wid[200];
    (void)gethostname(host, sizeof host - 1);
    snprintf(wid, sizeof wid, "hvdeployctl:%s:%ld", host, (long)getpid());
    HvdStoreOptions o = {
        .dsn = c->cfg.pg_dsn, .pool_size = 1, .worker_id = wid, .lease_ttl_s = 30, .host_concurrency = 1};
    c->store = hvd_store_open(&o, err, sizeof err);
    if (!c->store) {
        char masked[512];
        hvd_store_mask_dsn(c->cfg.pg_dsn, masked, sizeof masked);
        ctl_error(DEAD_CMD, "%s (HVD_PG_DSN=%s)", err, masked);
        return false;
    }
    return true;
}

static bool ring_doorbell(DeadCtx *c, const char *job_id, const char *job_type, char *err, size_t errlen)
{
    return ctlq_ring_doorbell(c->b, c->jobs_exchange, job_id, job_type, DEAD_CONFIRM_MS, err, errlen);
}

/* Headers worth keeping on a republished message: not the dead-lettering's own. */
static bool header_kept(const char *key)
{
    static const char *const drop[] = {
        "x-death", "x-first-death-", "x-last-death-", "x-hvdeploy-reason", "x-hvdeploy-code", "x-delivery-count", NULL};
    for (size_t i = 0; drop[i]; i++)
        if (strncmp(key, drop[i], strlen(drop[i])) == 0) return false;
    return true;
}

/* Publishes a raw dead letter again, as it was first published. */
static bool republish(DeadCtx *c, const DeadItem *it, char *err, size_t errlen)
{
    HvdHeader hdr[32];
    size_t nh = 0;
    const HvdNode *h = it->headers;
    for (size_t i = 0; h && h->type == HVD_MAP && i < h->u.map.n && nh < 32; i++) {
        const HvdNode *v = h->u.map.vals[i];
        if (!header_kept(h->u.map.keys[i])) continue;
        if (v->type == HVD_STR)
            hdr[nh++] = (HvdHeader){.key = h->u.map.keys[i], .str = v->u.s.ptr};
        else if (v->type == HVD_INT)
            hdr[nh++] = (HvdHeader){.key = h->u.map.keys[i], .i = v->u.i};
        else if (v->type == HVD_BOOL)
            hdr[nh++] = (HvdHeader){.key = h->u.map.keys[i], .i = v->u.b};
    }
    HvdPublish p = {
        .exchange = c->jobs_exchange,
        .routing_key = it->routing_key,
        .body = it->d.body,
        .len = it->d.len,
        .content_type = it->d.content_type,
        .message_id = it->d.message_id,
        .correlation_id = it->d.correlation_id,
        .reply_to = it->d.reply_to,
        .persistent = true,
        .mandatory = true,
        .headers = hdr,
        .n_headers = nh,
    };
    HvdConfirm cf = ctlq_publish_wait(c->b, &p, DEAD_CONFIRM_MS, err, errlen);
    if (cf == HVD_CONFIRM_RETURNED)
        snprintf(err, errlen, "no fleet handles routing key '%s' on %s", it->routing_key, c->jobs_exchange);
    else if (cf == HVD_CONFIRM_NACKED)
        snprintf(err, errlen, "RabbitMQ refused the message (is %s full?)", c->jobs_queue);
    return cf == HVD_CONFIRM_ACKED;
}

static void report(DeadCtx *c, HvdNode *results, const DeadItem *it, const char *outcome, const char *detail)
{
    if (c->a.output == CTL_OUTPUT_JSON) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "id", it->id);
        hvd_node_map_set_str(m, "job_id", it->job_id);
        hvd_node_map_set_str(m, "outcome", outcome);
        hvd_node_map_set_str(m, "detail", detail);
        hvd_node_array_push(results, m);
    } else {
        char *d = deadq_one_line(detail, 0);
        printf("%-10s %s  %s\n", outcome, it->id, d);
        free(d);
    }
}

/* The job of a dead letter back to work: reset in PostgreSQL, doorbell, dead letter acked. */
static ReplayResult replay_job(DeadCtx *c, HvdNode *results, DeadItem *it, bool *found)
{
    char why[512] = "", err[512] = "";
    HvdStoreStatus st = hvd_store_replay(c->store, it->job_id, found, why, sizeof why, err, sizeof err);
    if (st != HVD_STORE_OK) {
        ctl_error(DEAD_CMD, "cannot replay job %s: %s", it->job_id, err);
        return REPLAY_FATAL;
    }
    if (!*found) return REPLAY_REFUSED; /* the caller decides */
    if (why[0]) {
        report(c, results, it, "refused", why);
        return REPLAY_REFUSED;
    }
    HvdJobRecord rec;
    memset(&rec, 0, sizeof rec);
    bool known = false;
    const char *stage = NULL;
    if (hvd_store_get(c->store, it->job_id, &known, &rec, err, sizeof err) == HVD_STORE_OK && known)
        for (size_t i = 0; i < rec.n_stages && !stage; i++)
            if (rec.stages[i].status != HVD_STAGE_SUCCEEDED) stage = rec.stages[i].name;
    char detail[768];
    if (!ring_doorbell(c, it->job_id, known ? rec.job_type : NULL, err, sizeof err))
        snprintf(detail, sizeof detail,
                 "job reset to resume from %s, but its doorbell failed (%s): the fleet's "
                 "sweep will pick it up",
                 stage ? stage : "its failed stage", err);
    else
        snprintf(detail, sizeof detail, "job resumes from %s; its envelope goes to %s",
                 stage ? stage : "its failed stage", known && rec.reply_to ? rec.reply_to : "its reply queue");
    hvd_job_record_free(&rec);
    it->resumed = true;
    if (hvd_broker_ack(c->b, it->d.delivery_tag) != HVD_BROKER_OK) {
        size_t dl = strlen(detail);
        snprintf(detail + dl, sizeof detail - dl, " (the dead letter could not be removed: purge it)");
    }
    report(c, results, it, "replayed", detail);
    return REPLAY_DONE;
}

static ReplayResult replay_one(DeadCtx *c, HvdNode *results, DeadItem *it)
{
    char err[512] = "";
    if (it->job_id) {
        if (!open_store(c)) return REPLAY_FATAL;
        bool found = false;
        ReplayResult r = replay_job(c, results, it, &found);
        if (found || r == REPLAY_FATAL) return r;
        if (it->record) {
            char detail[256];
            snprintf(detail, sizeof detail, "job %s is not in the database (HVD_PG_DSN): nothing to resume",
                     it->job_id);
            report(c, results, it, "refused", detail);
            return REPLAY_REFUSED;
        }
    } else if (it->record) {
        report(c, results, it, "refused", "the record names no valid job id");
        return REPLAY_REFUSED;
    }
    /* a message that never became a job: as it was first published */
    if (!republish(c, it, err, sizeof err)) {
        report(c, results, it, "refused", err);
        return REPLAY_REFUSED;
    }
    char detail[512];
    snprintf(detail, sizeof detail, "published again to %s with routing key %s", c->jobs_exchange, it->routing_key);
    if (hvd_broker_ack(c->b, it->d.delivery_tag) != HVD_BROKER_OK) {
        size_t dl = strlen(detail);
        snprintf(detail + dl, sizeof detail - dl, " (the dead letter could not be removed: purge it)");
    }
    report(c, results, it, "replayed", detail);
    return REPLAY_DONE;
}

static bool already_resumed(const DeadCtx *c, size_t i)
{
    const char *job = c->items[i].job_id;
    for (size_t k = 0; job && k < i; k++)
        if (c->items[k].resumed && strcasecmp(c->items[k].job_id, job) == 0) return true;
    return false;
}

static int dead_replay(DeadCtx *c)
{
    int rc = dead_open(c, true, false);
    if (rc >= 0) return rc;
    char err[512];
    /* A publish to a missing exchange would close the channel and with it give back
     * every dead letter we hold: make sure the job queue is there first. */
    if (hvd_broker_queue_info(c->b, c->jobs_queue, NULL, NULL, err, sizeof err) != HVD_BROKER_OK) {
        ctl_error(DEAD_CMD, "RabbitMQ has no queue '%s': start a worker with prefix '%s' first", c->jobs_queue,
                  c->prefix);
        return CTL_EXIT_USAGE;
    }
    if (!c->a.all && matches(c, c->a.target, NULL) == 0) {
        char *id = deadq_one_line(c->a.target, 80);
        ctl_error(DEAD_CMD, "no dead letter with ID '%s' in %s (see: hvdeployctl dead list)", id, c->dead_queue);
        free(id);
        return CTL_EXIT_FAILED;
    }
    HvdNode *results = hvd_node_array();
    size_t done = 0, refused = 0, removed = 0;
    int64_t start = hvd_mono_ms();
    rc = CTL_EXIT_OK;
    for (size_t i = 0; i < c->n; i++) {
        DeadItem *it = &c->items[i];
        if (!c->a.all && !deadq_item_matches(it, c->a.target)) continue;
        if (already_resumed(c, i)) {
            /* another dead letter of a job resumed just now: it is about the same failure */
            bool acked = hvd_broker_ack(c->b, it->d.delivery_tag) == HVD_BROKER_OK;
            report(c, results, it, "removed",
                   acked ? "its job was replayed above"
                         : "its job was replayed above, but the dead letter could not be removed: purge it");
            removed++;
            continue;
        }
        if (c->a.all && done + refused > 0) {
            /* at most rate replays per second, keeping the connection serviced */
            int64_t due = start + (int64_t)(done + refused) * 1000 / c->a.rate;
            for (int64_t left; (left = due - hvd_mono_ms()) > 0;)
                if (hvd_broker_service(c->b, (int)left) == HVD_BROKER_CLOSED) break;
        }
        ReplayResult r = replay_one(c, results, it);
        if (r == REPLAY_FATAL) {
            rc = CTL_EXIT_USAGE;
            break;
        }
        if (r == REPLAY_DONE)
            done++;
        else
            refused++;
    }
    if (rc == CTL_EXIT_OK && refused) rc = CTL_EXIT_FAILED;
    if (c->a.output == CTL_OUTPUT_JSON) {
        HvdNode *res = hvd_node_map();
        hvd_node_map_set_int(res, "replayed", (int64_t)done);
        hvd_node_map_set_int(res, "refused", (int64_t)refused);
        hvd_node_map_set_int(res, "removed", (int64_t)removed);
        hvd_node_map_set(res, "results", results);
        print_json(res);
        hvd_node_free(res);
    } else {
        if (c->a.all && done + refused + removed == 0)
            printf("no dead letters in %s\n", c->dead_queue);
        else if (removed)
            printf("%zu replayed, %zu refused, %zu removed (same job)\n", done, refused, removed);
        else
            printf("%zu replayed, %zu refused\n", done, refused);
        hvd_node_free(results);
    }
    return rc;
}

/* ---- purge ---- */

static int dead_purge(DeadCtx *c)
{
    char err[512] = "";
    int rc = dead_open(c, false, c->a.all);
    if (rc >= 0) return rc;
    size_t purged = 0;
    if (c->a.all) {
        uint32_t n = 0;
        if (hvd_broker_queue_purge(c->b, c->dead_queue, &n, err, sizeof err) != HVD_BROKER_OK) {
            ctl_error(DEAD_CMD, "%s", err);
            return CTL_EXIT_USAGE;
        }
        purged = n;
    } else {
        if (matches(c, c->a.target, NULL) == 0) {
            char *id = deadq_one_line(c->a.target, 80);
            ctl_error(DEAD_CMD, "no dead letter with ID '%s' in %s (see: hvdeployctl dead list)", id, c->dead_queue);
            free(id);
            return CTL_EXIT_FAILED;
        }
        for (size_t i = 0; i < c->n; i++) {
            if (!deadq_item_matches(&c->items[i], c->a.target)) continue;
            if (hvd_broker_ack(c->b, c->items[i].d.delivery_tag) != HVD_BROKER_OK) {
                ctl_error(DEAD_CMD, "cannot remove dead letter %s: the connection to RabbitMQ was lost",
                          c->items[i].id);
                return CTL_EXIT_USAGE;
            }
            purged++;
        }
        /* make sure the broker has the acks before we report them */
        if (hvd_broker_queue_info(c->b, c->dead_queue, NULL, NULL, err, sizeof err) != HVD_BROKER_OK) {
            ctl_error(DEAD_CMD, "%s", err);
            return CTL_EXIT_USAGE;
        }
    }
    if (c->a.output == CTL_OUTPUT_JSON)
        printf("{\"purged\":%zu}\n", purged);
    else
        printf("purged %zu dead letter%s from %s\n", purged, purged == 1 ? "" : "s", c->dead_queue);
    return CTL_EXIT_OK;
}

/* ---- arguments ---- */

static bool parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        ctl_error(DEAD_CMD, "%s: '%s' is not a whole number between %ld and %ld", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, DeadArgs *a)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"prefix", required_argument, NULL, 'p'},
        {"limit", required_argument, NULL, 'l'},  {"rate", required_argument, NULL, 'r'},
        {"all", no_argument, NULL, 'a'},          {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "o:hy", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (!ctl_parse_output(DEAD_CMD, optarg, &a->output)) return CTL_EXIT_USAGE;
            break;
        case 'p':
            if (!*optarg) {
                ctl_error(DEAD_CMD, "--prefix must not be empty");
                return CTL_EXIT_USAGE;
            }
            a->prefix = optarg;
            break;
        case 'l':
            if (!parse_long("--limit", optarg, 1, 1000000, &a->limit)) return CTL_EXIT_USAGE;
            break;
        case 'r':
            if (!parse_long("--rate", optarg, 1, 1000, &a->rate)) return CTL_EXIT_USAGE;
            break;
        case 'a': a->all = true; break;
        case 'y': a->yes = true; break;
        case 'h': dead_usage(stdout); return CTL_EXIT_OK;
        default: dead_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    if (npos < 1) {
        ctl_error(DEAD_CMD, "expected list, show ID, replay ID|--all or purge ID|--all");
        dead_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    a->verb = argv[optind];
    bool takes_id = strcmp(a->verb, "show") == 0 || strcmp(a->verb, "replay") == 0 || strcmp(a->verb, "purge") == 0;
    if (!takes_id && strcmp(a->verb, "list") != 0) {
        ctl_error(DEAD_CMD, "unknown action '%s' (list, show, replay, purge)", a->verb);
        return CTL_EXIT_USAGE;
    }
    if (!takes_id) {
        if (npos != 1 || a->all) {
            ctl_error(DEAD_CMD, "list takes no ID and no --all");
            return CTL_EXIT_USAGE;
        }
        return -1;
    }
    bool can_all = strcmp(a->verb, "show") != 0;
    if (a->all && !can_all) {
        ctl_error(DEAD_CMD, "show takes one ID (use list to see them all)");
        return CTL_EXIT_USAGE;
    }
    if (a->all ? npos != 1 : npos != 2) {
        ctl_error(DEAD_CMD, a->all ? "%s --all takes no ID" : "%s takes one ID%s", a->verb,
                  can_all && !a->all ? " (or --all)" : "");
        return CTL_EXIT_USAGE;
    }
    if (!a->all) a->target = argv[optind + 1];
    if (a->all && strcmp(a->verb, "purge") == 0 && !a->yes) {
        ctl_error(DEAD_CMD, "purge --all removes every dead letter for good: add --yes to confirm");
        return CTL_EXIT_USAGE;
    }
    return -1;
}

int ctl_cmd_dead(int argc, char **argv)
{
    DeadCtx c;
    memset(&c, 0, sizeof c);
    c.a.output = CTL_OUTPUT_HUMAN;
    c.a.limit = DEAD_DEFAULT_LIMIT;
    c.a.rate = DEAD_DEFAULT_RATE;
    int rc = CTL_EXIT_USAGE;
    if (!ctlq_load_config(DEAD_CMD, &argc, argv, &c.cfg)) goto out;
    rc = parse_args(argc, argv, &c.a);
    if (rc >= 0) goto out;
    if (sodium_init() < 0) {
        ctl_error(DEAD_CMD, "libsodium failed to initialise");
        rc = CTL_EXIT_USAGE;
        goto out;
    }
    c.prefix = c.a.prefix ? c.a.prefix : c.cfg.amqp_prefix;
    ctlq_name(c.dead_queue, sizeof c.dead_queue, c.prefix, "dead");
    ctlq_name(c.jobs_exchange, sizeof c.jobs_exchange, c.prefix, "jobs");
    ctlq_name(c.jobs_queue, sizeof c.jobs_queue, c.prefix, "jobs");
    if (strcmp(c.a.verb, "list") == 0)
        rc = dead_list(&c);
    else if (strcmp(c.a.verb, "show") == 0)
        rc = dead_show(&c);
    else if (strcmp(c.a.verb, "replay") == 0)
        rc = dead_replay(&c);
    else
        rc = dead_purge(&c);
out:
    /* Closing the connection gives every dead letter we did not ack back to the queue. */
    hvd_broker_close(c.b);
    hvd_store_close(c.store);
    deadq_items_free(c.items, c.n);
    hvd_config_free(&c.cfg);
    return rc;
}
