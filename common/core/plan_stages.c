/* The stages a job plans (§9), what each makes, and the envelope's data
 * built from it (§4). */
#include <string.h>
#include "plan.h"

static const struct {
    const char *stage;
    const char *keys[4]; /* NULL-terminated */
} STAGE_OUTPUTS[] = {
    {HVD_STAGE_VM_CREATE, {"vm_id", NULL}},
    {HVD_STAGE_DISK_CREATE, {"disk_id", "disk_path", NULL}},
    {HVD_STAGE_NIC_CREATE, {"nic_id", "adapter_name", "mac_address", NULL}},
};
#define N_STAGE_OUTPUTS (sizeof STAGE_OUTPUTS / sizeof STAGE_OUTPUTS[0])

size_t hvd_plan_stages(const HvdJob *job, const char *names[HVD_MAX_STAGES])
{
    size_t n = 0;
    names[n++] = HVD_STAGE_VM_CREATE;
    if (job->disk.present) names[n++] = HVD_STAGE_DISK_CREATE;
    if (job->nic.present) names[n++] = HVD_STAGE_NIC_CREATE;
    if (job->guest.present) names[n++] = HVD_STAGE_VM_INITIALIZE;
    return n;
}

const char *const *hvd_stage_output_keys(const char *stage)
{
    static const char *const none[] = {NULL};
    for (size_t k = 0; stage && k < N_STAGE_OUTPUTS; k++)
        if (strcmp(stage, STAGE_OUTPUTS[k].stage) == 0) return STAGE_OUTPUTS[k].keys;
    return none;
}

/* Copies the string values of keys (NULL-terminated) from one map to another. */
static void copy_keys(HvdNode *to, const HvdNode *from, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        const char *v = hvd_node_get_str(from, keys[i]);
        if (v) hvd_node_map_set_str(to, keys[i], v);
    }
}

HvdNode *hvd_stage_outputs(const char *stage, const HvdNode *data)
{
    HvdNode *out = hvd_node_map();
    copy_keys(out, data, hvd_stage_output_keys(stage));
    return out;
}

bool hvd_stage_output_ok(const char *stage, const HvdNode *data)
{
    if (strcmp(stage, HVD_STAGE_VM_CREATE) != 0) return true;
    const char *vm_id = hvd_node_get_str(data, "vm_id");
    return vm_id && *vm_id;
}

void hvd_stage_outputs_forget(HvdNode *outputs)
{
    for (size_t k = 0; k < N_STAGE_OUTPUTS; k++)
        for (size_t j = 0; STAGE_OUTPUTS[k].keys[j]; j++) hvd_node_map_remove(outputs, STAGE_OUTPUTS[k].keys[j]);
}

HvdNode *hvd_plan_envelope_data(const HvdNode *outputs, const char *vm_name, const char *target_host,
                                const char *os_family, HvdNode *guest_config_keys)
{
    HvdNode *d = hvd_node_map();
    copy_keys(d, outputs, STAGE_OUTPUTS[0].keys); /* vm_id first */
    if (vm_name) hvd_node_map_set_str(d, "vm_name", vm_name);
    if (target_host) hvd_node_map_set_str(d, "target_host", target_host);
    if (os_family) hvd_node_map_set_str(d, "os_family", os_family);
    for (size_t k = 1; k < N_STAGE_OUTPUTS; k++) copy_keys(d, outputs, STAGE_OUTPUTS[k].keys);
    if (guest_config_keys) hvd_node_map_set(d, "guest_config_keys", guest_config_keys);
    return d;
}
