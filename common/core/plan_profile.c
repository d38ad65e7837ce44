/* Agent profiles (§6a "Capabilities"): what HVD_AGENT_PROFILE fixes, and
 * what an agent.hello answer says an agent honours. */
#include <stddef.h>
#include <string.h>
#include "plan.h"

static const HvdAgentCaps ALL = {.idempotency = true, .probe = true, .session = true, .output = true};

/* Sets the capability named by the len bytes at name; false for an unknown name. */
static bool cap_set(HvdAgentCaps *caps, const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t off;
    } caps_by_name[] = {{"idempotency", offsetof(HvdAgentCaps, idempotency)},
                        {"probe", offsetof(HvdAgentCaps, probe)},
                        {"session", offsetof(HvdAgentCaps, session)},
                        {"output", offsetof(HvdAgentCaps, output)}};
    for (size_t i = 0; i < sizeof caps_by_name / sizeof caps_by_name[0]; i++)
        if (strlen(caps_by_name[i].name) == len && memcmp(caps_by_name[i].name, name, len) == 0) {
            *(bool *)((char *)caps + caps_by_name[i].off) = true;
            return true;
        }
    return false;
}

/* A comma list of capability names (spaces around them allowed), at least one. */
static bool cap_list(const char *list, HvdAgentCaps *caps)
{
    *caps = (HvdAgentCaps){0};
    const char *p = list;
    for (;;) {
        while (*p == ' ') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if (last == p || !cap_set(caps, p, (size_t)(last - p))) return false;
        if (!*end) return true;
        p = end + 1;
    }
}

bool hvd_plan_profile_fixed(const char *profile, HvdAgentCaps *caps)
{
    if (!profile || strcmp(profile, "auto") == 0) return false;
    if (strcmp(profile, "raw") == 0) {
        *caps = (HvdAgentCaps){0};
        return true;
    }
    if (strcmp(profile, "hvdeploy") == 0) {
        *caps = ALL;
        return true;
    }
    return cap_list(profile, caps);
}

bool hvd_plan_profile_valid(const char *profile)
{
    HvdAgentCaps caps;
    return profile && (strcmp(profile, "auto") == 0 || hvd_plan_profile_fixed(profile, &caps));
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
