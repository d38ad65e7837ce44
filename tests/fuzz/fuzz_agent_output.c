/* libFuzzer harness: hvd_agent_output_parse on arbitrary agent stdout, then
 * cleans the answer (NUL, secrets, message length) and checks it as the agent
 * transport does, and encodes it the way the worker would store it. */
#include <stdint.h>
#include <stdlib.h>
#include "agentproto.h"
#include "codec.h"
#include "utf8.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HvdNode *env = NULL;
    HvdAgentParse st = hvd_agent_output_parse((const char *)data, size, &env);
    if (st != HVD_AGENT_PARSE_OK) {
        if (env) abort();
        return 0;
    }
    if (!env || env->type != HVD_MAP || !hvd_node_get(env, "status")) abort();
    const char *const secrets[] = {"S3cret!pw", "a"};
    hvd_agent_answer_clean(env, secrets, 2);
    const HvdNode *msg = hvd_node_get(env, "message");
    if (msg && msg->type == HVD_STR &&
        (msg->u.s.len > HVD_AGENT_MESSAGE_MAX || memchr(msg->u.s.ptr, '\0', msg->u.s.len) ||
         !hvd_utf8_valid(msg->u.s.ptr, msg->u.s.len) || memmem(msg->u.s.ptr, msg->u.s.len, "S3cret!pw", 9)))
        abort();
    char why[160];
    (void)hvd_agent_answer_check(env, "vm.create", "corr", why, sizeof why);
    HvdBuf b = {0};
    hvd_encode(HVD_CT_MSGPACK, env, &b);
    hvd_encode(HVD_CT_JSON, env, &b);
    hvd_buf_free(&b);
    hvd_node_free(env);
    return 0;
}
