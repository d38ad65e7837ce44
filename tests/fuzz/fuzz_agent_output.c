/* libFuzzer harness: hvd_agent_output_parse on arbitrary agent stdout, then
 * encodes the answer it found the way the worker would store it. */
#include <stdint.h>
#include <stdlib.h>
#include "agentproto.h"
#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HvdNode *env = NULL;
    HvdAgentParse st = hvd_agent_output_parse((const char *)data, size, &env);
    if (st != HVD_AGENT_PARSE_OK) {
        if (env) abort();
        return 0;
    }
    if (!env || env->type != HVD_MAP || !hvd_node_get(env, "status")) abort();
    HvdBuf b = {0};
    hvd_encode(HVD_CT_MSGPACK, env, &b);
    hvd_encode(HVD_CT_JSON, env, &b);
    hvd_buf_free(&b);
    hvd_node_free(env);
    return 0;
}
