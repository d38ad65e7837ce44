/* What an agent wrote, made safe and given its meaning (contract §6, §6a):
 * an answer envelope classified, and the stderr tail cleaned for storing. */
#include "agent.h"
#include "agent_priv.h"
#include "agentproto.h"
#include "mask.h"
#include "utf8.h"
#include <stdio.h>
#include <string.h>

/* An answer envelope for a request: cleaned (UTF-8, the secrets masked),
 * checked against the request (correlation id, the operation's must-haves),
 * classified as §6 says; res takes env (freed on a mismatch). False when
 * the answer is not one for this request (res: PROTOCOL_ERROR). */
bool agent_classify_answer(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *operation, HvdNode *env,
                           HvdAgentResult *res)
{
    char why[160];
    hvd_agent_answer_clean(env, opts ? opts->secrets : NULL, opts ? opts->n_secrets : 0);
    if (!hvd_agent_answer_check(env, operation, opts ? opts->correlation_id : NULL, why, sizeof why)) {
        /* not an answer to this request: nothing of it is used */
        hvd_node_free(env);
        res->outcome = HVD_OUT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "%s", why);
        return false;
    }
    res->envelope = env;
    res->status = hvd_node_get_str(env, "status");
    res->message = hvd_node_get_str(env, "message");
    res->code = hvd_node_get_str(env, "code");
    res->correlation_id = hvd_node_get_str(env, "correlation_id");
    res->data = hvd_node_get(env, "data");
    res->logs = hvd_node_get(env, "logs");
    const char *st = res->status ? res->status : "";
    if (strcmp(st, "success") == 0) {
        res->outcome = HVD_OUT_SUCCESS;
        snprintf(res->detail, sizeof res->detail, "agent answered success");
    } else if (strcmp(st, "error") == 0 || strcmp(st, "partial") == 0) {
        bool transient = hvd_agent_code_retryable(cfg, res->code) || hvd_agent_message_retryable(cfg, res->message);
        res->outcome = transient ? HVD_OUT_RETRYABLE : HVD_OUT_AGENT_ERROR;
        const char *m = res->message ? res->message : "";
        const char *code = res->code ? res->code : "none";
        snprintf(res->detail, sizeof res->detail, "agent answered %s (code %.*s): %.*s", st,
                 (int)hvd_utf8_truncate(code, strlen(code), 40), code, (int)hvd_utf8_truncate(m, strlen(m), 160), m);
    } else {
        res->outcome = HVD_OUT_PROTOCOL_ERROR;
        snprintf(res->detail, sizeof res->detail, "agent answered an unknown status '%.*s'",
                 (int)hvd_utf8_truncate(st, strlen(st), 40), st);
    }
    return true;
}

/* ---- making what the agent wrote safe to store ---- */

/* The stderr tail: from a character boundary when it was cut, no invalid
 * UTF-8 or NUL, the secrets masked (also one cut at the tail's start). */
char *agent_clean_tail(const char *tail, size_t len, bool cut, const HvdAgentCallOpts *opts)
{
    size_t from = 0; /* a cut tail may begin with the rest of a character: skip it */
    if (cut)
        while (from < len && from < 3 && ((unsigned char)tail[from] & 0xC0) == 0x80) from++;
    HvdBuf clean = {0}, masked = {0};
    hvd_utf8_sanitize(tail + from, len - from, HVD_UTF8_NUL, &clean);
    hvd_mask_secrets(clean.data, clean.len, opts ? opts->secrets : NULL, opts ? opts->n_secrets : 0,
                     cut ? HVD_MASK_CUT_START : 0, &masked);
    explicit_bzero(clean.data, clean.len);
    hvd_buf_free(&clean);
    return hvd_buf_steal(&masked);
}
