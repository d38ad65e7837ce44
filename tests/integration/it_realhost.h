/* Helpers of the real-host tests (test_realhost*.c, issue 9): a worker whose
 * agent is hvdeploy-simhost in one flavour (aether-v: Main-NewProtocol.ps1 as
 * it is; hvdeploy: hvdeploy's host shim), one job run to its envelope with
 * the events and dead letter that came with it, the simhost's effects.jsonl
 * counted per operation and VM name, `hvdeployctl status|hosts` output, and a
 * seed that makes an injected fault hit exactly the attempts a test wants.
 * Header-only (static), used with worker_proc.c. */
#ifndef HVD_IT_REALHOST_H
#define HVD_IT_REALHOST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "worker_proc.h"

#define RH_WAIT_MS 60000
#define RH_MAX_EVENTS 200

typedef struct {
    WpWorld *w;
    WpWorker *k;
    char reply[128];  /* private reply queue */
    char events[128]; /* private queue bound to <prefix>.events */
} Rh;

/* The simhost of this build as the agent in flavor (with more words after it, may be NULL). */
static inline char *rh_agent_cmd(WpWorld *w, const char *flavor)
{
    return hvd_xasprintf("%s/hvdeploy-simhost --state-dir %s --flavor %s", HVD_BIN_DIR, w->sim_dir, flavor);
}

/* A world and a worker with agent_cmd (NULL: the simhost in flavor) and the
 * extra "NAME=value" settings (NULL-terminated, may be NULL). */
static inline void rh_start_cmd(Rh *r, const char *flavor, const char *agent_cmd, const char *const *extra)
{
    memset(r, 0, sizeof *r);
    r->w = wp_world_new(NULL);
    char *cmd = agent_cmd ? hvd_xstrdup(agent_cmd) : rh_agent_cmd(r->w, flavor);
    r->k = wp_start(r->w, &(WpOptions){.agent_cmd = cmd, .log_level = "debug", .extra = extra});
    free(cmd);
    cr_assert(wp_wait_ready(r->k, 30000), "the worker did not start:\n%s", wp_log_tail(r->k));
    wp_private_queue(r->w, r->reply, sizeof r->reply);
    wp_events_tap(r->w, r->events, sizeof r->events);
}

static inline void rh_start(Rh *r, const char *flavor, const char *const *extra)
{
    rh_start_cmd(r, flavor, NULL, extra);
}

static inline void rh_free(Rh *r)
{
    wp_world_free(r->w);
    memset(r, 0, sizeof *r);
}

/* A job from tests/data/jobs with a fresh id and name, for hv01.lab.example. */
static inline HvdNode *rh_job(const char *file)
{
    return wp_job_load(file, "hv01.lab.example");
}

/* Publishes job and returns its envelope (fails the test when none comes). */
static inline void rh_run(Rh *r, const HvdNode *job, WpMsg *env)
{
    wp_publish_job(r->w, job, &(WpSend){.ct = HVD_CT_JSON, .reply_to = r->reply});
    cr_assert_eq(wp_collect(r->w->broker, r->reply, 1, RH_WAIT_MS, env), 1,
                 "no envelope for job %s within %d ms; worker log:\n%s", wp_job_id(job), RH_WAIT_MS, wp_log_tail(r->k));
    cr_assert_not_null(env->body, "the envelope is not decodable");
    cr_log_info("envelope: %.*s", (int)env->d.len, (const char *)env->d.body);
}

/* The job's events until its terminal job event (no stage; succeeded, failed
 * or cancelled) arrived; returns how many were stored in ev. */
static inline size_t rh_events(Rh *r, const char *job_id, WpMsg *ev, size_t max)
{
    size_t n = 0;
    long long deadline = hvd_it_now_ms() + 15000;
    while (n < max && hvd_it_now_ms() < deadline) {
        if (wp_collect(r->w->broker, r->events, 1, 1000, &ev[n]) != 1) continue;
        const HvdNode *b = ev[n].body;
        const char *id = b ? wp_str(b, "job_id") : NULL;
        if (!id || strcmp(id, job_id) != 0) {
            wp_msgs_free(&ev[n], 1);
            continue;
        }
        const char *stage = wp_str(b, "stage"), *status = wp_str(b, "status");
        n++;
        if (!stage && status &&
            (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0))
            break;
    }
    return n;
}

/* The first event of stage with status whose message contains part (NULL: any). */
static inline const HvdNode *rh_event_find(const WpMsg *ev, size_t n, const char *stage, const char *status,
                                           const char *part)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = wp_str(ev[i].body, "stage"), *st = wp_str(ev[i].body, "status");
        const char *m = wp_str(ev[i].body, "message");
        if (s && st && strcmp(s, stage) == 0 && strcmp(st, status) == 0 && (!part || (m && strstr(m, part))))
            return ev[i].body;
    }
    return NULL;
}

/* The dead letter of job_id in <prefix>.dead (its decoded JSON body in d->body). */
static inline void rh_dead_letter(Rh *r, const char *job_id, WpMsg *d)
{
    char dead[200];
    snprintf(dead, sizeof dead, "%s.dead", r->w->prefix);
    long long deadline = hvd_it_now_ms() + 15000;
    while (hvd_it_now_ms() < deadline) {
        if (wp_collect(r->w->broker, dead, 1, 1000, d) != 1) continue;
        if (d->d.message_id && strcmp(d->d.message_id, job_id) == 0 && d->body) return;
        wp_msgs_free(d, 1);
    }
    cr_assert_fail("no dead letter for job %s in %s", job_id, dead);
}

/* Lines of the host's effects.jsonl with op and (when not NULL) vm_name. */
static inline size_t rh_effects(Rh *r, const char *op, const char *vm_name)
{
    char *path = hvd_xasprintf("%s/hv01.lab.example/effects.jsonl", r->w->sim_dir);
    char *text = wp_read_file(path);
    size_t n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        HvdNode *e = NULL;
        char why[128];
        if (hvd_json_to_node(line, strlen(line), 0, &e, why, sizeof why) != HVD_DECODE_OK) continue;
        const char *o = wp_str(e, "op"), *v = wp_str(e, "vm_name");
        if (o && strcmp(o, op) == 0 && (!vm_name || (v && strcmp(v, vm_name) == 0))) n++;
        hvd_node_free(e);
    }
    free(text);
    free(path);
    return n;
}

/* Whether the worker keeps an agent session open (a child started with --session). */
static inline bool rh_has_session(Rh *r)
{
    char *ps = hvd_it_run_output("ps -o args= --ppid %ld", (long)wp_pid(r->k));
    bool yes = strstr(ps, "--session") != NULL;
    free(ps);
    return yes;
}

/* `hvdeployctl ARGS --pg-dsn <world's database>` with stderr; caller frees. */
static inline char *rh_ctl(Rh *r, const char *args)
{
    return hvd_it_run_output("'%s/hvdeployctl' %s --pg-dsn '%s' 2>&1", HVD_BIN_DIR, args, r->w->dsn);
}

/* What the simhost answers one request in flavor with faults env (e.g.
 * "HVD_SIM_FAIL=..."), as a string (caller frees): used to find a seed. */
static inline char *rh_sim_answer(const char *flavor, const char *env, const char *op, const char *job_id, int attempt,
                                  const char *dir)
{
    return hvd_it_run_output(
        "echo '{\"operation\":\"%s\",\"resource_spec\":{\"vm_id\":\"00000000-0000-4000-8000-000000000000\","
        "\"vm_name\":\"seed-probe\",\"os_family\":\"windows\"},\"correlation_id\":\"c\",\"metadata\":{\"host\":"
        "\"hv01.lab.example\",\"job_id\":\"%s\",\"stage\":\"%s\",\"attempt\":%d,\"idempotency_key\":\"%s:%s\"}}' | "
        "env %s '%s/hvdeploy-simhost' --state-dir '%s' --flavor %s 2>/dev/null",
        op, job_id, op, attempt, job_id, op, env, HVD_BIN_DIR, dir, flavor);
}

/* A seed under which the fault var=<op>=<value> (HVD_SIM_FAIL, HVD_SIM_CRASH)
 * hits attempt 1 of job_id's op and spares attempt 2: a hit's answer
 * contains hit_text, or (hit_text NULL) there is no answer at all. */
static inline unsigned rh_seed_once(const char *flavor, const char *var, const char *op, const char *value,
                                    const char *job_id, const char *hit_text, const char *dir)
{
    for (unsigned seed = 1; seed < 400; seed++) {
        char env[256];
        snprintf(env, sizeof env, "HVD_SIM_SEED=%u %s=%s=%s", seed, var, op, value);
        char *a[2];
        bool hit[2];
        for (int i = 0; i < 2; i++) {
            a[i] = rh_sim_answer(flavor, env, op, job_id, i + 1, dir);
            hit[i] = hit_text ? strstr(a[i], hit_text) != NULL : strchr(a[i], '{') == NULL;
            free(a[i]);
        }
        if (hit[0] && !hit[1]) return seed;
    }
    cr_assert_fail("no seed in 1..399 makes %s hit attempt 1 only", var);
    return 0;
}

#endif
