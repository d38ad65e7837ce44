/* Unit tests of result envelopes, progress events and the stage plan. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "envelope.h"
#include "plan.h"

static const char *const ENVELOPE_KEYS[] = {
    "job_id", "correlation_id", "job_type", "status",   "code",       "message",
    "data",   "stages",         "errors",   "attempts", "created_at", "finished_at",
};
static const char *const STAGE_KEYS[] = {
    "name", "status", "attempts", "started_at", "finished_at", "message", "code", "agent_code",
};

static void assert_keys(const HvdNode *m, const char *const *keys, size_t n)
{
    cr_assert_eq(m->type, HVD_MAP);
    cr_assert_eq(m->u.map.n, n, "map has %zu keys, want %zu", m->u.map.n, n);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(m->u.map.keys[i], keys[i]);
}

Test(envelope, empty_envelope_has_every_key)
{
    HvdEnvelope env = {0}; /* an undecodable message: nothing known */
    env.status = "error";
    env.code = "malformed_message";
    HvdNode *n = hvd_envelope_to_node(&env);
    assert_keys(n, ENVELOPE_KEYS, 12);
    cr_assert_eq(hvd_node_get(n, "job_id")->type, HVD_NIL);
    cr_assert_eq(hvd_node_get(n, "correlation_id")->type, HVD_NIL);
    cr_assert_eq(hvd_node_get(n, "message")->type, HVD_NIL);
    const HvdNode *data = hvd_node_get(n, "data");
    cr_assert(data->type == HVD_MAP && data->u.map.n == 0, "data is {}");
    const HvdNode *stages = hvd_node_get(n, "stages"), *errors = hvd_node_get(n, "errors");
    cr_assert(stages->type == HVD_ARRAY && stages->u.arr.n == 0);
    cr_assert(errors->type == HVD_ARRAY && errors->u.arr.n == 0, "errors is []");
    cr_assert_eq(hvd_node_get(n, "attempts")->type, HVD_INT);
    char *json = hvd_node_to_json(n);
    cr_assert_str_eq(json, "{\"job_id\":null,\"correlation_id\":null,\"job_type\":null,\"status\":\"error\","
                           "\"code\":\"malformed_message\",\"message\":null,\"data\":{},\"stages\":[],\"errors\":[],"
                           "\"attempts\":0,\"created_at\":null,\"finished_at\":null}");
    free(json);
    hvd_node_free(n);
}

static HvdNode *full_envelope(void)
{
    static const HvdStage stages[] = {
        {.name = "vm.create",
         .status = HVD_STAGE_SUCCEEDED,
         .attempts = 1,
         .started_at = "2024-05-01T10:00:00Z",
         .finished_at = "2024-05-01T10:00:05Z",
         .message = "created"},
        {.name = "disk.create",
         .status = HVD_STAGE_FAILED,
         .attempts = 3,
         .started_at = "2024-05-01T10:00:06Z",
         .finished_at = "2024-05-01T10:01:00Z",
         .message = "no space",
         .code = "agent_error",
         .agent_code = "DISK_FULL"},
        {.name = "nic.create", .status = HVD_STAGE_PENDING},
    };
    HvdNode *data = hvd_node_map();
    hvd_node_map_set_str(data, "vm_id", "0b3a9f0e-1111-2222-3333-444455556666");
    hvd_node_map_set_str(data, "vm_name", "web-01");
    HvdEnvelope env = {
        .job_id = "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11",
        .correlation_id = "corr-1",
        .job_type = "managed_deployment",
        .status = "partial",
        .code = "agent_error",
        .message = "disk.create failed: no space",
        .data = data,
        .stages = stages,
        .n_stages = 3,
        .errors = NULL,
        .attempts = 2,
        .created_at = "2024-05-01T10:00:00Z",
        .finished_at = "2024-05-01T10:01:00Z",
    };
    HvdNode *n = hvd_envelope_to_node(&env);
    hvd_node_free(data); /* the envelope holds its own copy */
    return n;
}

Test(envelope, stages_have_every_key_in_order)
{
    HvdNode *n = full_envelope();
    assert_keys(n, ENVELOPE_KEYS, 12);
    const HvdNode *stages = hvd_node_get(n, "stages");
    cr_assert_eq(stages->u.arr.n, 3);
    for (size_t i = 0; i < 3; i++) assert_keys(stages->u.arr.items[i], STAGE_KEYS, 8);
    const HvdNode *failed = stages->u.arr.items[1];
    cr_assert_str_eq(hvd_node_get_str(failed, "agent_code"), "DISK_FULL");
    int64_t a;
    cr_assert(hvd_node_get_int(failed, "attempts", &a));
    cr_assert_eq(a, 3);
    const HvdNode *pending = stages->u.arr.items[2];
    cr_assert_eq(hvd_node_get(pending, "started_at")->type, HVD_NIL);
    cr_assert_eq(hvd_node_get(pending, "agent_code")->type, HVD_NIL);
    cr_assert_str_eq(hvd_node_get_str(hvd_node_get(n, "data"), "vm_name"), "web-01");
    hvd_node_free(n);
}

Test(envelope, same_envelope_encodes_identically)
{
    for (int f = 0; f < 2; f++) {
        HvdContentType ct = f ? HVD_CT_JSON : HVD_CT_MSGPACK;
        HvdNode *a = full_envelope(), *b = full_envelope();
        HvdBuf ba = {0}, bb = {0}, bc = {0};
        hvd_encode(ct, a, &ba);
        hvd_encode(ct, b, &bb);
        cr_assert_eq(ba.len, bb.len);
        cr_assert_eq(memcmp(ba.data, bb.data, ba.len), 0, "built twice, same bytes");
        HvdNode *back = NULL;
        char why[256];
        cr_assert_eq(hvd_decode(ct, ba.data, ba.len, &back, why, sizeof(why)), HVD_DECODE_OK, "%s", why);
        cr_assert(hvd_node_equal(a, back));
        hvd_encode(ct, back, &bc);
        cr_assert_eq(bc.len, ba.len);
        cr_assert_eq(memcmp(ba.data, bc.data, ba.len), 0, "stored envelope re-encodes byte for byte");
        hvd_node_free(back);
        hvd_buf_free(&ba);
        hvd_buf_free(&bb);
        hvd_buf_free(&bc);
        hvd_node_free(a);
        hvd_node_free(b);
    }
}

Test(envelope, validation_errors)
{
    HvdErrors errs = {0};
    hvd_errors_add(&errs, "request.vm_spec.gb_ram", "less_than_equal", "Input should be less than or equal to %d", 512);
    hvd_errors_add(&errs, "job_type", "literal_error", "Input should be 'managed_deployment'");
    HvdEnvelope env = {.job_id = "x", .status = "error", .code = "validation_error", .errors = &errs};
    HvdNode *n = hvd_envelope_to_node(&env);
    const HvdNode *e = hvd_node_get(n, "errors");
    cr_assert_eq(e->u.arr.n, 2);
    static const char *const ERR_KEYS[] = {"loc", "msg", "type"};
    assert_keys(e->u.arr.items[0], ERR_KEYS, 3);
    cr_assert_str_eq(hvd_node_get_str(e->u.arr.items[0], "loc"), "request.vm_spec.gb_ram");
    cr_assert_str_eq(hvd_node_get_str(e->u.arr.items[0], "msg"), "Input should be less than or equal to 512");
    cr_assert_str_eq(hvd_node_get_str(e->u.arr.items[1], "type"), "literal_error");
    hvd_node_free(n);
    hvd_errors_free(&errs);
}

Test(envelope, non_map_data_becomes_empty_map)
{
    HvdNode *bad = hvd_node_int(3);
    HvdEnvelope env = {.status = "success", .data = bad};
    HvdNode *n = hvd_envelope_to_node(&env);
    cr_assert_eq(hvd_node_get(n, "data")->type, HVD_MAP);
    hvd_node_free(n);
    hvd_node_free(bad);
}

Test(envelope, event_node_and_routing_keys)
{
    HvdEvent ev = {
        "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11", "corr", "vm.create", "succeeded", 2, "2024-05-01T10:00:05Z", "created"};
    HvdNode *n = hvd_event_to_node(&ev);
    static const char *const EV_KEYS[] = {"job_id", "correlation_id", "stage", "status", "attempt", "at", "message"};
    assert_keys(n, EV_KEYS, 7);
    char *json = hvd_node_to_json(n);
    cr_assert_str_eq(json, "{\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"correlation_id\":\"corr\","
                           "\"stage\":\"vm.create\",\"status\":\"succeeded\",\"attempt\":2,"
                           "\"at\":\"2024-05-01T10:00:05Z\",\"message\":\"created\"}");
    free(json);
    hvd_node_free(n);

    char key[64];
    hvd_event_routing_key(&ev, key, sizeof(key));
    cr_assert_str_eq(key, "stage.vm.create.succeeded");
    ev.stage = NULL;
    ev.status = "running";
    hvd_event_routing_key(&ev, key, sizeof(key));
    cr_assert_str_eq(key, "job.running");
    n = hvd_event_to_node(&ev);
    cr_assert_eq(hvd_node_get(n, "stage")->type, HVD_NIL, "a job transition has stage nil");
    hvd_node_free(n);

    char tiny[6];
    ev.stage = "vm.initialize";
    hvd_event_routing_key(&ev, tiny, sizeof(tiny));
    cr_assert_str_eq(tiny, "stage", "truncated safely");
}

Test(envelope, plan_stages)
{
    HvdJob job;
    memset(&job, 0, sizeof(job));
    const char *names[4];
    cr_assert_eq(hvd_plan_stages(&job, names), 1);
    cr_assert_str_eq(names[0], "vm.create");

    job.nic.present = true;
    cr_assert_eq(hvd_plan_stages(&job, names), 2);
    cr_assert_str_eq(names[1], "nic.create");

    job.disk.present = true;
    job.guest.present = true;
    cr_assert_eq(hvd_plan_stages(&job, names), 4);
    cr_assert_str_eq(names[0], "vm.create");
    cr_assert_str_eq(names[1], "disk.create");
    cr_assert_str_eq(names[2], "nic.create");
    cr_assert_str_eq(names[3], "vm.initialize");

    job.nic.present = false;
    cr_assert_eq(hvd_plan_stages(&job, names), 3);
    cr_assert_str_eq(names[2], "vm.initialize");
}
