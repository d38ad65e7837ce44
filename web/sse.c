/* Server-Sent Events of one job (GET /jobs/<id>/stream?after=SEQ&ev=ID):
 * its new output lines (event "output") and transitions (event
 * "transition") read from PostgreSQL every half second, each with an id
 * "<seq>.<event id>" so that a reconnecting browser (Last-Event-ID) resumes
 * where it was; "end" once the job finished. A stream lasts at most
 * --stream-max seconds (the browser reconnects by itself) and says something
 * at least every few seconds, so that dead readers are noticed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "codec.h"
#include "store_view.h"
#include "html.h"
#include "pages.h"
#include "request.h"
#include "watchdog.h"

#define SSE_POLL_MS 500
#define SSE_KEEPALIVE_MS 5000
#define SSE_BATCH 200

typedef struct {
    Web *w;
    char job_id[37];
    int64_t seq, ev;
    int64_t until_ms, last_write_ms;
    bool ended;
    HvdBuf out;
    size_t pos;
} Stream;

static bool terminal(const char *s)
{
    return s && (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0);
}

static void emit(Stream *s, const char *event, HvdNode *data)
{
    char *j = hvd_node_to_json(data);
    hvd_buf_printf(&s->out, "id: %" PRId64 ".%" PRId64 "\nevent: %s\ndata: %s\n\n", s->seq, s->ev, event, j);
    free(j);
    hvd_node_free(data);
}

/* Reads what is new; appends it to s->out. */
static void poll_once(Stream *s)
{
    char err[256];
    HvdOutputRow *rows = NULL;
    size_t n = 0;
    if (hvd_store_output_read(s->w->store, s->job_id, s->seq, SSE_BATCH, &rows, &n, err, sizeof err) == HVD_STORE_OK) {
        for (size_t i = 0; i < n; i++) {
            s->seq = rows[i].seq;
            HvdNode *m = hvd_node_map();
            hvd_node_map_set_int(m, "seq", rows[i].seq);
            hvd_node_map_set_str(m, "stage", rows[i].stage);
            hvd_node_map_set_int(m, "attempt", rows[i].attempt);
            hvd_node_map_set_str(m, "stream", rows[i].stream);
            hvd_node_map_set_str(m, "at", rows[i].at);
            hvd_node_map_set_str(m, "line", rows[i].line);
            emit(s, "output", m);
        }
        hvd_output_rows_free(rows, n);
    }
    HvdJobEvent *ev = NULL;
    if (hvd_store_job_events(s->w->store, s->job_id, s->ev, SSE_BATCH, &ev, &n, err, sizeof err) != HVD_STORE_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        s->ev = ev[i].id;
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_int(m, "id", ev[i].id);
        hvd_node_map_set_str(m, "at", ev[i].at);
        hvd_node_map_set_str(m, "stage", ev[i].stage);
        hvd_node_map_set_str(m, "from_status", ev[i].from_status);
        hvd_node_map_set_str(m, "to_status", ev[i].to_status);
        hvd_node_map_set_int(m, "attempt", ev[i].attempt);
        hvd_node_map_set_str(m, "worker", ev[i].worker);
        hvd_node_map_set_str(m, "detail", ev[i].detail);
        emit(s, "transition", m);
        if (!ev[i].stage && terminal(ev[i].to_status)) {
            HvdNode *e = hvd_node_map();
            hvd_node_map_set_str(e, "status", ev[i].to_status);
            emit(s, "end", e);
            s->ended = true;
            break;
        }
    }
    hvd_job_events_free(ev, n);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    Stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->pos < s->out.len) {
            size_t n = s->out.len - s->pos < max ? s->out.len - s->pos : max;
            memcpy(buf, s->out.data + s->pos, n);
            s->pos += n;
            if (s->pos == s->out.len) s->pos = s->out.len = 0;
            s->last_write_ms = hvd_mono_ms();
            return (ssize_t)n;
        }
        if (s->ended || atomic_load(&s->w->stopping) || hvd_mono_ms() >= s->until_ms)
            return MHD_CONTENT_READER_END_OF_STREAM;
        poll_once(s);
        if (s->out.len) continue;
        if (hvd_mono_ms() - s->last_write_ms >= SSE_KEEPALIVE_MS) {
            hvd_buf_puts(&s->out, ": keepalive\n\n");
            continue;
        }
        struct timespec ts = {0, SSE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void stream_free(void *cls)
{
    Stream *s = cls;
    hvd_buf_free(&s->out);
    free(s);
}

static int64_t arg_i64(WebReq *r, const char *name)
{
    const char *v = web_arg(r, name);
    long long x = v ? strtoll(v, NULL, 10) : 0;
    return x > 0 ? (int64_t)x : 0;
}

void sse_job(WebReq *r, const char *job_id)
{
    if (!web_uuid_ok(job_id)) return html_error(r, MHD_HTTP_NOT_FOUND, "That is not a job id.");
    Stream *s = hvd_xcalloc(1, sizeof *s);
    s->w = r->web;
    snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
    s->seq = arg_i64(r, "after");
    s->ev = arg_i64(r, "ev");
    const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    long long a = 0, b = 0;
    if (last && sscanf(last, "%lld.%lld", &a, &b) == 2 && a >= 0 && b >= 0) {
        s->seq = a;
        s->ev = b;
    }
    s->until_ms = hvd_mono_ms() + (int64_t)r->web->stream_max_s * 1000;
    s->last_write_ms = hvd_mono_ms();
    /* tell the browser how soon to come back, and open the stream at once */
    hvd_buf_puts(&s->out, "retry: 2000\n\n");
    web_extend_deadline(r, r->web->stream_max_s + 15);
    r->stream = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, stream_free);
    if (!r->stream) {
        stream_free(s);
        return html_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Cannot open the stream.");
    }
    MHD_add_response_header(r->stream, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r->stream, "X-Accel-Buffering", "no");
}
