/* Helpers of the hvdeployctl integration tests (test_ctl_*.c): a worker of
 * this build started on a fresh database and a private AMQP prefix with the
 * simhost as its agent, and running hvdeployctl with its stdout, stderr and
 * exit code. Header-only (static inline), like it_pg.h. */
#ifndef HVD_IT_CTL_H
#define HVD_IT_CTL_H
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "harness.h"
#include "it_pg.h"

#define IT_CTL HVD_BIN_DIR "/hvdeployctl"

typedef struct {
    pid_t pid;
    char log[512];
} ItWorker;

/* A fresh temporary directory (never freed; removed by it_rmtree). */
static inline char *it_tmpdir(const char *what)
{
    char *t = hvd_xasprintf("/tmp/hvd-it-%s-XXXXXX", what);
    cr_assert_not_null(mkdtemp(t), "mkdtemp: %s", strerror(errno));
    return t;
}

static inline void it_rmtree(const char *dir)
{
    if (dir && strncmp(dir, "/tmp/hvd-it-", 12) == 0) hvd_it_run("rm -rf '%s'", dir);
}

/* The whole file as a string ("" when it cannot be read; caller frees). */
static inline char *it_slurp(const char *path)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    FILE *f = fopen(path, "rb");
    if (!f) return hvd_buf_steal(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) hvd_buf_append(&b, chunk, n);
    fclose(f);
    return hvd_buf_steal(&b);
}

static inline void it_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Starts build/bin/hvdeploy-worker with the simhost (state in state_dir) as its
 * agent, on prefix and the database dsn; extra_env is "K=V" strings (NULL-terminated
 * list, may be NULL). Waits until it consumes <prefix>.jobs. */
static inline ItWorker it_worker_start(const char *prefix, const char *dsn, const char *state_dir,
                                       const char *const *extra_env)
{
    ItWorker w = {0};
    snprintf(w.log, sizeof w.log, "%s/worker-%lld.log", state_dir, hvd_it_now_ms());
    char agent[1024];
    snprintf(agent, sizeof agent, "%s/hvdeploy-simhost --state-dir %s", HVD_BIN_DIR, state_dir);
    w.pid = fork();
    cr_assert(w.pid >= 0, "fork");
    if (w.pid == 0) {
        /* a test process that dies (a failed assertion, a timeout) takes its worker along */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) _exit(1);
        int fd = open(w.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        setenv("HVD_AGENT_CMD", agent, 1);
        setenv("HVD_AMQP_PREFIX", prefix, 1);
        setenv("HVD_PG_DSN", dsn, 1);
        setenv("HVD_METRICS_ADDR", "", 1);
        setenv("HVD_RETRY_DELAYS", "1,2", 1);
        setenv("HVD_CONCURRENCY", "4", 1);
        setenv("HVD_LOG_LEVEL", "debug", 1);
        for (size_t i = 0; extra_env && extra_env[i]; i++) putenv((char *)extra_env[i]);
        execl(HVD_BIN_DIR "/hvdeploy-worker", "hvdeploy-worker", (char *)NULL);
        _exit(127);
    }
    HvdBroker *b = hvd_it_broker("worker wait");
    char queue[256], err[256];
    snprintf(queue, sizeof queue, "%s.jobs", prefix);
    long long deadline = hvd_it_now_ms() + 60000;
    for (;;) {
        uint32_t consumers = 0;
        if (hvd_broker_queue_info(b, queue, NULL, &consumers, err, sizeof err) == HVD_BROKER_OK && consumers > 0) break;
        int status;
        if (waitpid(w.pid, &status, WNOHANG) == w.pid) {
            char *log = it_slurp(w.log);
            cr_assert_fail("the worker exited (status %d) before consuming %s; its log:\n%s", status, queue, log);
        }
        if (hvd_it_now_ms() > deadline) {
            char *log = it_slurp(w.log);
            kill(w.pid, SIGKILL);
            cr_assert_fail("the worker did not consume %s within 60 s; its log:\n%s", queue, log);
        }
        usleep(100000);
    }
    hvd_broker_close(b);
    return w;
}

/* SIGTERM, then SIGKILL after 15 s. */
static inline void it_worker_stop(ItWorker *w)
{
    if (w->pid <= 0) return;
    kill(w->pid, SIGTERM);
    long long deadline = hvd_it_now_ms() + 15000;
    int status;
    while (waitpid(w->pid, &status, WNOHANG) != w->pid) {
        if (hvd_it_now_ms() > deadline) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, &status, 0);
            break;
        }
        usleep(50000);
    }
    w->pid = 0;
}

/* One run of hvdeployctl. */
typedef struct {
    int rc;
    char *out, *err;
} ItCtl;

/* Runs "hvdeployctl ARGS" through /bin/sh (ARGS is printf-style, already quoted). */
static inline ItCtl it_ctl(const char *tmp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline ItCtl it_ctl(const char *tmp, const char *fmt, ...)
{
    ItCtl r = {0};
    va_list ap;
    va_start(ap, fmt);
    char *args = NULL;
    cr_assert(vasprintf(&args, fmt, ap) >= 0);
    va_end(ap);
    char out[600], err[600];
    snprintf(out, sizeof out, "%s/ctl.out", tmp);
    snprintf(err, sizeof err, "%s/ctl.err", tmp);
    r.rc = hvd_it_run("%s %s >'%s' 2>'%s' </dev/null", IT_CTL, args, out, err);
    r.out = it_slurp(out);
    r.err = it_slurp(err);
    cr_log_info("hvdeployctl %s -> %d\nstdout:\n%s\nstderr:\n%s", args, r.rc, r.out, r.err);
    free(args);
    return r;
}

static inline void it_ctl_free(ItCtl *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static inline size_t it_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

#endif
