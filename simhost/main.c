/* hvdeploy-simhost: reads one JobRequest JSON line on stdin and answers one
 * JSON line on stdout as the Aether-V host agent would (contract §6). */
#include "simhost.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CRASH 70 /* an injected crash: no answer on stdout */

static const char USAGE[] = "usage: hvdeploy-simhost --state-dir DIR [--resources FILE] [--host NAME]\n"
                            "       hvdeploy-simhost --null\n"
                            "\n"
                            "A simulated Hyper-V host agent: reads one JobRequest JSON line on stdin,\n"
                            "answers one JSON line {status, message, data, code, logs, correlation_id}.\n"
                            "Operations: vm.create, disk.create, nic.create, vm.initialize, vm.delete, noop-test.\n"
                            "\n"
                            "  --state-dir DIR    host state lives in DIR/<host>/ (state.json, effects.jsonl)\n"
                            "  --resources FILE   an Aether-V hostresources.json (default: a built-in sample)\n"
                            "  --host NAME        the host (default: the request's metadata.host)\n"
                            "  --null             answer every operation with success at once; keep no state\n"
                            "\n"
                            "Faults (reproducible under HVD_SIM_SEED; op may be '*'):\n"
                            "  HVD_SIM_LATENCY_MS=op=ms[-ms],...   HVD_SIM_FAIL=op=probability[:code],...\n"
                            "  HVD_SIM_CRASH=op=probability:before|after,...   HVD_SIM_HANG=op=probability,...\n";

static bool parse_args(int argc, char **argv, SimArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(arg, "--null") == 0) {
            a->null_mode = true;
            continue;
        } else if (strncmp(arg, "--state-dir", 11) == 0) {
            slot = &a->state_dir;
            arg += 11;
        } else if (strncmp(arg, "--resources", 11) == 0) {
            slot = &a->resources_file;
            arg += 11;
        } else if (strncmp(arg, "--host", 6) == 0) {
            slot = &a->host;
            arg += 6;
        } else {
            fprintf(stderr, "hvdeploy-simhost: unknown argument '%s'\n%s", argv[i], USAGE);
            return false;
        }
        if (*arg == '=') {
            *slot = arg + 1;
        } else if (*arg == '\0' && i + 1 < argc) {
            *slot = argv[++i];
        } else {
            fprintf(stderr, "hvdeploy-simhost: %s needs a value\n", argv[i]);
            return false;
        }
        if (!**slot) {
            fprintf(stderr, "hvdeploy-simhost: %s needs a value\n", argv[i]);
            return false;
        }
    }
    if (!a->null_mode && !a->state_dir) {
        fprintf(stderr, "hvdeploy-simhost: --state-dir is required (or --null)\n%s", USAGE);
        return false;
    }
    if (a->host && !sim_host_safe(a->host)) {
        fprintf(stderr, "hvdeploy-simhost: --host '%s' is not a valid host name\n", a->host);
        return false;
    }
    return true;
}

/* Reads stdin to EOF (at most SIM_MAX_INPUT + 1 bytes). */
static char *read_input(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > SIM_MAX_INPUT) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void emit(const json_t *env)
{
    char *line = sim_dump_line(env);
    if (!line) return;
    size_t n = strlen(line);
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= (size_t)w;
    }
    free(line);
}

static void emit_raw(const char *line)
{
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, line, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        line += w;
        n -= (size_t)w;
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void crash(const char *op, const char *when)
{
    fprintf(stderr, "hvdeploy-simhost: injected crash %s the effect of %s\n", when, op);
    _exit(EXIT_CRASH);
}

/* Parses the request into c; on failure records the error in c. */
static bool parse_request(SimCall *c, const char *in, size_t len, const SimArgs *a)
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
    c->req = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je);
    if (!c->req || !json_is_object(c->req)) {
        snprintf(c->error_type, sizeof c->error_type, "ArgumentException");
        sim_fail(c, NULL, "Failed to parse JSON envelope: %s", c->req ? "not a JSON object" : je.text);
        return false;
    }
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
    json_t *att = json_object_get(meta, "attempt");
    c->attempt = json_is_integer(att) ? json_integer_value(att) : 1;
    c->host = a->host ? a->host : json_string_value(json_object_get(meta, "host"));
    return true;
}

/* Runs a state-changing operation under the host's lock. Returns the answer
 * line (malloc'd). */
static char *run_mutating(SimCall *c, const SimArgs *a)
{
    SimResources res;
    SimStore store = {0};
    char err[SIM_ERR_LEN], message[1024] = "";
    char *line = NULL;
    json_t *env = NULL, *data = NULL;
    bool have_res = false;

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
    const char *stored_op = NULL;
    const char *stored = sim_store_answer(&store, c->idem_key, &stored_op);
    if (stored) {
        if (stored_op && strcmp(stored_op, c->operation) != 0) {
            sim_fail(c, SIM_CODE_KEY_REUSED, "Idempotency key '%s' was already used for operation %s", c->idem_key,
                     stored_op);
            goto fail;
        }
        line = strdup(stored);
        goto out;
    }
    SimOpCtx x = {.call = c, .res = &res, .state = store.state, .host = c->host};
    const char *op = c->operation;
    if (strcmp(op, "vm.create") == 0)
        data = sim_op_vm_create(&x, message, sizeof message);
    else if (strcmp(op, "disk.create") == 0)
        data = sim_op_disk_create(&x, message, sizeof message);
    else if (strcmp(op, "nic.create") == 0)
        data = sim_op_nic_create(&x, message, sizeof message);
    else if (strcmp(op, "vm.initialize") == 0)
        data = sim_op_vm_initialize(&x, message, sizeof message);
    else if (strcmp(op, "vm.delete") == 0)
        data = sim_op_vm_delete(&x, message, sizeof message);
    if (!data) goto fail;

    char vm_id[64], now[32];
    snprintf(vm_id, sizeof vm_id, "%s", json_string_value(json_object_get(data, "vm_id")));
    env = sim_envelope(c, "success", message, data, NULL);
    line = sim_dump_line(env);
    sim_now_rfc3339(now);
    json_t *effect =
        json_pack("{s:s, s:s?, s:s, s:s}", "op", op, "idempotency_key", c->idem_key, "vm_id", vm_id, "at", now);
    char *effect_line = sim_dump_line(effect);
    json_decref(effect);
    bool ok = sim_store_commit(&store, op, c->idem_key, line, effect_line, err, sizeof err);
    free(effect_line);
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
    sim_store_close(&store);
    if (have_res) sim_resources_free(&res);
    return line;
}

int main(int argc, char **argv)
{
    SimArgs a;
    if (!parse_args(argc, argv, &a)) return 2;
    signal(SIGPIPE, SIG_IGN); /* a caller that went away: write fails, we exit */

    SimCall c = {.logs = json_array(), .attempt = 1};
    size_t len = 0;
    char *in = read_input(&len);
    json_t *env = NULL;
    char *line = NULL;
    if (!in) {
        sim_fail(&c, NULL, "Cannot read the job envelope from STDIN: %s", strerror(errno));
        env = sim_error_envelope(&c);
        goto answer;
    }
    if (!parse_request(&c, in, len, &a)) {
        env = sim_error_envelope(&c);
        goto answer;
    }
    if (a.null_mode) {
        env = sim_null_answer(&c);
        goto answer;
    }

    SimFaults f;
    char err[SIM_ERR_LEN];
    if (!sim_faults_draw(c.operation, c.idem_key, c.attempt, &f, err, sizeof err)) {
        sim_fail(&c, SIM_CODE_CONFIG, "%s", err);
        env = sim_error_envelope(&c);
        goto answer;
    }
    if (f.latency_ms > 0) sleep_ms(f.latency_ms);
    if (f.hang) {
        fprintf(stderr, "hvdeploy-simhost: injected hang in %s\n", c.operation);
        for (;;) pause();
    }
    if (f.crash == SIM_CRASH_BEFORE) crash(c.operation, "before");
    if (f.fail) {
        sim_fail(&c, f.fail_code, "Injected failure (HVD_SIM_FAIL) in %s", c.operation);
        env = sim_error_envelope(&c);
    } else if (!sim_op_known(c.operation)) {
        snprintf(c.error_type, sizeof c.error_type, "NotSupportedException");
        sim_fail(&c, SIM_CODE_UNSUPPORTED, "Unsupported operation: %s", c.operation);
        env = sim_error_envelope(&c);
    } else if (!sim_op_mutates(c.operation)) {
        char message[256];
        json_t *data = sim_op_noop(&c, message, sizeof message);
        env = sim_envelope(&c, "success", message, data, NULL);
    } else {
        line = run_mutating(&c, &a);
    }
    if (f.crash == SIM_CRASH_AFTER) crash(c.operation, "after");

answer:
    if (line)
        emit_raw(line);
    else if (env)
        emit(env);
    free(line);
    json_decref(env);
    json_decref(c.logs);
    json_decref(c.req);
    free(in);
    return 0;
}
