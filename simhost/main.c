/* hvdeploy-simhost: a simulated Hyper-V host agent (contract §6, §6a). Per
 * call it reads one JobRequest on stdin and answers one JSON line on stdout;
 * with --session it serves many requests over one process. The flavour
 * hvdeploy is the executable specification of hvdeploy's host shim
 * (deploy/agent/hvdeploy-agent.ps1); aether-v behaves as Aether-V's
 * Main-NewProtocol.ps1 really does. The exact wire behaviour of both, in both
 * modes, is written down in simhost/README.md. */
#include "simhost.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: hvdeploy-simhost --state-dir DIR [--resources FILE] [--host NAME] [--flavor hvdeploy|aether-v] [--session]\n"
    "       hvdeploy-simhost --null [--flavor hvdeploy|aether-v] [--session]\n"
    "\n"
    "A simulated Hyper-V host agent: reads one JobRequest JSON line on stdin,\n"
    "answers one JSON line {status, message, data, code, logs, correlation_id}.\n"
    "Operations: vm.create, disk.create, nic.create, vm.initialize, vm.delete, noop-test;\n"
    "hvdeploy flavour also agent.hello, vm.find, host.resources.\n"
    "\n"
    "  --state-dir DIR    host state lives in DIR/<host>/ (state.json, effects.jsonl)\n"
    "  --resources FILE   an Aether-V hostresources.json (default: a built-in sample)\n"
    "  --host NAME        the host (default: the request's metadata.host)\n"
    "  --flavor F         hvdeploy (default: hvdeploy's host shim) or aether-v (Main-NewProtocol.ps1)\n"
    "  --session          session mode: a hello line, then requests with request_id until EOF\n"
    "  --null             answer every operation with success at once; keep no state\n"
    "\n"
    "Faults (reproducible under HVD_SIM_SEED; op may be '*'):\n"
    "  HVD_SIM_LATENCY_MS=op=ms[-ms],...   HVD_SIM_FAIL=op=probability[:code[/kind]],...\n"
    "  HVD_SIM_CRASH=op=probability:before|after,...   HVD_SIM_HANG=op=probability[:before|after],...\n"
    "  HVD_SIM_OUTPUT_LINES=N|op=N,...  (session mode, metadata.output=true)\n";

static bool parse_args(int argc, char **argv, SimArgs *a)
{
    memset(a, 0, sizeof *a);
    const char *flavor = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(arg, "--null") == 0) {
            a->null_mode = true;
            continue;
        } else if (strcmp(arg, "--session") == 0) {
            a->session = true;
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
        } else if (strncmp(arg, "--flavor", 8) == 0) {
            slot = &flavor;
            arg += 8;
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
    if (flavor && !sim_parse_flavor(flavor, &a->flavor)) {
        fprintf(stderr, "hvdeploy-simhost: --flavor must be hvdeploy or aether-v, not '%s'\n", flavor);
        return false;
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

static void write_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= (size_t)w;
    }
}

/* The Write-Host lines of the call: Main-NewProtocol.ps1 prints them on
 * stdout before its JSON line; the shim keeps stdout for the answer and
 * passes them to stderr. */
static void print_noise(const SimCall *c)
{
    int fd = c->flavor == SIM_FLAVOR_AETHER ? STDOUT_FILENO : STDERR_FILENO;
    size_t i;
    json_t *l;
    json_array_foreach(c->noise, i, l)
    {
        write_fd(fd, json_string_value(l), json_string_length(l));
        write_fd(fd, "\n", 1);
    }
}

int main(int argc, char **argv)
{
    SimArgs a;
    if (!parse_args(argc, argv, &a)) return 2;
    signal(SIGPIPE, SIG_IGN); /* a caller that went away: write fails, we exit */
    json_object_seed(0);      /* before any thread: jansson seeds its hash once */
    if (a.session) return sim_session_run(&a);

    SimCall c;
    sim_call_init(&c, &a, NULL);
    size_t len = 0;
    char *in = read_input(&len);
    json_t *env = NULL;
    char *line = NULL;
    if (!in) {
        sim_fail(&c, NULL, "Cannot read the job envelope from STDIN: %s", strerror(errno));
        env = sim_error_envelope(&c);
    } else if (!sim_call_parse_text(&c, in, len, &a)) {
        env = sim_error_envelope(&c);
    } else if (a.null_mode) {
        env = sim_null_answer(&c);
    } else {
        line = sim_call_run(&c, &a);
    }
    if (!line && env) line = sim_dump_line(env);
    print_noise(&c);
    if (line) write_fd(STDOUT_FILENO, line, strlen(line));
    free(line);
    json_decref(env);
    sim_call_free(&c);
    free(in);
    return 0;
}
