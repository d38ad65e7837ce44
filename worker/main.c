/* hvdeploy-worker: loads the configuration, connects PostgreSQL (migrating
 * it) and RabbitMQ (declaring the topology), starts the threads described in
 * worker.h, and on SIGTERM/SIGINT drains within HVD_SHUTDOWN_GRACE and
 * exits 0. A second signal exits at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include "broker.h"
#include "codec.h"
#include "harden.h"
#include "clock.h"
#include "argv.h"
#include "context.h"
#include "session.h"
#include "intake.h"
#include "leases.h"
#include "maint.h"
#include "publisher.h"
#include "runner.h"
#include "log.h"
#include "metrics.h"

static bool ready(void *arg, char *reason, size_t len)
{
    Worker *w = arg;
    if (atomic_load(&w->stopping)) {
        snprintf(reason, len, "shutting down");
        return false;
    }
    if (!atomic_load(&w->amqp_ready) || !atomic_load(&w->pub_ready)) {
        snprintf(reason, len, "broker not connected");
        return false;
    }
    if (!atomic_load(&w->pg_ready)) {
        snprintf(reason, len, "database not connected");
        return false;
    }
    return true;
}

/* /livez: a worker draining after SIGTERM is alive (its stages are finishing
 * within HVD_SHUTDOWN_GRACE); otherwise the same as ready. */
static bool live(void *arg, char *reason, size_t len)
{
    Worker *w = arg;
    return atomic_load(&w->stopping) || ready(arg, reason, len);
}

static void names(Worker *w)
{
    const char *p = w->cfg.amqp_prefix;
    snprintf(w->jobs_exchange, sizeof w->jobs_exchange, "%s.jobs", p);
    snprintf(w->jobs_queue, sizeof w->jobs_queue, "%s.jobs", p);
    snprintf(w->retry_exchange, sizeof w->retry_exchange, "%s.retry", p);
    snprintf(w->dead_exchange, sizeof w->dead_exchange, "%s.dead", p);
    snprintf(w->dead_queue, sizeof w->dead_queue, "%s.dead", p);
    snprintf(w->results_queue, sizeof w->results_queue, "%s.results", p);
    snprintf(w->events_exchange, sizeof w->events_exchange, "%s.events", p);
    snprintf(w->con_conn_name, sizeof w->con_conn_name, "hvdeploy-worker %s consumer", w->cfg.worker_id);
    snprintf(w->pub_conn_name, sizeof w->pub_conn_name, "hvdeploy-worker %s publisher", w->cfg.worker_id);
    for (size_t i = 0; i < w->cfg.retry_delays.n; i++) w->retry_delays[i] = (int)w->cfg.retry_delays.v[i];
    /* A few deliveries ahead hide the broker's round trip; more would only
     * arrive while every runner is busy and have to be handed on. */
    w->prefetch = w->cfg.concurrency < 4 ? (int)w->cfg.concurrency : 4;
    w->breaker_trial_ms = 0;
    static const char *const ops[] = {"vm.create", "disk.create", "nic.create", "vm.initialize", "vm.delete"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        int64_t ms = hvd_agent_timeout_ms(&w->agent, ops[i]) + w->agent.kill_grace_ms + 5000;
        if (ms > w->breaker_trial_ms) w->breaker_trial_ms = ms;
    }
}

static int setup_agent(Worker *w, char *err, size_t len)
{
    hvd_agent_cfg_init(&w->agent);
    if (!hvd_agent_cfg_set_command(&w->agent, w->cfg.agent_cmd, err, len)) return -1;
    for (size_t i = 0; i < w->cfg.agent_timeouts.n; i++)
        hvd_agent_cfg_set_timeout(
            &w->agent, strcmp(w->cfg.agent_timeouts.v[i].op, "default") == 0 ? NULL : w->cfg.agent_timeouts.v[i].op,
            w->cfg.agent_timeouts.v[i].seconds * 1000);
    HvdBuf codes = {0};
    for (size_t i = 0; i < w->cfg.agent_retryable_codes.n; i++)
        hvd_buf_printf(&codes, "%s%s", i ? "," : "", w->cfg.agent_retryable_codes.v[i]);
    hvd_agent_cfg_set_retryable(&w->agent, codes.data ? codes.data : "");
    hvd_agent_cfg_set_retryable_messages(&w->agent, (const char *const *)w->cfg.agent_retryable_messages.v,
                                         w->cfg.agent_retryable_messages.n);
    hvd_buf_free(&codes);
    for (size_t i = 0; i < w->cfg.agent_env_pass.n; i++)
        hvd_buf_printf(&codes, "%s%s", i ? "," : "", w->cfg.agent_env_pass.v[i]);
    bool env_ok = hvd_agent_cfg_set_env_pass(&w->agent, codes.data ? codes.data : "", err, len);
    hvd_buf_free(&codes);
    if (!env_ok) return -1;
    w->agent.kill_grace_ms = w->cfg.agent_kill_grace * 1000;
    /* session mode: its own template, or the per-call one plus --session */
    size_t n = 0;
    char why[160];
    if (*w->cfg.agent_session_cmd) {
        w->session_argv = hvd_argv_split(w->cfg.agent_session_cmd, &n, why, sizeof why);
        if (!w->session_argv || n == 0) {
            snprintf(err, len, "HVD_AGENT_SESSION_CMD: %s", w->session_argv ? "no command" : why);
            hvd_argv_free(w->session_argv);
            w->session_argv = NULL;
            return -1;
        }
    } else {
        w->session_argv = hvd_xcalloc(w->agent.argc + 2, sizeof *w->session_argv);
        for (size_t i = 0; i < w->agent.argc; i++) w->session_argv[i] = hvd_xstrdup(w->agent.argv[i]);
        w->session_argv[w->agent.argc] = hvd_xstrdup("--session");
    }
    if (strcmp(w->cfg.agent_profile, "raw") != 0) {
        HvdSessionCfg sc = {.agent = &w->agent,
                            .argv = w->session_argv,
                            .max_per_host = (int)w->cfg.agent_sessions_per_host,
                            .depth = 16,
                            .idle_ms = w->cfg.agent_session_idle * 1000,
                            .hello_ms = 15000,
                            .cancel_grace_ms = w->agent.kill_grace_ms > 0 ? w->agent.kill_grace_ms : 2000};
        w->sessions = hvd_sessions_start(&sc);
    }
    return 0;
}

/* After SIGTERM: the drain may take the grace, the agents' kill grace and
 * this much more (releasing leases, sending doorbells) before the process
 * leaves anyway; unfinished jobs are then resumed after their lease. */
#define SHUTDOWN_SLACK_S 8

static void *shutdown_watchdog(void *arg)
{
    int64_t limit_s = *(const int64_t *)arg;
    sleep((unsigned)limit_s);
    hvd_log_warn(NULL,
                 "shutdown did not finish within %lld s (a dependency stopped answering): exiting now; "
                 "unfinished jobs resume elsewhere once their leases expire",
                 (long long)limit_s);
    _exit(0);
    return NULL;
}

/* Waits for a signal for up to ms; returns it, or 0. */
static int wait_signal(const sigset_t *set, int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* Retries a connect-type step until it works or a signal asks us to stop. */
static bool stopped_while_waiting(const sigset_t *set, int attempt)
{
    int64_t ms = attempt < 6 ? (200LL << attempt) : 10000;
    return wait_signal(set, ms) != 0;
}

int main(int argc, char **argv)
{
    static Worker w;
    char err[1024];
    int rc = hvd_config_load(&w.cfg, argc, argv, "hvdeploy-worker", err, sizeof err);
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "hvdeploy-worker: %s\n", err);
        return 2;
    }
    if (w.cfg.print_config) {
        hvd_config_print(stdout, &w.cfg);
        return 0;
    }
    hvd_log_init(w.cfg.log_level, w.cfg.worker_id);
    if (!hvd_harden_process(err, sizeof err)) hvd_log_warn(NULL, "process hardening incomplete: %s", err);
    if (hvd_agent_become_subreaper() != 0)
        hvd_log_warn(NULL, "cannot become a child subreaper: agents' leftovers may survive");
    if (hvd_secret_keys_load_config(&w.keys, &w.cfg, err, sizeof err) != 0 || setup_agent(&w, err, sizeof err) != 0) {
        fprintf(stderr, "hvdeploy-worker: %s\n", err);
        return 2;
    }
    names(&w);

    /* Signals: handled by this thread only, with sigtimedwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    hvd_metrics_register_worker();
    HvdMetricsServer *ms = NULL;
    if (w.cfg.metrics_addr && *w.cfg.metrics_addr) {
        ms = hvd_metrics_server_start(w.cfg.metrics_addr, ready, &w, err, sizeof err);
        if (!ms) {
            fprintf(stderr, "hvdeploy-worker: %s\n", err);
            return 2;
        }
        hvd_metrics_server_set_live(ms, live);
    }

    HvdStoreOptions so = {
        .dsn = w.cfg.pg_dsn,
        .pool_size = (int)w.cfg.pg_pool_size,
        .worker_id = w.cfg.worker_id,
        .lease_ttl_s = (int)w.cfg.lease_ttl,
        .host_concurrency = (int)w.cfg.host_concurrency,
        .secret_retention_s = (int)w.cfg.secret_retention,
    };
    for (int attempt = 0; !(w.store = hvd_store_open(&so, err, sizeof err)); attempt++) {
        if (attempt == 0 || attempt % 10 == 0) hvd_log_warn(NULL, "waiting for PostgreSQL: %s", err);
        hvd_metric_inc(HVD_M_RECONNECTS_TOTAL, "postgres", NULL);
        if (stopped_while_waiting(&set, attempt)) return 0;
    }
    for (int attempt = 0;; attempt++) {
        int applied = 0;
        HvdStoreStatus st =
            hvd_store_migrate(w.store, hvd_store_default_migrations_dir(), NULL, &applied, err, sizeof err);
        if (st == HVD_STORE_OK) {
            if (applied) hvd_log_info(NULL, "applied %d migration(s)", applied);
            break;
        }
        if (st == HVD_STORE_ERROR) {
            hvd_log_error(NULL, "migration failed: %s", err);
            return 1;
        }
        if (stopped_while_waiting(&set, attempt)) return 0;
    }
    atomic_store(&w.pg_ready, true);

    for (int attempt = 0;; attempt++) {
        HvdBrokerOptions o = worker_broker_options(&w, w.con_conn_name, false);
        HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
        if (b) {
            HvdBrokerStatus st = hvd_broker_declare_topology(b, w.cfg.amqp_prefix, w.retry_delays, w.cfg.retry_delays.n,
                                                             err, sizeof err);
            if (st == HVD_BROKER_OK) {
                w.first_consumer_conn = b;
                break;
            }
            hvd_broker_close(b);
            if (st == HVD_BROKER_ERROR) {
                hvd_log_error(NULL, "cannot declare the RabbitMQ topology: %s", err);
                fprintf(stderr, "hvdeploy-worker: %s\n", err);
                return 1;
            }
        }
        if (attempt == 0 || attempt % 10 == 0) hvd_log_warn(NULL, "waiting for RabbitMQ: %s", err);
        hvd_metric_inc(HVD_M_RECONNECTS_TOTAL, "amqp", NULL);
        if (stopped_while_waiting(&set, attempt)) return 0;
    }

    w.leases = leases_new();
    w.pub = publisher_start(&w);
    w.runners = runners_start(&w, (int)w.cfg.concurrency);
    pthread_t consumer, maint;
    pthread_create(&consumer, NULL, consumer_main, &w);
    pthread_create(&maint, NULL, maint_main, &w);
    hvd_log_info(NULL, "worker started: concurrency %lld, host concurrency %lld, queue %s",
                 (long long)w.cfg.concurrency, (long long)w.cfg.host_concurrency, w.jobs_queue);

    int sig;
    while ((sig = wait_signal(&set, 1000)) == 0) {}
    hvd_log_info(NULL, "received %s: stopping (grace %lld s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 (long long)w.cfg.shutdown_grace);
    atomic_store(&w.stopping, true);
    /* Whatever the threads are stuck in (a database that stopped answering
     * holds libpq calls for ever), the drain ends in bounded time. */
    static int64_t drain_limit_s;
    drain_limit_s = w.cfg.shutdown_grace + w.cfg.agent_kill_grace + SHUTDOWN_SLACK_S;
    pthread_t watchdog;
    pthread_create(&watchdog, NULL, shutdown_watchdog, &drain_limit_s);
    pthread_detach(watchdog);
    /* A second signal means now. */
    sigdelset(&set, 0);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);

    pthread_join(consumer, NULL);
    if (!runners_stop(w.runners, (int)w.cfg.shutdown_grace)) {
        /* Runners still run (a rollback's wait, a store retry) and use the
         * store, the publisher and the sessions: nothing is freed under them.
         * Their jobs were released; once the doorbells are out, exit now. */
        if (!publisher_flush(w.pub, 5000)) hvd_log_warn(NULL, "exiting with messages unsent (the sweep resumes them)");
        hvd_log_info(NULL, "worker stopped (runners left running at exit)");
        _exit(0);
    }
    atomic_store(&w.maint_stop, true);
    pthread_join(maint, NULL);
    publisher_stop(w.pub);
    hvd_metrics_server_stop(ms);
    hvd_store_close(w.store);
    leases_free(w.leases);
    hvd_sessions_stop(w.sessions);
    hvd_argv_free(w.session_argv);
    hvd_agent_cfg_free(&w.agent);
    hvd_secret_keys_free(&w.keys);
    hvd_log_info(NULL, "worker stopped");
    hvd_config_free(&w.cfg);
    return 0;
}
