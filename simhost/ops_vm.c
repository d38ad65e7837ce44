/* Simhost VM operations with Hyper-V's semantics: vm.create (GUID id,
 * storage class, provisioning ISO on SCSI 0:0; hvdeploy's shim refuses a
 * name in use and stamps the job into the VM's Notes, Main-NewProtocol.ps1
 * makes a second VM of the name), vm.delete (with or without its disks) and
 * noop-test, answering as Main-NewProtocol.ps1. */
#include "simhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *sim_vm_by_id(json_t *state, const char *vm_id)
{
    size_t i;
    json_t *vm;
    if (!vm_id) return NULL;
    json_array_foreach(json_object_get(state, "vms"), i, vm)
    {
        /* Hyper-V compares GUIDs, so case does not matter. */
        if (sim_strieq(json_string_value(json_object_get(vm, "id")), vm_id)) return vm;
    }
    return NULL;
}

json_t *sim_vm_by_name(json_t *state, const char *name)
{
    size_t i;
    json_t *vm;
    if (!name) return NULL;
    json_array_foreach(json_object_get(state, "vms"), i, vm)
    {
        if (sim_strieq(json_string_value(json_object_get(vm, "name")), name)) return vm;
    }
    return NULL;
}

size_t sim_vms_named(json_t *state, const char *name)
{
    size_t i, n = 0;
    json_t *vm;
    json_array_foreach(json_object_get(state, "vms"), i, vm)
    {
        n += sim_strieq(json_string_value(json_object_get(vm, "name")), name);
    }
    return n;
}

static const char *vm_name_problem(const char *name)
{
    if (sim_utf8_chars(name) > 100) return "the name is longer than 100 characters";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7F || strchr("/\\:*?\"<>|", *p))
            return "the name contains a character Hyper-V does not allow";
    }
    if (name[0] == ' ' || name[strlen(name) - 1] == ' ') return "the name starts or ends with a space";
    return NULL;
}

json_t *sim_op_vm_create(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    const char *name = sim_spec_str(c, "vm_name");
    int64_t gb_ram = 0, cpu = 0;
    sim_log(c, "Executing vm.create operation");
    sim_log(c, "Correlation ID: %s", c->correlation_id ? c->correlation_id : "");
    if (!name) {
        sim_fail(c, NULL, "vm_name is required");
        return NULL;
    }
    if (!sim_spec_int(c, "gb_ram", &gb_ram) || gb_ram < 1 || gb_ram > 12288) {
        sim_fail(c, NULL, "Failed to create VM '%s': gb_ram must be an integer from 1 to 12288", name);
        return NULL;
    }
    if (!sim_spec_int(c, "cpu_cores", &cpu) || cpu < 1 || cpu > 240) {
        sim_fail(c, NULL, "Failed to create VM '%s': cpu_cores must be an integer from 1 to 240", name);
        return NULL;
    }
    sim_log(c, "Creating VM: %s (RAM: %lldGB, CPUs: %lld)", name, (long long)gb_ram, (long long)cpu);
    const char *why = vm_name_problem(name);
    if (why) {
        sim_fail(c, NULL, "Failed to create VM '%s': %s", name, why);
        return NULL;
    }

    const char *sc_name = sim_spec_str(c, "storage_class");
    const SimStorageClass *sc = NULL;
    if (sc_name) {
        sc = sim_storage_find(x->res, sc_name);
        if (!sc) {
            sim_fail(c, NULL, "Storage class '%s' not found in host configuration", sc_name);
            return NULL;
        }
    } else if (x->res->n_storage > 0) {
        sc = &x->res->storage[0];
    } else {
        sim_fail(c, NULL, "No storage classes defined in host configuration");
        return NULL;
    }
    if (!x->res->vm_path || !*x->res->vm_path) {
        sim_fail(c, NULL, "No virtual_machines_path defined in host configuration");
        return NULL;
    }
    /* Hyper-V allows two VMs of one name; Main-NewProtocol.ps1 calls New-VM
     * without looking, hvdeploy's shim looks first. */
    bool aether = c->flavor == SIM_FLAVOR_AETHER;
    size_t same_name = sim_vms_named(x->state, name);
    if (same_name > 0 && !aether) {
        /* The shim adopts the VM that this very stage made (a retry, key
         * "<job_id>:vm.create", after a crash between New-VM and the journal
         * entry: the Notes name the job); any other is refused. */
        json_t *own = sim_vm_by_name(x->state, name);
        char *job = sim_notes_job_id(json_string_value(json_object_get(own, "notes")));
        char stage_key[300] = "";
        if (c->job_id) snprintf(stage_key, sizeof stage_key, "%s:vm.create", c->job_id);
        bool mine = same_name == 1 && job && c->job_id && strcmp(job, c->job_id) == 0 && c->idem_key &&
                    strcmp(c->idem_key, stage_key) == 0;
        free(job);
        if (!mine) {
            sim_fail(c, NULL, "A VM named '%s' already exists on this host", name);
            return NULL;
        }
        const char *id = json_string_value(json_object_get(own, "id"));
        sim_log(c, "VM '%s' of job %s exists already (ID: %s): adopted", name, c->job_id, id);
        snprintf(message, mlen, "VM '%s' created successfully", name);
        x->adopted = true;
        return json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:O, s:O}", "vm_id", id, "vm_name", name, "status", "created",
                         "storage_class", json_object_get(own, "storage_class"), "os_family",
                         json_object_get(own, "os_family"), "gb_ram", json_object_get(own, "gb_ram"), "cpu_cores",
                         json_object_get(own, "cpu_cores"), "vm_path", json_object_get(own, "path"));
    }
    const char *os = sim_spec_str(c, "os_family");
    if (!os || (strcmp(os, "linux") != 0 && strcmp(os, "windows") != 0)) os = "windows";
    json_t *clustered = json_object_get(c->spec, "vm_clustered");

    char id[37], now[32], vm_path[1024], iso[1024];
    sim_guid_random(id);
    sim_now_rfc3339(now);
    snprintf(vm_path, sizeof vm_path, "%s\\%s", x->res->vm_path, name);
    if (same_name == 0) sim_noise(c, "Created VM base path: %s\\%s", sc->path, name);
    snprintf(iso, sizeof iso, "%s\\%s\\%s-provisioning.iso", sc->path, name, os);
    sim_log(c, "Creating VM '%s' on host '%s'", name, x->host);
    sim_log(c, "Provisioning ISO created at: %s", iso);

    json_t *dvd = json_pack("{s:s, s:s, s:i, s:i, s:s}", "kind", "dvd", "controller_type", "SCSI", "controller_number",
                            0, "controller_location", 0, "path", iso);
    json_t *vm = json_pack(
        "{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:b, s:i, s:s, s:s, s:s, s:[o], s:[], s:{s:n, s:[], s:[]}}", "id", id,
        "name", name, "gb_ram", (json_int_t)gb_ram, "cpu_cores", (json_int_t)cpu, "storage_class", sc->name,
        "storage_path", sc->path, "os_family", os, "vm_clustered", json_is_true(clustered), "generation", 2, "state",
        "Off", "path", vm_path, "created_at", now, "drives", dvd, "nics", "kvp", "state", "history", "keys");
    /* The shim stamps the creating job into the VM's Notes (vm.find reads it). */
    char notes[300] = "";
    if (!aether && c->job_id) snprintf(notes, sizeof notes, "hvdeploy:%s", c->job_id);
    json_object_set_new(vm, "notes", json_string(notes));
    json_array_append_new(json_object_get(x->state, "vms"), vm);
    sim_effect(x, id, name);
    sim_noise(c, "Mounted provisioning ISO: %s", iso);
    sim_noise(c, "VM '%s' created successfully (not started - will be started during initialization)", name);
    snprintf(message, mlen, "VM '%s' created successfully", name);
    if (aether) {
        /* $vm = Get-VM -Name $vmName returns every VM of the name, and
         * $vm.Id.ToString() of an array is its type name. */
        const char *shown = same_name > 0 ? "System.Object[]" : id;
        sim_log(c, "VM created successfully with ID: %s", shown);
        return json_pack("{s:s, s:s, s:s}", "vm_id", shown, "vm_name", name, "status", "created");
    }
    sim_log(c, "VM created successfully with ID: %s", id);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "vm_id", id, "vm_name", name, "status", "created",
                     "storage_class", sc->name, "os_family", os, "gb_ram", (json_int_t)gb_ram, "cpu_cores",
                     (json_int_t)cpu, "vm_path", vm_path, "provisioning_iso_path", iso);
}

/* Removes vm from the state, its disk files deleted or kept; returns how many
 * disk files were deleted. */
static size_t remove_vm(SimOpCtx *x, json_t *vm, bool delete_disks, json_t *deleted, json_t *kept)
{
    SimCall *c = x->call;
    size_t i, n = 0;
    json_t *d;
    if (strcmp(json_string_value(json_object_get(vm, "state")), "Off") != 0) sim_log(c, "Stopping VM...");
    json_array_foreach(json_object_get(vm, "drives"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "kind")), "disk") != 0) continue;
        json_t *path = json_object_get(d, "path");
        if (delete_disks) {
            json_array_append(deleted, path);
            sim_log(c, "VHDX file deleted: %s", json_string_value(path));
            n++;
        } else {
            json_array_append(kept, path);
            json_array_append(json_object_get(x->state, "orphan_disks"), path);
        }
    }
    sim_log(c, "Removing VM...");
    sim_effect(x, json_string_value(json_object_get(vm, "id")), json_string_value(json_object_get(vm, "name")));
    json_t *vms = json_object_get(x->state, "vms");
    json_array_foreach(vms, i, d)
    {
        if (d == vm) {
            json_array_remove(vms, i);
            break;
        }
    }
    return n;
}

json_t *sim_op_vm_delete(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    const char *vm_id = sim_spec_str(c, "vm_id");
    const char *name = sim_spec_str(c, "vm_name");
    json_t *del = json_object_get(c->spec, "delete_disks");
    bool delete_disks = json_is_true(del);
    sim_log(c, "Executing vm.delete operation");
    sim_log(c, "Correlation ID: %s", c->correlation_id ? c->correlation_id : "");
    sim_log(c, "Deleting VM: %s (ID: %s)", name ? name : "", vm_id ? vm_id : "");

    json_t *deleted = json_array(), *kept = json_array();
    if (c->flavor == SIM_FLAVOR_AETHER) {
        /* By vm_id, else Get-VM -Name: every VM of the name goes (Remove-VM of
         * an array); the answer echoes the spec, and "not found" names vm_name. */
        size_t removed = 0, files = 0;
        json_t *vm;
        while ((vm = vm_id ? sim_vm_by_id(x->state, vm_id) : sim_vm_by_name(x->state, name)) != NULL) {
            files += remove_vm(x, vm, delete_disks, deleted, kept);
            removed++;
            if (vm_id) break;
        }
        json_decref(deleted);
        json_decref(kept);
        if (removed == 0) {
            sim_fail(c, NULL, "VM not found: %s", name ? name : "");
            return NULL;
        }
        sim_log(c, "VM deleted successfully");
        snprintf(message, mlen, "VM '%s' deleted successfully", name ? name : "");
        return json_pack("{s:s?, s:s?, s:s, s:b, s:I}", "vm_id", vm_id, "vm_name", name, "status", "deleted",
                         "disks_deleted", delete_disks, "disk_count", (json_int_t)files);
    }
    json_t *vm = vm_id ? sim_vm_by_id(x->state, vm_id) : sim_vm_by_name(x->state, name);
    if (!vm) {
        json_decref(deleted);
        json_decref(kept);
        sim_fail(c, NULL, "VM not found: %s", name ? name : (vm_id ? vm_id : ""));
        return NULL;
    }
    char real_id[64], real_name[512];
    snprintf(real_id, sizeof real_id, "%s", json_string_value(json_object_get(vm, "id")));
    snprintf(real_name, sizeof real_name, "%s", json_string_value(json_object_get(vm, "name")));
    remove_vm(x, vm, delete_disks, deleted, kept);
    sim_log(c, "VM deleted successfully");
    snprintf(message, mlen, "VM '%s' deleted successfully", real_name);
    return json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}", "vm_id", real_id, "vm_name", real_name, "status", "deleted",
                     "delete_disks", delete_disks, "deleted_disks", deleted, "kept_disks", kept);
}

json_t *sim_op_noop(SimCall *c, char *message, size_t mlen)
{
    sim_log(c, "Executing noop-test operation");
    sim_log(c, "Correlation ID: %s", c->correlation_id ? c->correlation_id : "");
    sim_log(c, "Resource spec validated: %zu fields", json_object_size(c->spec));
    json_t *data = json_pack("{s:b, s:b, s:b}", "operation_validated", 1, "envelope_parsed", 1, "json_valid", 1);
    json_object_set_new(data, "correlation_id", c->correlation_id ? json_string(c->correlation_id) : json_null());
    json_t *tf = json_object_get(c->spec, "test_field"), *tn = json_object_get(c->spec, "test_number");
    if (tf) json_object_set(data, "test_field_echo", tf);
    if (tn) json_object_set(data, "test_number_echo", tn);
    sim_log(c, "Noop-test completed successfully");
    snprintf(message, mlen, "Noop-test operation completed successfully");
    return data;
}

void sim_effect(SimOpCtx *x, const char *vm_id, const char *vm_name)
{
    json_array_append_new(x->effects, json_pack("{s:s?, s:s?}", "vm_id", vm_id, "vm_name", vm_name));
}
