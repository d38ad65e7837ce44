/* hvdeploy-web: settings (the worker's HVD_* variables and flags, plus the
 * dashboard's own), start, and a clean stop on SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "auth.h"
#include "http.h"

static void usage(FILE *f)
{
    fputs("usage: hvdeploy-web [--listen HOST:PORT] [--allow-actions --password-file FILE]\n"
          "                    [--max-connections N] [--per-ip N] [--request-timeout SECONDS]\n"
          "                    [--stream-max SECONDS] [--page-size N] [settings flags...]\n"
          "       hvdeploy-web --hash-password < password   (prints a line for --password-file)\n"
          "\n"
          "The operators' dashboard: jobs (filters, search, paging), each job with its stages,\n"
          "timeline, live output (Server-Sent Events) and envelope (secrets masked), hosts (slots,\n"
          "waiting jobs, circuits) and dead letters. Read-only unless --allow-actions: then cancel,\n"
          "retry and dead-letter replay need the password (HTTP Basic) and the page's CSRF token.\n"
          "It binds 127.0.0.1 by default and speaks plain HTTP: to reach it from elsewhere put a\n"
          "TLS-terminating proxy in front (nginx, Caddy, an ingress) and keep it bound to loopback.\n"
          "\n"
          "dashboard options (each also an environment variable):\n"
          "  --listen HOST:PORT        HVD_WEB_LISTEN, default " WEB_DEFAULT_ADDR " (port 0: any free one)\n"
          "  --allow-actions           HVD_WEB_ALLOW_ACTIONS=true: offer cancel, retry and replay\n"
          "  --password-file FILE      HVD_WEB_PASSWORD_FILE: a hash from --hash-password (required\n"
          "                            with --allow-actions)\n"
          "  --max-connections N       HVD_WEB_MAX_CONNECTIONS, default 64: connections in all\n"
          "  --per-ip N                HVD_WEB_PER_IP, default 16: connections from one address\n"
          "  --request-timeout SECONDS HVD_WEB_REQUEST_TIMEOUT, default 30: a connection's absolute\n"
          "                            deadline (a client that trickles is cut off then)\n"
          "  --stream-max SECONDS      HVD_WEB_STREAM_MAX, default 300: one live stream's length (the\n"
          "                            browser reconnects and resumes)\n"
          "  --page-size N             HVD_WEB_PAGE_SIZE, default 50: jobs per page\n"
          "  --hash-password           read a password on stdin, print its hash, exit\n"
          "  -h, --help                this help\n"
          "\n"
          "It reads PostgreSQL (HVD_PG_DSN) and RabbitMQ (HVD_AMQP_URL, for dead letters and\n"
          "doorbells) with the worker's settings; those are:\n\n",
          f);
    hvd_config_usage(f, "hvdeploy-web");
}

static bool parse_uint(const char *what, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || end == s || *end || v < (long)lo || v > (long)hi) {
        fprintf(stderr, "hvdeploy-web: %s must be a whole number from %u to %u, not '%s'\n", what, lo, hi, s ? s : "");
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* The dashboard's own options: environment first, then flags. -1 to go on, else the exit code. */
static int parse_web_args(Web *w, int argc, char **argv, const char **password_file)
{
    const char *listen = env_or("HVD_WEB_LISTEN", WEB_DEFAULT_ADDR);
    const char *aa = env_or("HVD_WEB_ALLOW_ACTIONS", "false");
    w->allow_actions = strcmp(aa, "true") == 0 || strcmp(aa, "1") == 0 || strcmp(aa, "yes") == 0;
    *password_file = env_or("HVD_WEB_PASSWORD_FILE", NULL);
    unsigned page = 50;
    if (!parse_uint("HVD_WEB_MAX_CONNECTIONS", env_or("HVD_WEB_MAX_CONNECTIONS", "64"), 2, 4096, &w->max_connections) ||
        !parse_uint("HVD_WEB_PER_IP", env_or("HVD_WEB_PER_IP", "16"), 1, 4096, &w->per_ip) ||
        !parse_uint("HVD_WEB_REQUEST_TIMEOUT", env_or("HVD_WEB_REQUEST_TIMEOUT", "30"), 1, 3600,
                    &w->request_timeout_s) ||
        !parse_uint("HVD_WEB_STREAM_MAX", env_or("HVD_WEB_STREAM_MAX", "300"), 5, 86400, &w->stream_max_s) ||
        !parse_uint("HVD_WEB_PAGE_SIZE", env_or("HVD_WEB_PAGE_SIZE", "50"), 1, 1000, &page))
        return 2;
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"allow-actions", no_argument, NULL, 'a'},
        {"password-file", required_argument, NULL, 'p'},
        {"max-connections", required_argument, NULL, 'm'},
        {"per-ip", required_argument, NULL, 'i'},
        {"request-timeout", required_argument, NULL, 't'},
        {"stream-max", required_argument, NULL, 's'},
        {"page-size", required_argument, NULL, 'n'},
        {"hash-password", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'l': listen = optarg; break;
        case 'a': w->allow_actions = true; break;
        case 'p': *password_file = optarg; break;
        case 'm': ok = parse_uint("--max-connections", optarg, 2, 4096, &w->max_connections); break;
        case 'i': ok = parse_uint("--per-ip", optarg, 1, 4096, &w->per_ip); break;
        case 't': ok = parse_uint("--request-timeout", optarg, 1, 3600, &w->request_timeout_s); break;
        case 's': ok = parse_uint("--stream-max", optarg, 5, 86400, &w->stream_max_s); break;
        case 'n': ok = parse_uint("--page-size", optarg, 1, 1000, &page); break;
        case 'H': return auth_hash_password_main();
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "hvdeploy-web: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    snprintf(w->listen, sizeof w->listen, "%s", listen);
    w->page_size = (int)page;
    if (w->allow_actions && !*password_file) {
        fprintf(stderr, "hvdeploy-web: --allow-actions needs --password-file (make one with --hash-password)\n");
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static Web w;
    char err[1024] = "";
    const char *password_file = NULL;
    int rc = 2;
    if (sodium_init() < 0) {
        fprintf(stderr, "hvdeploy-web: libsodium failed to initialise\n");
        return 2;
    }
    if (hvd_config_load_args(&w.cfg, &argc, argv, "hvdeploy-web", HVD_CFG_KEEP_UNKNOWN | HVD_CFG_NO_HELP, err,
                             sizeof err) != 0) {
        fprintf(stderr, "hvdeploy-web: %s\n", err);
        hvd_config_free(&w.cfg);
        return 2;
    }
    int prc = parse_web_args(&w, argc, argv, &password_file);
    if (prc >= 0) {
        hvd_config_free(&w.cfg);
        return prc;
    }
    if (password_file && !auth_load_password(&w, password_file, err, sizeof err)) {
        fprintf(stderr, "hvdeploy-web: %s\n", err);
        hvd_config_free(&w.cfg);
        return 2;
    }
    randombytes_buf(w.csrf_key, sizeof w.csrf_key);
    pthread_mutex_init(&w.dead_mu, NULL);
    pthread_mutex_init(&w.auth_mu, NULL);
    hvd_log_init(w.cfg.log_level, w.cfg.worker_id && *w.cfg.worker_id ? w.cfg.worker_id : "hvdeploy-web");

    /* signals go to sigwait below; the threads started from here inherit the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    HvdStoreOptions so = {.dsn = w.cfg.pg_dsn,
                          .pool_size = (int)w.cfg.pg_pool_size,
                          .worker_id = "hvdeploy-web",
                          .lease_ttl_s = 30,
                          .host_concurrency = (int)w.cfg.host_concurrency};
    w.store = hvd_store_open(&so, err, sizeof err);
    if (!w.store) {
        char masked[512];
        hvd_store_mask_dsn(w.cfg.pg_dsn, masked, sizeof masked);
        fprintf(stderr, "hvdeploy-web: %s (HVD_PG_DSN=%s)\n", err, masked);
        goto out;
    }
    struct WebServer *srv = web_server_start(&w, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "hvdeploy-web: %s\n", err);
        goto out;
    }
    char where[200], port[16];
    snprintf(port, sizeof port, "%d", web_server_port(srv));
    snprintf(where, sizeof where, "%s", w.listen);
    char *colon = strrchr(where, ':');
    if (colon) snprintf(colon + 1, sizeof where - (size_t)(colon + 1 - where), "%s", port);
    hvd_log_kv(HVD_LOG_INFO, NULL, "web started", "listen", where, "port", port, "actions",
               w.allow_actions ? "on" : "off", NULL);
    if (w.allow_actions && strncmp(w.listen, "127.", 4) != 0 && strncmp(w.listen, "[::1]", 5) != 0 &&
        strncmp(w.listen, "localhost:", 10) != 0)
        hvd_log_warn(NULL, "web: actions are on and the dashboard is not bound to loopback: put a TLS proxy in "
                           "front, the password travels in every action's request");
    int sig = 0;
    sigwait(&sigs, &sig);
    hvd_log_info(NULL, "web stopping (signal %d)", sig);
    atomic_store(&w.stopping, true);
    web_server_stop(srv);
    rc = 0;
out:
    hvd_store_close(w.store);
    free(w.password_hash);
    hvd_config_free(&w.cfg);
    return rc;
}
