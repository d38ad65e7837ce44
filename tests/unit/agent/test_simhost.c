/* Tests of hvdeploy-simhost (contract §6): every operation and its errors as
 * Main-NewProtocol.ps1 words them, idempotency, concurrent calls on one host,
 * crashes before and after the effect, kills at random instants, and fault
 * injection that is reproducible under a seed. The simhost is run through
 * the agent transport, exactly as the worker runs it. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "buf.h"
#include "codec.h"
#include "model.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hvd-simhost-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char *rm = hvd_xasprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(rm);
}

TestSuite(simhost, .init = setup, .fini = teardown);

static char *simhost_path(void)
{
    char *p = hvd_xasprintf("%s/hvdeploy-simhost", HVD_BIN_DIR);
    cr_assert(access(p, X_OK) == 0, "%s is not built (run a full cmake --build)", p);
    return p;
}

/* One call of the simhost. args are extra arguments; spec is JSON text; key
 * may be NULL. */
static HvdOutcome sim_call(const char *args, const char *op, const char *spec, const char *key, int attempt,
                           int64_t timeout_ms, HvdAgentResult *res)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *bin = simhost_path();
    char *cmd = hvd_xasprintf("%s --state-dir %s %s", bin, dir, args ? args : "");
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err), "%s", err);
    int64_t limit = timeout_ms > 0 ? timeout_ms : 10000;
    /* "*" is the default of operations without their own; vm.create has one (300 s) */
    cr_assert(hvd_agent_cfg_set_timeout(&cfg, "*", limit) && hvd_agent_cfg_set_timeout(&cfg, op, limit));
    HvdBuf req = {0};
    hvd_buf_printf(&req,
                   "{\"operation\":\"%s\",\"resource_spec\":%s,\"correlation_id\":\"corr-%s\","
                   "\"metadata\":{\"timestamp\":\"2024-01-01T00:00:00Z\",\"host\":\"hv01\",\"job_id\":\"j\","
                   "\"stage\":\"%s\",\"attempt\":%d",
                   op, spec, op, op, attempt);
    if (key) hvd_buf_printf(&req, ",\"idempotency_key\":\"%s\"", key);
    hvd_buf_puts(&req, "}}\n");
    HvdOutcome o = hvd_agent_call(&cfg, "hv01", op, req.data, req.len, res);
    hvd_buf_free(&req);
    free(cmd);
    free(bin);
    hvd_agent_cfg_free(&cfg);
    return o;
}

static HvdOutcome call(const char *op, const char *spec, const char *key, HvdAgentResult *res)
{
    return sim_call(NULL, op, spec, key, 1, 0, res);
}

#define ASSERT_OK(res)                                                                                      \
    cr_assert_eq((res).outcome, HVD_OUT_SUCCESS, "%s: %s / %s; stderr %s", hvd_outcome_name((res).outcome), \
                 (res).detail, (res).message ? (res).message : "-", (res).stderr_tail)

static void assert_error(HvdAgentResult *res, const char *code, const char *message)
{
    cr_assert_eq(res->outcome, HVD_OUT_AGENT_ERROR, "%s: %s", hvd_outcome_name(res->outcome), res->detail);
    cr_assert_str_eq(res->status, "error");
    cr_assert_str_eq(res->code, code);
    cr_assert_not_null(res->message);
    cr_assert(strstr(res->message, message) != NULL, "message '%s' lacks '%s'", res->message, message);
}

static char *data_str(const HvdAgentResult *res, const char *key)
{
    const char *s = hvd_node_get_str(res->data, key);
    cr_assert_not_null(s, "data.%s missing", key);
    return hvd_xstrdup(s);
}

static int64_t data_int(const HvdAgentResult *res, const char *key)
{
    int64_t v = -1;
    cr_assert(hvd_node_get_int(res->data, key, &v), "data.%s missing", key);
    return v;
}

static char *create_vm(const char *name, const char *key)
{
    HvdAgentResult res;
    char *spec = hvd_xasprintf("{\"vm_name\":\"%s\",\"gb_ram\":4,\"cpu_cores\":2,\"storage_class\":\"fast-ssd\","
                               "\"vm_clustered\":false,\"os_family\":\"linux\"}",
                               name);
    call("vm.create", spec, key, &res);
    ASSERT_OK(res);
    char *id = data_str(&res, "vm_id");
    hvd_agent_result_free(&res);
    free(spec);
    return id;
}

static json_t *load_state(void)
{
    char *p = hvd_xasprintf("%s/hv01/state.json", dir);
    json_error_t je;
    json_t *st = json_load_file(p, 0, &je);
    cr_assert_not_null(st, "state.json unreadable: %s", je.text);
    free(p);
    return st;
}

/* Lines of effects.jsonl (each must be a JSON object with the four keys). */
static size_t count_effects(const char *op)
{
    char *p = hvd_xasprintf("%s/hv01/effects.jsonl", dir);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) return 0;
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *e = json_loads(line, 0, NULL);
        cr_assert_not_null(e, "bad effects line: %s", line);
        cr_assert(json_object_get(e, "op") && json_object_get(e, "idempotency_key") && json_object_get(e, "vm_id") &&
                      json_object_get(e, "at"),
                  "effects line lacks a key: %s", line);
        if (!op || strcmp(json_string_value(json_object_get(e, "op")), op) == 0) n++;
        json_decref(e);
    }
    fclose(f);
    return n;
}

/* ---- noop, unknown operations, malformed input ---- */

Test(simhost, noop_test_answers_success_and_echoes_correlation)
{
    HvdAgentResult res;
    call("noop-test", "{\"test_field\":\"x\",\"test_number\":7}", NULL, &res);
    ASSERT_OK(res);
    cr_assert_str_eq(res.correlation_id, "corr-noop-test");
    cr_assert_str_eq(res.message, "Noop-test operation completed successfully");
    cr_assert_str_eq(hvd_node_get_str(res.data, "test_field_echo"), "x");
    cr_assert_eq(data_int(&res, "test_number_echo"), 7);
    const HvdNode *code = hvd_node_get(res.envelope, "code");
    cr_assert(code && code->type == HVD_NIL, "code is null on success");
    cr_assert(res.logs && res.logs->type == HVD_ARRAY);
    cr_assert_eq(count_effects(NULL), 0);
    hvd_agent_result_free(&res);
}

Test(simhost, unknown_operation_is_an_error_envelope)
{
    HvdAgentResult res;
    call("vm.explode", "{}", "k1", &res);
    assert_error(&res, "UNSUPPORTED_OPERATION", "Operation error: Unsupported operation: vm.explode");
    cr_assert_str_eq(res.correlation_id, "corr-vm.explode");
    cr_assert(res.exited && res.exit_code == 0);
    hvd_agent_result_free(&res);
}

static HvdOutcome raw_call(const char *args, const char *input, HvdAgentResult *res)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *bin = simhost_path();
    char *cmd = hvd_xasprintf("%s --state-dir %s %s", bin, dir, args ? args : "");
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err));
    HvdOutcome o = hvd_agent_call(&cfg, NULL, "x", input, strlen(input), res);
    free(cmd);
    free(bin);
    hvd_agent_cfg_free(&cfg);
    return o;
}

Test(simhost, malformed_requests)
{
    HvdAgentResult res;
    raw_call(NULL, "", &res);
    assert_error(&res, "OPERATION_ERROR", "No input received");
    hvd_agent_result_free(&res);
    raw_call(NULL, "{not json\n", &res);
    assert_error(&res, "OPERATION_ERROR", "Failed to parse JSON envelope");
    hvd_agent_result_free(&res);
    raw_call(NULL, "{\"resource_spec\":{}}\n", &res);
    assert_error(&res, "OPERATION_ERROR", "Job envelope missing required field: operation");
    hvd_agent_result_free(&res);
    raw_call(NULL, "{\"operation\":\"noop-test\"}\n", &res);
    assert_error(&res, "OPERATION_ERROR", "Job envelope missing required field: resource_spec");
    hvd_agent_result_free(&res);
    /* No host at all, and a host that is not a safe directory name. */
    raw_call(NULL, "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1}}\n",
             &res);
    assert_error(&res, "OPERATION_ERROR", "No host");
    hvd_agent_result_free(&res);
    raw_call(NULL,
             "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1},"
             "\"metadata\":{\"host\":\"../../etc\"}}\n",
             &res);
    assert_error(&res, "OPERATION_ERROR", "Invalid host name");
    hvd_agent_result_free(&res);
    struct stat sb;
    char *p = hvd_xasprintf("%s/../../etc", dir);
    cr_assert(stat(dir, &sb) == 0);
    free(p);
}

Test(simhost, host_from_flag_wins_over_metadata)
{
    HvdAgentResult res;
    raw_call("--host other-host",
             "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"a\",\"gb_ram\":1,"
             "\"cpu_cores\":1},\"metadata\":{\"host\":\"hv01\"}}\n",
             &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    char *p = hvd_xasprintf("%s/other-host/state.json", dir);
    cr_assert(access(p, F_OK) == 0);
    free(p);
    p = hvd_xasprintf("%s/hv01", dir);
    cr_assert(access(p, F_OK) != 0);
    free(p);
}

/* ---- vm.create ---- */

Test(simhost, vm_create_success)
{
    HvdAgentResult res;
    call("vm.create",
         "{\"vm_name\":\"web-01\",\"gb_ram\":4,\"cpu_cores\":2,\"storage_class\":\"fast-ssd\","
         "\"os_family\":\"linux\"}",
         "job1:vm.create", &res);
    ASSERT_OK(res);
    char *id = data_str(&res, "vm_id");
    cr_assert(hvd_uuid_valid(id, strlen(id)), "vm_id %s is not a GUID", id);
    cr_assert_str_eq(hvd_node_get_str(res.data, "vm_name"), "web-01");
    cr_assert_str_eq(hvd_node_get_str(res.data, "storage_class"), "fast-ssd");
    cr_assert_str_eq(hvd_node_get_str(res.data, "os_family"), "linux");
    cr_assert_str_eq(res.message, "VM 'web-01' created successfully");
    cr_assert_str_eq(res.correlation_id, "corr-vm.create");
    cr_assert_eq(count_effects("vm.create"), 1);
    json_t *st = load_state();
    json_t *vm = json_array_get(json_object_get(st, "vms"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(vm, "id")), id);
    cr_assert_eq(json_integer_value(json_object_get(vm, "gb_ram")), 4);
    json_decref(st);
    free(id);
    hvd_agent_result_free(&res);
}

Test(simhost, vm_create_defaults_to_the_first_storage_class)
{
    HvdAgentResult res;
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":null}", "k", &res);
    ASSERT_OK(res);
    cr_assert_str_eq(hvd_node_get_str(res.data, "storage_class"), "fast-ssd");
    cr_assert_str_eq(hvd_node_get_str(res.data, "os_family"), "windows");
    hvd_agent_result_free(&res);
}

Test(simhost, vm_create_errors)
{
    HvdAgentResult res;
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":\"gold-nvme\"}", "k1", &res);
    assert_error(&res, "OPERATION_ERROR", "Operation error: Storage class 'gold-nvme' not found in host configuration");
    cr_assert_str_eq(hvd_node_get_str(res.data, "error_type"), "RuntimeException");
    hvd_agent_result_free(&res);
    call("vm.create", "{\"gb_ram\":1,\"cpu_cores\":1}", "k2", &res);
    assert_error(&res, "OPERATION_ERROR", "vm_name is required");
    hvd_agent_result_free(&res);
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":0,\"cpu_cores\":1}", "k3", &res);
    assert_error(&res, "OPERATION_ERROR", "gb_ram");
    hvd_agent_result_free(&res);
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":\"many\"}", "k4", &res);
    assert_error(&res, "OPERATION_ERROR", "cpu_cores");
    hvd_agent_result_free(&res);
    call("vm.create", "{\"vm_name\":\"a/b\",\"gb_ram\":1,\"cpu_cores\":1}", "k5", &res);
    assert_error(&res, "OPERATION_ERROR", "Failed to create VM 'a/b'");
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 0, "a failure records no effect");
}

Test(simhost, vm_names_are_unique_per_host_case_insensitively)
{
    free(create_vm("web-01", "j1:vm.create"));
    HvdAgentResult res;
    call("vm.create", "{\"vm_name\":\"WEB-01\",\"gb_ram\":1,\"cpu_cores\":1}", "j2:vm.create", &res);
    assert_error(&res, "OPERATION_ERROR", "A VM named 'WEB-01' already exists on this host");
    hvd_agent_result_free(&res);
    /* Another host is another namespace. */
    raw_call("--host hv02",
             "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"web-01\",\"gb_ram\":1,"
             "\"cpu_cores\":1}}\n",
             &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 1);
}

/* ---- disk.create ---- */

Test(simhost, disk_create_blank_and_cloned_take_the_next_slots)
{
    char *vm = create_vm("db-01", "j:vm.create");
    HvdAgentResult res;
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":null,\"disk_size_gb\":50,\"disk_type\":\"Fixed\","
                               "\"controller_type\":\"SCSI\"}",
                               vm);
    call("disk.create", spec, "j:disk.create", &res);
    ASSERT_OK(res);
    cr_assert_str_eq(res.message, "Disk created and attached to VM 'db-01'");
    cr_assert_str_eq(hvd_node_get_str(res.data, "controller_type"), "SCSI");
    cr_assert_eq(data_int(&res, "controller_number"), 0);
    cr_assert_eq(data_int(&res, "controller_location"), 1, "location 0 holds the provisioning ISO");
    cr_assert_eq(data_int(&res, "disk_size_gb"), 50);
    char *path = data_str(&res, "disk_path");
    cr_assert(strstr(path, "C:\\ClusterStorage\\Volume1\\Storage\\db-01-disk-") == path, "%s", path);
    char *disk_id = data_str(&res, "disk_id");
    cr_assert(strncmp(disk_id, "Microsoft:", 10) == 0, "%s", disk_id);
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"ubuntu 22.04\"}", vm);
    call("disk.create", spec, "j:disk.create.2", &res);
    ASSERT_OK(res);
    cr_assert_eq(data_int(&res, "controller_location"), 2);
    cr_assert_str_eq(hvd_node_get_str(res.data, "image_name"), "Ubuntu 22.04");
    cr_assert(strstr(hvd_node_get_str(res.data, "disk_path"), "\\Ubuntu 22.04-") != NULL);
    cr_assert_str_neq(hvd_node_get_str(res.data, "disk_id"), disk_id);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects("disk.create"), 2);
    free(spec);
    free(path);
    free(disk_id);
    free(vm);
}

Test(simhost, disk_create_ide_has_four_slots)
{
    char *vm = create_vm("old-01", "j:vm.create");
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"controller_type\":\"IDE\"}", vm);
    static const int want[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    for (int i = 0; i < 4; i++) {
        HvdAgentResult res;
        char key[32];
        snprintf(key, sizeof key, "ide-%d", i);
        call("disk.create", spec, key, &res);
        ASSERT_OK(res);
        cr_assert_eq(data_int(&res, "controller_number"), want[i][0]);
        cr_assert_eq(data_int(&res, "controller_location"), want[i][1]);
        hvd_agent_result_free(&res);
    }
    HvdAgentResult res;
    call("disk.create", spec, "ide-5", &res);
    assert_error(&res, "OPERATION_ERROR", "No free IDE controller location on VM 'old-01'");
    hvd_agent_result_free(&res);
    free(spec);
    free(vm);
}

Test(simhost, disk_create_errors)
{
    char *vm = create_vm("a", "j:vm.create");
    HvdAgentResult res;
    call("disk.create", "{\"vm_id\":\"11111111-2222-4333-8444-555555555555\"}", "k1", &res);
    assert_error(&res, "OPERATION_ERROR", "VM with ID '11111111-2222-4333-8444-555555555555' not found on this host");
    hvd_agent_result_free(&res);
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"Windows 95\"}", vm);
    call("disk.create", spec, "k2", &res);
    assert_error(&res, "OPERATION_ERROR", "Golden image 'Windows 95' not found");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"controller_type\":\"NVMe\"}", vm);
    call("disk.create", spec, "k3", &res);
    assert_error(&res, "OPERATION_ERROR", "ControllerType");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"disk_size_gb\":0}", vm);
    call("disk.create", spec, "k4", &res);
    assert_error(&res, "OPERATION_ERROR", "disk_size_gb");
    hvd_agent_result_free(&res);
    free(spec);
    cr_assert_eq(count_effects("disk.create"), 0);
    free(vm);
}

/* ---- nic.create ---- */

Test(simhost, nic_create_switch_vlan_and_mac)
{
    char *vm = create_vm("web-01", "j:vm.create");
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"production\",\"adapter_name\":null}", vm);
    HvdAgentResult res;
    call("nic.create", spec, "j:nic.create", &res);
    ASSERT_OK(res);
    cr_assert_str_eq(res.message, "Network adapter created for VM 'web-01'");
    cr_assert_str_eq(hvd_node_get_str(res.data, "network"), "Production");
    cr_assert_str_eq(hvd_node_get_str(res.data, "virtual_switch"), "External-Switch");
    cr_assert_eq(data_int(&res, "vlan_id"), 100);
    cr_assert_str_eq(hvd_node_get_str(res.data, "adapter_name"), "Network Adapter 1");
    char *mac1 = data_str(&res, "mac_address");
    regex_t re;
    cr_assert_eq(regcomp(&re, "^00:15:5D:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2}$", REG_EXTENDED), 0);
    cr_assert_eq(regexec(&re, mac1, 0, NULL, 0), 0, "MAC %s", mac1);
    cr_assert(strncmp(hvd_node_get_str(res.data, "nic_id"), "Microsoft:", 10) == 0);
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"Management\",\"adapter_name\":\"mgmt\"}", vm);
    call("nic.create", spec, "j:nic.create.2", &res);
    ASSERT_OK(res);
    cr_assert_eq(data_int(&res, "vlan_id"), 10);
    cr_assert_str_eq(hvd_node_get_str(res.data, "adapter_name"), "mgmt");
    char *mac2 = data_str(&res, "mac_address");
    cr_assert_eq(regexec(&re, mac2, 0, NULL, 0), 0, "MAC %s", mac2);
    cr_assert_str_neq(mac1, mac2);
    hvd_agent_result_free(&res);
    call("nic.create", spec, "j:nic.create.3", &res);
    assert_error(&res, "OPERATION_ERROR", "A network adapter named 'mgmt' already exists");
    hvd_agent_result_free(&res);
    regfree(&re);
    free(spec);
    free(mac1);
    free(mac2);
    free(vm);
}

Test(simhost, nic_create_errors)
{
    char *vm = create_vm("a", "j:vm.create");
    HvdAgentResult res;
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"DMZ\"}", vm);
    call("nic.create", spec, "k1", &res);
    assert_error(&res, "OPERATION_ERROR", "Operation error: Network 'DMZ' not found in host configuration");
    hvd_agent_result_free(&res);
    call("nic.create", "{\"vm_id\":\"11111111-2222-4333-8444-555555555555\",\"network\":\"Production\"}", "k2", &res);
    assert_error(&res, "OPERATION_ERROR", "VM with ID '11111111-2222-4333-8444-555555555555' not found on this host");
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects("nic.create"), 0);
    free(spec);
    free(vm);
}

/* ---- vm.initialize ---- */

Test(simhost, vm_initialize_records_key_names_never_values)
{
    char *vm = create_vm("web-01", "j:vm.create");
    char *spec = hvd_xasprintf(
        "{\"vm_id\":\"%s\",\"vm_name\":\"web-01\",\"os_family\":\"linux\",\"guest_la_uid\":\"Administrator\","
        "\"guest_la_pw\":\"Sup3rS3cretPW\",\"cnf_ansible_ssh_user\":\"ansible\",\"cnf_ansible_ssh_key\":"
        "\"ssh-ed25519 AAAAsecretkeymaterial\",\"guest_v4_ip_addr\":\"10.0.0.20\",\"guest_v4_cidr_prefix\":24,"
        "\"guest_v4_default_gw\":\"10.0.0.1\",\"guest_v4_dns1\":\"10.0.0.2\",\"guest_v4_dns2\":\"\"}",
        vm);
    HvdAgentResult res;
    call("vm.initialize", spec, "j:vm.initialize", &res);
    ASSERT_OK(res);
    cr_assert_str_eq(res.message, "VM 'web-01' guest initialization completed successfully");
    const HvdNode *keys = hvd_node_get(res.data, "keys");
    cr_assert(keys && keys->type == HVD_ARRAY);
    static const char *want[] = {"guest_la_uid",        "guest_la_pw",      "cnf_ansible_ssh_user",
                                 "cnf_ansible_ssh_key", "guest_v4_ip_addr", "guest_v4_cidr_prefix",
                                 "guest_v4_default_gw", "guest_v4_dns1"};
    cr_assert_eq(keys->u.arr.n, 8);
    for (size_t i = 0; i < 8; i++) cr_assert_str_eq(keys->u.arr.items[i]->u.s.ptr, want[i]);
    char *answer = hvd_node_to_json(res.envelope);
    cr_assert_null(strstr(answer, "Sup3rS3cretPW"));
    cr_assert_null(strstr(answer, "secretkeymaterial"));
    free(answer);
    hvd_agent_result_free(&res);
    /* Nothing on disk holds a value either, and the hand-shake went through its states. */
    char *cmd = hvd_xasprintf("grep -rq -e Sup3rS3cretPW -e secretkeymaterial '%s'", dir);
    cr_assert_neq(system(cmd), 0, "a secret value was written to the state directory");
    free(cmd);
    json_t *st = load_state();
    json_t *kvp = json_object_get(json_array_get(json_object_get(st, "vms"), 0), "kvp");
    cr_assert_str_eq(json_string_value(json_object_get(kvp, "state")), "applied");
    json_t *hist = json_object_get(kvp, "history");
    cr_assert_eq(json_array_size(hist), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 0), "state")), "waitingforpublickey");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 1), "state")), "provisioningdatapublished");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hist, 2), "state")), "applied");
    json_decref(st);
    /* A guest that is already provisioned never asks for a key again. */
    call("vm.initialize", spec, "j:vm.initialize.again", &res);
    assert_error(&res, "OPERATION_ERROR", "Guest did not signal readiness");
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects("vm.initialize"), 1);
    free(spec);
    free(vm);
}

Test(simhost, vm_initialize_errors)
{
    HvdAgentResult res;
    call("vm.initialize", "{\"vm_name\":\"x\",\"guest_la_uid\":\"a\"}", "k1", &res);
    assert_error(&res, "OPERATION_ERROR", "vm_id is required for guest initialization");
    hvd_agent_result_free(&res);
    call("vm.initialize",
         "{\"vm_id\":\"11111111-2222-4333-8444-555555555555\",\"vm_name\":\"x\",\"guest_la_uid\":\"a\"}", "k2", &res);
    assert_error(&res, "OPERATION_ERROR", "VM with ID '11111111-2222-4333-8444-555555555555' not found on this host");
    hvd_agent_result_free(&res);
}

/* ---- vm.delete ---- */

Test(simhost, vm_delete_with_disks_frees_the_name)
{
    char *vm = create_vm("tmp-01", "j:vm.create");
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\"}", vm);
    HvdAgentResult res;
    call("disk.create", spec, "j:disk.create", &res);
    ASSERT_OK(res);
    char *path = data_str(&res, "disk_path");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"vm_name\":\"tmp-01\",\"delete_disks\":true}", vm);
    call("vm.delete", spec, "j:vm.delete", &res);
    ASSERT_OK(res);
    cr_assert_str_eq(res.message, "VM 'tmp-01' deleted successfully");
    const HvdNode *deleted = hvd_node_get(res.data, "deleted_disks");
    cr_assert(deleted && deleted->u.arr.n == 1);
    cr_assert_str_eq(deleted->u.arr.items[0]->u.s.ptr, path);
    hvd_agent_result_free(&res);
    call("vm.delete", spec, "j:vm.delete.2", &res);
    assert_error(&res, "OPERATION_ERROR", "VM not found: tmp-01");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\"}", vm);
    call("disk.create", spec, "j:disk.create.after", &res);
    assert_error(&res, "OPERATION_ERROR", "not found on this host");
    hvd_agent_result_free(&res);
    free(create_vm("tmp-01", "j2:vm.create")); /* the name is free again */
    cr_assert_eq(count_effects("vm.delete"), 1);
    json_t *st = load_state();
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 1);
    cr_assert_eq(json_array_size(json_object_get(st, "orphan_disks")), 0);
    json_decref(st);
    free(spec);
    free(path);
    free(vm);
}

Test(simhost, vm_delete_without_disks_keeps_them)
{
    char *vm = create_vm("keep-01", "j:vm.create");
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\"}", vm);
    HvdAgentResult res;
    call("disk.create", spec, "j:disk.create", &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xstrdup("{\"vm_name\":\"KEEP-01\"}");
    call("vm.delete", spec, "j:vm.delete", &res);
    ASSERT_OK(res);
    cr_assert_eq(hvd_node_get(res.data, "kept_disks")->u.arr.n, 1);
    hvd_agent_result_free(&res);
    json_t *st = load_state();
    cr_assert_eq(json_array_size(json_object_get(st, "orphan_disks")), 1);
    json_decref(st);
    free(spec);
    free(vm);
}

/* ---- host resources ---- */

Test(simhost, resources_file_in_aether_v_shape)
{
    char *args = hvd_xasprintf("--resources %s/tests/data/hostresources.json", HVD_SOURCE_DIR);
    HvdAgentResult res;
    sim_call(args, "vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":\"fast-ssd\"}", "k1",
             1, 0, &res);
    assert_error(&res, "OPERATION_ERROR", "Storage class 'fast-ssd' not found in host configuration");
    hvd_agent_result_free(&res);
    sim_call(args, "vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":\"silver\"}", "k2",
             1, 0, &res);
    ASSERT_OK(res);
    char *vm = data_str(&res, "vm_id");
    cr_assert(strstr(hvd_node_get_str(res.data, "vm_path"), "D:\\Gold\\VirtualMachines\\a") != NULL);
    hvd_agent_result_free(&res);
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"Lab\"}", vm);
    sim_call(args, "nic.create", spec, "k3", 1, 0, &res);
    ASSERT_OK(res);
    cr_assert_eq(data_int(&res, "vlan_id"), 42);
    cr_assert_str_eq(hvd_node_get_str(res.data, "virtual_switch"), "Lab-Switch");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"Flat\"}", vm);
    sim_call(args, "nic.create", spec, "k4", 1, 0, &res);
    ASSERT_OK(res);
    const HvdNode *vlan = hvd_node_get(res.data, "vlan_id");
    cr_assert(vlan && vlan->type == HVD_NIL, "a network without a VLAN answers vlan_id null");
    hvd_agent_result_free(&res);
    free(spec);
    /* No golden_images key: the sample images are used. */
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"Rocky Linux 9\"}", vm);
    sim_call(args, "disk.create", spec, "k5", 1, 0, &res);
    ASSERT_OK(res);
    cr_assert(strstr(hvd_node_get_str(res.data, "disk_path"), "E:\\Silver\\Storage\\Rocky Linux 9-") != NULL);
    hvd_agent_result_free(&res);
    free(spec);
    free(args);

    args = hvd_xasprintf("--resources %s/tests/data/hostresources-images.json", HVD_SOURCE_DIR);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"Ubuntu 22.04\"}", vm);
    sim_call(args, "disk.create", spec, "k6", 1, 0, &res);
    assert_error(&res, "OPERATION_ERROR", "Golden image 'Ubuntu 22.04' not found");
    hvd_agent_result_free(&res);
    free(spec);
    spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"debian 12\"}", vm);
    sim_call(args, "disk.create", spec, "k7", 1, 0, &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    free(spec);
    free(args);

    args = hvd_xasprintf("--resources %s/tests/data/hostresources-bad.json", HVD_SOURCE_DIR);
    sim_call(args, "vm.create", "{\"vm_name\":\"b\",\"gb_ram\":1,\"cpu_cores\":1}", "k8", 1, 0, &res);
    assert_error(&res, "SIM_CONFIG_ERROR", "storage_classes[0]");
    hvd_agent_result_free(&res);
    free(args);
    args = hvd_xasprintf("--resources %s/no-such-file.json", dir);
    sim_call(args, "vm.create", "{\"vm_name\":\"b\",\"gb_ram\":1,\"cpu_cores\":1}", "k9", 1, 0, &res);
    assert_error(&res, "SIM_CONFIG_ERROR", "Failed to read host configuration");
    hvd_agent_result_free(&res);
    free(args);
    free(vm);
}

/* ---- idempotency ---- */

Test(simhost, repeated_key_returns_the_first_answer_and_no_second_effect)
{
    const char *spec = "{\"vm_name\":\"idem-01\",\"gb_ram\":2,\"cpu_cores\":1}";
    HvdAgentResult a, b;
    sim_call(NULL, "vm.create", spec, "job-1:vm.create", 1, 0, &a);
    ASSERT_OK(a);
    sim_call(NULL, "vm.create", spec, "job-1:vm.create", 2, 0, &b);
    ASSERT_OK(b);
    cr_assert(hvd_node_equal(a.envelope, b.envelope), "the second answer differs");
    cr_assert_eq(count_effects(NULL), 1);
    json_t *st = load_state();
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 1);
    json_decref(st);
    /* The same key for another operation is refused. */
    HvdAgentResult c;
    char *dspec = hvd_xasprintf("{\"vm_id\":\"%s\"}", hvd_node_get_str(a.data, "vm_id"));
    sim_call(NULL, "disk.create", dspec, "job-1:vm.create", 1, 0, &c);
    assert_error(&c, "IDEMPOTENCY_KEY_REUSED", "already used for operation vm.create");
    cr_assert_eq(count_effects(NULL), 1);
    hvd_agent_result_free(&a);
    hvd_agent_result_free(&b);
    hvd_agent_result_free(&c);
    free(dspec);
}

Test(simhost, errors_are_not_stored_under_the_key)
{
    HvdAgentResult res;
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":\"nope\"}", "job:vm.create",
         &res);
    assert_error(&res, "OPERATION_ERROR", "Storage class 'nope'");
    hvd_agent_result_free(&res);
    call("vm.create", "{\"vm_name\":\"a\",\"gb_ram\":1,\"cpu_cores\":1}", "job:vm.create", &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
}

/* ---- concurrency ---- */

typedef struct {
    int i;
    HvdAgentResult res;
} Conc;

static void *conc_create(void *arg)
{
    Conc *c = arg;
    char spec[128], key[64];
    snprintf(spec, sizeof spec, "{\"vm_name\":\"conc-%02d\",\"gb_ram\":1,\"cpu_cores\":1}", c->i);
    snprintf(key, sizeof key, "job-%02d:vm.create", c->i);
    sim_call(NULL, "vm.create", spec, key, 1, 30000, &c->res);
    return NULL;
}

Test(simhost, sixteen_concurrent_calls_on_one_host)
{
    pthread_t t[16];
    Conc c[16];
    for (int i = 0; i < 16; i++) {
        c[i].i = i;
        pthread_create(&t[i], NULL, conc_create, &c[i]);
    }
    for (int i = 0; i < 16; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 16; i++) {
        ASSERT_OK(c[i].res);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(hvd_node_get_str(c[i].res.data, "vm_id"), hvd_node_get_str(c[j].res.data, "vm_id"));
    }
    json_t *st = load_state();
    json_t *vms = json_object_get(st, "vms");
    cr_assert_eq(json_array_size(vms), 16);
    char *ap = hvd_xasprintf("%s/hv01/answers.jsonl", dir);
    FILE *af = fopen(ap, "r");
    cr_assert_not_null(af);
    int lines = 0, ch;
    while ((ch = fgetc(af)) != EOF) lines += ch == '\n';
    fclose(af);
    free(ap);
    cr_assert_eq(lines, 16, "one stored answer per key");
    for (int i = 0; i < 16; i++) {
        char name[16];
        snprintf(name, sizeof name, "conc-%02d", i);
        int found = 0;
        size_t k;
        json_t *vm;
        json_array_foreach(vms, k, vm)
        {
            if (strcmp(json_string_value(json_object_get(vm, "name")), name) == 0) {
                found++;
                cr_assert_str_eq(json_string_value(json_object_get(vm, "id")),
                                 hvd_node_get_str(c[i].res.data, "vm_id"));
            }
        }
        cr_assert_eq(found, 1, "%s", name);
        hvd_agent_result_free(&c[i].res);
    }
    json_decref(st);
    cr_assert_eq(count_effects("vm.create"), 16);
}

/* ---- crashes ---- */

Test(simhost, crash_before_the_effect)
{
    const char *spec = "{\"vm_name\":\"crash-01\",\"gb_ram\":1,\"cpu_cores\":1}";
    setenv("HVD_SIM_CRASH", "vm.create=1:before", 1);
    HvdAgentResult res;
    sim_call(NULL, "vm.create", spec, "job:vm.create", 1, 0, &res);
    cr_assert_eq(res.outcome, HVD_OUT_TRANSPORT, "%s", res.detail);
    cr_assert_null(res.envelope);
    cr_assert_neq(res.exit_code, 0);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 0, "no effect before the crash");
    unsetenv("HVD_SIM_CRASH");
    sim_call(NULL, "vm.create", spec, "job:vm.create", 2, 0, &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 1);
    json_t *st = load_state();
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 1);
    json_decref(st);
}

Test(simhost, crash_after_the_effect)
{
    const char *spec = "{\"vm_name\":\"crash-02\",\"gb_ram\":1,\"cpu_cores\":1}";
    setenv("HVD_SIM_CRASH", "vm.create=1:after", 1);
    HvdAgentResult res;
    sim_call(NULL, "vm.create", spec, "job:vm.create", 1, 0, &res);
    cr_assert_eq(res.outcome, HVD_OUT_TRANSPORT, "%s", res.detail);
    cr_assert_null(res.envelope);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 1, "the effect is recorded although nobody heard of it");
    json_t *st = load_state();
    cr_assert_eq(json_array_size(json_object_get(st, "vms")), 1);
    const char *vm_id = json_string_value(json_object_get(json_array_get(json_object_get(st, "vms"), 0), "id"));
    unsetenv("HVD_SIM_CRASH");
    /* The retry with the same key hears the first answer; nothing happens twice. */
    sim_call(NULL, "vm.create", spec, "job:vm.create", 2, 0, &res);
    ASSERT_OK(res);
    cr_assert_str_eq(hvd_node_get_str(res.data, "vm_id"), vm_id);
    hvd_agent_result_free(&res);
    json_decref(st);
    cr_assert_eq(count_effects(NULL), 1);
}

Test(simhost, crash_before_and_after_for_one_operation)
{
    /* Both kinds for one operation: one draw picks at most one of them. */
    setenv("HVD_SIM_CRASH", "vm.create=0.5:before,vm.create=0.5:after", 1);
    setenv("HVD_SIM_SEED", "11", 1);
    int crashed = 0;
    for (int i = 0; i < 20; i++) {
        char spec[96], key[32];
        snprintf(spec, sizeof spec, "{\"vm_name\":\"both-%02d\",\"gb_ram\":1,\"cpu_cores\":1}", i);
        snprintf(key, sizeof key, "job%02d:vm.create", i);
        HvdAgentResult res;
        sim_call(NULL, "vm.create", spec, key, 1, 0, &res);
        cr_assert_eq(res.outcome, HVD_OUT_TRANSPORT, "probabilities adding up to 1 always crash: %s", res.detail);
        crashed++;
        hvd_agent_result_free(&res);
    }
    size_t after = count_effects(NULL);
    cr_assert(after > 0 && after < 20, "both kinds should occur in 20 draws: %zu effects", after);
    unsetenv("HVD_SIM_CRASH");
    unsetenv("HVD_SIM_SEED");
    cr_assert_eq(crashed, 20);
}

/* Kills the simhost at random instants during vm.create: the state must
 * always load, and effects.jsonl must end up with one line per VM. */
Test(simhost, kill_at_any_instant_never_corrupts_state, .timeout = 120)
{
    char *bin = simhost_path();
    srand(12345);
    for (int i = 0; i < 40; i++) {
        int in[2];
        cr_assert_eq(pipe(in), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            dup2(in[0], 0);
            close(in[0]);
            close(in[1]);
            int devnull = open("/dev/null", 1);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execl(bin, bin, "--state-dir", dir, "--host", "hv01", (char *)NULL);
            _exit(127);
        }
        close(in[0]);
        char req[256];
        int n = snprintf(req, sizeof req,
                         "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"k-%d\","
                         "\"gb_ram\":1,\"cpu_cores\":1},\"metadata\":{\"idempotency_key\":\"kill-%d\"}}\n",
                         i, i);
        cr_assert_eq(write(in[1], req, (size_t)n), n);
        close(in[1]);
        struct timespec ts = {0, (rand() % 4000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
    }
    free(bin);
    /* One more call repairs an effect committed but not yet appended. */
    HvdAgentResult res;
    call("noop-test", "{}", NULL, &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    call("vm.create", "{\"vm_name\":\"after-kills\",\"gb_ram\":1,\"cpu_cores\":1}", "after", &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    json_t *st = load_state();
    size_t vms = json_array_size(json_object_get(st, "vms"));
    cr_assert_geq(vms, 1);
    cr_assert_eq(count_effects("vm.create"), vms, "effects %zu vs VMs %zu", count_effects("vm.create"), vms);
    json_decref(st);
}

/* ---- fault injection ---- */

static void fail_pattern(int attempt, char *out, int n)
{
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "job-%d:noop-test", i);
        HvdAgentResult res;
        sim_call(NULL, "noop-test", "{}", key, attempt, 0, &res);
        if (res.outcome == HVD_OUT_RETRYABLE) {
            cr_assert_str_eq(res.code, "HOST_BUSY");
            cr_assert(strstr(res.message, "Injected failure") != NULL);
            out[i] = 'F';
        } else {
            ASSERT_OK(res);
            out[i] = '.';
        }
        hvd_agent_result_free(&res);
    }
    out[n] = '\0';
}

Test(simhost, faults_are_reproducible_under_a_seed)
{
    setenv("HVD_SIM_SEED", "42", 1);
    setenv("HVD_SIM_FAIL", "noop-test=0.5:HOST_BUSY", 1);
    char a[33], b[33], c[33];
    fail_pattern(1, a, 32);
    fail_pattern(1, b, 32);
    cr_assert_str_eq(a, b, "same seed, same draws");
    cr_assert(strchr(a, 'F') && strchr(a, '.'), "p=0.5 over 32 keys gives both: %s", a);
    fail_pattern(2, c, 32);
    cr_assert_str_neq(a, c, "a retry (next attempt) draws anew");
    setenv("HVD_SIM_SEED", "43", 1);
    fail_pattern(1, b, 32);
    cr_assert_str_neq(a, b, "another seed, other draws");
}

Test(simhost, fault_kinds_latency_fail_code_and_hang)
{
    setenv("HVD_SIM_LATENCY_MS", "*=300", 1);
    HvdAgentResult res;
    call("noop-test", "{}", "k", &res);
    ASSERT_OK(res);
    cr_assert_geq(res.elapsed_ms, 300);
    hvd_agent_result_free(&res);
    unsetenv("HVD_SIM_LATENCY_MS");

    setenv("HVD_SIM_FAIL", "vm.create=1", 1);
    call("vm.create", "{\"vm_name\":\"f\",\"gb_ram\":1,\"cpu_cores\":1}", "k", &res);
    assert_error(&res, "OPERATION_ERROR", "Injected failure");
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 0);
    call("noop-test", "{}", "k", &res);
    ASSERT_OK(res); /* other operations are untouched */
    hvd_agent_result_free(&res);
    unsetenv("HVD_SIM_FAIL");

    setenv("HVD_SIM_HANG", "noop-test=1", 1);
    sim_call(NULL, "noop-test", "{}", "k", 1, 500, &res);
    cr_assert_eq(res.outcome, HVD_OUT_TIMEOUT, "%s", res.detail);
    cr_assert_leq(res.elapsed_ms, 1500);
    hvd_agent_result_free(&res);
    /* ":after": the effect is applied, the answer never comes */
    setenv("HVD_SIM_HANG", "vm.create=1:after", 1);
    sim_call(NULL, "vm.create", "{\"vm_name\":\"h\",\"gb_ram\":1,\"cpu_cores\":1}", "kh", 1, 500, &res);
    cr_assert_eq(res.outcome, HVD_OUT_TIMEOUT, "%s", res.detail);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 1, "the hang came after the effect");
    setenv("HVD_SIM_HANG", "vm.create=1:later", 1);
    call("vm.create", "{\"vm_name\":\"h2\",\"gb_ram\":1,\"cpu_cores\":1}", "k2", &res);
    assert_error(&res, "SIM_CONFIG_ERROR", "HVD_SIM_HANG");
    hvd_agent_result_free(&res);
    unsetenv("HVD_SIM_HANG");

    setenv("HVD_SIM_CRASH", "vm.create=often", 1);
    call("vm.create", "{\"vm_name\":\"f\",\"gb_ram\":1,\"cpu_cores\":1}", "k", &res);
    assert_error(&res, "SIM_CONFIG_ERROR", "HVD_SIM_CRASH");
    hvd_agent_result_free(&res);
    unsetenv("HVD_SIM_CRASH");
}

/* ---- --null ---- */

Test(simhost, null_mode_answers_at_once_and_keeps_nothing)
{
    HvdAgentCfg cfg;
    char err[256];
    hvd_agent_cfg_init(&cfg);
    char *bin = simhost_path();
    char *cmd = hvd_xasprintf("%s --null", bin);
    cr_assert(hvd_agent_cfg_set_command(&cfg, cmd, err, sizeof err));
    const char *req = "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"n\"},\"correlation_id\":\"c\","
                      "\"metadata\":{\"idempotency_key\":\"job-9:vm.create\"}}\n";
    HvdAgentResult a, b;
    hvd_agent_call(&cfg, "hv01", "vm.create", req, strlen(req), &a);
    hvd_agent_call(&cfg, "hv01", "vm.create", req, strlen(req), &b);
    ASSERT_OK(a);
    const char *id = hvd_node_get_str(a.data, "vm_id");
    cr_assert(id && hvd_uuid_valid(id, strlen(id)));
    cr_assert_str_eq(id, hvd_node_get_str(b.data, "vm_id"), "the id derives from the key");
    hvd_agent_result_free(&a);
    hvd_agent_result_free(&b);
    static const char *ops[] = {"disk.create", "nic.create", "vm.initialize", "vm.delete", "noop-test"};
    for (size_t i = 0; i < 5; i++) {
        char *r = hvd_xasprintf("{\"operation\":\"%s\",\"resource_spec\":{\"vm_id\":\"%s\",\"network\":\"x\","
                                "\"guest_la_uid\":\"u\",\"guest_la_pw\":\"p\"},\"correlation_id\":\"c\"}\n",
                                ops[i], "0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f");
        hvd_agent_call(&cfg, "hv01", ops[i], r, strlen(r), &a);
        ASSERT_OK(a);
        hvd_agent_result_free(&a);
        free(r);
    }
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) entries += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(entries, 0, "--null keeps no state");
    free(cmd);
    free(bin);
    hvd_agent_cfg_free(&cfg);
}

Test(simhost, usage_errors_exit_2)
{
    char *bin = simhost_path();
    char *cmd = hvd_xasprintf("%s </dev/null >/dev/null 2>&1", bin);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "no --state-dir");
    free(cmd);
    cmd = hvd_xasprintf("%s --state-dir %s --host ../x </dev/null >/dev/null 2>&1", bin, dir);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "unsafe --host");
    free(cmd);
    cmd = hvd_xasprintf("%s --help >/dev/null", bin);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(bin);
}

/* A crash between the state commit and the append to effects.jsonl (here
 * simulated by cutting the last line, half-way) is repaired by the next call. */
Test(simhost, effect_lost_between_commit_and_append_is_restored)
{
    free(create_vm("r-01", "j1:vm.create"));
    free(create_vm("r-02", "j2:vm.create"));
    cr_assert_eq(count_effects(NULL), 2);
    char *p = hvd_xasprintf("%s/hv01/effects.jsonl", dir);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    FILE *f = fopen(p, "r");
    char first[1024];
    cr_assert_not_null(fgets(first, sizeof first, f));
    fclose(f);
    cr_assert_eq(truncate(p, (off_t)strlen(first) + 10), 0); /* a torn second line */
    HvdAgentResult res;
    call("vm.create", "{\"vm_name\":\"r-03\",\"gb_ram\":1,\"cpu_cores\":1}", "j3:vm.create", &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 3);
    f = fopen(p, "r");
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char want[32];
        snprintf(want, sizeof want, "j%d:vm.create", ++n);
        cr_assert(strstr(line, want) != NULL, "line %d: %s", n, line);
    }
    fclose(f);
    free(p);
    /* Likewise for the stored answer of the last key. */
    p = hvd_xasprintf("%s/hv01/answers.jsonl", dir);
    f = fopen(p, "r");
    char l1[4096], l2[4096];
    cr_assert(fgets(l1, sizeof l1, f) && fgets(l2, sizeof l2, f));
    fclose(f);
    cr_assert_eq(truncate(p, (off_t)(strlen(l1) + strlen(l2))), 0); /* the third answer is lost */
    call("vm.create", "{\"vm_name\":\"r-03\",\"gb_ram\":1,\"cpu_cores\":1}", "j3:vm.create", &res);
    ASSERT_OK(res);
    hvd_agent_result_free(&res);
    cr_assert_eq(count_effects(NULL), 3, "the repeated key found its restored answer");
    free(p);
}
