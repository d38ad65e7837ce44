/* Simhost device operations: disk.create (blank or cloned from a golden
 * image, attached at the next free controller slot), nic.create (switch,
 * VLAN, a 00:15:5D MAC) and vm.initialize (the guest KVP hand-shake; key
 * names recorded, never values). Repeated, Main-NewProtocol.ps1 attaches
 * another disk or adapter each time; see README.md for its answers. */
#include "simhost.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The vm.initialize keys of contract §7, in Aether-V's order. */
static const char *const GUEST_KEYS[] = {"guest_la_uid",          "guest_la_pw",          "guest_domain_join_target",
                                         "guest_domain_join_uid", "guest_domain_join_pw", "guest_domain_join_ou",
                                         "cnf_ansible_ssh_user",  "cnf_ansible_ssh_key",  "guest_v4_ip_addr",
                                         "guest_v4_cidr_prefix",  "guest_v4_default_gw",  "guest_v4_dns1",
                                         "guest_v4_dns2",         "guest_net_dns_suffix", NULL};

static void upper(char *s)
{
    for (; *s; s++) *s = (char)toupper((unsigned char)*s);
}

static json_t *vm_for(SimOpCtx *x, const char *op)
{
    SimCall *c = x->call;
    const char *vm_id = sim_spec_str(c, "vm_id");
    sim_log(c, "Executing %s operation", op);
    sim_log(c, "Correlation ID: %s", c->correlation_id ? c->correlation_id : "");
    json_t *vm = sim_vm_by_id(x->state, vm_id);
    if (!vm) sim_fail(c, NULL, "VM with ID '%s' not found on this host", vm_id ? vm_id : "");
    return vm;
}

static bool disk_path_used(json_t *state, const char *path)
{
    size_t i, j;
    json_t *vm, *d;
    json_array_foreach(json_object_get(state, "vms"), i, vm)
    {
        json_array_foreach(json_object_get(vm, "drives"), j, d)
        {
            if (sim_strieq(json_string_value(json_object_get(d, "path")), path)) return true;
        }
    }
    json_array_foreach(json_object_get(state, "orphan_disks"), i, d)
    {
        if (sim_strieq(json_string_value(d), path)) return true;
    }
    return false;
}

static bool slot_used(json_t *vm, const char *ctype, int64_t num, int64_t loc)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(vm, "drives"), i, d)
    {
        if (sim_strieq(json_string_value(json_object_get(d, "controller_type")), ctype) &&
            json_integer_value(json_object_get(d, "controller_number")) == num &&
            json_integer_value(json_object_get(d, "controller_location")) == loc)
            return true;
    }
    return false;
}

/* A generation 2 VM has one SCSI controller with 64 locations; IDE (for the
 * rare generation 1 image) has two controllers of two locations. */
static bool next_slot(json_t *vm, const char *ctype, int64_t *num, int64_t *loc)
{
    int64_t ctrls = strcmp(ctype, "IDE") == 0 ? 2 : 1, locs = strcmp(ctype, "IDE") == 0 ? 2 : 64;
    for (int64_t n = 0; n < ctrls; n++)
        for (int64_t l = 0; l < locs; l++)
            if (!slot_used(vm, ctype, n, l)) {
                *num = n;
                *loc = l;
                return true;
            }
    return false;
}

static size_t sim_adapters_named(json_t *vm, const char *name)
{
    size_t i, k = 0;
    json_t *n;
    json_array_foreach(json_object_get(vm, "nics"), i, n)
    {
        k += sim_strieq(json_string_value(json_object_get(n, "name")), name);
    }
    return k;
}

/* The next address of Hyper-V's dynamic pool: 00-15-5D, a byte of the host,
 * then a counter; as "00:15:5D:..." (the shim's answers) or "00155D..."
 * (Hyper-V's MacAddress property). */
static bool sim_next_mac(SimOpCtx *x, bool hyperv_form, char mac[18])
{
    json_int_t seq = json_integer_value(json_object_get(x->state, "mac_seq")) + 1;
    if (seq > 0xFFFF) {
        sim_fail(x->call, NULL, "The dynamic MAC address pool of this host is exhausted");
        return false;
    }
    json_object_set_new(x->state, "mac_seq", json_integer(seq));
    unsigned hb = (unsigned)(sim_hash(0, x->host) & 0xFF);
    snprintf(mac, 18, hyperv_form ? "00155D%02X%02X%02X" : "00:15:5D:%02X:%02X:%02X", hb, (unsigned)((seq >> 8) & 0xFF),
             (unsigned)(seq & 0xFF));
    return true;
}

json_t *sim_op_disk_create(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    json_t *vm = vm_for(x, "disk.create");
    if (!vm) return NULL;
    const char *vm_id = json_string_value(json_object_get(vm, "id"));
    const char *vm_name = json_string_value(json_object_get(vm, "name"));
    const char *image = sim_spec_str(c, "image_name");
    int64_t size_gb = 100;
    if (json_object_get(c->spec, "disk_size_gb") && !json_is_null(json_object_get(c->spec, "disk_size_gb")) &&
        (!sim_spec_int(c, "disk_size_gb", &size_gb) || size_gb < 1 || size_gb > 65536)) {
        sim_fail(c, NULL, "disk_size_gb must be an integer from 1 to 65536");
        return NULL;
    }
    const char *dtype = sim_spec_str(c, "disk_type");
    if (!dtype) dtype = "Dynamic";
    if (sim_strieq(dtype, "dynamic"))
        dtype = "Dynamic";
    else if (sim_strieq(dtype, "fixed"))
        dtype = "Fixed";
    else {
        sim_fail(c, NULL, "Invalid disk_type '%s': expected Dynamic or Fixed", dtype);
        return NULL;
    }
    const char *ctype = sim_spec_str(c, "controller_type");
    if (!ctype) ctype = "SCSI";
    if (sim_strieq(ctype, "scsi"))
        ctype = "SCSI";
    else if (sim_strieq(ctype, "ide"))
        ctype = "IDE";
    else {
        sim_fail(c, NULL,
                 "Cannot validate argument on parameter 'ControllerType'. The argument \"%s\" does not "
                 "belong to the set \"IDE,SCSI\"",
                 ctype);
        return NULL;
    }
    sim_log(c, "Creating disk for VM '%s' (ID: %s)", vm_name, vm_id);

    /* The deprecated per-disk storage class is honoured when known, else the VM's. */
    const SimStorageClass *sc = sim_storage_find(x->res, sim_spec_str(c, "storage_class"));
    const char *storage = sc ? sc->path : json_string_value(json_object_get(vm, "storage_path"));
    char path[1024], guid[37];
    sim_guid_random(guid);
    if (image) {
        const SimImage *im = sim_image_find(x->res, image);
        if (!im) {
            sim_fail(c, NULL, "Golden image '%s' not found at %s\\%s.vhdx", image, x->res->images_path, image);
            return NULL;
        }
        sim_log(c, "Cloning from golden image: %s", im->name);
        snprintf(path, sizeof path, "%s\\%s-%.8s.vhdx", storage, im->name, guid);
        image = im->name;
    } else {
        sim_log(c, "Creating blank %lldGB disk", (long long)size_gb);
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(path, sizeof path, "%s\\%s-disk-%s.vhdx", storage, vm_name, stamp);
        if (c->flavor == SIM_FLAVOR_AETHER && disk_path_used(x->state, path)) {
            /* New-VHD on the path of a disk made in the same second. */
            snprintf(c->error_type, sizeof c->error_type, "VirtualizationException");
            sim_fail(c, NULL,
                     "Failed to create the virtual hard disk. The system failed to create '%s': The file exists. "
                     "(0x80070050)",
                     path);
            return NULL;
        }
        for (int n = 2; disk_path_used(x->state, path); n++)
            snprintf(path, sizeof path, "%s\\%s-disk-%s-%d.vhdx", storage, vm_name, stamp, n);
    }
    int64_t num = 0, loc = 0;
    if (!next_slot(vm, ctype, &num, &loc)) {
        sim_fail(c, NULL, "No free %s controller location on VM '%s'", ctype, vm_name);
        return NULL;
    }
    sim_log(c, "VHDX created at: %s", path);
    sim_log(c, "Attaching disk to %s controller %lld at location %lld", ctype, (long long)num, (long long)loc);

    char vmu[37], gu[37], disk_id[160];
    snprintf(vmu, sizeof vmu, "%s", vm_id);
    snprintf(gu, sizeof gu, "%s", guid);
    upper(vmu);
    upper(gu);
    snprintf(disk_id, sizeof disk_id, "Microsoft:%s\\%s\\%lld\\%lld\\D", vmu, gu, (long long)num, (long long)loc);
    json_t *drive =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s?}", "kind", "disk", "id", disk_id, "path", path,
                  "controller_type", ctype, "controller_number", (json_int_t)num, "controller_location",
                  (json_int_t)loc, "size_gb", (json_int_t)size_gb, "disk_type", dtype, "image_name", image);
    json_array_append_new(json_object_get(vm, "drives"), drive);
    sim_effect(x, vm_id, vm_name);
    sim_log(c, "Disk created and attached successfully");
    snprintf(message, mlen, "Disk created and attached to VM '%s'", vm_name);
    if (c->flavor == SIM_FLAVOR_AETHER)
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "disk_id", disk_id, "disk_path", path, "vm_id", vm_id, "vm_name",
                         vm_name, "status", "created");
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s?, s:s}", "disk_id", disk_id, "disk_path", path,
                     "vm_id", vm_id, "vm_name", vm_name, "controller_type", ctype, "controller_number", (json_int_t)num,
                     "controller_location", (json_int_t)loc, "disk_size_gb", (json_int_t)size_gb, "disk_type", dtype,
                     "image_name", image, "status", "created");
}

json_t *sim_op_nic_create(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    json_t *vm = vm_for(x, "nic.create");
    if (!vm) return NULL;
    const char *vm_id = json_string_value(json_object_get(vm, "id"));
    const char *vm_name = json_string_value(json_object_get(vm, "name"));
    const char *network = sim_spec_str(c, "network");
    sim_log(c, "Creating network adapter for VM '%s' (ID: %s)", vm_name, vm_id);
    const SimNetwork *nw = sim_network_find(x->res, network);
    if (!nw) {
        sim_fail(c, NULL, "Network '%s' not found in host configuration", network ? network : "");
        return NULL;
    }

    json_t *nics = json_object_get(vm, "nics");
    bool aether = c->flavor == SIM_FLAVOR_AETHER;
    char name[256];
    const char *given = sim_spec_str(c, "adapter_name");
    if (given)
        snprintf(name, sizeof name, "%s", given);
    else
        snprintf(name, sizeof name, "Network Adapter %zu", json_array_size(nics) + 1);
    size_t i;
    json_t *n;
    json_array_foreach(nics, i, n)
    {
        /* Hyper-V allows two adapters of one name; the shim refuses. */
        if (!aether && sim_strieq(json_string_value(json_object_get(n, "name")), name)) {
            sim_fail(c, NULL, "A network adapter named '%s' already exists on VM '%s'", name, vm_name);
            return NULL;
        }
    }
    char mac[18];
    if (aether) {
        /* A dynamic MAC is assigned when the VM first starts (vm.initialize). */
        snprintf(mac, sizeof mac, "000000000000");
    } else if (!sim_next_mac(x, false, mac)) {
        return NULL;
    }

    sim_log(c, "Adding adapter '%s' to switch '%s'", name, nw->virtual_switch);
    if (nw->has_vlan) sim_log(c, "Setting VLAN ID to %lld", (long long)nw->vlan_id);
    char guid[37], vmu[37], nic_id[128];
    sim_guid_random(guid);
    upper(guid);
    snprintf(vmu, sizeof vmu, "%s", vm_id);
    upper(vmu);
    snprintf(nic_id, sizeof nic_id, "Microsoft:%s\\%s", vmu, guid);
    json_t *vlan = nw->has_vlan ? json_integer(nw->vlan_id) : json_null();
    json_array_append_new(nics,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "id", nic_id, "name", name, "mac_address", mac,
                                    "network", nw->name, "virtual_switch", nw->virtual_switch, "vlan_id", vlan));
    sim_effect(x, vm_id, vm_name);
    sim_log(c, "Network adapter created successfully");
    snprintf(message, mlen, "Network adapter created for VM '%s'", vm_name);
    json_t *ids = json_string(nic_id), *macs = json_string(mac);
    if (aether && sim_adapters_named(vm, name) > 1) {
        /* Get-VMNetworkAdapter -Name returns every adapter of the name, so
         * $newAdapter.Id and .MacAddress are arrays. */
        json_decref(ids);
        json_decref(macs);
        ids = json_array();
        macs = json_array();
        json_array_foreach(nics, i, n)
        {
            if (!sim_strieq(json_string_value(json_object_get(n, "name")), name)) continue;
            json_array_append(ids, json_object_get(n, "id"));
            json_array_append(macs, json_object_get(n, "mac_address"));
        }
    }
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s}", "nic_id", ids, "adapter_name", name, "vm_id",
                     vm_id, "vm_name", vm_name, "network", nw->name, "virtual_switch", nw->virtual_switch, "vlan_id",
                     vlan, "mac_address", macs, "status", "created");
}

static bool key_present(const SimCall *c, const char *key)
{
    json_t *v = json_object_get(c->spec, key);
    if (!v || json_is_null(v)) return false;
    if (json_is_string(v)) return json_string_length(v) > 0;
    return true;
}

/* Start-VM: the VM runs, and adapters whose dynamic MAC is not assigned yet
 * get one from the pool. */
static bool start_vm(SimOpCtx *x, json_t *vm)
{
    json_object_set_new(vm, "state", json_string("Running"));
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(vm, "nics"), i, n)
    {
        char mac[18];
        if (strcmp(json_string_value(json_object_get(n, "mac_address")), "000000000000") != 0) continue;
        if (!sim_next_mac(x, true, mac)) return false;
        json_object_set_new(n, "mac_address", json_string(mac));
    }
    return true;
}

json_t *sim_op_vm_initialize(SimOpCtx *x, char *message, size_t mlen)
{
    SimCall *c = x->call;
    bool aether = c->flavor == SIM_FLAVOR_AETHER;
    if (!sim_spec_str(c, "vm_id")) {
        sim_fail(c, NULL, "vm_id is required for guest initialization");
        return NULL;
    }
    if (!sim_spec_str(c, "vm_name")) {
        sim_fail(c, NULL, "vm_name is required for guest initialization");
        return NULL;
    }
    json_t *vm = vm_for(x, "vm.initialize");
    if (!vm) return NULL;
    const char *vm_id = json_string_value(json_object_get(vm, "id"));
    const char *vm_name = json_string_value(json_object_get(vm, "name"));
    if (!key_present(c, "guest_la_uid")) {
        sim_fail(c, NULL,
                 aether ? "guest_la_uid is required for guest initialization"
                        : "VM guest initialization failed: guest_la_uid is required");
        return NULL;
    }
    char iso[1024];
    snprintf(iso, sizeof iso, "%s\\%s\\%s-provisioning.iso", json_string_value(json_object_get(vm, "storage_path")),
             vm_name, json_string_value(json_object_get(vm, "os_family")));
    sim_noise(c, "Copied provisioning ISO to %s", iso);
    json_t *kvp = json_object_get(vm, "kvp");
    const char *kstate = json_string_value(json_object_get(kvp, "state"));
    if (kstate && strcmp(kstate, "applied") == 0) {
        if (aether) {
            /* Sent again: the guest has provisioned and never asks for the key
             * again; the script's wait of 300 s is not simulated. */
            sim_noise(c, "Preparing KVP channel for VM '%s'...", vm_name);
            sim_noise(c, "Waiting up to 300 seconds for guest provisioning readiness...");
            c->error_func = "Invoke-ProvisioningWaitForProvisioningKey";
            c->error_file = "Provisioning.WaitForProvisioningKey.ps1";
            c->error_line = 120;
            sim_fail(c, NULL,
                     "Guest on VM '%s' did not reach 'waitingforaeskey' within 300 seconds. Final state: "
                     "'applied', Public key: received.",
                     vm_name);
        } else {
            sim_fail(c, NULL,
                     "VM guest initialization failed: Guest did not signal readiness for provisioning "
                     "(VM '%s' is already provisioned)",
                     vm_name);
        }
        return NULL;
    }
    if (aether && !key_present(c, "guest_la_pw")) {
        sim_fail(c, NULL, "guest_la_pw is required for guest initialization");
        return NULL;
    }
    sim_log(c, "Step 2: Starting VM...");
    if (!start_vm(x, vm)) return NULL;
    sim_noise(c, "Preparing KVP channel for VM '%s'...", vm_name);
    sim_noise(c, "Waiting up to 300 seconds for guest provisioning readiness...");
    sim_noise(c, "Guest signalled readiness for AES key exchange.");
    json_t *history = json_object_get(kvp, "history");
    static const char *const STATES[] = {"waitingforpublickey", "provisioningdatapublished", "applied"};
    json_t *keys = json_array();
    for (size_t i = 0; GUEST_KEYS[i]; i++)
        if (key_present(c, GUEST_KEYS[i])) json_array_append_new(keys, json_string(GUEST_KEYS[i]));
    for (size_t i = 0; i < 3; i++) {
        char now[32];
        sim_now_rfc3339(now);
        json_array_append_new(history, json_pack("{s:s, s:s}", "state", STATES[i], "at", now));
        sim_log(c, "Guest provisioning state: %s", STATES[i]);
        if (i == 0) sim_log(c, "Step 4: Publishing provisioning data to guest (%zu keys)", json_array_size(keys));
    }
    json_object_set_new(kvp, "state", json_string("applied"));
    json_object_set(kvp, "keys", keys);
    sim_effect(x, vm_id, vm_name);
    sim_log(c, "Guest provisioning completed successfully");
    snprintf(message, mlen, "VM '%s' guest initialization completed successfully", vm_name);
    if (aether) {
        json_decref(keys);
        return json_pack("{s:s, s:s, s:s, s:s}", "vm_id", vm_id, "vm_name", vm_name, "status", "initialized",
                         "provisioning_iso_path", iso);
    }
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "vm_id", vm_id, "vm_name", vm_name, "keys", keys,
                     "provisioning_state", "applied", "status", "initialized");
}
