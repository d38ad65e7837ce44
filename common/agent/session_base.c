/* What the session files share (session.c, session_reader.c): the clock,
 * waking the reader, writing a line to an agent's stdin, the tagged request,
 * and completing requests (mu held). A leaf: it calls no other session file. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "session_priv.h"

int64_t ss_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ss_wake(HvdSessions *s)
{
    char c = 1;
    ssize_t rc = write(s->wake[1], &c, 1);
    (void)rc; /* a full pipe means a wake-up is pending anyway */
}

/* Writes all of buf to fd (non-blocking) before deadline. SIGPIPE stays
 * pending in this thread instead of killing the process. */
bool ss_write_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    size_t off = 0;
    bool ok = true;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            int64_t left = deadline - ss_now_ms();
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (left > 0 && poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) >= 0 && !(pf.revents & (POLLERR | POLLHUP)))
                continue;
        }
        ok = false;
        break;
    }
    if (!sigismember(&old, SIGPIPE)) {
        sigset_t pending;
        struct timespec zero = {0, 0};
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* {"request_id":"<id>", ...the request's other keys} */
void ss_tagged_request(const char *id, const char *req, size_t len, HvdBuf *out)
{
    while (len && (req[len - 1] == '\n' || req[len - 1] == '\r')) len--;
    size_t i = 0;
    while (i < len && req[i] != '{') i++;
    hvd_buf_printf(out, "{\"request_id\":\"%s\"", id);
    const char *rest = req + i + 1;
    size_t rest_len = i < len ? len - i - 1 : 0;
    size_t k = 0;
    while (k < rest_len && (rest[k] == ' ' || rest[k] == '\t')) k++;
    if (k < rest_len && rest[k] != '}') hvd_buf_puts(out, ",");
    hvd_buf_append(out, rest, rest_len);
    hvd_buf_puts(out, "\n");
}

void ss_complete(Pending *p, HvdOutcome o, const char *fmt, const char *detail)
{
    if (p->done) return;
    p->res->outcome = o;
    snprintf(p->res->detail, sizeof p->res->detail, fmt, detail);
    p->done = true;
    pthread_cond_signal(&p->cv);
}

void ss_unlink_pending(Session *ss, Pending *p)
{
    for (Pending **pp = &ss->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            ss->in_flight--;
            return;
        }
}

Pending *ss_find_pending(Session *ss, const char *id)
{
    for (Pending *p = ss->pending; p; p = p->next)
        if (strcmp(p->id, id) == 0) return p;
    return NULL;
}

/* The session is gone: every request on it has an unknown outcome. */
void ss_session_lost(HvdSessions *s, Session *ss, const char *why)
{
    if (ss->dead) return;
    ss->dead = true;
    snprintf(ss->why_dead, sizeof ss->why_dead, "%s", why);
    if (ss->pending) s->stats.lost++;
    while (ss->pending) {
        Pending *p = ss->pending;
        ss->pending = p->next;
        ss->in_flight--;
        ss_complete(p, HVD_OUT_TRANSPORT, "the agent's session ended with the request in flight (%s)", why);
    }
    if (ss->pid > 0) kill(-ss->pid, SIGKILL);
}
