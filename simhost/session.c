/* Session mode (contract §6a): one process serves many requests. It prints
 * {"hello": {agent, capabilities}} first, then reads one JSON object a line:
 * a JobRequest with a top-level request_id is run in a thread of its own and
 * answered with its envelope plus that request_id, in whatever order the
 * requests finish; {"cancel": id} stops a request that is still waiting
 * (latency, hang) with CANCELLED. EOF: the requests in flight finish, then
 * the process exits 0. With --null every request is answered at once on the
 * reading thread (no thread, no state), output flushed only when the input
 * runs dry. State stays consistent because every request takes the host's
 * flock like a process of its own (store.c). Exact rules: README.md. */
#include "simhost.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SESSION_MAX_INFLIGHT 1024   /* more at once: HOST_BUSY */
#define SESSION_STACK (1024 * 1024) /* per request thread (answers echo specs, whose nesting jansson recurses) */
#define SESSION_READ_CHUNK (64 * 1024)

typedef struct Session Session;

typedef struct Req {
    struct Req *next, *prev;
    Session *s;
    char *id_text; /* request_id as compact JSON: the registry key, spliced into every line */
    SimCall call;
    SimHooks hooks;
    bool cancelled;
    pthread_cond_t cond; /* signalled on cancel */
} Req;

struct Session {
    const SimArgs *a;
    pthread_mutex_t mu; /* the in-flight list and the cancelled flags */
    pthread_cond_t idle;
    pthread_condattr_t cattr; /* CLOCK_MONOTONIC */
    Req *inflight;
    size_t n_inflight;
    pthread_mutex_t out_mu; /* one line at a time on stdout */
    char *obuf;             /* --null: answers not yet written */
    size_t olen, ocap;
};

static void session_flush(Session *s);

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the peer went away: its EOF on stdin ends the session */
        p += w;
        n -= (size_t)w;
    }
}

/* Writes (or, with --null, buffers) one line. */
static void session_put(Session *s, const char *line, size_t n)
{
    if (s->a->null_mode) {
        if (s->olen + n > s->ocap) {
            s->ocap = (s->olen + n) * 2;
            s->obuf = realloc(s->obuf, s->ocap);
        }
        memcpy(s->obuf + s->olen, line, n);
        s->olen += n;
        if (s->olen >= SESSION_READ_CHUNK) session_flush(s);
        return;
    }
    pthread_mutex_lock(&s->out_mu);
    write_all(line, n);
    pthread_mutex_unlock(&s->out_mu);
}

static void session_flush(Session *s)
{
    if (s->olen) write_all(s->obuf, s->olen);
    s->olen = 0;
}

/* An answer line ("{...}\n") with "request_id":<id> put first. */
static void put_answer(Session *s, const char *id_text, const char *line)
{
    size_t il = strlen(id_text), ll = strlen(line);
    char stack[4096], *buf = il + ll + 16 <= sizeof stack ? stack : malloc(il + ll + 16);
    size_t n = 0;
    memcpy(buf, "{\"request_id\":", 14);
    n = 14;
    memcpy(buf + n, id_text, il);
    n += il;
    if (ll > 3) buf[n++] = ','; /* not an empty object */
    memcpy(buf + n, line + 1, ll - 1);
    n += ll - 1;
    session_put(s, buf, n);
    if (buf != stack) free(buf);
}

/* A line that is no request: an error line without a request_id, which a
 * client ignores (and counts). */
static void put_bad_line(Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_bad_line(Session *s, const char *fmt, ...)
{
    char msg[SIM_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char full[SIM_ERR_LEN + 32];
    snprintf(full, sizeof full, "Operation error: %s", msg);
    json_t *j = json_pack("{s:n, s:s, s:s, s:{}, s:s}", "request_id", "status", "error", "message", full, "data",
                          "code", SIM_CODE_BAD_REQUEST);
    char *line = sim_dump_line(j);
    json_decref(j);
    session_put(s, line, strlen(line));
    free(line);
}

static void put_output(Session *s, const char *id_text, const char *text, const char *stream)
{
    json_t *t = json_string(text);
    if (!t) t = json_string("(output that is not UTF-8)");
    char *enc = json_dumps(t, JSON_ENCODE_ANY);
    json_decref(t);
    size_t n = strlen(id_text) + strlen(enc) + strlen(stream) + 48;
    char stack[1024], *buf = n <= sizeof stack ? stack : malloc(n);
    int len = snprintf(buf, n, "{\"request_id\":%s,\"output\":%s,\"stream\":\"%s\"}\n", id_text, enc, stream);
    session_put(s, buf, (size_t)len);
    if (buf != stack) free(buf);
    free(enc);
}

/* ---- hooks of a request thread ---- */

static bool req_wait_until(void *ctx, int64_t deadline_ns)
{
    Req *r = ctx;
    pthread_mutex_lock(&r->s->mu);
    while (!r->cancelled) {
        if (deadline_ns == INT64_MAX) {
            pthread_cond_wait(&r->cond, &r->s->mu);
            continue;
        }
        struct timespec ts = {.tv_sec = deadline_ns / 1000000000LL, .tv_nsec = deadline_ns % 1000000000LL};
        if (pthread_cond_timedwait(&r->cond, &r->s->mu, &ts) == ETIMEDOUT) break;
    }
    bool ok = !r->cancelled;
    pthread_mutex_unlock(&r->s->mu);
    return ok;
}

static bool req_cancelled(void *ctx)
{
    Req *r = ctx;
    pthread_mutex_lock(&r->s->mu);
    bool v = r->cancelled;
    pthread_mutex_unlock(&r->s->mu);
    return v;
}

static void req_output(void *ctx, const char *line, const char *stream)
{
    Req *r = ctx;
    put_output(r->s, r->id_text, line, stream);
}

static Req *req_new(Session *s, json_t *id)
{
    Req *r = calloc(1, sizeof *r);
    r->s = s;
    r->id_text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    r->hooks = (SimHooks){.wait_until = req_wait_until, .cancelled = req_cancelled, .output = req_output, .ctx = r};
    sim_call_init(&r->call, s->a, &r->hooks);
    pthread_cond_init(&r->cond, &s->cattr);
    return r;
}

static void req_free(Req *r)
{
    sim_call_free(&r->call);
    pthread_cond_destroy(&r->cond);
    free(r->id_text);
    free(r);
}

static Req *find_locked(Session *s, const char *id_text)
{
    for (Req *r = s->inflight; r; r = r->next)
        if (strcmp(r->id_text, id_text) == 0) return r;
    return NULL;
}

static void unregister(Req *r)
{
    Session *s = r->s;
    pthread_mutex_lock(&s->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->inflight = r->next;
    if (r->next) r->next->prev = r->prev;
    if (--s->n_inflight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

static void *req_main(void *arg)
{
    Req *r = arg;
    SimCall *c = &r->call;
    char *line = sim_call_run(c, r->s->a);
    if (c->want_output) {
        /* What the shim's runspace wrote with Write-Host, then its error. */
        size_t i;
        json_t *l;
        json_array_foreach(c->noise, i, l) put_output(r->s, r->id_text, json_string_value(l), "stdout");
        if (c->error[0]) put_output(r->s, r->id_text, c->error, "stderr");
    }
    put_answer(r->s, r->id_text, line);
    free(line);
    unregister(r);
    req_free(r);
    return NULL;
}

/* ---- the reading thread ---- */

static void answer_now(Session *s, Req *r, json_t *env)
{
    char *line = sim_dump_line(env);
    put_answer(s, r->id_text, line);
    free(line);
    json_decref(env);
}

static void handle_cancel(Session *s, json_t *id)
{
    char *id_text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    pthread_mutex_lock(&s->mu);
    Req *r = find_locked(s, id_text);
    if (r) {
        r->cancelled = true;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&s->mu);
    if (!r) fprintf(stderr, "hvdeploy-simhost: cancel of %s, which is not in flight: ignored\n", id_text);
    free(id_text);
}

static void start_request(Session *s, Req *r)
{
    pthread_mutex_lock(&s->mu);
    const char *refusal = find_locked(s, r->id_text) ? "dup" : s->n_inflight >= SESSION_MAX_INFLIGHT ? "busy" : NULL;
    if (!refusal) {
        r->next = s->inflight;
        if (s->inflight) s->inflight->prev = r;
        s->inflight = r;
        s->n_inflight++;
    }
    pthread_mutex_unlock(&s->mu);
    if (refusal && refusal[0] == 'd') {
        put_bad_line(s, "request_id %s is already in flight; this line is ignored", r->id_text);
        req_free(r);
        return;
    }
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, SESSION_STACK);
    int rc = refusal ? EAGAIN : pthread_create(&t, &at, req_main, r);
    pthread_attr_destroy(&at);
    if (rc == 0) return;
    if (!refusal) unregister(r);
    sim_fail(&r->call, SIM_CODE_BUSY, "Too many requests in flight (at most %d)", SESSION_MAX_INFLIGHT);
    answer_now(s, r, sim_error_envelope(&r->call));
    req_free(r);
}

static void handle_line(Session *s, char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t')) len--;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
    if (i == len) return; /* blank lines are ignored */
    json_error_t je;
    json_t *req = json_loadb(text + i, len - i, JSON_REJECT_DUPLICATES, &je);
    if (!req || !json_is_object(req)) {
        put_bad_line(s, "Failed to parse JSON line: %s", req ? "not a JSON object" : je.text);
        json_decref(req);
        return;
    }
    json_t *cancel = json_object_get(req, "cancel");
    if (cancel && !json_object_get(req, "operation")) {
        if (!s->a->null_mode) handle_cancel(s, cancel); /* --null: nothing is ever in flight */
        json_decref(req);
        return;
    }
    json_t *id = json_object_get(req, "request_id");
    if (!json_is_string(id) && !json_is_integer(id)) {
        put_bad_line(s, "Request has no request_id (a string or an integer); it is ignored");
        json_decref(req);
        return;
    }
    Req *r = req_new(s, id);
    if (!sim_call_parse_object(&r->call, req, s->a)) {
        answer_now(s, r, sim_error_envelope(&r->call));
        req_free(r);
    } else if (s->a->null_mode) {
        answer_now(s, r, sim_null_answer(&r->call));
        req_free(r);
    } else {
        start_request(s, r);
    }
}

/* Reads stdin line by line until EOF; a line longer than SIM_MAX_INPUT is
 * answered with one error and skipped. */
static void read_lines(Session *s)
{
    size_t cap = SESSION_READ_CHUNK * 2, start = 0, end = 0;
    char *buf = malloc(cap);
    bool skipping = false;
    for (;;) {
        char *nl = memchr(buf + start, '\n', end - start);
        if (nl) {
            if (!skipping) handle_line(s, buf + start, (size_t)(nl - (buf + start)));
            skipping = false;
            start = (size_t)(nl - buf) + 1;
            continue;
        }
        if (end - start > SIM_MAX_INPUT) {
            if (!skipping) put_bad_line(s, "Line is longer than %d bytes; it is ignored", SIM_MAX_INPUT);
            skipping = true;
            start = end;
        }
        if (start > 0) {
            memmove(buf, buf + start, end - start);
            end -= start;
            start = 0;
        }
        if (cap - end < SESSION_READ_CHUNK) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        session_flush(s); /* --null: the input ran dry, so the answers go out */
        ssize_t n = read(STDIN_FILENO, buf + end, cap - end);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        end += (size_t)n;
    }
    if (end > start && !skipping) handle_line(s, buf + start, end - start); /* a last line without '\n' */
    session_flush(s);
    free(buf);
}

int sim_session_run(const SimArgs *a)
{
    Session s = {.a = a};
    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.out_mu, NULL);
    pthread_condattr_init(&s.cattr);
    pthread_condattr_setclock(&s.cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&s.idle, NULL);

    json_t *hello = json_pack("{s:{s:s, s:o}}", "hello", "agent", sim_agent_name(a->flavor, a->null_mode),
                              "capabilities", sim_capabilities(a->flavor, a->null_mode, true));
    char *line = sim_dump_line(hello);
    json_decref(hello);
    write_all(line, strlen(line));
    free(line);

    read_lines(&s);
    /* EOF: every request in flight is answered first (a hung one never is). */
    pthread_mutex_lock(&s.mu);
    while (s.n_inflight > 0) pthread_cond_wait(&s.idle, &s.mu);
    pthread_mutex_unlock(&s.mu);
    free(s.obuf);
    return 0;
}
