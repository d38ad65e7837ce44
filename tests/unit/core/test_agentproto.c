/* Unit tests of the agent protocol's pure half: resource specs, the request
 * line, and the tolerant parser of agent output (§6). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agentproto.h"
#include "codec.h"
#include "envelope.h"
#include "utf8.h"

static HvdJob job;

static void make_job(void)
{
    memset(&job, 0, sizeof(job));
    strcpy(job.job_id, "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11");
    job.job_type = (char *)"managed_deployment";
    job.target_host = (char *)"hv01.lab.example";
    job.vm = (HvdVmSpec){(char *)"web-01", 4, 2, (char *)"fast-ssd", false, NULL};
    job.disk = (HvdDiskSpec){true, (char *)"Ubuntu 22.04", 100, (char *)"Dynamic", (char *)"SCSI"};
    job.nic = (HvdNicSpec){true, (char *)"Production", NULL};
    job.guest.present = true;
    job.guest.guest_la_uid = (char *)"Administrator";
    job.guest.guest_la_pw = (char *)"S3cret!pw";
    job.guest.guest_v4_ip_addr = (char *)"10.0.0.20";
    job.guest.has_cidr_prefix = true;
    job.guest.guest_v4_cidr_prefix = 24;
    job.guest.guest_v4_default_gw = (char *)"10.0.0.1";
    job.guest.guest_v4_dns1 = (char *)"10.0.0.2";
    job.os_family = "linux";
}

static char *spec_json(const char *op, const HvdNode *outputs)
{
    HvdNode *s = hvd_agent_resource_spec(&job, op, outputs);
    cr_assert_not_null(s, "%s", op);
    char *j = hvd_node_to_json(s);
    hvd_node_free(s);
    return j;
}

static HvdNode *outputs_with_vm(void)
{
    HvdNode *o = hvd_node_map();
    hvd_node_map_set_str(o, "vm_id", "0b3a9f0e-1111-2222-3333-444455556666");
    return o;
}

Test(agentproto, resource_specs, .init = make_job)
{
    HvdNode *out = outputs_with_vm();
    char *j = spec_json("vm.create", NULL);
    cr_assert_str_eq(j, "{\"vm_name\":\"web-01\",\"gb_ram\":4,\"cpu_cores\":2,\"storage_class\":\"fast-ssd\","
                        "\"vm_clustered\":false,\"os_family\":\"linux\"}");
    free(j);
    j = spec_json("disk.create", out);
    cr_assert_str_eq(j, "{\"image_name\":\"Ubuntu 22.04\",\"disk_size_gb\":100,\"disk_type\":\"Dynamic\","
                        "\"controller_type\":\"SCSI\",\"vm_id\":\"0b3a9f0e-1111-2222-3333-444455556666\"}");
    free(j);
    j = spec_json("nic.create", out);
    cr_assert_str_eq(j, "{\"network\":\"Production\",\"adapter_name\":null,"
                        "\"vm_id\":\"0b3a9f0e-1111-2222-3333-444455556666\"}");
    free(j);
    j = spec_json("vm.initialize", out);
    cr_assert_str_eq(j, "{\"vm_id\":\"0b3a9f0e-1111-2222-3333-444455556666\",\"vm_name\":\"web-01\","
                        "\"os_family\":\"linux\",\"guest_la_uid\":\"Administrator\",\"guest_la_pw\":\"S3cret!pw\","
                        "\"guest_v4_ip_addr\":\"10.0.0.20\",\"guest_v4_cidr_prefix\":24,"
                        "\"guest_v4_default_gw\":\"10.0.0.1\",\"guest_v4_dns1\":\"10.0.0.2\"}");
    free(j);
    j = spec_json("vm.delete", out);
    cr_assert_str_eq(j, "{\"vm_id\":\"0b3a9f0e-1111-2222-3333-444455556666\",\"vm_name\":\"web-01\","
                        "\"delete_disks\":true}");
    free(j);
    hvd_node_free(out);
    cr_assert_null(hvd_agent_resource_spec(&job, "vm.explode", NULL));
    cr_assert_null(hvd_agent_resource_spec(&job, NULL, NULL));
}

Test(agentproto, resource_spec_edge_cases, .init = make_job)
{
    /* no outputs yet: vm_id is nil; a blank disk has image_name nil; os_family resolved when unset */
    job.disk.image_name = NULL;
    job.os_family = NULL;
    job.vm.storage_class = NULL;
    char *j = spec_json("disk.create", NULL);
    cr_assert_str_eq(j, "{\"image_name\":null,\"disk_size_gb\":100,\"disk_type\":\"Dynamic\","
                        "\"controller_type\":\"SCSI\",\"vm_id\":null}");
    free(j);
    j = spec_json("vm.create", NULL);
    cr_assert(strstr(j, "\"storage_class\":null"), "%s", j);
    cr_assert(strstr(j, "\"os_family\":\"windows\""), "%s", j);
    free(j);

    job.guest.present = false; /* vm.initialize without guest config: just the three keys */
    j = spec_json("vm.initialize", NULL);
    cr_assert_str_eq(j, "{\"vm_id\":null,\"vm_name\":\"web-01\",\"os_family\":\"windows\"}");
    free(j);
}

Test(agentproto, request_line, .init = make_job)
{
    HvdNode *spec = hvd_node_map();
    hvd_node_map_set_str(spec, "vm_name", "line\nbreak");
    HvdAgentRequest req = {
        .operation = "vm.create",
        .resource_spec = spec,
        .correlation_id = "corr-1",
        .timestamp = "2024-05-01T10:00:00Z",
        .host = "hv01.lab.example",
        .job_id = "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11",
        .stage = "vm.create",
        .attempt = 1,
        .idempotency_key = "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11:vm.create",
    };
    HvdBuf b = {0};
    hvd_agent_request_encode(&req, &b);
    cr_assert_str_eq(
        b.data,
        "{\"operation\":\"vm.create\",\"resource_spec\":{\"vm_name\":\"line\\nbreak\"},\"correlation_id\":\"corr-1\","
        "\"metadata\":{\"timestamp\":\"2024-05-01T10:00:00Z\",\"host\":\"hv01.lab.example\","
        "\"job_id\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11\",\"stage\":\"vm.create\",\"attempt\":1,"
        "\"idempotency_key\":\"6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11:vm.create\"}}\n");
    cr_assert_eq(strchr(b.data, '\n'), b.data + b.len - 1, "exactly one line");
    hvd_buf_free(&b);

    req.resource_spec = NULL;
    hvd_agent_request_encode(&req, &b);
    cr_assert(strstr(b.data, "\"resource_spec\":{}"), "%s", b.data);
    hvd_buf_free(&b);
    hvd_node_free(spec);
}

/* ---- output parser ----------------------------------------------------- */

static HvdNode *env;

static void fini_env(void)
{
    hvd_node_free(env);
    env = NULL;
}

static HvdAgentParse parse(const char *s)
{
    hvd_node_free(env);
    env = NULL;
    return hvd_agent_output_parse(s, strlen(s), &env);
}

static const char *status_of(void)
{
    return hvd_node_get_str(env, "status");
}

Test(agent_output, plain, .fini = fini_env)
{
    cr_assert_eq(parse("{\"status\":\"success\",\"message\":\"ok\",\"data\":{\"vm_id\":\"abc\"}}\n"),
                 HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(status_of(), "success");
    cr_assert_str_eq(hvd_node_get_str(hvd_node_get(env, "data"), "vm_id"), "abc");
    cr_assert_eq(parse("{\"status\":\"error\",\"code\":\"HOST_BUSY\"}"), HVD_AGENT_PARSE_OK, "no final newline");
    cr_assert_str_eq(hvd_node_get_str(env, "code"), "HOST_BUSY");
}

Test(agent_output, nothing_useful, .fini = fini_env)
{
    cr_assert_eq(parse(""), HVD_AGENT_PARSE_NONE);
    cr_assert_null(env);
    cr_assert_eq(parse("\n\n   \r\n"), HVD_AGENT_PARSE_NONE);
    cr_assert_eq(parse("Starting...\nDone.\n"), HVD_AGENT_PARSE_NONE);
    cr_assert_eq(parse("{\"message\":\"no status here\"}\n"), HVD_AGENT_PARSE_NONE, "object without status");
    cr_assert_eq(parse("[{\"status\":\"success\"}]\n"), HVD_AGENT_PARSE_NONE, "an array is not an object");
    cr_assert_eq(parse("{\"status\":\"success\"\n"), HVD_AGENT_PARSE_NONE, "broken JSON");
    cr_assert_eq(parse("{\"status\":\"success\"} trailing\n"), HVD_AGENT_PARSE_NONE);
    cr_assert_eq(parse("{\"status\":\n\"success\"}\n"), HVD_AGENT_PARSE_NONE, "split across lines");
    cr_assert_eq(hvd_agent_output_parse(NULL, 0, &env), HVD_AGENT_PARSE_NONE);
}

Test(agent_output, bom_crlf_blank_lines, .fini = fini_env)
{
    cr_assert_eq(parse("\xEF\xBB\xBF{\"status\":\"success\"}\r\n"), HVD_AGENT_PARSE_OK);
    cr_assert_eq(parse("\r\n\r\n  \r\n\xEF\xBB\xBF  {\"status\":\"partial\",\"message\":\"x\"}  \r\n\r\n"),
                 HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(status_of(), "partial");
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "x", "CR is not part of the value");
}

Test(agent_output, clixml_blocks, .fini = fini_env)
{
    const char *before =
        "#< CLIXML\r\n"
        "<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
        "<Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T></TN>"
        "<MS><I64 N=\"SourceId\">1</I64></MS></Obj></Objs>\r\n"
        "{\"status\":\"success\",\"message\":\"made\"}\r\n";
    cr_assert_eq(parse(before), HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "made");

    const char *after = "{\"status\":\"success\",\"message\":\"made\"}\n"
                        "#< CLIXML<Objs Version=\"1.1.0.1\"><S S=\"Error\">oops_x000D__x000A_</S></Objs>\n";
    cr_assert_eq(parse(after), HVD_AGENT_PARSE_OK, "marker and block on one line");
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "made");

    const char *multi =
        "#< CLIXML\n<Objs Version=\"1.1.0.1\">\n{\"status\":\"error\",\"message\":\"inside the block\"}\n"
        "<S S=\"Error\">x</S>\n</Objs>\n"
        "{\"status\":\"success\",\"message\":\"outside\"}\n"
        "#< CLIXML\n<Objs>\n{\"status\":\"error\",\"message\":\"inside again\"}\n</Objs>\n";
    cr_assert_eq(parse(multi), HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "outside", "lines inside a CLIXML block are skipped");

    const char *same_line = "#< CLIXML\n<Objs><S>a</S></Objs>{\"status\":\"success\",\"message\":\"tail\"}\n";
    cr_assert_eq(parse(same_line), HVD_AGENT_PARSE_OK, "text after </Objs> on the same line counts");
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "tail");

    const char *unterminated = "#< CLIXML\n<Objs>\n{\"status\":\"success\"}\n";
    cr_assert_eq(parse(unterminated), HVD_AGENT_PARSE_NONE, "an unterminated block swallows the rest");
}

Test(agent_output, noise_and_last_status_wins, .fini = fini_env)
{
    const char *out = "VERBOSE: loading module Hyper-V\n"
                      "{\"status\":\"error\",\"message\":\"first\"}\n"
                      "WARNING: {not json}\n"
                      "{\"progress\":50}\n"
                      "{\"status\":\"success\",\"message\":\"second\"}\n"
                      "{\"level\":\"info\",\"msg\":\"cleanup\"}\n"
                      "{\"status\": \"partial\", \"message\": \"third\"}\n"
                      "{\"status\":\"success\",\"message\":\"broken\"\n"
                      "bye\n";
    cr_assert_eq(parse(out), HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(status_of(), "partial");
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "third");
}

Test(agent_output, long_log_strings_are_fine, .fini = fini_env)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "{\"status\":\"success\",\"logs\":[\"");
    for (int i = 0; i < 50000; i++) hvd_buf_puts(&b, "L");
    hvd_buf_puts(&b, "\"]}\n");
    cr_assert_eq(hvd_agent_output_parse(b.data, b.len, &env), HVD_AGENT_PARSE_OK,
                 "a 50000-byte log string is over the job-body string limit but fine here");
    hvd_buf_free(&b);
}

Test(agent_output, size_limit, .fini = fini_env)
{
    const char *line = "{\"status\":\"success\"}\n";
    size_t n = HVD_AGENT_MAX_OUTPUT;
    char *big = malloc(n + 2);
    memset(big, ' ', n + 1);
    memcpy(big + n - strlen(line), line, strlen(line)); /* exactly 1 MiB, answer at the end */
    cr_assert_eq(hvd_agent_output_parse(big, n, &env), HVD_AGENT_PARSE_OK);
    hvd_node_free(env);
    env = NULL;
    big[n] = '\n';
    cr_assert_eq(hvd_agent_output_parse(big, n + 1, &env), HVD_AGENT_PARSE_TOO_LARGE);
    cr_assert_null(env);
    free(big);
}

Test(agent_output, many_lines, .fini = fini_env)
{
    HvdBuf b = {0};
    for (int i = 0; i < 20000; i++) hvd_buf_printf(&b, "{\"status\":\"success\",\"n\":%d}\n", i);
    cr_assert_eq(hvd_agent_output_parse(b.data, b.len, &env), HVD_AGENT_PARSE_OK);
    int64_t v;
    cr_assert(hvd_node_get_int(env, "n", &v));
    cr_assert_eq(v, 19999);
    hvd_buf_free(&b);
}

/* ---- issue 12: what the worker keeps of an answer ----------------------- */

/* An answer in a Windows code page was lost (jansson refuses invalid UTF-8):
 * it is read, with U+FFFD for each byte that is not UTF-8. */
Test(agent_output, an_answer_not_in_utf8_is_read, .fini = fini_env)
{
    cr_assert_eq(parse("{\"status\":\"error\",\"code\":\"OPERATION_ERROR\",\"message\":\"Acc\xe8s refus\xe9\"}\r\n"),
                 HVD_AGENT_PARSE_OK);
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "Acc\xef\xbf\xbds refus\xef\xbf\xbd");
}

Test(agent_answer, clean_masks_secrets_and_nul_and_cuts_the_message, .fini = fini_env)
{
    HvdBuf line = {0};
    hvd_buf_puts(&line, "{\"status\":\"error\",\"message\":\"set S3cret!pw for Administrator\\u0000\",");
    hvd_buf_puts(&line, "\"logs\":[\"$env:GuestLaPw = 'S3cret!pw'\",\"ok\"],\"data\":{\"note\":\"pw a\"},");
    hvd_buf_puts(&line, "\"code\":\"BAD\\u0000CODE\"}");
    cr_assert_eq(parse(line.data), HVD_AGENT_PARSE_OK);
    hvd_buf_free(&line);
    const char *const secrets[] = {"S3cret!pw", "a"};
    hvd_agent_answer_clean(env, secrets, 2);
    cr_assert_str_eq(hvd_node_get_str(env, "message"), "set *** for Administrator\xef\xbf\xbd");
    const HvdNode *logs = hvd_node_get(env, "logs");
    cr_assert_str_eq(logs->u.arr.items[0]->u.s.ptr, "$env:GuestLaPw = '***'");
    cr_assert_str_eq(logs->u.arr.items[1]->u.s.ptr, "ok");
    cr_assert_str_eq(hvd_node_get_str(hvd_node_get(env, "data"), "note"), "pw ***");
    cr_assert_str_eq(hvd_node_get_str(env, "code"), "BAD\xef\xbf\xbd"
                                                    "CODE");
    cr_assert_null(memchr(hvd_node_get(env, "code")->u.s.ptr, '\0', hvd_node_get(env, "code")->u.s.len));

    /* a long message, a multi-byte character straddling the cut */
    HvdBuf msg = {0};
    hvd_buf_puts(&msg, "{\"status\":\"error\",\"message\":\"");
    for (int i = 0; i < HVD_AGENT_MESSAGE_MAX - 4; i++) hvd_buf_puts(&msg, "x");
    for (int i = 0; i < 100; i++) hvd_buf_puts(&msg, "\xe2\x82\xac");
    hvd_buf_puts(&msg, "\"}");
    cr_assert_eq(parse(msg.data), HVD_AGENT_PARSE_OK);
    hvd_buf_free(&msg);
    hvd_agent_answer_clean(env, NULL, 0);
    const HvdNode *mn = hvd_node_get(env, "message");
    cr_assert_leq(mn->u.s.len, HVD_AGENT_MESSAGE_MAX);
    cr_assert_eq(strlen(mn->u.s.ptr), mn->u.s.len);
    cr_assert(hvd_utf8_valid(mn->u.s.ptr, mn->u.s.len));
    cr_assert_eq(memcmp(mn->u.s.ptr + mn->u.s.len - 3, "...", 3), 0);
}

static bool check(const char *json, const char *op, const char *corr, char *why)
{
    cr_assert_eq(parse(json), HVD_AGENT_PARSE_OK, "%s", json);
    return hvd_agent_answer_check(env, op, corr, why, 160);
}

/* Item 10: the answer's correlation_id was parsed but never compared, and a
 * vm_id of "" or a non-GUID reached rollback's vm.delete. */
Test(agent_answer, bound_to_its_request, .fini = fini_env)
{
    char why[160];
    const char *C = "corr-1";
    const char *G = "\"vm_id\":\"0b5e2c8e-6a1f-4b1e-9c3d-7e2f1a0b9c8d\"";
    char ok[256];
    snprintf(ok, sizeof ok, "{\"status\":\"success\",\"correlation_id\":\"corr-1\",\"data\":{%s}}", G);
    cr_assert(check(ok, "vm.create", C, why), "%s", why);
    snprintf(ok, sizeof ok, "{\"status\":\"success\",\"data\":{%s}}", G);
    cr_assert(check(ok, "vm.create", C, why), "no correlation_id (Aether-V omits it): %s", why);
    snprintf(ok, sizeof ok, "{\"status\":\"success\",\"correlation_id\":\"\",\"data\":{%s}}", G);
    cr_assert(check(ok, "vm.create", C, why), "an empty one counts as absent: %s", why);
    snprintf(ok, sizeof ok, "{\"status\":\"success\",\"correlation_id\":null,\"data\":{%s}}", G);
    cr_assert(check(ok, "vm.create", C, why), "%s", why);

    snprintf(ok, sizeof ok, "{\"status\":\"success\",\"correlation_id\":\"corr-2\",\"data\":{%s}}", G);
    cr_assert_not(check(ok, "vm.create", C, why));
    cr_assert_str_eq(why, "the agent's answer carries another request's correlation_id");
    cr_assert_not(check("{\"status\":\"error\",\"correlation_id\":\"other\"}", "disk.create", C, why),
                  "an error answer too");
    cr_assert_not(check("{\"status\":\"success\",\"correlation_id\":7}", "disk.create", C, why));
    cr_assert(check("{\"status\":\"success\",\"correlation_id\":\"x\"}", "disk.create", NULL, why), "not checked");

    static const char *const bad_ids[] = {"\"\"",
                                          "\"vm-1\"",
                                          "\"0b5e2c8e-6a1f-4b1e-9c3d-7e2f1a0b9c8\"",
                                          "\"{0b5e2c8e-6a1f-4b1e-9c3d-7e2f1a0b9c8d}\"",
                                          "\"0b5e2c8e_6a1f_4b1e_9c3d_7e2f1a0b9c8d\"",
                                          "\"0b5e2c8e-6a1f-4b1e-9c3d-7e2f1a0b9cXd\"",
                                          "42",
                                          "null"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        char j[256];
        snprintf(j, sizeof j, "{\"status\":\"success\",\"data\":{\"vm_id\":%s}}", bad_ids[i]);
        cr_assert_not(check(j, "vm.create", C, why), "vm_id %s", bad_ids[i]);
        cr_assert_str_eq(why, "vm.create answered success without a GUID in data.vm_id (36 hex digits and hyphens)");
    }
    cr_assert_not(check("{\"status\":\"success\",\"data\":{}}", "vm.create", C, why));
    cr_assert(check("{\"status\":\"error\",\"data\":{}}", "vm.create", C, why), "an error needs no vm_id");
    cr_assert(check("{\"status\":\"success\",\"data\":{\"disk_id\":\"d-1\",\"disk_path\":\"C:/x.vhdx\"}}",
                    "disk.create", C, why),
              "%s", why);
    cr_assert_not(check("{\"status\":\"success\",\"data\":{\"disk_id\":\"\"}}", "disk.create", C, why));
    cr_assert_str_eq(why, "the agent's answer has an empty or non-string data.disk_id");
    cr_assert_not(check("{\"status\":\"success\",\"data\":{\"nic_id\":\"\"}}", "nic.create", C, why));
    cr_assert_not(check("{\"status\":\"success\",\"data\":{\"nic_id\":5}}", "nic.create", C, why));
    cr_assert(check("{\"status\":\"success\",\"data\":{\"nic_id\":null}}", "nic.create", C, why), "absent");
}
