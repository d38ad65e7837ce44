/* The operations hvdeploy's host shim adds to Aether-V's (contract §6a):
 * agent.hello (name and capabilities), vm.find (the VMs of a name, with the
 * job id that vm.create stamped into their Notes, their disks and NICs) and
 * host.resources (the hostresources document). The aether-v flavour has none
 * of them. */
#include "simhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTES_PREFIX "hvdeploy:"

json_t *sim_capabilities(SimFlavor f, bool null_mode, bool session)
{
    if (f == SIM_FLAVOR_AETHER) return session ? json_pack("[s]", "session") : json_array();
    /* --null keeps no state and writes no output lines, but a repeated key
     * gets the same ids and no effect, and the probes answer. */
    if (null_mode) return json_pack("[s, s, s]", "idempotency", "probe", "session");
    return json_pack("[s, s, s, s]", "idempotency", "probe", "session", "output");
}

const char *sim_agent_name(SimFlavor f, bool null_mode)
{
    if (f == SIM_FLAVOR_AETHER) return null_mode ? SIM_AGENT_NAME " (aether-v, null)" : SIM_AGENT_NAME " (aether-v)";
    return null_mode ? SIM_AGENT_NAME " (null)" : SIM_AGENT_NAME;
}

json_t *sim_op_hello(SimCall *c, bool null_mode, char *message, size_t mlen)
{
    sim_log(c, "Executing agent.hello operation");
    snprintf(message, mlen, "%s ready", sim_agent_name(c->flavor, null_mode));
    return json_pack("{s:s, s:o}", "agent", sim_agent_name(c->flavor, null_mode), "capabilities",
                     sim_capabilities(c->flavor, null_mode, false));
}

char *sim_notes_job_id(const char *notes)
{
    if (!notes || strncmp(notes, NOTES_PREFIX, strlen(NOTES_PREFIX)) != 0) return NULL;
    const char *p = notes + strlen(NOTES_PREFIX);
    size_t n = strcspn(p, " \t\r\n");
    if (n == 0) return NULL;
    return strndup(p, n);
}

static json_t *vm_summary(json_t *vm)
{
    json_t *disks = json_array(), *nics = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(vm, "drives"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "kind")), "disk") != 0) continue;
        json_array_append_new(disks, json_pack("{s:O, s:O}", "disk_id", json_object_get(d, "id"), "disk_path",
                                               json_object_get(d, "path")));
    }
    json_array_foreach(json_object_get(vm, "nics"), i, d)
    {
        json_array_append_new(nics,
                              json_pack("{s:O, s:O, s:O}", "nic_id", json_object_get(d, "id"), "mac_address",
                                        json_object_get(d, "mac_address"), "adapter_name", json_object_get(d, "name")));
    }
    char *job = sim_notes_job_id(json_string_value(json_object_get(vm, "notes")));
    json_t *out = json_pack("{s:O, s:O, s:s?, s:O, s:o, s:o}", "vm_id", json_object_get(vm, "id"), "vm_name",
                            json_object_get(vm, "name"), "job_id", job, "state", json_object_get(vm, "state"), "disks",
                            disks, "nics", nics);
    if (!job) json_object_set_new(out, "job_id", json_null());
    free(job);
    return out;
}

json_t *sim_op_vm_find(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    const char *name = sim_spec_str(c, "vm_name");
    sim_log(c, "Executing vm.find operation");
    if (!name) {
        sim_fail(c, NULL, "vm_name is required for vm.find");
        return NULL;
    }
    /* Every VM of that name (Hyper-V allows several), in creation order; the
     * request's job_id only names the job that asks. */
    json_t *vms = json_array();
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_get(x->state, "vms"), i, vm)
    {
        if (sim_strieq(json_string_value(json_object_get(vm, "name")), name))
            json_array_append_new(vms, vm_summary(vm));
    }
    sim_log(c, "Found %zu VM(s) named '%s'", json_array_size(vms), name);
    snprintf(message, mlen, "Found %zu VM(s) named '%s'", json_array_size(vms), name);
    return json_pack("{s:o}", "vms", vms);
}

json_t *sim_op_host_resources(SimCall *c, const SimResources *r, char *message, size_t mlen)
{
    sim_log(c, "Executing host.resources operation");
    snprintf(message, mlen, "Host resources: %zu storage classes, %zu networks, %zu images", r->n_storage,
             r->n_networks, r->n_images);
    return json_deep_copy(r->document);
}
