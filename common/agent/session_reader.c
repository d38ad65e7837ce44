/* The reader thread of session mode: reads every session's stdout (answers,
 * matched to their requests by request_id) and stderr (a tail kept for a
 * lost-session report), sends the cancels of requests past their deadline or
 * cancelled by their caller, and closes idle or dead sessions. Runs with mu
 * held except while it polls. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "agentproto.h"
#include "buf.h"
#include "codec.h"
#include "session_priv.h"
#include "session_frame.h"

static void handle_line(HvdSessions *s, Session *ss, const char *line, size_t len)
{
    HvdLine l;
    hvd_frame_line(line, len, MAX_LINE, &l);
    Pending *p = l.kind == HVD_LINE_NOISE ? NULL : ss_find_pending(ss, l.id);
    if (!p) {
        /* an answer to no request of ours (a late one, after its deadline), or noise */
        if (l.kind == HVD_LINE_NOISE)
            s->stats.bad_lines++;
        else
            s->stats.unknown_ids++;
        hvd_node_free(l.msg);
        return;
    }
    if (l.kind == HVD_LINE_OUTPUT) {
        if (p->opts && p->opts->on_line) {
            size_t n = l.text_len > HVD_AGENT_LINE_MAX ? HVD_AGENT_LINE_MAX : l.text_len;
            p->opts->on_line(p->opts->line_arg, l.stderr_line ? HVD_AGENT_STDERR : HVD_AGENT_STDOUT, l.text, n,
                             n < l.text_len);
        }
        hvd_node_free(l.msg);
        return;
    }
    ss_unlink_pending(ss, p);
    p->res->stdout_bytes = len;
    p->res->elapsed_ms = ss_now_ms() - p->sent_at;
    p->res->exited = false;
    if (!agent_classify_answer(s->cfg.agent, p->opts, p->operation, l.msg, p->res)) {
        p->done = true;
        pthread_cond_signal(&p->cv);
        return;
    }
    /* a request we stopped: an answer saying so is what the caller asked for */
    if (p->cancel_sent && p->res->code && strcmp(p->res->code, "CANCELLED") == 0)
        p->res->outcome = p->cancel_by_caller ? HVD_OUT_CANCELLED : HVD_OUT_TIMEOUT;
    p->done = true;
    pthread_cond_signal(&p->cv);
}

typedef struct {
    HvdSessions *s;
    Session *ss;
} Reading;

static void on_frame_line(void *arg, const char *line, size_t len)
{
    Reading *rd = arg;
    handle_line(rd->s, rd->ss, line, len);
}

static void tail_append(Session *ss, const char *p, size_t n)
{
    if (n >= TAIL_CAP) {
        memcpy(ss->tail, p + n - TAIL_CAP, TAIL_CAP);
        ss->tail_len = TAIL_CAP;
        return;
    }
    if (ss->tail_len + n > TAIL_CAP) {
        size_t drop = ss->tail_len + n - TAIL_CAP;
        memmove(ss->tail, ss->tail + drop, ss->tail_len - drop);
        ss->tail_len -= drop;
    }
    memcpy(ss->tail + ss->tail_len, p, n);
    ss->tail_len += n;
}

/* Reads what is ready on one of the session's pipes. */
static void drain(HvdSessions *s, Session *ss, bool is_stdout)
{
    char buf[READ_CHUNK];
    int *fd = is_stdout ? &ss->out_fd : &ss->err_fd;
    for (;;) {
        ssize_t r = read(*fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            agent_close_fd(fd);
            if (is_stdout) ss_session_lost(s, ss, "its output closed");
            return;
        }
        if (!is_stdout) {
            tail_append(ss, buf, (size_t)r);
            continue;
        }
        size_t dropped = ss->frame.dropped;
        Reading rd = {s, ss};
        hvd_frame_feed(&ss->frame, buf, (size_t)r, MAX_LINE, on_frame_line, &rd);
        s->stats.bad_lines += ss->frame.dropped - dropped;
    }
}

/* Sends {"cancel": id}; false when the pipe is busy now (tried again later). */
static bool send_cancel(Session *ss, Pending *p)
{
    if (pthread_mutex_trylock(&ss->wmu) != 0) return false;
    char line[64];
    int n = snprintf(line, sizeof line, "{\"cancel\":\"%s\"}\n", p->id);
    bool ok = ss_write_all(ss->in_fd, line, (size_t)n, ss_now_ms() + 50);
    pthread_mutex_unlock(&ss->wmu);
    return ok;
}

/* Deadlines and cancel flags of the requests in flight; returns the next
 * moment something is due (or INT64_MAX). */
static int64_t check_requests(HvdSessions *s, int64_t now)
{
    int64_t next = INT64_MAX;
    for (Session *ss = s->sessions; ss; ss = ss->next) {
        for (Pending *p = ss->pending, *nx; p; p = nx) {
            nx = p->next;
            bool asked = p->opts && p->opts->cancel && atomic_load(p->opts->cancel);
            if (!p->cancel_sent && p->written && (asked || now >= p->deadline)) {
                if (send_cancel(ss, p)) {
                    p->cancel_sent = true;
                    p->cancel_by_caller = asked;
                    p->deadline = now + s->cfg.cancel_grace_ms;
                }
            } else if (p->cancel_sent && now >= p->deadline) {
                ss_unlink_pending(ss, p);
                if (p->cancel_by_caller)
                    ss_complete(p, HVD_OUT_CANCELLED, "agent request cancelled (%s)", "no answer after the cancel");
                else
                    ss_complete(p, HVD_OUT_TIMEOUT, "agent did not answer in time (%s)", "cancel sent, no answer");
                continue;
            }
            if (p->opts && p->opts->cancel && now + TICK_MS < next) next = now + TICK_MS;
            if (p->deadline < next) next = p->deadline;
        }
    }
    return next;
}

/* Idle sessions are closed (EOF on stdin); closing and dead ones reaped. */
static void tend_sessions(HvdSessions *s, int64_t now)
{
    for (Session **pp = &s->sessions; *pp;) {
        Session *ss = *pp;
        if (!ss->starting && !ss->dead && !ss->closing && ss->in_flight == 0 &&
            (s->stop || now - ss->last_used >= s->cfg.idle_ms)) {
            ss->closing = true;
            ss->close_at = now + (s->cfg.agent->kill_grace_ms > 0 ? s->cfg.agent->kill_grace_ms : 2000);
            if (!s->stop) s->stats.closed_idle++;
            if (pthread_mutex_trylock(&ss->wmu) == 0) {
                agent_close_fd(&ss->in_fd);
                pthread_mutex_unlock(&ss->wmu);
            }
        }
        if (ss->closing && !ss->dead && now >= ss->close_at) ss_session_lost(s, ss, "closed");
        if ((ss->closing || ss->dead) && !ss->reaped && ss->pid > 0) {
            int st;
            pid_t r = waitpid(ss->pid, &st, WNOHANG);
            if (r == ss->pid || (r < 0 && errno == ECHILD)) {
                ss->reaped = true;
                agent_live_remove(ss->pid);
            }
        }
        if ((ss->closing || ss->dead) && ss->reaped && !ss->pending && ss->users == 0) {
            *pp = ss->next;
            agent_close_fd(&ss->in_fd);
            agent_close_fd(&ss->out_fd);
            agent_close_fd(&ss->err_fd);
            hvd_frame_free(&ss->frame);
            pthread_mutex_destroy(&ss->wmu);
            free(ss);
            continue;
        }
        pp = &ss->next;
    }
}

void *ss_reader_main(void *arg)
{
    HvdSessions *s = arg;
    struct pollfd *pf = NULL;
    Session **who = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = ss_now_ms();
        int64_t next = check_requests(s, now);
        tend_sessions(s, now);
        if (s->stop && !s->sessions) break;
        size_t n = 0, need = 1;
        for (Session *ss = s->sessions; ss; ss = ss->next) need += 2;
        if (need > cap) {
            cap = need * 2;
            pf = realloc(pf, cap * sizeof *pf);
            who = realloc(who, cap * sizeof *who);
            if (!pf || !who) abort();
        }
        pf[n] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        who[n++] = NULL;
        for (Session *ss = s->sessions; ss; ss = ss->next) {
            if (ss->starting) continue;
            if (ss->out_fd >= 0) pf[n] = (struct pollfd){.fd = ss->out_fd, .events = POLLIN}, who[n++] = ss;
            if (ss->err_fd >= 0) pf[n] = (struct pollfd){.fd = ss->err_fd, .events = POLLIN}, who[n++] = ss;
        }
        int64_t wait = next == INT64_MAX ? 1000 : next - now;
        if (wait > 1000) wait = 1000; /* idle sessions are looked at once a second */
        if (wait < 0) wait = 0;
        pthread_mutex_unlock(&s->mu);
        int rc = poll(pf, (nfds_t)n, (int)wait);
        pthread_mutex_lock(&s->mu);
        if (rc <= 0) continue;
        if (pf[0].revents) {
            char buf[256];
            while (read(s->wake[0], buf, sizeof buf) > 0) {}
        }
        for (size_t i = 1; i < n; i++) {
            if (!pf[i].revents) continue;
            Session *ss = who[i];
            /* the session may have been freed by an earlier fd of this round: look it up */
            bool alive = false;
            for (Session *x = s->sessions; x && !alive; x = x->next) alive = x == ss;
            if (!alive) continue;
            if (pf[i].fd == ss->out_fd)
                drain(s, ss, true);
            else if (pf[i].fd == ss->err_fd)
                drain(s, ss, false);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(pf);
    free(who);
    return NULL;
}
