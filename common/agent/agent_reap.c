/* Leftovers of agents: the process as a child subreaper, the registry of
 * agents being run, and the reaper that kills and reaps whatever else was
 * re-parented to us (an agent's child that called setsid() escapes the
 * process-group kill, and would otherwise outlive every call). */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "agent_priv.h"
#include "buf.h"

/* Agents being run, so that the reaper leaves them alone: a spawn holds
 * live_spawn for reading from before posix_spawn until its pid is listed; the
 * reaper holds it for writing while it looks for and kills leftovers, so it
 * never sees an agent that is not listed yet. Only the reaper reaps a child
 * that is not listed, so a leftover it found stays its child until it reaps it. */
static pthread_rwlock_t live_spawn = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *live_pids;
static size_t live_n, live_cap;

void agent_live_spawn_begin(void)
{
    pthread_rwlock_rdlock(&live_spawn);
}

static void live_add(pid_t pid)
{
    pthread_mutex_lock(&live_lock);
    if (live_n == live_cap) {
        live_cap = live_cap ? live_cap * 2 : 16;
        live_pids = hvd_xrealloc(live_pids, live_cap * sizeof *live_pids);
    }
    live_pids[live_n++] = pid;
    pthread_mutex_unlock(&live_lock);
}

void agent_live_spawn_end(pid_t pid)
{
    if (pid > 0) live_add(pid);
    pthread_rwlock_unlock(&live_spawn);
}

void agent_live_remove(pid_t pid)
{
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < live_n; i++)
        if (live_pids[i] == pid) {
            live_pids[i] = live_pids[--live_n];
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

static bool live_has(pid_t pid)
{
    bool found = false;
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < live_n && !found; i++) found = live_pids[i] == pid;
    pthread_mutex_unlock(&live_lock);
    return found;
}

int hvd_agent_become_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/* Kills and reaps the children listed in one /proc/self/task/<tid>/children. */
static int reap_listed(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    int found = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid <= 0 || live_has((pid_t)pid)) continue;
        found++;
        if (getpgid((pid_t)pid) == (pid_t)pid) kill(-(pid_t)pid, SIGKILL); /* a setsid()'d leader: its group too */
        kill((pid_t)pid, SIGKILL);
        (void)waitpid((pid_t)pid, NULL, WNOHANG); /* a zombie by now, or at the next round */
    }
    fclose(f);
    return found;
}

int hvd_agent_reap_orphans(void)
{
    int is_subreaper = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &is_subreaper, 0, 0, 0) != 0 || !is_subreaper) return 0;
    int found = 0;
    pthread_rwlock_wrlock(&live_spawn);
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        found += reap_listed(path);
    }
    if (d) closedir(d);
    pthread_rwlock_unlock(&live_spawn);
    return found;
}

/* At most one scan a second: a scan reads a /proc file per thread (64+ in a
 * worker), which after every agent call was a third of its CPU. A leftover
 * then lives up to a second longer. */
int hvd_agent_reap_orphans_now_and_then(void)
{
    static _Atomic int64_t last_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t seen = atomic_load(&last_ms);
    if (now - seen < 1000 || !atomic_compare_exchange_strong(&last_ms, &seen, now)) return 0;
    return hvd_agent_reap_orphans();
}
