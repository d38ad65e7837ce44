/* libFuzzer harness: session-mode framing (contract §6a) on arbitrary agent
 * stdout. The input's first byte picks the chunk size the bytes arrive in (as
 * reads from a pipe would cut them); each line is read as the session reader
 * reads it (answer, output line or noise) and an answer is classified and
 * cleaned as a caller would get it. Checks: no line passes the limit, an
 * output line's text is inside its message, a classified answer's message is
 * valid UTF-8 without the secret. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"
#include "agent_priv.h"
#include "session_frame.h"
#include "utf8.h"

#define MAX_LINE 2048

static HvdAgentCfg cfg;
static const char *const secrets[] = {"S3cret!pw"};

static void on_line(void *arg, const char *line, size_t len)
{
    (void)arg;
    if (len > MAX_LINE || memchr(line, '\n', len)) abort();
    HvdLine l;
    hvd_frame_line(line, len, MAX_LINE, &l);
    switch (l.kind) {
    case HVD_LINE_NOISE:
        if (l.msg) abort();
        return;
    case HVD_LINE_OUTPUT:
        if (!l.msg || !l.text || l.text_len > len) abort();
        hvd_node_free(l.msg);
        return;
    case HVD_LINE_ANSWER: {
        if (!l.msg || hvd_node_get(l.msg, "request_id")) abort();
        HvdAgentCallOpts opts = {.secrets = secrets, .n_secrets = 1, .correlation_id = "corr"};
        HvdAgentResult res;
        memset(&res, 0, sizeof res);
        if (agent_classify_answer(&cfg, &opts, "vm.create", l.msg, &res) && res.message &&
            (!hvd_utf8_valid(res.message, strlen(res.message)) || strstr(res.message, "S3cret!pw")))
            abort();
        hvd_agent_result_free(&res);
        return;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        hvd_agent_cfg_init(&cfg);
        ready = 1;
    }
    if (size == 0) return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++, size--;
    HvdFrame f = {0};
    for (size_t off = 0; off < size; off += chunk)
        hvd_frame_feed(&f, (const char *)data + off, size - off < chunk ? size - off : chunk, MAX_LINE, on_line, NULL);
    hvd_frame_free(&f);
    return 0;
}
