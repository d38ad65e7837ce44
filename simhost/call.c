/* One simhost call from request to answer line, in either flavour and either
 * mode: the request parsed as Main-NewProtocol.ps1 reads it, the call's
 * faults drawn and applied (latency with live output lines, hang, crash
 * before or after the effect, injected failure), then the operation: a
 * read-only one, or a state-changing one under the host's lock with its
 * effect recorded and (hvdeploy flavour) its answer journalled by
 * idempotency key. */
#include "simhost.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CRASH 70 /* an injected crash: no answer on stdout */

enum {
    OP_MUTATES = 1,   /* changes the host: store, effect, journal */
    OP_READS = 2,     /* reads the host's state under its lock */
    OP_RESOURCES = 4, /* needs the hostresources document only */
    OP_SHIM = 8,      /* hvdeploy flavour only (the shim's own operations) */
};

typedef json_t *(*SimOpFn)(SimOpCtx *x, char *message, size_t mlen);

static const struct {
    const char *name;
    SimOpFn fn;
    unsigned flags;
} OPS[] = {
    {"vm.create", sim_op_vm_create, OP_MUTATES},
    {"disk.create", sim_op_disk_create, OP_MUTATES},
    {"nic.create", sim_op_nic_create, OP_MUTATES},
    {"vm.initialize", sim_op_vm_initialize, OP_MUTATES},
    {"vm.delete", sim_op_vm_delete, OP_MUTATES},
    {"vm.find", sim_op_vm_find, OP_READS | OP_SHIM},
    {"host.resources", NULL, OP_RESOURCES | OP_SHIM},
    {"agent.hello", NULL, OP_SHIM},
    {"noop-test", NULL, 0},
};
#define N_OPS (sizeof OPS / sizeof OPS[0])

bool sim_parse_flavor(const char *s, SimFlavor *out)
{
    if (strcmp(s, "hvdeploy") == 0)
        *out = SIM_FLAVOR_HVDEPLOY;
    else if (strcmp(s, "aether-v") == 0)
        *out = SIM_FLAVOR_AETHER;
    else
        return false;
    return true;
}

int64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sim_call_init(SimCall *c, const SimArgs *a, const SimHooks *hooks)
{
    memset(c, 0, sizeof *c);
    c->logs = json_array();
    c->noise = json_array();
    c->attempt = 1;
    c->flavor = a->flavor;
    c->hooks = hooks;
}

void sim_call_free(SimCall *c)
{
    json_decref(c->logs);
    json_decref(c->noise);
    json_decref(c->req);
    c->logs = c->noise = c->req = NULL;
}

bool sim_call_parse_text(SimCall *c, const char *in, size_t len, const SimArgs *a)
{
    size_t i = 0;
    while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')) i++;
    if (i == len) {
        sim_fail(c, NULL, "No input received. Expected JSON job envelope via STDIN.");
        return false;
    }
    if (len > SIM_MAX_INPUT) {
        sim_fail(c, NULL, "Input is larger than %d bytes", SIM_MAX_INPUT);
        return false;
    }
    json_error_t je;
    json_t *req = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je);
    if (!req || !json_is_object(req)) {
        snprintf(c->error_type, sizeof c->error_type, "ArgumentException");
        sim_fail(c, NULL, "Failed to parse JSON envelope: %s", req ? "not a JSON object" : je.text);
        json_decref(req);
        return false;
    }
    return sim_call_parse_object(c, req, a);
}

bool sim_call_parse_object(SimCall *c, json_t *req, const SimArgs *a)
{
    c->req = req;
    c->correlation_id = json_string_value(json_object_get(c->req, "correlation_id"));
    c->operation = json_string_value(json_object_get(c->req, "operation"));
    if (!c->operation) {
        sim_fail(c, NULL, "Job envelope missing required field: operation");
        return false;
    }
    c->spec = json_object_get(c->req, "resource_spec");
    if (!c->spec) {
        sim_fail(c, NULL, "Job envelope missing required field: resource_spec");
        return false;
    }
    if (!json_is_object(c->spec)) {
        sim_fail(c, NULL, "Resource spec is not a hashtable - JSON parsing failed");
        return false;
    }
    json_t *meta = json_object_get(c->req, "metadata");
    c->idem_key = json_string_value(json_object_get(meta, "idempotency_key"));
    if (c->idem_key && !*c->idem_key) c->idem_key = NULL;
    c->job_id = json_string_value(json_object_get(meta, "job_id"));
    if (c->job_id && !*c->job_id) c->job_id = NULL;
    json_t *att = json_object_get(meta, "attempt");
    c->attempt = json_is_integer(att) ? json_integer_value(att) : 1;
    c->host = a->host ? a->host : json_string_value(json_object_get(meta, "host"));
    /* Live output is hvdeploy's capability; Main-NewProtocol.ps1 ignores metadata. */
    c->want_output = c->flavor == SIM_FLAVOR_HVDEPLOY && json_is_true(json_object_get(meta, "output"));
    return true;
}

/* The effects.jsonl lines of an applied operation. */
static char *effect_lines(const SimCall *c, SimOpCtx *x, json_t *data)
{
    if (json_array_size(x->effects) == 0)
        sim_effect(x, json_string_value(json_object_get(data, "vm_id")),
                   json_string_value(json_object_get(data, "vm_name")));
    char now[32];
    sim_now_rfc3339(now);
    size_t len = 0, i;
    char *out = NULL;
    json_t *e;
    json_array_foreach(x->effects, i, e)
    {
        json_t *line =
            json_pack("{s:s, s:s?, s:O, s:O, s:s}", "op", c->operation, "idempotency_key", c->idem_key, "vm_id",
                      json_object_get(e, "vm_id"), "vm_name", json_object_get(e, "vm_name"), "at", now);
        if (!c->idem_key) json_object_set_new(line, "idempotency_key", json_null());
        char *l = sim_dump_line(line);
        json_decref(line);
        size_t n = strlen(l);
        out = realloc(out, len + n + 1);
        memcpy(out + len, l, n + 1);
        len += n;
        free(l);
    }
    return out;
}

/* Runs an operation that needs the host's state under its lock. Returns the
 * answer line (malloc'd). */
static char *run_on_host(SimCall *c, const SimArgs *a, SimOpFn fn, unsigned flags)
{
    SimResources res;
    SimStore store = {0};
    char err[SIM_ERR_LEN], message[1024] = "";
    char *line = NULL;
    json_t *env = NULL, *data = NULL;
    bool have_res = false;
    SimOpCtx x = {.call = c, .effects = json_array()};

    if (!c->host) {
        sim_fail(c, NULL, "No host: pass --host or set metadata.host");
        goto fail;
    }
    if (!sim_host_safe(c->host)) {
        sim_fail(c, NULL, "Invalid host name '%s'", c->host);
        goto fail;
    }
    if (!sim_resources_load(&res, a->resources_file, err, sizeof err)) {
        sim_fail(c, SIM_CODE_CONFIG, "%s", err);
        goto fail;
    }
    have_res = true;
    if (!sim_store_open(&store, a->state_dir, c->host, err, sizeof err)) {
        sim_fail(c, NULL, "Host state unavailable: %s", err);
        goto fail;
    }
    /* The shim's journal; Main-NewProtocol.ps1 ignores metadata altogether. */
    bool journal = (flags & OP_MUTATES) && c->flavor == SIM_FLAVOR_HVDEPLOY;
    const char *stored_op = NULL;
    const char *stored = journal ? sim_store_answer(&store, c->idem_key, &stored_op) : NULL;
    if (stored) {
        if (stored_op && strcmp(stored_op, c->operation) != 0) {
            sim_fail(c, SIM_CODE_KEY_REUSED, "Idempotency key '%s' was already used for operation %s", c->idem_key,
                     stored_op);
            goto fail;
        }
        line = strdup(stored);
        goto out;
    }
    x.res = &res;
    x.state = store.state;
    x.host = c->host;
    data = fn(&x, message, sizeof message);
    if (!data) goto fail;
    env = sim_envelope(c, "success", message, data, NULL);
    line = sim_dump_line(env);
    if (!(flags & OP_MUTATES)) goto out;

    char *effects = x.adopted ? NULL : effect_lines(c, &x, data);
    bool ok = sim_store_commit(&store, c->operation, journal ? c->idem_key : NULL, line, effects, err, sizeof err);
    free(effects);
    if (!ok) {
        free(line);
        line = NULL;
        sim_fail(c, NULL, "Host state could not be saved: %s", err);
        goto fail;
    }
    goto out;

fail:
    json_decref(env);
    env = sim_error_envelope(c);
    free(line);
    line = sim_dump_line(env);
out:
    json_decref(env);
    json_decref(x.effects);
    sim_store_close(&store);
    if (have_res) sim_resources_free(&res);
    return line;
}

/* Operations that need no host state: agent.hello, host.resources, noop-test. */
static char *run_stateless(SimCall *c, const SimArgs *a, unsigned flags)
{
    char message[512] = "", err[SIM_ERR_LEN];
    json_t *data = NULL, *env;
    if (flags & OP_RESOURCES) {
        SimResources res;
        if (!sim_resources_load(&res, a->resources_file, err, sizeof err)) {
            sim_fail(c, SIM_CODE_CONFIG, "%s", err);
        } else {
            data = sim_op_host_resources(c, &res, message, sizeof message);
            sim_resources_free(&res);
        }
    } else if (strcmp(c->operation, "agent.hello") == 0) {
        data = sim_op_hello(c, a->null_mode, message, sizeof message);
    } else {
        data = sim_op_noop(c, message, sizeof message);
    }
    env = data ? sim_envelope(c, "success", message, data, NULL) : sim_error_envelope(c);
    char *line = sim_dump_line(env);
    json_decref(env);
    return line;
}

static bool wait_until(SimCall *c, int64_t deadline_ns)
{
    if (c->hooks && c->hooks->wait_until) return c->hooks->wait_until(c->hooks->ctx, deadline_ns);
    if (deadline_ns == INT64_MAX)
        for (;;) pause();
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000LL, .tv_nsec = deadline_ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    return true;
}

static bool cancelled(const SimCall *c)
{
    return c->hooks && c->hooks->cancelled && c->hooks->cancelled(c->hooks->ctx);
}

static void output(SimCall *c, const char *line, const char *stream)
{
    if (c->want_output && c->hooks && c->hooks->output) c->hooks->output(c->hooks->ctx, line, stream);
}

/* The latency of the call, with its HVD_SIM_OUTPUT_LINES spread evenly over
 * it (all at once without latency). Returns false when cancelled. */
static bool run_latency(SimCall *c, const SimFaults *f)
{
    int64_t n = (c->want_output && c->hooks && c->hooks->output) ? f->output_lines : 0;
    int64_t start = sim_now_ns(), span = f->latency_ms * 1000000LL, end = start + span;
    char line[160];
    for (int64_t i = 0; i < n;) {
        int64_t due = span > 0 ? start + (int64_t)((double)span * (double)(i + 1) / (double)n) : 0;
        if (due > sim_now_ns() && !wait_until(c, due)) return false;
        int64_t now = sim_now_ns();
        do {
            snprintf(line, sizeof line, "%s: progress %lld of %lld", c->operation, (long long)(i + 1), (long long)n);
            output(c, line, "stdout");
            i++;
        } while (i < n && (span == 0 || start + (int64_t)((double)span * (double)(i + 1) / (double)n) <= now));
    }
    if (span > 0 && !wait_until(c, end)) return false;
    return true;
}

static void crash(const char *op, const char *when)
{
    fprintf(stderr, "hvdeploy-simhost: injected crash %s the effect of %s\n", when, op);
    _exit(EXIT_CRASH);
}

static char *error_line(SimCall *c)
{
    json_t *env = sim_error_envelope(c);
    char *line = sim_dump_line(env);
    json_decref(env);
    return line;
}

static char *cancelled_line(SimCall *c)
{
    snprintf(c->error_type, sizeof c->error_type, "PipelineStoppedException");
    sim_fail(c, SIM_CODE_CANCELLED, "The pipeline has been stopped.");
    return error_line(c);
}

char *sim_call_run(SimCall *c, const SimArgs *a)
{
    size_t k = 0;
    while (k < N_OPS && strcmp(OPS[k].name, c->operation) != 0) k++;
    bool known = k < N_OPS && !((OPS[k].flags & OP_SHIM) && c->flavor != SIM_FLAVOR_HVDEPLOY);

    SimFaults f;
    char err[SIM_ERR_LEN];
    if (!sim_faults_draw(c->operation, c->idem_key, c->attempt, &f, err, sizeof err)) {
        sim_fail(c, SIM_CODE_CONFIG, "%s", err);
        return error_line(c);
    }
    if (!run_latency(c, &f)) return cancelled_line(c);
    if (f.hang) {
        fprintf(stderr, "hvdeploy-simhost: injected hang in %s\n", c->operation);
        if (!wait_until(c, INT64_MAX)) return cancelled_line(c);
    }
    if (cancelled(c)) return cancelled_line(c);
    if (f.crash == SIM_CRASH_BEFORE) crash(c->operation, "before");
    char *line;
    if (f.fail) {
        sim_inject_failure(c, f.fail_code, f.fail_draw);
        line = error_line(c);
    } else if (!known) {
        snprintf(c->error_type, sizeof c->error_type,
                 c->flavor == SIM_FLAVOR_AETHER ? "RuntimeException" : "NotSupportedException");
        sim_fail(c, c->flavor == SIM_FLAVOR_AETHER ? NULL : SIM_CODE_UNSUPPORTED, "Unsupported operation: %s",
                 c->operation);
        line = error_line(c);
    } else if (OPS[k].flags & (OP_MUTATES | OP_READS)) {
        line = run_on_host(c, a, OPS[k].fn, OPS[k].flags);
    } else {
        line = run_stateless(c, a, OPS[k].flags);
    }
    if (f.crash == SIM_CRASH_AFTER) crash(c->operation, "after");
    if (f.hang_after) {
        /* the effect is applied; the answer waits until the caller gives up (or cancels) */
        fprintf(stderr, "hvdeploy-simhost: injected hang after the effect of %s\n", c->operation);
        (void)wait_until(c, INT64_MAX);
    }
    return line;
}
