/* Table tests of the intake decisions (plan_intake.c, contract §3/§4): the
 * code and sentence a message gets when it never becomes a running job; and
 * of which outputs each stage makes (plan_stages.c, §4). Each row is a
 * situation and its expected answer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "plan.h"
#include "utf8.h"

typedef struct {
    const char *loc, *type;
} Err;

static const struct {
    const char *what;
    const char *job_type, *target_host;
    Err errs[3];
    const char *code;
    const char *says; /* a part of the message */
} INVALID[] = {
    {"one bad field",
     HVD_JOB_TYPE_MANAGED,
     "hv01",
     {{"request.vm_spec.gb_ram", "less_than_equal"}},
     "validation_error",
     "1 validation error."},
    {"three bad fields",
     HVD_JOB_TYPE_MANAGED,
     "hv01",
     {{"request.vm_spec.gb_ram", "less_than_equal"},
      {"request.vm_spec.vm_name", "missing"},
      {"job_id", "uuid_parsing"}},
     "validation_error",
     "3 validation errors."},
    {"another job type",
     "backup",
     "hv01",
     {{"job_type", "literal_error"}},
     "unsupported_job_type",
     "Job type 'backup' is not handled"},
    {"another job type among other errors",
     "backup",
     "hv01",
     {{"request.vm_spec.gb_ram", "missing"}, {"job_type", "literal_error"}},
     "unsupported_job_type",
     "'backup'"},
    {"job_type missing (not another type)",
     NULL,
     "hv01",
     {{"job_type", "missing"}},
     "validation_error",
     "1 validation error."},
    {"only a host outside the allowed list",
     HVD_JOB_TYPE_MANAGED,
     "hv99",
     {{"request.target_host", "host_not_allowed"}},
     "host_not_allowed",
     "Target host 'hv99' is not in this fleet's"},
    {"a host outside the list and another error",
     HVD_JOB_TYPE_MANAGED,
     "hv99",
     {{"request.target_host", "host_not_allowed"}, {"request.vm_spec.gb_ram", "missing"}},
     "validation_error",
     "2 validation errors."},
    {"direct reply-to alone",
     HVD_JOB_TYPE_MANAGED,
     "hv01",
     {{"reply_to", "direct_reply_to"}},
     "validation_error",
     "direct reply-to"},
    {"direct reply-to and another error",
     HVD_JOB_TYPE_MANAGED,
     "hv01",
     {{"reply_to", "direct_reply_to"}, {"job_id", "missing"}},
     "validation_error",
     "2 validation errors."},
};

Test(plan_intake, an_invalid_body_gets_its_code)
{
    for (size_t i = 0; i < sizeof INVALID / sizeof INVALID[0]; i++) {
        HvdJob job;
        memset(&job, 0, sizeof job);
        job.job_type = (char *)INVALID[i].job_type;
        job.target_host = (char *)INVALID[i].target_host;
        HvdErrors errs = {0};
        for (size_t k = 0; k < 3 && INVALID[i].errs[k].loc; k++)
            hvd_errors_add(&errs, INVALID[i].errs[k].loc, INVALID[i].errs[k].type, "x");
        HvdRejection r = hvd_plan_reject_invalid(&job, &errs);
        cr_assert_str_eq(r.code, INVALID[i].code, "row %zu (%s)", i, INVALID[i].what);
        cr_assert(strstr(r.message, INVALID[i].says), "row %zu (%s): %s", i, INVALID[i].what, r.message);
        hvd_errors_free(&errs);
    }
}

static const struct {
    bool ct_known;
    HvdDecodeStatus ds;
    const char *code;
} UNDECODABLE[] = {
    {false, HVD_DECODE_MALFORMED, "unsupported_content_type"},
    {false, HVD_DECODE_TOO_LARGE, "unsupported_content_type"}, /* the type is judged first */
    {true, HVD_DECODE_TOO_LARGE, "message_too_large"},
    {true, HVD_DECODE_MALFORMED, "malformed_message"},
};

Test(plan_intake, an_undecodable_message_gets_its_code_and_the_reason)
{
    for (size_t i = 0; i < sizeof UNDECODABLE / sizeof UNDECODABLE[0]; i++) {
        HvdRejection r =
            hvd_plan_reject_undecodable(UNDECODABLE[i].ct_known, UNDECODABLE[i].ds, "unexpected byte 0xc1");
        cr_assert_str_eq(r.code, UNDECODABLE[i].code, "row %zu", i);
        cr_assert(strstr(r.message, "unexpected byte 0xc1"), "row %zu: %s", i, r.message);
    }
}

Test(plan_intake, a_duplicate_name_names_the_host_and_the_vm)
{
    HvdRejection r = hvd_plan_reject_duplicate("hv01", "web-01");
    cr_assert_str_eq(r.code, "duplicate_vm_name");
    cr_assert(strstr(r.message, "hv01") && strstr(r.message, "'web-01'"), "%s", r.message);
}

/* Names and reasons are cut to keep the sentence short: never inside a character. */
Test(plan_intake, long_names_are_cut_on_a_character_boundary)
{
    char name[200] = "";
    for (int i = 0; i < 40; i++) strcat(name, "\xe6\x9d\xb1"); /* 40 x U+6771, 120 bytes */
    HvdRejection r = hvd_plan_reject_duplicate("hv01", name);
    cr_assert(hvd_utf8_valid(r.message, strlen(r.message)), "%s", r.message);
    HvdJob job;
    memset(&job, 0, sizeof job);
    job.job_type = name;
    HvdErrors errs = {0};
    hvd_errors_add(&errs, "job_type", "literal_error", "x");
    r = hvd_plan_reject_invalid(&job, &errs);
    cr_assert_str_eq(r.code, "unsupported_job_type");
    cr_assert(hvd_utf8_valid(r.message, strlen(r.message)), "%s", r.message);
    hvd_errors_free(&errs);
    r = hvd_plan_reject_undecodable(true, HVD_DECODE_MALFORMED, name);
    cr_assert(hvd_utf8_valid(r.message, strlen(r.message)), "%s", r.message);
}

static const struct {
    const char *stage;
    const char *data;  /* the agent's data, as key=value pairs */
    const char *keeps; /* the outputs kept, in order */
    bool ok;           /* enough for the later stages */
} OUTPUTS[] = {
    {"vm.create", "vm_id=V1 extra=x", "vm_id=V1", true},
    {"vm.create", "extra=x", "", false}, /* no vm_id: nothing later can run */
    {"vm.create", "vm_id=", "vm_id=", false},
    {"disk.create", "disk_id=D1 disk_path=C:/d.vhdx vm_id=V9", "disk_id=D1 disk_path=C:/d.vhdx", true},
    {"disk.create", "", "", true},
    {"nic.create", "nic_id=N1 adapter_name=eth0 mac_address=00:15:5D:01:02:03",
     "nic_id=N1 adapter_name=eth0 mac_address=00:15:5D:01:02:03", true},
    {"vm.initialize", "vm_id=V2 anything=y", "", true}, /* it makes nothing the envelope carries */
};

static HvdNode *pairs(const char *s)
{
    HvdNode *m = hvd_node_map();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        *eq = '\0';
        hvd_node_map_set_str(m, kv, eq + 1);
    }
    return m;
}

Test(plan_stages, each_stage_keeps_its_own_outputs)
{
    for (size_t i = 0; i < sizeof OUTPUTS / sizeof OUTPUTS[0]; i++) {
        HvdNode *data = pairs(OUTPUTS[i].data);
        HvdNode *want = pairs(OUTPUTS[i].keeps);
        HvdNode *got = hvd_stage_outputs(OUTPUTS[i].stage, data);
        cr_assert_eq(got->u.map.n, want->u.map.n, "row %zu (%s)", i, OUTPUTS[i].stage);
        for (size_t k = 0; k < want->u.map.n; k++) {
            const char *key = want->u.map.keys[k];
            const char *v = hvd_node_get_str(got, key);
            cr_assert(v && strcmp(v, hvd_node_get_str(want, key)) == 0, "row %zu: %s", i, key);
        }
        cr_assert_eq(hvd_stage_output_ok(OUTPUTS[i].stage, data), OUTPUTS[i].ok, "row %zu", i);
        hvd_node_free(data);
        hvd_node_free(want);
        hvd_node_free(got);
    }
}
