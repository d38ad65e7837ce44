/* Worker processes, private worlds, jobs and envelopes for integration tests (see worker_proc.h). */
#include "worker_proc.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"
#include "it_pg.h"

#ifndef HVD_BIN_DIR
#error "HVD_BIN_DIR must name the build's bin directory"
#endif

extern char **environ;

struct WpWorker {
    WpWorld *world;
    char *name;
    char *log_path;
    pid_t pid;
    int status;             /* WP_RUNNING until reaped */
    long long signalled_ms; /* monotonic time of the last signal we sent, 0 = none */
    long long exited_ms;    /* when we saw it exit */
};

static unsigned wp_world_counter;

/* ---- small helpers ---- */

static bool wp_is_hvd_var(const char *entry)
{
    return strncmp(entry, "HVD_", 4) == 0;
}

char *wp_read_file(const char *path)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    FILE *f = fopen(path, "rb");
    if (!f) return hvd_buf_steal(&b);
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) hvd_buf_append(&b, chunk, got);
    fclose(f);
    return hvd_buf_steal(&b);
}

bool wp_contains(const void *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    return p && k > 0 && memmem(p, n, needle, k) != NULL;
}

static bool wp_all_safe_path(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s)) return false;
    return true;
}

/* ---- the world ---- */

static void wp_create_database(WpWorld *w)
{
    char sql[200];
    it_pg_drop_stale();
    w->db_name = hvd_xasprintf("hvd_it_%ld_%u", (long)getpid(), ++wp_world_counter);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", w->db_name);
    it_pg_admin(sql);
    w->dsn = it_pg_dsn_for(w->db_name);
    PGconn *c = PQconnectdb(w->dsn);
    cr_assert(PQstatus(c) == CONNECTION_OK, "cannot connect to the new database %s: %s", w->db_name, PQerrorMessage(c));
    PQfinish(c);
}

WpWorld *wp_world_new(const WpWorldOptions *opt)
{
    HVD_IT_NEED("HVD_AMQP_URL");
    HVD_IT_NEED("HVD_PG_DSN");
    HVD_IT_NEED("HVD_SECRET_KEY_FILE");
    WpWorld *w = hvd_xcalloc(1, sizeof *w);
    w->prefix = hvd_xstrdup(hvd_it_prefix());
    wp_create_database(w);

    const char *base = hvd_it_env("HVD_TEST_OUT_DIR");
    if (!base || !wp_all_safe_path(base) || access(base, W_OK) != 0) base = "/tmp";
    char *tmpl = hvd_xasprintf("%s/it-%s-XXXXXX", base, w->prefix);
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp %s: %s", tmpl, strerror(errno));
    w->dir = tmpl;
    w->sim_dir = hvd_xasprintf("%s/sim", w->dir);
    cr_assert_eq(mkdir(w->sim_dir, 0700), 0, "mkdir %s: %s", w->sim_dir, strerror(errno));
    w->keep_dir = (opt && opt->keep_dir) || getenv("HVD_IT_KEEP");

    w->broker = hvd_it_broker(w->prefix);
    if (!opt || !opt->no_topology) hvd_it_declare(w->broker, w->prefix);
    return w;
}

bool wp_world_reconnect(WpWorld *w, int timeout_ms)
{
    hvd_broker_close(w->broker);
    w->broker = NULL;
    long long deadline = hvd_it_now_ms() + timeout_ms;
    char err[512] = "";
    char name[160];
    snprintf(name, sizeof name, "hvd-it %s", w->prefix);
    while (hvd_it_now_ms() < deadline) {
        HvdBrokerOptions o = {.url = hvd_it_env("HVD_AMQP_URL"),
                              .connection_name = name,
                              .heartbeat_s = 10,
                              .confirms = true,
                              .connect_timeout_ms = 3000,
                              .rpc_timeout_ms = 5000};
        w->broker = hvd_broker_connect(&o, err, sizeof err);
        if (w->broker) return true;
        usleep(300 * 1000);
    }
    cr_log_warn("reconnect to RabbitMQ failed: %s", err);
    return false;
}

static void wp_worker_free(WpWorker *k)
{
    if (!k) return;
    if (wp_running(k)) (void)wp_kill9(k);
    free(k->name);
    free(k->log_path);
    free(k);
}

void wp_world_free(WpWorld *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_workers; i++) wp_worker_free(w->workers[i]);
    hvd_broker_close(w->broker);
    if (w->pg) PQfinish(w->pg);
    hvd_it_cleanup_prefix(w->prefix, NULL, 0);
    if (w->db_name) {
        char sql[200];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", w->db_name);
        it_pg_admin(sql);
    }
    if (!w->keep_dir) {
        /* Logs under $HVD_TEST_OUT_DIR are kept (the suite's secret scan reads them). */
        bool in_out_dir = strncmp(w->dir, "/tmp/", 5) != 0;
        (void)hvd_it_run("rm -rf '%s'", in_out_dir ? w->sim_dir : w->dir);
    }
    free(w->prefix);
    free(w->db_name);
    free(w->dsn);
    free(w->dir);
    free(w->sim_dir);
    free(w);
}

/* ---- worker processes ---- */

static void wp_env_set(char ***env, size_t *n, const char *name, const char *value)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < *n; i++)
        if (strncmp((*env)[i], name, len) == 0 && (*env)[i][len] == '=') {
            free((*env)[i]);
            (*env)[i] = hvd_xasprintf("%s=%s", name, value);
            return;
        }
    *env = hvd_xrealloc(*env, (*n + 2) * sizeof **env);
    (*env)[(*n)++] = hvd_xasprintf("%s=%s", name, value);
    (*env)[*n] = NULL;
}

static char **wp_build_env(WpWorld *w, const WpOptions *o, const char *name)
{
    char **env = hvd_xcalloc(1, sizeof *env);
    size_t n = 0;
    for (char **e = environ; *e; e++) {
        if (wp_is_hvd_var(*e)) continue;
        env = hvd_xrealloc(env, (n + 2) * sizeof *env);
        env[n++] = hvd_xstrdup(*e);
        env[n] = NULL;
    }
    HvdBuf delays = {0};
    for (size_t i = 0; i < hvd_it_ndelays; i++) hvd_buf_printf(&delays, "%s%d", i ? "," : "", hvd_it_delays[i]);
    char *agent = hvd_xasprintf("%s/hvdeploy-simhost --state-dir %s", HVD_BIN_DIR, w->sim_dir);

    wp_env_set(&env, &n, "HVD_AMQP_URL", o->amqp_url ? o->amqp_url : hvd_it_env("HVD_AMQP_URL"));
    wp_env_set(&env, &n, "HVD_PG_DSN", o->dsn ? o->dsn : w->dsn);
    wp_env_set(&env, &n, "HVD_SECRET_KEY_FILE", hvd_it_env("HVD_SECRET_KEY_FILE"));
    wp_env_set(&env, &n, "HVD_AGENT_CMD", o->agent_cmd ? o->agent_cmd : agent);
    wp_env_set(&env, &n, "HVD_AMQP_PREFIX", o->prefix ? o->prefix : w->prefix);
    wp_env_set(&env, &n, "HVD_METRICS_ADDR", o->metrics_addr ? o->metrics_addr : "");
    wp_env_set(&env, &n, "HVD_LEASE_TTL", o->lease_ttl ? o->lease_ttl : "10");
    wp_env_set(&env, &n, "HVD_SHUTDOWN_GRACE", o->shutdown_grace ? o->shutdown_grace : "10");
    wp_env_set(&env, &n, "HVD_LOG_LEVEL", o->log_level ? o->log_level : "info");
    wp_env_set(&env, &n, "HVD_RETRY_DELAYS", o->retry_delays ? o->retry_delays : delays.data);
    wp_env_set(&env, &n, "HVD_WORKER_ID", name);
    wp_env_set(&env, &n, "HVD_MIGRATIONS_DIR", HVD_SOURCE_DIR "/migrations");
    if (o->concurrency) wp_env_set(&env, &n, "HVD_CONCURRENCY", o->concurrency);
    if (o->host_concurrency) wp_env_set(&env, &n, "HVD_HOST_CONCURRENCY", o->host_concurrency);
    if (o->sim_latency_ms) wp_env_set(&env, &n, "HVD_SIM_LATENCY_MS", o->sim_latency_ms);
    if (o->sim_fail) wp_env_set(&env, &n, "HVD_SIM_FAIL", o->sim_fail);
    if (o->sim_crash) wp_env_set(&env, &n, "HVD_SIM_CRASH", o->sim_crash);
    if (o->sim_hang) wp_env_set(&env, &n, "HVD_SIM_HANG", o->sim_hang);
    if (o->sim_seed) wp_env_set(&env, &n, "HVD_SIM_SEED", o->sim_seed);
    HvdBuf pass = {0}; /* the test agents' knobs reach them through HVD_AGENT_ENV_PASS */
    for (const char *const *x = o->extra; x && *x; x++) {
        const char *eq = strchr(*x, '=');
        cr_assert_not_null(eq, "extra variable '%s' is not NAME=value", *x);
        char *var = hvd_xstrndup(*x, (size_t)(eq - *x));
        wp_env_set(&env, &n, var, eq + 1);
        if (strncmp(var, "HVD_TEST_", 9) == 0) hvd_buf_printf(&pass, "%s%s", pass.len ? "," : "", var);
        free(var);
    }
    if (pass.len) wp_env_set(&env, &n, "HVD_AGENT_ENV_PASS", pass.data);
    hvd_buf_free(&pass);
    free(agent);
    hvd_buf_free(&delays);
    return env;
}

static void wp_strv_free_n(char **v)
{
    for (char **p = v; p && *p; p++) free(*p);
    free(v);
}

WpWorker *wp_start(WpWorld *w, const WpOptions *opt)
{
    static const WpOptions none;
    const WpOptions *o = opt ? opt : &none;
    cr_assert_lt(w->n_workers, WP_MAX_WORKERS, "too many workers in one world");
    WpWorker *k = hvd_xcalloc(1, sizeof *k);
    k->world = w;
    k->status = WP_RUNNING;
    k->name = o->name ? hvd_xstrdup(o->name) : hvd_xasprintf("w%zu", w->n_workers + 1);
    k->log_path = hvd_xasprintf("%s/%s.log", w->dir, k->name);
    char **env = wp_build_env(w, o, k->name);
    const char *bin = HVD_BIN_DIR "/hvdeploy-worker";
    cr_assert_eq(access(bin, X_OK), 0, "%s is not built: %s", bin, strerror(errno));
    int logfd = open(k->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert_geq(logfd, 0, "open %s: %s", k->log_path, strerror(errno));
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *const argv[] = {(char *)"hvdeploy-worker", NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The worker must not outlive the test process. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execve(bin, argv, env);
        dprintf(2, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    if (nullfd >= 0) close(nullfd);
    wp_strv_free_n(env);
    k->pid = pid;
    w->workers[w->n_workers++] = k;
    return k;
}

pid_t wp_pid(const WpWorker *k)
{
    return k->pid;
}

const char *wp_name(const WpWorker *k)
{
    return k->name;
}

const char *wp_log_path(const WpWorker *k)
{
    return k->log_path;
}

char *wp_log(const WpWorker *k)
{
    return wp_read_file(k->log_path);
}

const char *wp_log_tail(const WpWorker *k)
{
    static char tail[4097];
    char *all = wp_log(k);
    size_t len = strlen(all);
    const char *from = len > 4096 ? all + len - 4096 : all;
    snprintf(tail, sizeof tail, "%s", from);
    free(all);
    return tail;
}

size_t wp_log_count(const WpWorker *k, const char *needle)
{
    char *all = wp_log(k);
    size_t n = 0, len = strlen(needle);
    for (const char *p = all; len && (p = strstr(p, needle)); p += len) n++;
    free(all);
    return n;
}

static void wp_note_status(WpWorker *k, int st)
{
    if (WIFEXITED(st))
        k->status = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        k->status = 128 + WTERMSIG(st);
    else
        return;
    k->exited_ms = hvd_it_now_ms();
}

bool wp_running(WpWorker *k)
{
    if (k->status != WP_RUNNING) return false;
    int st;
    pid_t r = waitpid(k->pid, &st, WNOHANG);
    if (r == k->pid)
        wp_note_status(k, st);
    else if (r < 0 && errno == ECHILD)
        k->status = 255; /* reaped elsewhere: unknown */
    return k->status == WP_RUNNING;
}

int wp_wait_exit(WpWorker *k, int timeout_ms)
{
    long long deadline = hvd_it_now_ms() + timeout_ms;
    while (wp_running(k)) {
        if (hvd_it_now_ms() >= deadline) return WP_RUNNING;
        usleep(20 * 1000);
    }
    return k->status;
}

void wp_signal(WpWorker *k, int sig)
{
    if (!wp_running(k)) return;
    k->signalled_ms = hvd_it_now_ms();
    kill(k->pid, sig);
}

int wp_stop(WpWorker *k, int timeout_ms)
{
    wp_signal(k, SIGTERM);
    int st = wp_wait_exit(k, timeout_ms);
    if (st == WP_RUNNING) {
        cr_log_warn("worker %s did not exit within %d ms of SIGTERM: killing it", k->name, timeout_ms);
        (void)wp_kill9(k);
        return WP_RUNNING;
    }
    return st;
}

int wp_kill9(WpWorker *k)
{
    if (wp_running(k)) {
        k->signalled_ms = hvd_it_now_ms();
        kill(k->pid, SIGCONT);
        kill(k->pid, SIGKILL);
        int st;
        if (waitpid(k->pid, &st, 0) == k->pid) wp_note_status(k, st);
    }
    return k->status;
}

void wp_sigstop(WpWorker *k)
{
    if (wp_running(k)) kill(k->pid, SIGSTOP);
}

void wp_sigcont(WpWorker *k)
{
    if (wp_running(k)) kill(k->pid, SIGCONT);
}

long long wp_exit_after_ms(const WpWorker *k)
{
    if (k->status == WP_RUNNING || !k->signalled_ms || !k->exited_ms) return -1;
    return k->exited_ms - k->signalled_ms;
}

bool wp_wait_log(WpWorker *k, const char *needle, int timeout_ms)
{
    long long deadline = hvd_it_now_ms() + timeout_ms;
    for (;;) {
        if (wp_log_count(k, needle) > 0) return true;
        if (!wp_running(k) || hvd_it_now_ms() >= deadline) return wp_log_count(k, needle) > 0;
        usleep(50 * 1000);
    }
}

bool wp_wait_ready(WpWorker *k, int timeout_ms)
{
    return wp_wait_log(k, "worker started", timeout_ms);
}

/* ---- jobs ---- */

void wp_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != sizeof b) {
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

HvdNode *wp_job_at(HvdNode *job, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    HvdNode *n = job;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part && n; part = strtok_r(NULL, ".", &save))
        n = hvd_node_get_mut(n, part);
    return n;
}

HvdNode *wp_job_load(const char *file, const char *host)
{
    char *path = hvd_xasprintf("%s/tests/data/jobs/%s", HVD_SOURCE_DIR, file);
    char *text = wp_read_file(path);
    cr_assert(*text, "cannot read %s", path);
    HvdNode *job = NULL;
    char why[256];
    cr_assert_eq(hvd_json_to_node(text, strlen(text), 0, &job, why, sizeof why), HVD_DECODE_OK, "%s: %s", path, why);
    free(text);
    free(path);
    char id[37];
    wp_uuid(id);
    hvd_node_map_set_str(job, "job_id", id);
    HvdNode *vm = wp_job_at(job, "request.vm_spec");
    cr_assert_not_null(vm, "%s has no request.vm_spec", file);
    const char *old = hvd_node_get_str(vm, "vm_name");
    char name[80];
    snprintf(name, sizeof name, "%.50s-%.6s", old ? old : "vm", id);
    hvd_node_map_set_str(vm, "vm_name", name);
    if (host) hvd_node_map_set_str(hvd_node_get_mut(job, "request"), "target_host", host);
    return job;
}

const char *wp_job_id(const HvdNode *job)
{
    return hvd_node_get_str(job, "job_id");
}

const char *wp_job_vm_name(const HvdNode *job)
{
    return hvd_node_get_str(hvd_node_get(hvd_node_get(job, "request"), "vm_spec"), "vm_name");
}

const char *wp_job_host(const HvdNode *job)
{
    return hvd_node_get_str(hvd_node_get(job, "request"), "target_host");
}

static void wp_strv_push(char ***list, const char *s)
{
    size_t n = 0;
    while (*list && (*list)[n]) n++;
    for (size_t i = 0; i < n; i++)
        if (strcmp((*list)[i], s) == 0) return;
    *list = hvd_xrealloc(*list, (n + 2) * sizeof **list);
    (*list)[n] = hvd_xstrdup(s);
    (*list)[n + 1] = NULL;
}

void wp_job_secrets(const HvdNode *job, char ***list)
{
    static const char *const keys[] = {"guest_la_pw", "guest_domain_join_pw", "cnf_ansible_ssh_key"};
    const HvdNode *g = hvd_node_get(hvd_node_get(job, "request"), "guest_config");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = hvd_node_get_str(g, keys[i]);
        if (v && *v) wp_strv_push(list, v);
    }
    char *path = hvd_xasprintf("%s/tests/data/secrets.txt", HVD_SOURCE_DIR);
    char *text = wp_read_file(path);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1])) line[--l] = '\0';
        if (l) wp_strv_push(list, line);
    }
    free(text);
    free(path);
}

void wp_strv_free(char **v)
{
    wp_strv_free_n(v);
}

void wp_publish_job(WpWorld *w, const HvdNode *job, const WpSend *s)
{
    static const WpSend dflt = {.ct = HVD_CT_MSGPACK};
    if (!s) s = &dflt;
    HvdBuf body = {0};
    if (s->raw)
        hvd_buf_append(&body, s->raw, s->raw_len);
    else {
        cr_assert_neq(s->ct, HVD_CT_UNKNOWN, "wp_publish_job: a job needs a content type to be encoded");
        hvd_encode(s->ct, job, &body);
    }
    char exchange[200];
    snprintf(exchange, sizeof exchange, "%s.jobs", w->prefix);
    const char *ct = s->content_type ? s->content_type : hvd_content_type_name(s->ct);
    const char *mid = s->message_id == WP_JOB_ID ? wp_job_id(job) : s->message_id;
    HvdPublish p = {
        .exchange = exchange,
        .routing_key = s->routing_key ? s->routing_key : HVD_BROKER_JOB_KEY,
        .body = body.data,
        .len = body.len,
        .content_type = ct && *ct ? ct : NULL,
        .message_id = mid,
        .correlation_id = s->correlation_id,
        .reply_to = s->reply_to,
        .persistent = true,
        .mandatory = true,
    };
    HvdConfirm c = hvd_it_publish(w->broker, &p);
    cr_assert_eq(c, HVD_CONFIRM_ACKED, "publishing the job to %s: %s", exchange, hvd_confirm_name(c));
    if (s->sent) {
        hvd_buf_reset(s->sent);
        hvd_buf_append(s->sent, body.data, body.len);
    }
    hvd_buf_free(&body);
}

void wp_private_queue(WpWorld *w, char *name, size_t len)
{
    char err[512] = "";
    HvdBrokerStatus st = hvd_broker_declare_private_queue(w->broker, name, len, err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_OK, "private queue: %s (%s)", hvd_broker_status_name(st), err);
}

void wp_events_tap(WpWorld *w, char *name, size_t len)
{
    char err[512] = "", exchange[200];
    wp_private_queue(w, name, len);
    snprintf(exchange, sizeof exchange, "%s.events", w->prefix);
    HvdBrokerStatus st = hvd_broker_bind(w->broker, name, exchange, "#", err, sizeof err);
    cr_assert_eq(st, HVD_BROKER_OK, "bind %s to %s: %s (%s)", name, exchange, hvd_broker_status_name(st), err);
}

/* ---- receiving ---- */

static void wp_decode_msg(WpMsg *m)
{
    HvdContentType ct = hvd_content_type_parse(m->d.content_type);
    char why[256];
    m->body = NULL;
    if (hvd_decode(ct == HVD_CT_UNKNOWN ? HVD_CT_JSON : ct, m->d.body, m->d.len, &m->body, why, sizeof why) !=
        HVD_DECODE_OK)
        m->body = NULL;
}

size_t wp_collect(HvdBroker *b, const char *queue, size_t n, int timeout_ms, WpMsg *out)
{
    long long deadline = hvd_it_now_ms() + timeout_ms;
    size_t got = 0;
    while (got < n && b) {
        long long left = deadline - hvd_it_now_ms();
        if (left <= 0) break;
        WpMsg *m = &out[got];
        memset(m, 0, sizeof *m);
        HvdBrokerStatus st = hvd_it_get(b, queue, (int)left, &m->d);
        if (st == HVD_BROKER_DELIVERY) {
            wp_decode_msg(m);
            got++;
        } else if (st != HVD_BROKER_EMPTY) {
            cr_log_warn("reading %s: %s", queue, hvd_broker_status_name(st));
            break;
        }
    }
    return got;
}

size_t wp_drain(HvdBroker *b, const char *queue, size_t max, int quiet_ms, WpMsg *out)
{
    size_t got = 0;
    while (got < max && wp_collect(b, queue, 1, quiet_ms, &out[got]) == 1) got++;
    return got;
}

void wp_msgs_free(WpMsg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        hvd_node_free(m[i].body);
        m[i].body = NULL;
        hvd_delivery_free(&m[i].d);
    }
}

const char *wp_msg_header(const WpMsg *m, const char *key)
{
    return hvd_delivery_header_str(&m->d, key);
}

const char *wp_str(const HvdNode *map, const char *key)
{
    return hvd_node_get_str(map, key);
}

bool wp_is_nil(const HvdNode *map, const char *key)
{
    const HvdNode *v = hvd_node_get(map, key);
    return v && v->type == HVD_NIL;
}

int64_t wp_int(const HvdNode *map, const char *key, int64_t dflt)
{
    int64_t v;
    return hvd_node_get_int(map, key, &v) ? v : dflt;
}

const HvdNode *wp_env_stage(const HvdNode *env, const char *name)
{
    const HvdNode *st = hvd_node_get(env, "stages");
    if (!st || st->type != HVD_ARRAY) return NULL;
    for (size_t i = 0; i < st->u.arr.n; i++) {
        const char *s = hvd_node_get_str(st->u.arr.items[i], "name");
        if (s && strcmp(s, name) == 0) return st->u.arr.items[i];
    }
    return NULL;
}

char *wp_env_stage_names(const HvdNode *env)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    const HvdNode *st = hvd_node_get(env, "stages");
    for (size_t i = 0; st && st->type == HVD_ARRAY && i < st->u.arr.n; i++) {
        const char *s = hvd_node_get_str(st->u.arr.items[i], "name");
        hvd_buf_printf(&b, "%s%s", i ? "," : "", s ? s : "?");
    }
    return hvd_buf_steal(&b);
}

size_t wp_seen_missing(const WpSeen *seen, size_t n)
{
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) missing += seen[i].envelopes == 0;
    return missing;
}

static void wp_tally(WpSeen *seen, size_t n, const WpMsg *m)
{
    const char *id = m->body ? wp_str(m->body, "job_id") : NULL;
    for (size_t i = 0; id && i < n; i++) {
        if (strcmp(seen[i].id, id) != 0) continue;
        const char *status = wp_str(m->body, "status"), *code = wp_str(m->body, "code");
        seen[i].envelopes++;
        if (status && strcmp(status, "success") == 0) seen[i].successes++;
        snprintf(seen[i].status, sizeof seen[i].status, "%s", status ? status : "?");
        snprintf(seen[i].code, sizeof seen[i].code, "%s", code ? code : "");
    }
}

size_t wp_collect_jobs(WpWorld *w, const char *queue, WpSeen *seen, size_t n, int timeout_ms, bool stop_when_all)
{
    long long deadline = hvd_it_now_ms() + timeout_ms;
    size_t got = 0;
    while (!(stop_when_all && wp_seen_missing(seen, n) == 0) && hvd_it_now_ms() < deadline) {
        if (!w->broker || !hvd_broker_is_open(w->broker)) {
            long long left = deadline - hvd_it_now_ms();
            if (!wp_world_reconnect(w, left < 5000 ? (int)(left > 0 ? left : 1) : 5000)) continue;
        }
        WpMsg m;
        memset(&m, 0, sizeof m);
        char err[256] = "";
        HvdBrokerStatus st = hvd_broker_get(w->broker, queue, true, &m.d, err, sizeof err);
        if (st == HVD_BROKER_EMPTY) {
            if (hvd_broker_service(w->broker, 100) == HVD_BROKER_CLOSED) (void)wp_world_reconnect(w, 5000);
            continue;
        }
        if (st != HVD_BROKER_DELIVERY) {
            /* the connection broke, or the queue is not back yet (broker starting) */
            usleep(300 * 1000);
            (void)wp_world_reconnect(w, 5000);
            continue;
        }
        wp_decode_msg(&m);
        wp_tally(seen, n, &m);
        wp_msgs_free(&m, 1);
        got++;
    }
    return got;
}

int wp_svc(const char *verb)
{
    const char *dev = hvd_it_env("HVD_DEV_SH");
    if (!dev) return -1;
    return hvd_it_run("'%s' svc %s >/dev/null 2>&1", dev, verb);
}

/* ---- the database ---- */

static PGconn *wp_pg(WpWorld *w)
{
    if (w->pg && PQstatus(w->pg) != CONNECTION_OK) PQreset(w->pg);
    if (!w->pg) {
        w->pg = PQconnectdb(w->dsn);
        PQsetNoticeProcessor(w->pg, NULL, NULL);
    }
    cr_assert(PQstatus(w->pg) == CONNECTION_OK, "cannot connect to %s: %s", w->db_name, PQerrorMessage(w->pg));
    return w->pg;
}

static PGresult *wp_pg_vquery(WpWorld *w, const char *fmt, va_list ap)
{
    char *sql = NULL;
    cr_assert_geq(vasprintf(&sql, fmt, ap), 0);
    PGresult *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = wp_pg(w);
        r = PQexec(c, sql);
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) break;
        if (PQstatus(c) == CONNECTION_OK || attempt == 1) cr_assert_fail("%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        r = NULL;
        PQreset(c); /* the server restarted under us: once more */
    }
    free(sql);
    return r;
}

PGresult *wp_pg_query(WpWorld *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = wp_pg_vquery(w, fmt, ap);
    va_end(ap);
    return r;
}

char *wp_pg_value(WpWorld *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = wp_pg_vquery(w, fmt, ap);
    va_end(ap);
    char *v = PQntuples(r) > 0 && PQnfields(r) > 0 ? hvd_xstrdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

long wp_pg_long(WpWorld *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = wp_pg_vquery(w, fmt, ap);
    va_end(ap);
    long n = -1;
    if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0)) {
        char *end;
        const char *s = PQgetvalue(r, 0, 0);
        n = strtol(s, &end, 10);
        if (end == s) n = -1;
    }
    PQclear(r);
    return n;
}

static bool wp_have_table(WpWorld *w, const char *table)
{
    return wp_pg_long(w, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hvdeploy' AND tablename = '%s'", table) ==
           1;
}

bool wp_wait_job_status(WpWorld *w, const char *job_id, const char *status, int timeout_ms)
{
    for (long long until = hvd_it_now_ms() + timeout_ms; hvd_it_now_ms() < until; usleep(50 * 1000))
        if (wp_have_table(w, "jobs") &&
            wp_pg_long(w, "SELECT count(*) FROM hvdeploy.jobs WHERE job_id = '%s' AND status = '%s'", job_id, status) ==
                1)
            return true;
    return false;
}

bool wp_wait_stage_status(WpWorld *w, const char *job_id, const char *stage, const char *status, int timeout_ms)
{
    for (long long until = hvd_it_now_ms() + timeout_ms; hvd_it_now_ms() < until; usleep(50 * 1000))
        if (wp_have_table(w, "job_stages") &&
            wp_pg_long(
                w, "SELECT count(*) FROM hvdeploy.job_stages WHERE job_id = '%s' AND stage = '%s' AND status = '%s'",
                job_id, stage, status) == 1)
            return true;
    return false;
}

char *wp_pg_dump_schema(WpWorld *w)
{
    HvdBuf out = {0};
    hvd_buf_puts(&out, "");
    PGconn *c = wp_pg(w);
    PGresult *cols = wp_pg_query(w, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = 'hvdeploy' ORDER BY table_name, ordinal_position");
    for (int i = 0; i < PQntuples(cols); i++) {
        char *t = PQescapeIdentifier(c, PQgetvalue(cols, i, 0), strlen(PQgetvalue(cols, i, 0)));
        char *col = PQescapeIdentifier(c, PQgetvalue(cols, i, 1), strlen(PQgetvalue(cols, i, 1)));
        bool bytea = strcmp(PQgetvalue(cols, i, 2), "bytea") == 0;
        PGresult *r = wp_pg_query(
            w, bytea ? "SELECT encode(%s, 'escape') FROM hvdeploy.%s" : "SELECT (%s)::text FROM hvdeploy.%s", col, t);
        for (int k = 0; k < PQntuples(r); k++)
            if (!PQgetisnull(r, k, 0))
                hvd_buf_printf(&out, "%s.%s: %s\n", PQgetvalue(cols, i, 0), PQgetvalue(cols, i, 1),
                               PQgetvalue(r, k, 0));
        PQclear(r);
        PQfreemem(t);
        PQfreemem(col);
    }
    PQclear(cols);
    return hvd_buf_steal(&out);
}

size_t wp_effects_count(WpWorld *w, const char *host)
{
    char *path = hvd_xasprintf("%s/%s/effects.jsonl", w->sim_dir, host);
    char *text = wp_read_file(path);
    size_t n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n') n++;
    free(text);
    free(path);
    return n;
}
