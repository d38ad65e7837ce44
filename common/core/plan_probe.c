/* Reading vm.find's answer (§6a "Probe operations"): whether a stage whose
 * outcome is unknown made what it makes, so the job can adopt it. */
#include <stdio.h>
#include <string.h>
#include "plan.h"

static bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static const HvdNode *array_of(const HvdNode *map, const char *key)
{
    const HvdNode *a = hvd_node_get(map, key);
    return a && a->type == HVD_ARRAY ? a : NULL;
}

/* The one VM of the answer that is ours (stamped with job_id, or with the
 * known vm_id); *count how many matched. */
static const HvdNode *our_vm(const HvdNode *vms, const char *job_id, const char *vm_id, size_t *count)
{
    const HvdNode *found = NULL;
    *count = 0;
    for (size_t i = 0; i < vms->u.arr.n; i++) {
        const HvdNode *vm = vms->u.arr.items[i];
        if (vm->type != HVD_MAP) continue;
        bool ours =
            vm_id ? str_eq(hvd_node_get_str(vm, "vm_id"), vm_id) : str_eq(hvd_node_get_str(vm, "job_id"), job_id);
        if (!ours) continue;
        (*count)++;
        found = vm;
    }
    return found;
}

/* Adopts the one element of list (disks or nics) the stage made: the one
 * named want (key name_key) when want is given, else the only one. */
static HvdFound adopt_one(const HvdNode *list, const char *name_key, const char *want, const char *what,
                          const char *const *keys, HvdNode **adopted, char *message, size_t len)
{
    size_t n = 0;
    const HvdNode *pick = NULL;
    for (size_t i = 0; list && i < list->u.arr.n; i++) {
        const HvdNode *e = list->u.arr.items[i];
        if (e->type != HVD_MAP || (want && !str_eq(hvd_node_get_str(e, name_key), want))) continue;
        n++;
        pick = e;
    }
    if (n == 0) {
        snprintf(message, len, "vm.find shows no %s on the job's VM: it was not made", what);
        return HVD_FOUND_NOTHING;
    }
    if (n > 1) {
        snprintf(message, len, "vm.find shows %zu %ss on the job's VM: which one this job made is unknown", n, what);
        return HVD_FOUND_AMBIGUOUS;
    }
    *adopted = hvd_node_map();
    for (size_t k = 0; keys[k]; k++) {
        const char *v = hvd_node_get_str(pick, keys[k]);
        if (v) hvd_node_map_set_str(*adopted, keys[k], v);
    }
    snprintf(message, len, "Adopted the %s vm.find found on the job's VM.", what);
    return HVD_FOUND_IT;
}

HvdFound hvd_plan_probe_found(const char *stage, const HvdNode *data, const char *job_id, const char *vm_id,
                              const char *adapter_name, HvdNode **adopted, char *message, size_t len)
{
    *adopted = NULL;
    const HvdNode *vms = array_of(data, "vms");
    if (!vms) {
        snprintf(message, len, "vm.find answered without a list of VMs");
        return HVD_FOUND_AMBIGUOUS;
    }
    bool creating_vm = str_eq(stage, HVD_STAGE_VM_CREATE);
    size_t count = 0;
    const HvdNode *vm = our_vm(vms, job_id, creating_vm ? NULL : vm_id, &count);
    if (creating_vm) {
        if (count == 0) {
            snprintf(message, len, "vm.find shows no VM of this job: it was not made");
            return HVD_FOUND_NOTHING;
        }
        const char *id = hvd_node_get_str(vm, "vm_id");
        if (count > 1 || !id || !*id) {
            snprintf(message, len, "vm.find shows %zu VMs stamped with this job", count);
            return HVD_FOUND_AMBIGUOUS;
        }
        *adopted = hvd_node_map();
        hvd_node_map_set_str(*adopted, "vm_id", id);
        snprintf(message, len, "Adopted VM %.64s, which vm.find found stamped with this job.", id);
        return HVD_FOUND_IT;
    }
    if (!vm_id || count != 1) {
        snprintf(message, len, "vm.find does not show the job's VM %.64s", vm_id ? vm_id : "(unknown)");
        return HVD_FOUND_AMBIGUOUS;
    }
    if (str_eq(stage, HVD_STAGE_DISK_CREATE))
        return adopt_one(array_of(vm, "disks"), "disk_id", NULL, "disk", hvd_stage_output_keys(stage), adopted, message,
                         len);
    if (str_eq(stage, HVD_STAGE_NIC_CREATE))
        return adopt_one(array_of(vm, "nics"), "adapter_name", adapter_name && *adapter_name ? adapter_name : NULL,
                         "network adapter", hvd_stage_output_keys(stage), adopted, message, len);
    snprintf(message, len, "stage %.32s makes nothing vm.find could show", stage ? stage : "?");
    return HVD_FOUND_AMBIGUOUS;
}
