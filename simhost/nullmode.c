/* --null: answers every known operation with success at once, keeping no
 * state, with plausible data derived from the idempotency key (the same key
 * always gives the same ids). A stand-in that isolates the worker's cost,
 * per call and (session.c) in session mode. */
#include "simhost.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static void derived_guid(const SimCall *c, const char *salt, char out[37])
{
    if (!c->idem_key) {
        sim_guid_random(out);
        return;
    }
    uint64_t h = sim_hash(0, c->idem_key);
    uint64_t a = sim_mix(sim_hash(h, salt)), b = sim_mix(a ^ 0x5DEECE66DULL);
    sim_guid_from(a, b, out);
}

static void upper(char *s)
{
    for (; *s; s++) *s = (char)toupper((unsigned char)*s);
}

json_t *sim_null_answer(SimCall *c)
{
    const char *op = c->operation;
    char message[512], vm_id[37], dev[37];
    const char *spec_vm = sim_spec_str(c, "vm_id");
    const char *name = sim_spec_str(c, "vm_name");
    json_t *data = NULL;
    snprintf(vm_id, sizeof vm_id, "%s", spec_vm ? spec_vm : "");
    if (!spec_vm) derived_guid(c, "vm", vm_id);
    derived_guid(c, "device", dev);
    upper(dev);
    char vmu[37];
    snprintf(vmu, sizeof vmu, "%s", vm_id);
    upper(vmu);

    if (strcmp(op, "noop-test") == 0) {
        json_t *d = sim_op_noop(c, message, sizeof message);
        return sim_envelope(c, "success", message, d, NULL);
    }
    sim_log(c, "Executing %s operation (null host)", op);
    if (strcmp(op, "vm.create") == 0) {
        data = json_pack("{s:s, s:s?, s:s}", "vm_id", vm_id, "vm_name", name, "status", "created");
        snprintf(message, sizeof message, "VM '%s' created successfully", name ? name : "");
    } else if (strcmp(op, "disk.create") == 0) {
        char id[160], path[512];
        snprintf(id, sizeof id, "Microsoft:%s\\%s\\0\\1\\D", vmu, dev);
        snprintf(path, sizeof path, "C:\\ClusterStorage\\Volume1\\Storage\\%.8s-disk.vhdx", dev);
        data =
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "disk_id", id, "disk_path", path, "vm_id", vm_id,
                      "controller_type", "SCSI", "controller_number", 0, "controller_location", 1, "status", "created");
        snprintf(message, sizeof message, "Disk created and attached to VM '%s'", vm_id);
    } else if (strcmp(op, "nic.create") == 0) {
        char id[128], mac[18];
        const char *adapter = sim_spec_str(c, "adapter_name");
        uint64_t h = sim_mix(sim_hash(0, c->idem_key ? c->idem_key : dev));
        snprintf(id, sizeof id, "Microsoft:%s\\%s", vmu, dev);
        snprintf(mac, sizeof mac, "00:15:5D:%02X:%02X:%02X", (unsigned)(h & 0xFF), (unsigned)((h >> 8) & 0xFF),
                 (unsigned)((h >> 16) & 0xFF));
        data = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:n, s:s}", "nic_id", id, "adapter_name",
                         adapter ? adapter : "Network Adapter 1", "vm_id", vm_id, "mac_address", mac, "network",
                         sim_spec_str(c, "network"), "vlan_id", "status", "created");
        snprintf(message, sizeof message, "Network adapter created for VM '%s'", vm_id);
    } else if (strcmp(op, "vm.initialize") == 0) {
        static const char *const KEYS[] = {"guest_la_uid",          "guest_la_pw",          "guest_domain_join_target",
                                           "guest_domain_join_uid", "guest_domain_join_pw", "guest_domain_join_ou",
                                           "cnf_ansible_ssh_user",  "cnf_ansible_ssh_key",  "guest_v4_ip_addr",
                                           "guest_v4_cidr_prefix",  "guest_v4_default_gw",  "guest_v4_dns1",
                                           "guest_v4_dns2",         "guest_net_dns_suffix", NULL};
        json_t *keys = json_array();
        for (size_t i = 0; KEYS[i]; i++) {
            json_t *v = json_object_get(c->spec, KEYS[i]);
            if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
                json_array_append_new(keys, json_string(KEYS[i]));
        }
        data =
            json_pack("{s:s, s:s?, s:o, s:s}", "vm_id", vm_id, "vm_name", name, "keys", keys, "status", "initialized");
        snprintf(message, sizeof message, "VM '%s' guest initialization completed successfully", name ? name : vm_id);
    } else if (strcmp(op, "vm.delete") == 0) {
        data = json_pack("{s:s, s:s?, s:s}", "vm_id", vm_id, "vm_name", name, "status", "deleted");
        snprintf(message, sizeof message, "VM '%s' deleted successfully", name ? name : vm_id);
    } else if (c->flavor == SIM_FLAVOR_HVDEPLOY && strcmp(op, "agent.hello") == 0) {
        data = sim_op_hello(c, true, message, sizeof message);
    } else if (c->flavor == SIM_FLAVOR_HVDEPLOY && strcmp(op, "vm.find") == 0) {
        data = json_pack("{s:[]}", "vms"); /* nothing is ever kept */
        snprintf(message, sizeof message, "Found 0 VM(s) named '%s'", name ? name : "");
    } else if (c->flavor == SIM_FLAVOR_HVDEPLOY && strcmp(op, "host.resources") == 0) {
        SimResources r;
        char err[SIM_ERR_LEN];
        if (!sim_resources_load(&r, NULL, err, sizeof err)) {
            sim_fail(c, SIM_CODE_CONFIG, "%s", err);
            return sim_error_envelope(c);
        }
        data = sim_op_host_resources(c, &r, message, sizeof message);
        sim_resources_free(&r);
    } else {
        sim_fail(c, c->flavor == SIM_FLAVOR_AETHER ? NULL : SIM_CODE_UNSUPPORTED, "Unsupported operation: %s", op);
        return sim_error_envelope(c);
    }
    return sim_envelope(c, "success", message, data, NULL);
}
