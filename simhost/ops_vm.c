/* Simhost VM operations with Hyper-V's semantics: vm.create (GUID id, name
 * unique per host, storage class, provisioning ISO on SCSI 0:0), vm.delete
 * (with or without its disks) and noop-test, answering as Main-NewProtocol.ps1. */
#include "simhost.h"
#include <stdio.h>
#include <string.h>

static const char *const KNOWN_OPS[] = {"vm.create", "disk.create", "nic.create", "vm.initialize",
                                        "vm.delete", "noop-test",   NULL};

bool sim_op_known(const char *operation)
{
    for (size_t i = 0; KNOWN_OPS[i]; i++)
        if (strcmp(operation, KNOWN_OPS[i]) == 0) return true;
    return false;
}

bool sim_op_mutates(const char *operation)
{
    return sim_op_known(operation) && strcmp(operation, "noop-test") != 0;
}

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

static const char *vm_name_problem(const char *name)
{
    if (strlen(name) > 100) return "the name is longer than 100 characters";
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
    if (sim_vm_by_name(x->state, name)) {
        sim_fail(c, NULL, "A VM named '%s' already exists on this host", name);
        return NULL;
    }
    const char *os = sim_spec_str(c, "os_family");
    if (!os || (strcmp(os, "linux") != 0 && strcmp(os, "windows") != 0)) os = "windows";
    json_t *clustered = json_object_get(c->spec, "vm_clustered");

    char id[37], now[32], vm_path[1024], iso[1024];
    sim_guid_random(id);
    sim_now_rfc3339(now);
    snprintf(vm_path, sizeof vm_path, "%s\\%s", x->res->vm_path, name);
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
    json_array_append_new(json_object_get(x->state, "vms"), vm);
    sim_log(c, "VM created successfully with ID: %s", id);

    snprintf(message, mlen, "VM '%s' created successfully", name);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "vm_id", id, "vm_name", name, "status", "created",
                     "storage_class", sc->name, "os_family", os, "gb_ram", (json_int_t)gb_ram, "cpu_cores",
                     (json_int_t)cpu, "vm_path", vm_path, "provisioning_iso_path", iso);
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

    json_t *vm = vm_id ? sim_vm_by_id(x->state, vm_id) : sim_vm_by_name(x->state, name);
    if (!vm) {
        sim_fail(c, NULL, "VM not found: %s", name ? name : (vm_id ? vm_id : ""));
        return NULL;
    }
    char real_id[64], real_name[256];
    snprintf(real_id, sizeof real_id, "%s", json_string_value(json_object_get(vm, "id")));
    snprintf(real_name, sizeof real_name, "%s", json_string_value(json_object_get(vm, "name")));
    if (strcmp(json_string_value(json_object_get(vm, "state")), "Off") != 0) sim_log(c, "Stopping VM...");

    json_t *deleted = json_array(), *kept = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(vm, "drives"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "kind")), "disk") != 0) continue;
        json_t *path = json_object_get(d, "path");
        if (delete_disks) {
            json_array_append(deleted, path);
            sim_log(c, "VHDX file deleted: %s", json_string_value(path));
        } else {
            json_array_append(kept, path);
            json_array_append(json_object_get(x->state, "orphan_disks"), path);
        }
    }
    sim_log(c, "Removing VM...");
    json_t *vms = json_object_get(x->state, "vms");
    json_array_foreach(vms, i, d)
    {
        if (d == vm) {
            json_array_remove(vms, i);
            break;
        }
    }
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
