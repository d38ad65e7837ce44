/* Table tests of what vm.find and host.resources answers mean
 * (plan_probe.c, plan_preflight.c) and of agent profiles (plan_profile.c),
 * contract §6a. */
#include <criterion/criterion.h>
#include <string.h>
#include "codec.h"
#include "model.h"
#include "plan.h"

#define JOB "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11"
#define VM "0b3a9f0e-1111-2222-3333-444455556666"

static HvdNode *json(const char *text)
{
    HvdNode *n = NULL;
    char why[128];
    cr_assert_eq(hvd_json_to_node(text, strlen(text), 0, &n, why, sizeof why), HVD_DECODE_OK, "%s: %s", text, why);
    return n;
}

static const struct {
    const char *what, *stage, *data, *vm_id, *adapter;
    HvdFound found;
    const char *key, *value; /* what is adopted */
} FIND[] = {
    {"no VM at all", "vm.create", "{\"vms\":[]}", NULL, NULL, HVD_FOUND_NOTHING, NULL, NULL},
    {"another job's VM of the same name", "vm.create",
     "{\"vms\":[{\"vm_id\":\"a\",\"vm_name\":\"web\",\"job_id\":\"other\"}]}", NULL, NULL, HVD_FOUND_NOTHING, NULL,
     NULL},
    {"a VM without a stamp", "vm.create", "{\"vms\":[{\"vm_id\":\"a\",\"vm_name\":\"web\"}]}", NULL, NULL,
     HVD_FOUND_NOTHING, NULL, NULL},
    {"our VM", "vm.create", "{\"vms\":[{\"vm_id\":\"" VM "\",\"vm_name\":\"web\",\"job_id\":\"" JOB "\"}]}", NULL, NULL,
     HVD_FOUND_IT, "vm_id", VM},
    {"our VM beside another's", "vm.create",
     "{\"vms\":[{\"vm_id\":\"a\",\"job_id\":\"other\"},{\"vm_id\":\"" VM "\",\"job_id\":\"" JOB "\"}]}", NULL, NULL,
     HVD_FOUND_IT, "vm_id", VM},
    {"two VMs stamped with our job", "vm.create",
     "{\"vms\":[{\"vm_id\":\"a\",\"job_id\":\"" JOB "\"},{\"vm_id\":\"b\",\"job_id\":\"" JOB "\"}]}", NULL, NULL,
     HVD_FOUND_AMBIGUOUS, NULL, NULL},
    {"our VM without an id", "vm.create", "{\"vms\":[{\"job_id\":\"" JOB "\"}]}", NULL, NULL, HVD_FOUND_AMBIGUOUS, NULL,
     NULL},
    {"no vms list", "vm.create", "{}", NULL, NULL, HVD_FOUND_AMBIGUOUS, NULL, NULL},
    {"our VM has no disk yet", "disk.create", "{\"vms\":[{\"vm_id\":\"" VM "\",\"disks\":[]}]}", VM, NULL,
     HVD_FOUND_NOTHING, NULL, NULL},
    {"our VM has its disk", "disk.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"disks\":[{\"disk_id\":\"d1\",\"disk_path\":\"D:\\\\v.vhdx\"}]}]}", VM, NULL,
     HVD_FOUND_IT, "disk_id", "d1"},
    {"our VM has two disks", "disk.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"disks\":[{\"disk_id\":\"d1\"},{\"disk_id\":\"d2\"}]}]}", VM, NULL,
     HVD_FOUND_AMBIGUOUS, NULL, NULL},
    {"our VM is gone", "disk.create", "{\"vms\":[{\"vm_id\":\"other\"}]}", VM, NULL, HVD_FOUND_AMBIGUOUS, NULL, NULL},
    {"our VM has its adapter", "nic.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"nics\":[{\"nic_id\":\"n1\",\"mac_address\":\"00:15:5D:00:00:01\"}]}]}", VM,
     NULL, HVD_FOUND_IT, "nic_id", "n1"},
    {"the named adapter among two", "nic.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"nics\":[{\"nic_id\":\"n1\",\"adapter_name\":\"mgmt\"},"
     "{\"nic_id\":\"n2\",\"adapter_name\":\"prod\"}]}]}",
     VM, "prod", HVD_FOUND_IT, "nic_id", "n2"},
    {"the named adapter is not there", "nic.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"nics\":[{\"nic_id\":\"n1\",\"adapter_name\":\"mgmt\"}]}]}", VM, "prod",
     HVD_FOUND_NOTHING, NULL, NULL},
    {"two unnamed adapters", "nic.create",
     "{\"vms\":[{\"vm_id\":\"" VM "\",\"nics\":[{\"nic_id\":\"n1\"},{\"nic_id\":\"n2\"}]}]}", VM, NULL,
     HVD_FOUND_AMBIGUOUS, NULL, NULL},
    {"vm.initialize makes nothing to find", "vm.initialize", "{\"vms\":[]}", VM, NULL, HVD_FOUND_AMBIGUOUS, NULL, NULL},
};

Test(plan_probe, vm_find_table)
{
    for (size_t i = 0; i < sizeof FIND / sizeof FIND[0]; i++) {
        HvdNode *data = json(FIND[i].data), *adopted = NULL;
        char msg[300] = "";
        HvdFound f =
            hvd_plan_probe_found(FIND[i].stage, data, JOB, FIND[i].vm_id, FIND[i].adapter, &adopted, msg, sizeof msg);
        cr_assert_eq(f, FIND[i].found, "%s: found %d (%s)", FIND[i].what, f, msg);
        cr_assert(msg[0], "%s: a sentence", FIND[i].what);
        if (FIND[i].key) {
            cr_assert_not_null(adopted, "%s", FIND[i].what);
            cr_assert_str_eq(hvd_node_get_str(adopted, FIND[i].key), FIND[i].value, "%s", FIND[i].what);
        } else {
            cr_assert_null(adopted, "%s", FIND[i].what);
        }
        hvd_node_free(adopted);
        hvd_node_free(data);
    }
}

/* ---- preflight ---- */

#define RESOURCES                                                                 \
    "{\"storage_classes\":[{\"name\":\"fast-ssd\"},{\"name\":\"bulk-storage\"}]," \
    "\"networks\":[{\"name\":\"Production\"},{\"name\":\"Development\"}],"        \
    "\"golden_images\":[{\"name\":\"Ubuntu 22.04\"}]}"

static bool validate(const char *body, HvdJob *job)
{
    HvdNode *n = json(body);
    HvdErrors errs = {0};
    HvdValidateOpts vo = {0};
    bool ok = hvd_job_validate(n, &vo, job, &errs);
    hvd_errors_free(&errs);
    hvd_node_free(n);
    return ok;
}

#define BODY(vm_extra, rest)                                                                             \
    "{\"job_id\":\"" JOB "\",\"job_type\":\"managed_deployment\",\"request\":{\"target_host\":\"hv01\"," \
    "\"vm_spec\":{\"vm_name\":\"web\",\"gb_ram\":4,\"cpu_cores\":2" vm_extra "}" rest "}}"

static const struct {
    const char *what, *body, *resources;
    bool ok;
    const char *locs[4];
} PREFLIGHT[] = {
    {"all there",
     BODY(",\"storage_class\":\"fast-ssd\"", ",\"disk_spec\":{\"image_name\":\"Ubuntu 22.04\"},"
                                             "\"nic_spec\":{\"network\":\"Production\"}"),
     RESOURCES,
     true,
     {NULL}},
    {"case does not matter",
     BODY(",\"storage_class\":\"FAST-SSD\"", ",\"nic_spec\":{\"network\":\"production\"}"),
     RESOURCES,
     true,
     {NULL}},
    {"nothing named", BODY("", ""), RESOURCES, true, {NULL}},
    {"blank disk: no image to check", BODY("", ",\"disk_spec\":{\"disk_size_gb\":10}"), RESOURCES, true, {NULL}},
    {"unknown storage class",
     BODY(",\"storage_class\":\"gold\"", ""),
     RESOURCES,
     false,
     {"request.vm_spec.storage_class", NULL}},
    {"unknown network and image",
     BODY("", ",\"disk_spec\":{\"image_name\":\"Windows 3.1\"},\"nic_spec\":{\"network\":\"Nope\"}"),
     RESOURCES,
     false,
     {"request.disk_spec.image_name", "request.nic_spec.network", NULL}},
    {"a document without images does not check them",
     BODY("", ",\"disk_spec\":{\"image_name\":\"Windows 3.1\"}"),
     "{\"storage_classes\":[],\"networks\":[]}",
     true,
     {NULL}},
};

Test(plan_preflight, table)
{
    for (size_t i = 0; i < sizeof PREFLIGHT / sizeof PREFLIGHT[0]; i++) {
        HvdJob job;
        cr_assert(validate(PREFLIGHT[i].body, &job), "%s: the body validates", PREFLIGHT[i].what);
        HvdNode *res = json(PREFLIGHT[i].resources);
        HvdErrors errs = {0};
        cr_assert_eq(hvd_plan_preflight(&job, res, &errs), PREFLIGHT[i].ok, "%s", PREFLIGHT[i].what);
        size_t want = 0;
        while (PREFLIGHT[i].locs[want]) want++;
        cr_assert_eq(errs.n, want, "%s: %zu errors", PREFLIGHT[i].what, errs.n);
        for (size_t k = 0; k < errs.n; k++) {
            cr_assert_str_eq(errs.items[k].loc, PREFLIGHT[i].locs[k], "%s", PREFLIGHT[i].what);
            cr_assert_str_eq(errs.items[k].type, "host_resource_missing");
            cr_assert(strstr(errs.items[k].msg, "it has:"), "%s", errs.items[k].msg);
        }
        hvd_errors_free(&errs);
        hvd_node_free(res);
        hvd_job_free(&job);
    }
}

/* ---- profiles ---- */

Test(plan_profile, table)
{
    static const struct {
        HvdOutcome o;
        const char *data;
        bool known;
        const char *profile;
        HvdAgentCaps caps;
    } rows[] = {
        {HVD_OUT_SUCCESS,
         "{\"agent\":\"x 1\",\"capabilities\":[\"idempotency\",\"probe\",\"session\",\"output\"]}",
         true,
         "hvdeploy",
         {true, true, true, true}},
        {HVD_OUT_SUCCESS, "{\"capabilities\":[\"session\"]}", true, "partial", {false, false, true, false}},
        {HVD_OUT_SUCCESS,
         "{\"capabilities\":[\"probe\",\"teleport\",7]}",
         true,
         "partial",
         {false, true, false, false}},
        {HVD_OUT_SUCCESS, "{}", true, "raw", {0}},
        {HVD_OUT_AGENT_ERROR, "{}", true, "raw", {0}},
        {HVD_OUT_PROTOCOL_ERROR, "{}", true, "raw", {0}},
        {HVD_OUT_RETRYABLE, "{}", false, "raw", {0}},
        {HVD_OUT_TIMEOUT, "{}", false, "raw", {0}},
        {HVD_OUT_UNREACHABLE, "{}", false, "raw", {0}},
        {HVD_OUT_NOT_SENT, "{}", false, "raw", {0}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        HvdNode *d = json(rows[i].data);
        HvdAgentCaps c = {.idempotency = true};
        cr_assert_eq(hvd_plan_profile_from_hello(rows[i].o, d, &c), rows[i].known, "row %zu", i);
        cr_assert_eq(memcmp(&c, &rows[i].caps, sizeof c), 0, "row %zu caps", i);
        cr_assert_str_eq(hvd_plan_profile_name(&c), rows[i].profile, "row %zu", i);
        hvd_node_free(d);
    }
    HvdAgentCaps c;
    cr_assert(hvd_plan_profile_fixed("raw", &c));
    cr_assert_str_eq(hvd_plan_profile_name(&c), "raw");
    cr_assert(hvd_plan_profile_fixed("hvdeploy", &c));
    cr_assert_str_eq(hvd_plan_profile_name(&c), "hvdeploy");
    cr_assert_not(hvd_plan_profile_fixed("auto", &c));
    cr_assert_not(hvd_plan_profile_fixed(NULL, &c));
}

Test(plan_profile, fixed_by_a_list_of_capabilities)
{
    static const struct {
        const char *setting;
        bool valid;
        HvdAgentCaps caps;
    } rows[] = {
        {"auto", true, {0}},
        {"raw", true, {0}},
        {"hvdeploy", true, {true, true, true, true}},
        {"idempotency,probe", true, {true, true, false, false}},
        {" probe , session ", true, {false, true, true, false}},
        {"output", true, {false, false, false, true}},
        {"idempotency,probe,session,output", true, {true, true, true, true}},
        {"", false, {0}},
        {"probe,", false, {0}},
        {",probe", false, {0}},
        {"probe,,session", false, {0}},
        {"teleport", false, {0}},
        {"Probe", false, {0}},
        {"probes", false, {0}},
        {"prob", false, {0}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cr_assert_eq(hvd_plan_profile_valid(rows[i].setting), rows[i].valid, "row %zu (%s)", i, rows[i].setting);
        HvdAgentCaps c = {0};
        bool fixed = hvd_plan_profile_fixed(rows[i].setting, &c);
        cr_assert_eq(fixed, rows[i].valid && strcmp(rows[i].setting, "auto") != 0, "row %zu", i);
        if (fixed) cr_assert_eq(memcmp(&c, &rows[i].caps, sizeof c), 0, "row %zu caps", i);
    }
    cr_assert_not(hvd_plan_profile_valid(NULL));
}
