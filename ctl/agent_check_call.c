/* hvdeployctl agent-check: what every check uses — one agent call with a
 * JobRequest built like the worker's, a one-line description of its result,
 * and fresh UUIDs for the checks' job ids. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include "agent.h"
#include "agent_check.h"
#include "agentproto.h"
#include "clock.h"
#include "model.h"
#include "timefmt.h"

void ac_new_uuid(char out[HVD_UUID_LEN + 1])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = (uint64_t)hvd_now_ms() ^ ((uint64_t)hvd_mono_ms() << 20);
        for (int i = 0; i < 16; i++) b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 37);
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, HVD_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* One agent call with a JobRequest built like the worker's. spec is owned
 * by the caller. */
HvdOutcome ac_call(Ctx *x, const char *op, const HvdNode *spec, const char *corr, const char *key, int64_t attempt,
                   int64_t timeout_ms, HvdAgentResult *res)
{
    char ts[HVD_RFC3339_LEN];
    hvd_time_rfc3339(hvd_now_ms(), ts);
    HvdAgentRequest req = {
        .operation = op,
        .resource_spec = spec,
        .correlation_id = corr,
        .timestamp = ts,
        .host = x->host,
        .job_id = x->run_id,
        .stage = op,
        .attempt = attempt,
        .idempotency_key = key,
    };
    HvdBuf line = {0};
    hvd_agent_request_encode(&req, &line);
    HvdAgentCallOpts opts = {.timeout_ms = timeout_ms};
    HvdOutcome o = hvd_agent_call_opts(&x->cfg, &opts, x->host, op, line.data, line.len, res);
    hvd_buf_free(&line);
    return o;
}

HvdOutcome ac_call_op(Ctx *x, const char *op, const HvdNode *spec, char cid[HVD_UUID_LEN + 1], HvdAgentResult *res)
{
    char own[HVD_UUID_LEN + 1], key[160];
    char *id = cid ? cid : own;
    ac_new_uuid(id);
    snprintf(key, sizeof key, "%s:%s", x->run_id, op);
    return ac_call(x, op, spec, id, key, 1, x->timeout_ms, res);
}

/* "timeout: agent did not answer within 60000 ms (stderr: ...)" */
void ac_describe(const HvdAgentResult *res, char *out, size_t len)
{
    const char *tail = res->stderr_tail ? res->stderr_tail : "";
    size_t n = strlen(tail);
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) n--;
    const char *last = tail;
    for (size_t i = 0; i < n; i++)
        if (tail[i] == '\n') last = tail + i + 1;
    int m = (int)(tail + n - last);
    if (m > 0)
        snprintf(out, len, "%s: %s (stderr: %.*s)", hvd_outcome_name(res->outcome), res->detail, m > 160 ? 160 : m,
                 last);
    else
        snprintf(out, len, "%s: %s", hvd_outcome_name(res->outcome), res->detail);
}
