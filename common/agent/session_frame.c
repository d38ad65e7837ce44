/* Session-mode framing: lines out of a byte stream and what each line is
 * (session_frame.h). */
#include "session_frame.h"
#include <stdio.h>
#include <string.h>
#include "codec.h"

void hvd_frame_feed(HvdFrame *f, const char *p, size_t n, size_t max_line,
                    void (*on_line)(void *arg, const char *line, size_t len), void *arg)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') continue;
        if (!f->skipping) {
            hvd_buf_append(&f->part, p + start, i - start);
            if (f->part.len <= max_line)
                on_line(arg, f->part.data ? f->part.data : "", f->part.len);
            else
                f->dropped++;
        }
        f->part.len = 0;
        f->skipping = false;
        start = i + 1;
    }
    if (f->skipping) return;
    hvd_buf_append(&f->part, p + start, n - start);
    if (f->part.len > max_line) { /* no need to keep what will be dropped */
        f->part.len = 0;
        f->skipping = true;
        f->dropped++;
    }
}

void hvd_frame_free(HvdFrame *f)
{
    hvd_buf_free(&f->part);
    memset(f, 0, sizeof *f);
}

static bool request_id_of(const HvdNode *n, char *buf, size_t len)
{
    const HvdNode *id = hvd_node_get(n, "request_id");
    if (!id) return false;
    if (id->type == HVD_STR) {
        if (id->u.s.len >= len || memchr(id->u.s.ptr, '\0', id->u.s.len)) return false;
        memcpy(buf, id->u.s.ptr, id->u.s.len);
        buf[id->u.s.len] = '\0';
        return true;
    }
    if (id->type == HVD_INT) {
        snprintf(buf, len, "%lld", (long long)id->u.i);
        return true;
    }
    return false;
}

void hvd_frame_line(const char *line, size_t len, size_t max_bytes, HvdLine *out)
{
    memset(out, 0, sizeof *out);
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
    if (len == 0) return;
    HvdNode *n = NULL;
    char why[128];
    if (hvd_json_to_node(line, len, max_bytes, &n, why, sizeof why) != HVD_DECODE_OK || n->type != HVD_MAP ||
        !request_id_of(n, out->id, sizeof out->id)) {
        hvd_node_free(n);
        return;
    }
    const HvdNode *o = hvd_node_get(n, "output");
    if (o) {
        if (o->type != HVD_STR) { /* an output line that is not text: noise */
            out->id[0] = '\0';
            hvd_node_free(n);
            return;
        }
        const char *stream = hvd_node_get_str(n, "stream");
        out->kind = HVD_LINE_OUTPUT;
        out->text = o->u.s.ptr;
        out->text_len = o->u.s.len;
        out->stderr_line = stream && strcmp(stream, "stderr") == 0;
        out->msg = n;
        return;
    }
    hvd_node_map_remove(n, "request_id");
    out->kind = HVD_LINE_ANSWER;
    out->msg = n;
}
