/* Unit tests of the direct reply-to refusal (contract §3 reply_to, v1.1):
 * amq.rabbitmq.reply-to and its tokens are refused with an error at
 * reply_to; other queue names, and none, pass. */
#include <criterion/criterion.h>
#include <string.h>
#include "codec.h"
#include "model.h"

static const char JOB[] = "{\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"job_type\":\"managed_deployment\","
                          "\"request\":{\"target_host\":\"hv01\",\"vm_spec\":{\"vm_name\":\"a\",\"gb_ram\":1,"
                          "\"cpu_cores\":1}}}";

static bool validate(const char *reply_to, HvdErrors *errs)
{
    HvdNode *body = NULL;
    cr_assert_eq(hvd_json_to_node(JOB, strlen(JOB), 0, &body, NULL, 0), HVD_DECODE_OK);
    HvdValidateOpts o = {.reply_to = reply_to};
    HvdJob job;
    bool ok = hvd_job_validate(body, &o, &job, errs);
    hvd_job_free(&job);
    hvd_node_free(body);
    return ok;
}

Test(reply_to, direct_reply_to_names)
{
    cr_assert(hvd_reply_to_is_direct("amq.rabbitmq.reply-to"));
    cr_assert(hvd_reply_to_is_direct("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0.ZTI5NzQ="));
    cr_assert_not(hvd_reply_to_is_direct("amq.rabbitmq.reply-tox"));
    cr_assert_not(hvd_reply_to_is_direct("hvdeploy.results"));
    cr_assert_not(hvd_reply_to_is_direct("amq.gen-abc"));
    cr_assert_not(hvd_reply_to_is_direct(""));
    cr_assert_not(hvd_reply_to_is_direct(NULL));
}

Test(reply_to, refused_with_an_error_at_reply_to)
{
    HvdErrors errs = {0};
    cr_assert_not(validate("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAx", &errs));
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.items[0].loc, "reply_to");
    cr_assert_str_eq(errs.items[0].type, "direct_reply_to");
    cr_assert(strstr(errs.items[0].msg, "durable named queue"));
    hvd_errors_free(&errs);
}

Test(reply_to, named_queues_and_none_pass)
{
    HvdErrors errs = {0};
    cr_assert(validate("cp1.replies", &errs));
    cr_assert(validate(NULL, &errs));
    cr_assert_eq(errs.n, 0);
    hvd_errors_free(&errs);
}
