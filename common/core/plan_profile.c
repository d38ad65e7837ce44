/* Agent profiles (§6a "Capabilities"): what HVD_AGENT_PROFILE fixes, and
 * what an agent.hello answer says an agent honours. */
#include <string.h>
#include "plan.h"

static const HvdAgentCaps ALL = {.idempotency = true, .probe = true, .session = true, .output = true};

bool hvd_plan_profile_fixed(const char *profile, HvdAgentCaps *caps)
{
    if (profile && strcmp(profile, "raw") == 0) {
        *caps = (HvdAgentCaps){0};
        return true;
    }
    if (profile && strcmp(profile, "hvdeploy") == 0) {
        *caps = ALL;
        return true;
    }
    return false;
}

bool hvd_plan_profile_from_hello(HvdOutcome outcome, const HvdNode *data, HvdAgentCaps *caps)
{
    *caps = (HvdAgentCaps){0};
    if (outcome == HVD_OUT_AGENT_ERROR || outcome == HVD_OUT_PROTOCOL_ERROR)
        return true; /* it answered, but knows no agent.hello: raw */
    if (outcome != HVD_OUT_SUCCESS) return false;
    const HvdNode *list = hvd_node_get(data, "capabilities");
    for (size_t i = 0; list && list->type == HVD_ARRAY && i < list->u.arr.n; i++) {
        const HvdNode *c = list->u.arr.items[i];
        if (c->type != HVD_STR) continue;
        if (strcmp(c->u.s.ptr, "idempotency") == 0) caps->idempotency = true;
        if (strcmp(c->u.s.ptr, "probe") == 0) caps->probe = true;
        if (strcmp(c->u.s.ptr, "session") == 0) caps->session = true;
        if (strcmp(c->u.s.ptr, "output") == 0) caps->output = true;
    }
    return true;
}

const char *hvd_plan_profile_name(const HvdAgentCaps *c)
{
    if (!c->idempotency && !c->probe && !c->session && !c->output) return "raw";
    if (c->idempotency && c->probe && c->session && c->output) return "hvdeploy";
    return "partial";
}
