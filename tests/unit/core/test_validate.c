/* Unit tests of hvd_job_validate (contract §3): every rule passes at its
 * boundary and fails one step past it with the expected loc and type. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "timefmt.h"
#include "model.h"
#include "utf8.h"

#define JOB_ID "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11"

/* ---------------------------------------------------------------- body builders */

/* A valid body with every section and every optional group filled. */
static HvdNode *full_body(void)
{
    HvdNode *b = hvd_node_map();
    hvd_node_map_set_str(b, "job_id", JOB_ID);
    hvd_node_map_set_str(b, "job_type", "managed_deployment");
    HvdNode *req = hvd_node_map();
    hvd_node_map_set_str(req, "target_host", "hv01.lab.example");
    HvdNode *vm = hvd_node_map();
    hvd_node_map_set_str(vm, "vm_name", "web-01");
    hvd_node_map_set_int(vm, "gb_ram", 4);
    hvd_node_map_set_int(vm, "cpu_cores", 2);
    hvd_node_map_set_str(vm, "storage_class", "fast-ssd");
    hvd_node_map_set(req, "vm_spec", vm);
    HvdNode *disk = hvd_node_map();
    hvd_node_map_set_str(disk, "image_name", "Ubuntu 22.04");
    hvd_node_map_set(req, "disk_spec", disk);
    HvdNode *nic = hvd_node_map();
    hvd_node_map_set_str(nic, "network", "Production");
    hvd_node_map_set(req, "nic_spec", nic);
    HvdNode *gc = hvd_node_map();
    hvd_node_map_set_str(gc, "guest_la_uid", "Administrator");
    hvd_node_map_set_str(gc, "guest_la_pw", "S3cret!pw-TEST");
    hvd_node_map_set_str(gc, "guest_domain_join_target", "corp.lab.example");
    hvd_node_map_set_str(gc, "guest_domain_join_uid", "LAB\\svc_join");
    hvd_node_map_set_str(gc, "guest_domain_join_pw", "J0in!pw-TEST");
    hvd_node_map_set_str(gc, "guest_domain_join_ou", "OU=Servers,DC=lab,DC=example");
    hvd_node_map_set_str(gc, "cnf_ansible_ssh_user", "ansible");
    hvd_node_map_set_str(gc, "cnf_ansible_ssh_key", "ssh-ed25519 AAAATESTKEY ansible@TEST");
    hvd_node_map_set_str(gc, "guest_v4_ip_addr", "10.0.0.20");
    hvd_node_map_set_int(gc, "guest_v4_cidr_prefix", 24);
    hvd_node_map_set_str(gc, "guest_v4_default_gw", "10.0.0.1");
    hvd_node_map_set_str(gc, "guest_v4_dns1", "10.0.0.2");
    hvd_node_map_set_str(gc, "guest_v4_dns2", "10.0.0.3");
    hvd_node_map_set_str(gc, "guest_net_dns_suffix", "lab.example");
    hvd_node_map_set(req, "guest_config", gc);
    hvd_node_map_set(b, "request", req);
    return b;
}

/* Only the required fields. */
static HvdNode *minimal_body(void)
{
    HvdNode *b = hvd_node_map();
    hvd_node_map_set_str(b, "job_id", JOB_ID);
    hvd_node_map_set_str(b, "job_type", "managed_deployment");
    HvdNode *req = hvd_node_map();
    HvdNode *vm = hvd_node_map();
    hvd_node_map_set_str(vm, "vm_name", "web-01");
    hvd_node_map_set_int(vm, "gb_ram", 4);
    hvd_node_map_set_int(vm, "cpu_cores", 2);
    hvd_node_map_set(req, "vm_spec", vm);
    hvd_node_map_set_str(req, "target_host", "hv01.lab.example");
    hvd_node_map_set(b, "request", req);
    return b;
}

/* The map at a dotted path ("" = the body). */
static HvdNode *at(HvdNode *body, const char *path)
{
    HvdNode *n = body;
    char *copy = strdup(path), *save = NULL;
    for (char *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
        n = hvd_node_get_mut(n, t);
        cr_assert_not_null(n, "no map at %s", path);
    }
    free(copy);
    return n;
}

static HvdNode *with(HvdNode *body, const char *path, const char *key, HvdNode *val)
{
    hvd_node_map_set(at(body, path), key, val);
    return body;
}

static HvdNode *without(HvdNode *body, const char *path, const char *key)
{
    cr_assert(hvd_node_map_remove(at(body, path), key), "%s.%s was not there", path, key);
    return body;
}

static HvdNode *repeat(const char *unit, size_t times)
{
    HvdBuf b = {0};
    for (size_t i = 0; i < times; i++) hvd_buf_puts(&b, unit);
    HvdNode *n = hvd_node_strn(b.data ? b.data : "", b.len);
    hvd_buf_free(&b);
    return n;
}

/* ---------------------------------------------------------------- checks */

static char *dump(const HvdErrors *e)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    for (size_t i = 0; i < e->n; i++)
        hvd_buf_printf(&b, "\n  %s: %s [%s]", e->items[i].loc, e->items[i].msg, e->items[i].type);
    return hvd_buf_steal(&b);
}

static const HvdValidateOpts *no_opts = NULL;

/* Validates and consumes body; the job is returned for further checks. */
static void expect_ok_opts(HvdNode *body, const HvdValidateOpts *opts, HvdJob *job_out)
{
    HvdJob job;
    HvdErrors errs = {0};
    bool ok = hvd_job_validate(body, opts, &job, &errs);
    char *d = dump(&errs);
    cr_assert(ok && errs.n == 0, "expected valid, got %zu errors:%s", errs.n, d);
    free(d);
    hvd_errors_free(&errs);
    hvd_node_free(body);
    if (job_out)
        *job_out = job;
    else
        hvd_job_free(&job);
}

static void expect_ok(HvdNode *body)
{
    expect_ok_opts(body, no_opts, NULL);
}

/* Exactly one error, at loc with type (and msg when non-NULL). */
static void expect_err_opts(HvdNode *body, const HvdValidateOpts *opts, const char *loc, const char *type,
                            const char *msg)
{
    HvdJob job;
    HvdErrors errs = {0};
    bool ok = hvd_job_validate(body, opts, &job, &errs);
    char *d = dump(&errs);
    cr_assert(!ok, "expected an error at %s [%s], body was valid", loc, type);
    cr_assert_eq(errs.n, 1, "expected one error at %s [%s], got %zu:%s", loc, type, errs.n, d);
    cr_assert_str_eq(errs.items[0].loc, loc, "loc:%s", d);
    cr_assert_str_eq(errs.items[0].type, type, "type:%s", d);
    if (msg) cr_assert_str_eq(errs.items[0].msg, msg, "msg:%s", d);
    free(d);
    hvd_errors_free(&errs);
    hvd_job_free(&job);
    hvd_node_free(body);
}

static void expect_err(HvdNode *body, const char *loc, const char *type, const char *msg)
{
    expect_err_opts(body, no_opts, loc, type, msg);
}

/* ---------------------------------------------------------------- whole bodies */

Test(validate, full_body_is_valid_and_parsed)
{
    HvdJob job;
    expect_ok_opts(full_body(), NULL, &job);
    cr_assert_str_eq(job.job_id, JOB_ID);
    cr_assert_str_eq(job.job_type, "managed_deployment");
    cr_assert_str_eq(job.target_host, "hv01.lab.example");
    cr_assert_str_eq(job.vm.vm_name, "web-01");
    cr_assert_eq(job.vm.gb_ram, 4);
    cr_assert_eq(job.vm.cpu_cores, 2);
    cr_assert_str_eq(job.vm.storage_class, "fast-ssd");
    cr_assert_not(job.vm.vm_clustered);
    cr_assert_null(job.vm.os_family);
    cr_assert_str_eq(job.os_family, "linux", "detected from Ubuntu 22.04");
    cr_assert(job.disk.present);
    cr_assert_str_eq(job.disk.image_name, "Ubuntu 22.04");
    cr_assert(job.nic.present);
    cr_assert_str_eq(job.nic.network, "Production");
    cr_assert_null(job.nic.adapter_name);
    cr_assert(job.guest.present);
    cr_assert_str_eq(job.guest.guest_la_pw, "S3cret!pw-TEST");
    cr_assert_str_eq(job.guest.guest_domain_join_ou, "OU=Servers,DC=lab,DC=example");
    cr_assert(job.guest.has_cidr_prefix);
    cr_assert_eq(job.guest.guest_v4_cidr_prefix, 24);
    cr_assert_str_eq(job.guest.guest_v4_dns2, "10.0.0.3");
    cr_assert_str_eq(job.guest.guest_net_dns_suffix, "lab.example");
    cr_assert_not(job.rollback);
    cr_assert_not(job.has_deadline);
    hvd_job_free(&job);
    hvd_job_free(&job); /* a freed job is zeroed: freeing again is harmless */
}

Test(validate, minimal_body_gets_defaults)
{
    HvdJob job;
    expect_ok_opts(minimal_body(), NULL, &job);
    cr_assert_not(job.disk.present);
    cr_assert_not(job.nic.present);
    cr_assert_not(job.guest.present);
    cr_assert_not(job.vm.vm_clustered);
    cr_assert_null(job.vm.storage_class);
    cr_assert_str_eq(job.os_family, "windows");
    hvd_job_free(&job);
}

Test(validate, disk_spec_defaults)
{
    HvdJob job;
    HvdNode *b = with(minimal_body(), "request", "disk_spec", hvd_node_map());
    expect_ok_opts(b, NULL, &job);
    cr_assert(job.disk.present);
    cr_assert_null(job.disk.image_name, "no image: a blank disk");
    cr_assert_eq(job.disk.disk_size_gb, 100);
    cr_assert_str_eq(job.disk.disk_type, "Dynamic");
    cr_assert_str_eq(job.disk.controller_type, "SCSI");
    hvd_job_free(&job);
}

Test(validate, nil_optional_sections_are_absent)
{
    HvdJob job;
    HvdNode *b = minimal_body();
    with(b, "request", "disk_spec", hvd_node_nil());
    with(b, "request", "nic_spec", hvd_node_nil());
    with(b, "request", "guest_config", hvd_node_nil());
    with(b, "request.vm_spec", "storage_class", hvd_node_nil());
    with(b, "request.vm_spec", "os_family", hvd_node_nil());
    with(b, "", "options", hvd_node_nil());
    expect_ok_opts(b, NULL, &job);
    cr_assert_not(job.disk.present);
    cr_assert_not(job.nic.present);
    cr_assert_not(job.guest.present);
    hvd_job_free(&job);
}

Test(validate, body_must_be_a_map)
{
    expect_err(hvd_node_array(), "body", "dict_type", "Input should be a valid dictionary");
    expect_err(hvd_node_str("x"), "body", "dict_type", NULL);
}

Test(validate, unknown_keys_are_ignored)
{
    HvdNode *b = full_body();
    with(b, "", "extra", hvd_node_str("x"));
    with(b, "request", "priority", hvd_node_int(7));
    with(b, "request.vm_spec", "gpu", hvd_node_bool(true));
    with(b, "request.disk_spec", "whatever", hvd_node_array());
    with(b, "request.nic_spec", "vlan", hvd_node_int(100));
    with(b, "request.guest_config", "guest_timezone", hvd_node_str("UTC"));
    with(b, "", "options", hvd_node_map());
    with(b, "options", "priority", hvd_node_str("high"));
    expect_ok(b);
}

/* ---------------------------------------------------------------- required fields */

Test(validate, missing_required_fields)
{
    static const struct {
        const char *path, *key, *loc;
    } cases[] = {
        {"", "job_id", "job_id"},
        {"", "job_type", "job_type"},
        {"", "request", "request"},
        {"request", "vm_spec", "request.vm_spec"},
        {"request", "target_host", "request.target_host"},
        {"request.vm_spec", "vm_name", "request.vm_spec.vm_name"},
        {"request.vm_spec", "gb_ram", "request.vm_spec.gb_ram"},
        {"request.vm_spec", "cpu_cores", "request.vm_spec.cpu_cores"},
        {"request.nic_spec", "network", "request.nic_spec.network"},
        {"request.guest_config", "guest_la_uid", "request.guest_config.guest_la_uid"},
        {"request.guest_config", "guest_la_pw", "request.guest_config.guest_la_pw"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_err(without(full_body(), cases[i].path, cases[i].key), cases[i].loc, "missing", "Field required");
}

Test(validate, nil_in_required_fields_is_a_type_error)
{
    expect_err(with(full_body(), "", "job_id", hvd_node_nil()), "job_id", "string_type", NULL);
    expect_err(with(full_body(), "", "request", hvd_node_nil()), "request", "dict_type",
               "Input should be a valid dictionary");
    expect_err(with(full_body(), "request", "vm_spec", hvd_node_nil()), "request.vm_spec", "dict_type", NULL);
    expect_err(with(full_body(), "request.vm_spec", "gb_ram", hvd_node_nil()), "request.vm_spec.gb_ram", "int_type",
               NULL);
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_nil()), "request.vm_spec.vm_name",
               "string_type", NULL);
    expect_err(with(full_body(), "request.vm_spec", "vm_clustered", hvd_node_nil()), "request.vm_spec.vm_clustered",
               "bool_type", NULL);
    expect_err(with(full_body(), "request.disk_spec", "disk_size_gb", hvd_node_nil()), "request.disk_spec.disk_size_gb",
               "int_type", NULL);
    expect_err(with(full_body(), "request.disk_spec", "disk_type", hvd_node_nil()), "request.disk_spec.disk_type",
               "string_type", NULL);
    expect_err(with(full_body(), "request.nic_spec", "network", hvd_node_nil()), "request.nic_spec.network",
               "string_type", NULL);
    expect_err(with(full_body(), "request.guest_config", "guest_la_pw", hvd_node_nil()),
               "request.guest_config.guest_la_pw", "string_type", NULL);
    expect_err(with(full_body(), "request", "target_host", hvd_node_nil()), "request.target_host", "string_type", NULL);
}

Test(validate, sections_must_be_maps)
{
    expect_err(with(full_body(), "", "request", hvd_node_array()), "request", "dict_type", NULL);
    expect_err(with(full_body(), "request", "vm_spec", hvd_node_str("big")), "request.vm_spec", "dict_type", NULL);
    expect_err(with(full_body(), "request", "disk_spec", hvd_node_int(1)), "request.disk_spec", "dict_type", NULL);
    expect_err(with(full_body(), "request", "nic_spec", hvd_node_bool(true)), "request.nic_spec", "dict_type", NULL);
    expect_err(with(full_body(), "request", "guest_config", hvd_node_array()), "request.guest_config", "dict_type",
               NULL);
    expect_err(with(full_body(), "", "options", hvd_node_str("rollback")), "options", "dict_type", NULL);
}

/* ---------------------------------------------------------------- integer ranges */

static void int_range(const char *path, const char *key, int64_t lo, int64_t hi)
{
    char loc[128];
    snprintf(loc, sizeof(loc), "%s.%s", path, key);
    char lo_msg[80], hi_msg[80];
    snprintf(lo_msg, sizeof(lo_msg), "Input should be greater than or equal to %lld", (long long)lo);
    snprintf(hi_msg, sizeof(hi_msg), "Input should be less than or equal to %lld", (long long)hi);
    expect_ok(with(full_body(), path, key, hvd_node_int(lo)));
    expect_ok(with(full_body(), path, key, hvd_node_int(hi)));
    expect_err(with(full_body(), path, key, hvd_node_int(lo - 1)), loc, "greater_than_equal", lo_msg);
    expect_err(with(full_body(), path, key, hvd_node_int(hi + 1)), loc, "less_than_equal", hi_msg);
    expect_err(with(full_body(), path, key, hvd_node_int(INT64_MAX)), loc, "less_than_equal", hi_msg);
    expect_err(with(full_body(), path, key, hvd_node_int(INT64_MIN)), loc, "greater_than_equal", lo_msg);
}

Test(validate, gb_ram_1_to_512)
{
    int_range("request.vm_spec", "gb_ram", 1, 512);
}
Test(validate, cpu_cores_1_to_64)
{
    int_range("request.vm_spec", "cpu_cores", 1, 64);
}
Test(validate, disk_size_gb_1_to_65536)
{
    int_range("request.disk_spec", "disk_size_gb", 1, 65536);
}
Test(validate, cidr_prefix_0_to_32)
{
    int_range("request.guest_config", "guest_v4_cidr_prefix", 0, 32);
}

Test(validate, boundary_values_are_stored)
{
    HvdJob job;
    HvdNode *b = full_body();
    with(b, "request.vm_spec", "gb_ram", hvd_node_int(512));
    with(b, "request.vm_spec", "cpu_cores", hvd_node_int(64));
    with(b, "request.disk_spec", "disk_size_gb", hvd_node_int(65536));
    with(b, "request.guest_config", "guest_v4_cidr_prefix", hvd_node_int(0));
    expect_ok_opts(b, NULL, &job);
    cr_assert_eq(job.vm.gb_ram, 512);
    cr_assert_eq(job.vm.cpu_cores, 64);
    cr_assert_eq(job.disk.disk_size_gb, 65536);
    cr_assert_eq(job.guest.guest_v4_cidr_prefix, 0);
    hvd_job_free(&job);
}

/* ---------------------------------------------------------------- strict types */

Test(validate, int_fields_are_strict)
{
    static const struct {
        const char *path, *key;
    } fields[] = {
        {"request.vm_spec", "gb_ram"},
        {"request.vm_spec", "cpu_cores"},
        {"request.disk_spec", "disk_size_gb"},
        {"request.guest_config", "guest_v4_cidr_prefix"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char loc[128];
        snprintf(loc, sizeof(loc), "%s.%s", fields[i].path, fields[i].key);
        HvdNode *bad[] = {hvd_node_str("4"), hvd_node_float(4.0), hvd_node_bool(true),    hvd_node_bool(false),
                          hvd_node_map(),    hvd_node_array(),    hvd_node_bin("\x04", 1)};
        for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
            expect_err(with(full_body(), fields[i].path, fields[i].key, bad[j]), loc, "int_type",
                       "Input should be a valid integer");
    }
}

Test(validate, str_fields_are_strict)
{
    static const struct {
        const char *path, *key;
    } fields[] = {
        {"", "job_id"},
        {"", "job_type"},
        {"request", "target_host"},
        {"request.vm_spec", "vm_name"},
        {"request.vm_spec", "storage_class"},
        {"request.disk_spec", "image_name"},
        {"request.disk_spec", "disk_type"},
        {"request.disk_spec", "controller_type"},
        {"request.disk_spec", "vm_id"},
        {"request.disk_spec", "storage_class"},
        {"request.nic_spec", "network"},
        {"request.nic_spec", "adapter_name"},
        {"request.nic_spec", "vm_id"},
        {"request.guest_config", "guest_la_uid"},
        {"request.guest_config", "guest_la_pw"},
        {"request.guest_config", "guest_v4_dns2"},
        {"request.guest_config", "guest_net_dns_suffix"},
        {"options", "on_failure"},
        {"options", "deadline"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char loc[128];
        snprintf(loc, sizeof(loc), "%s%s%s", fields[i].path, *fields[i].path ? "." : "", fields[i].key);
        HvdNode *bad[] = {hvd_node_int(4), hvd_node_float(1.5), hvd_node_bool(true),
                          hvd_node_map(),  hvd_node_array(),    hvd_node_bin("abc", 3)};
        for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
            HvdNode *b = full_body();
            with(b, "", "options", hvd_node_map());
            expect_err(with(b, fields[i].path, fields[i].key, bad[j]), loc, "string_type",
                       "Input should be a valid string");
        }
    }
}

Test(validate, group_str_fields_are_strict)
{
    /* A wrongly typed group member is reported by type only: it counts as given. */
    static const char *const keys[] = {"guest_domain_join_target", "guest_domain_join_uid", "guest_domain_join_pw",
                                       "guest_domain_join_ou",     "cnf_ansible_ssh_user",  "cnf_ansible_ssh_key",
                                       "guest_v4_ip_addr",         "guest_v4_default_gw",   "guest_v4_dns1"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char loc[128];
        snprintf(loc, sizeof(loc), "request.guest_config.%s", keys[i]);
        expect_err(with(full_body(), "request.guest_config", keys[i], hvd_node_int(1)), loc, "string_type", NULL);
    }
}

Test(validate, bool_field_is_strict)
{
    expect_ok(with(full_body(), "request.vm_spec", "vm_clustered", hvd_node_bool(true)));
    expect_ok(with(full_body(), "request.vm_spec", "vm_clustered", hvd_node_bool(false)));
    HvdNode *bad[] = {hvd_node_int(1), hvd_node_int(0), hvd_node_str("true"), hvd_node_float(1.0)};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        expect_err(with(full_body(), "request.vm_spec", "vm_clustered", bad[j]), "request.vm_spec.vm_clustered",
                   "bool_type", "Input should be a valid boolean");
    HvdJob job;
    expect_ok_opts(with(full_body(), "request.vm_spec", "vm_clustered", hvd_node_bool(true)), NULL, &job);
    cr_assert(job.vm.vm_clustered);
    hvd_job_free(&job);
}

Test(validate, invalid_utf8_is_string_unicode)
{
    expect_err(with(full_body(), "request.nic_spec", "network", hvd_node_strn("Pro\xff", 4)),
               "request.nic_spec.network", "string_unicode", NULL);
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_strn("\xc0\xaf", 2)), "request.vm_spec.vm_name",
               "string_unicode", NULL); /* overlong '/' */
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_strn("\xed\xa0\x80", 3)),
               "request.vm_spec.vm_name", "string_unicode", NULL); /* a surrogate */
}

Test(validate, embedded_nul_is_rejected)
{
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_strn("web\0-01", 7)), "request.vm_spec.vm_name",
               "value_error", NULL);
    expect_err(with(full_body(), "request.guest_config", "guest_la_pw", hvd_node_strn("pw\0x", 4)),
               "request.guest_config.guest_la_pw", "value_error", NULL);
}

/* ---------------------------------------------------------------- names */

static void name_rules(const char *path, const char *key, size_t max)
{
    char loc[128], too_long[80];
    snprintf(loc, sizeof(loc), "%s.%s", path, key);
    snprintf(too_long, sizeof(too_long), "String should have at most %zu characters", max);
    expect_ok(with(full_body(), path, key, repeat("a", max)));
    expect_err(with(full_body(), path, key, repeat("a", max + 1)), loc, "string_too_long", too_long);
    /* lengths are code points, not bytes */
    expect_ok(with(full_body(), path, key, repeat("\xc3\xa9", max)));         /* é: 2 bytes */
    expect_ok(with(full_body(), path, key, repeat("\xe2\x82\xac", max)));     /* €: 3 bytes */
    expect_ok(with(full_body(), path, key, repeat("\xf0\x9f\x96\xa5", max))); /* 🖥: 4 bytes */
    expect_err(with(full_body(), path, key, repeat("\xc3\xa9", max + 1)), loc, "string_too_long", too_long);
    expect_err(with(full_body(), path, key, hvd_node_str("")), loc, "string_too_short",
               "String should have at least 1 character");

    const char *forbidden = "/\\:*?\"<>|";
    for (const char *c = forbidden; *c; c++) {
        char name[16];
        snprintf(name, sizeof(name), "web%c01", *c);
        char msg[128];
        snprintf(msg, sizeof(msg), "Value error, %s must not contain any of / \\ : * ? \" < > |", key);
        expect_err(with(full_body(), path, key, hvd_node_str(name)), loc, "value_error", msg);
    }
    expect_err(with(full_body(), path, key, hvd_node_str(".")), loc, "value_error", NULL);
    expect_err(with(full_body(), path, key, hvd_node_str("..")), loc, "value_error", NULL);
    expect_err(with(full_body(), path, key, hvd_node_str("...")), loc, "value_error", NULL); /* ends with a dot */
    expect_ok(with(full_body(), path, key, hvd_node_str("web.01")));
    expect_ok(with(full_body(), path, key, hvd_node_str(".hidden")));
    expect_err(with(full_body(), path, key, hvd_node_str(" web")), loc, "value_error", NULL);
    expect_err(with(full_body(), path, key, hvd_node_str("web ")), loc, "value_error", NULL);
    expect_err(with(full_body(), path, key, hvd_node_str(" ")), loc, "value_error", NULL);
    expect_ok(with(full_body(), path, key, hvd_node_str("web server 01")));
    static const char *const controls[] = {
        "web\x01", "we\tb", "web\n", "web\x1f", "web\x7f", "web\xc2\x85" /* U+0085 NEL */, "\xc2\x9fweb"};
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
        expect_err(with(full_body(), path, key, hvd_node_str(controls[i])), loc, "value_error", NULL);
    expect_ok(with(full_body(), path, key, hvd_node_str("Server-\xc3\xa9t\xc3\xa9_2022 (v1)")));
}

/* Issue 12 (hardening): names Windows treats specially. "web." is "web" on
 * NTFS (the uniqueness index would miss it), CON is a device, and invisible or
 * direction-changing characters make one name look like another. */
static void windows_name_rules(const char *path, const char *key)
{
    char loc[128], msg[256];
    snprintf(loc, sizeof(loc), "%s.%s", path, key);
    static const char *const devices[] = {"CON",  "con",       "Prn",  "AUX",  "NUL",    "nul.txt",
                                          "COM1", "com9.vhdx", "LPT1", "lpt9", "CON .x", "Aux.tar.gz"};
    snprintf(msg, sizeof(msg), "Value error, %s must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
             key);
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
        expect_err(with(full_body(), path, key, hvd_node_str(devices[i])), loc, "value_error", msg);
    static const char *const fine[] = {"CONSOLE", "con-01", "COM10", "COM0", "LPT", "xcon", "Nul1", "web.01"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        expect_ok(with(full_body(), path, key, hvd_node_str(fine[i])));
    snprintf(msg, sizeof(msg), "Value error, %s must not end with a dot (Windows drops it)", key);
    expect_err(with(full_body(), path, key, hvd_node_str("web.")), loc, "value_error", msg);
    static const char *const invisible[] = {
        "web\xc2\xa0"
        "01", /* U+00A0 no-break space */
        "web\xe2\x80\xa8"
        "01", /* U+2028 line separator */
        "web\xe2\x80\xa9"
        "01", /* U+2029 paragraph separator */
        "web\xe2\x80\x8b"
        "01", /* U+200B zero width space */
        "web\xe2\x80\x8c"
        "01", /* U+200C ZWNJ */
        "web\xe2\x80\x8d"
        "01", /* U+200D ZWJ */
        "web\xef\xbb\xbf"
        "01", /* U+FEFF */
        "web\xe2\x81\xa0"
        "01", /* U+2060 word joiner */
        "web\xe2\x80\xaa"
        "01", /* U+202A LRE */
        "web\xe2\x80\xae"
        "01", /* U+202E RLO */
        "web\xe2\x81\xa6"
        "01", /* U+2066 LRI */
        "web\xe2\x81\xa9"
        "01", /* U+2069 PDI */
        "web\xe2\x80\x8f"
        "01", /* U+200F RLM */
    };
    snprintf(msg, sizeof(msg),
             "Value error, %s must not contain invisible or direction-changing characters (no-break space, "
             "zero-width, line/paragraph separator, bidi controls)",
             key);
    for (size_t i = 0; i < sizeof(invisible) / sizeof(invisible[0]); i++)
        expect_err(with(full_body(), path, key, hvd_node_str(invisible[i])), loc, "value_error", msg);
    expect_ok(with(full_body(), path, key,
                   hvd_node_str("web\xe2\x80\x94"
                                "01"))); /* an em dash is visible */
}

Test(validate, vm_name_rules)
{
    name_rules("request.vm_spec", "vm_name", 64);
}
Test(validate, vm_name_windows_rules)
{
    windows_name_rules("request.vm_spec", "vm_name");
}
Test(validate, image_name_windows_rules)
{
    windows_name_rules("request.disk_spec", "image_name");
}
Test(validate, image_name_rules)
{
    name_rules("request.disk_spec", "image_name", 128);
}

Test(validate, vm_name_messages)
{
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_str("..")), "request.vm_spec.vm_name",
               "value_error", "Value error, vm_name must not be \".\" or \"..\"");
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_str("a ")), "request.vm_spec.vm_name",
               "value_error", "Value error, vm_name must not begin or end with a space");
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_str("a\x01")), "request.vm_spec.vm_name",
               "value_error", "Value error, vm_name must not contain control characters");
}

Test(validate, image_name_nil_is_blank_disk)
{
    HvdJob job;
    expect_ok_opts(with(full_body(), "request.disk_spec", "image_name", hvd_node_nil()), NULL, &job);
    cr_assert(job.disk.present);
    cr_assert_null(job.disk.image_name);
    hvd_job_free(&job);
}

/* ---------------------------------------------------------------- choices */

Test(validate, disk_type_and_controller_type)
{
    expect_ok(with(full_body(), "request.disk_spec", "disk_type", hvd_node_str("Dynamic")));
    expect_ok(with(full_body(), "request.disk_spec", "disk_type", hvd_node_str("Fixed")));
    expect_err(with(full_body(), "request.disk_spec", "disk_type", hvd_node_str("dynamic")),
               "request.disk_spec.disk_type", "literal_error", "Input should be 'Dynamic' or 'Fixed'");
    expect_err(with(full_body(), "request.disk_spec", "disk_type", hvd_node_str("Differencing")),
               "request.disk_spec.disk_type", "literal_error", NULL);
    expect_ok(with(full_body(), "request.disk_spec", "controller_type", hvd_node_str("SCSI")));
    expect_ok(with(full_body(), "request.disk_spec", "controller_type", hvd_node_str("IDE")));
    expect_err(with(full_body(), "request.disk_spec", "controller_type", hvd_node_str("NVMe")),
               "request.disk_spec.controller_type", "literal_error", "Input should be 'SCSI' or 'IDE'");
    HvdJob job;
    HvdNode *b = full_body();
    with(b, "request.disk_spec", "disk_type", hvd_node_str("Fixed"));
    with(b, "request.disk_spec", "controller_type", hvd_node_str("IDE"));
    expect_ok_opts(b, NULL, &job);
    cr_assert_str_eq(job.disk.disk_type, "Fixed");
    cr_assert_str_eq(job.disk.controller_type, "IDE");
    hvd_job_free(&job);
}

Test(validate, os_family)
{
    expect_ok(with(full_body(), "request.vm_spec", "os_family", hvd_node_str("windows")));
    expect_ok(with(full_body(), "request.vm_spec", "os_family", hvd_node_str("linux")));
    expect_ok(with(full_body(), "request.vm_spec", "os_family", hvd_node_nil()));
    HvdNode *bad[] = {hvd_node_str("Windows"), hvd_node_str("bsd"), hvd_node_str(""), hvd_node_int(1)};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        expect_err(with(full_body(), "request.vm_spec", "os_family", bad[j]), "request.vm_spec.os_family",
                   "literal_error", "Input should be 'windows' or 'linux'");
    HvdJob job;
    expect_ok_opts(with(full_body(), "request.vm_spec", "os_family", hvd_node_str("windows")), NULL, &job);
    cr_assert_str_eq(job.vm.os_family, "windows");
    cr_assert_str_eq(job.os_family, "windows", "explicit os_family wins over the Ubuntu image");
    hvd_job_free(&job);
}

Test(validate, job_type_must_be_managed_deployment)
{
    HvdJob job;
    HvdErrors errs = {0};
    HvdNode *b = with(full_body(), "", "job_type", hvd_node_str("unmanaged_deployment"));
    cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.items[0].loc, "job_type");
    cr_assert_str_eq(errs.items[0].type, "literal_error");
    cr_assert_str_eq(errs.items[0].msg, "Input should be 'managed_deployment'");
    cr_assert_str_eq(job.job_type, "unmanaged_deployment", "kept so the worker can answer unsupported_job_type");
    cr_assert_str_eq(job.job_id, JOB_ID);
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(b);
}

Test(validate, options)
{
    HvdJob job;
    HvdNode *b = with(full_body(), "", "options", hvd_node_map());
    with(b, "options", "on_failure", hvd_node_str("rollback"));
    with(b, "options", "deadline", hvd_node_str("2026-11-25T10:00:00Z"));
    expect_ok_opts(b, NULL, &job);
    cr_assert(job.rollback);
    cr_assert(job.has_deadline);
    cr_assert_eq(job.deadline_ms, 1795600800000LL);
    cr_assert_str_eq(job.deadline_text, "2026-11-25T10:00:00Z");
    hvd_job_free(&job);

    b = with(full_body(), "", "options", hvd_node_map());
    with(b, "options", "on_failure", hvd_node_str("keep"));
    with(b, "options", "deadline", hvd_node_nil());
    expect_ok_opts(b, NULL, &job);
    cr_assert_not(job.rollback);
    cr_assert_not(job.has_deadline);
    hvd_job_free(&job);

    b = with(full_body(), "", "options", hvd_node_map());
    expect_err(with(b, "options", "on_failure", hvd_node_str("delete")), "options.on_failure", "literal_error",
               "Input should be 'keep' or 'rollback'");
}

Test(validate, deadline_formats)
{
    static const struct {
        const char *text;
        long long ms;
    } good[] = {
        {"2026-11-25T10:00:00Z", 1795600800000LL},
        {"2026-11-25t10:00:00z", 1795600800000LL},
        {"2026-11-25 10:00:00+00:00", 1795600800000LL},
        {"2026-11-25T10:00:00.250+01:00", 1795597200250LL},
        {"2024-02-29T23:59:59.999-05:30", 1709270999999LL},
        {"2024-02-29T23:59:59.999999999-05:30", 1709270999999LL},
        {"1970-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        HvdJob job;
        HvdNode *b = with(full_body(), "", "options", hvd_node_map());
        expect_ok_opts(with(b, "options", "deadline", hvd_node_str(good[i].text)), NULL, &job);
        cr_assert_eq(job.deadline_ms, good[i].ms, "%s -> %lld", good[i].text, (long long)job.deadline_ms);
        hvd_job_free(&job);
        int64_t ms = -1;
        cr_assert(hvd_time_parse_rfc3339(good[i].text, &ms));
        cr_assert_eq(ms, good[i].ms);
    }
    static const char *const bad[] = {"tomorrow",
                                      "2026-11-25",
                                      "2026-13-01T00:00:00Z",
                                      "2023-02-29T00:00:00Z",
                                      "2026-11-25T24:00:00Z",
                                      "2026-11-25T10:60:00Z",
                                      "2026-11-25T10:00:00+1:00",
                                      "2026-11-25T10:00:00.Z",
                                      "2026-11-25T10:00:00Zjunk",
                                      "2026/11/25T10:00:00Z",
                                      ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        HvdNode *b = with(full_body(), "", "options", hvd_node_map());
        expect_err(with(b, "options", "deadline", hvd_node_str(bad[i])), "options.deadline", "datetime_parsing", NULL);
        cr_assert_not(hvd_time_parse_rfc3339(bad[i], NULL), "%s", bad[i]);
    }
    HvdNode *b = with(full_body(), "", "options", hvd_node_map());
    expect_err(with(b, "options", "deadline", hvd_node_str("2026-11-25T10:00:00")), "options.deadline",
               "timezone_aware", "Input should have timezone info");
}

/* ---------------------------------------------------------------- vm_id */

Test(validate, vm_id_ignored_but_36_chars)
{
    static const char *const paths[] = {"request.disk_spec", "request.nic_spec"};
    for (size_t i = 0; i < 2; i++) {
        char loc[128];
        snprintf(loc, sizeof(loc), "%s.vm_id", paths[i]);
        expect_ok(with(full_body(), paths[i], "vm_id", hvd_node_str("12345678-1234-1234-1234-123456789abc")));
        expect_ok(with(full_body(), paths[i], "vm_id", hvd_node_nil()));
        expect_err(with(full_body(), paths[i], "vm_id", repeat("a", 35)), loc, "string_too_short",
                   "String should have at least 36 characters");
        expect_err(with(full_body(), paths[i], "vm_id", repeat("a", 37)), loc, "string_too_long",
                   "String should have at most 36 characters");
    }
}

/* ---------------------------------------------------------------- job_id and message_id */

Test(validate, job_id_uuid)
{
    HvdJob job;
    expect_ok_opts(with(full_body(), "", "job_id", hvd_node_str("6F1C2B1E-8D4A-4C57-9A53-2F0E4D7B9C11")), NULL, &job);
    cr_assert_str_eq(job.job_id, JOB_ID, "stored lower-case");
    hvd_job_free(&job);
    static const char *const bad[] = {
        "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c1",   /* 35 */
        "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c111", /* 37 */
        "6f1c2b1e8d4a4c579a532f0e4d7b9c11",      /* unhyphenated */
        "{6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11}", "6f1c2b1e-8d4a-4c57-9a53_2f0e4d7b9c11",
        "6g1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11",   "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_err(with(full_body(), "", "job_id", hvd_node_str(bad[i])), "job_id", "uuid_parsing", NULL);
    cr_assert(hvd_uuid_valid(JOB_ID, 36));
    cr_assert_not(hvd_uuid_valid(JOB_ID, 35));
    cr_assert_not(hvd_uuid_valid(NULL, 36));
}

Test(validate, job_id_kept_when_other_fields_fail)
{
    HvdJob job;
    HvdErrors errs = {0};
    HvdNode *b = with(full_body(), "request.vm_spec", "gb_ram", hvd_node_int(0));
    cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
    cr_assert_str_eq(job.job_id, JOB_ID);
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(b);
}

Test(validate, message_id_must_agree)
{
    HvdValidateOpts o = {.message_id = JOB_ID};
    expect_ok_opts(full_body(), &o, NULL);
    o.message_id = "6F1C2B1E-8D4A-4C57-9A53-2F0E4D7B9C11";
    expect_ok_opts(full_body(), &o, NULL);
    o.message_id = "";
    expect_ok_opts(full_body(), &o, NULL);
    o.message_id = "0b7e3c52-2a1f-4f0e-8d6c-5a9b1e2d3c41";
    expect_err_opts(full_body(), &o, "job_id", "value_error",
                    "Value error, job_id does not match the message_id property");
    o.message_id = "something-else";
    expect_err_opts(full_body(), &o, "job_id", "value_error", NULL);
}

/* ---------------------------------------------------------------- target_host */

Test(validate, target_host_syntax)
{
    static const char *const good[] = {"hv01.lab.example", "HV01.Lab.Example", "localhost", "hv01", "10.0.0.5", "a-b.c",
                                       "1host.example",    "host.123abc",      "x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cr_assert(hvd_hostname_valid(good[i]), "%s", good[i]);
        expect_ok(with(full_body(), "request", "target_host", hvd_node_str(good[i])));
    }
    char label64[80], long_name[300];
    memset(label64, 'a', 64);
    label64[64] = '\0';
    long_name[0] = '\0';
    for (int i = 0; i < 4; i++)
        strcat(long_name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."); /* 63 */
    strcat(long_name, "example");                                                             /* 263 chars, over 253 */
    const char *bad[] = {"-bad",
                         "bad-",
                         "a..b",
                         "",
                         ".lead",
                         "trail.",
                         "256.1.1.1",
                         "1.2.3",
                         "under_score.lab",
                         "sp ace",
                         "h\xc3\xb6st.example",
                         "hv01.lab.example:22",
                         label64,
                         long_name,
                         "1.2.3.4.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(hvd_hostname_valid(bad[i]), "%s", bad[i]);
        expect_err(with(full_body(), "request", "target_host", hvd_node_str(bad[i])), "request.target_host",
                   "value_error", NULL);
    }
    label64[63] = '\0';
    cr_assert(hvd_hostname_valid(label64), "a 63-character label is fine");
}

Test(validate, target_host_stored_lower_case)
{
    HvdJob job;
    expect_ok_opts(with(full_body(), "request", "target_host", hvd_node_str("HV01.Lab.Example")), NULL, &job);
    cr_assert_str_eq(job.target_host, "hv01.lab.example");
    hvd_job_free(&job);
}

Test(validate, allowed_hosts)
{
    const char *const hosts[] = {"hv01.lab.example", "HV02.lab.example"};
    HvdValidateOpts o = {.allowed_hosts = hosts, .n_allowed_hosts = 2};
    expect_ok_opts(full_body(), &o, NULL);
    expect_ok_opts(with(full_body(), "request", "target_host", hvd_node_str("HV01.LAB.EXAMPLE")), &o, NULL);
    expect_ok_opts(with(full_body(), "request", "target_host", hvd_node_str("hv02.lab.example")), &o, NULL);
    expect_err_opts(with(full_body(), "request", "target_host", hvd_node_str("hv03.lab.example")), &o,
                    "request.target_host", "host_not_allowed", NULL);
    expect_err_opts(with(full_body(), "request", "target_host", hvd_node_str("hv01.lab")), &o, "request.target_host",
                    "host_not_allowed", NULL);
    /* empty list: any valid host */
    HvdValidateOpts none = {.allowed_hosts = hosts, .n_allowed_hosts = 0};
    expect_ok_opts(with(full_body(), "request", "target_host", hvd_node_str("hv03.lab.example")), &none, NULL);
    /* an invalid host is a syntax error, not host_not_allowed */
    expect_err_opts(with(full_body(), "request", "target_host", hvd_node_str("-x")), &o, "request.target_host",
                    "value_error", NULL);
}

Test(validate, hosts_parse)
{
    char **h;
    size_t n = hvd_hosts_parse(" HV01.lab.example, ,hv02.lab.example ,,", &h);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(h[0], "hv01.lab.example");
    cr_assert_str_eq(h[1], "hv02.lab.example");
    hvd_hosts_free(h, n);
    cr_assert_eq(hvd_hosts_parse("", &h), 0);
    cr_assert_null(h);
    cr_assert_eq(hvd_hosts_parse(NULL, &h), 0);
    hvd_hosts_free(NULL, 0);
}

/* ---------------------------------------------------------------- IPv4 */

Test(validate, ipv4_syntax)
{
    static const char *const good[] = {"10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.100.254", "1.2.3.4"};
    static const char *const bad[] = {"256.1.1.1",  "1.2.3",    "01.2.3.4", "1.2.3.04", "1.2.3.4.5", "1.2.3.",
                                      ".1.2.3",     "1..2.3",   "a.b.c.d",  " 1.2.3.4", "1.2.3.4 ",  "1.2.3.4/24",
                                      "1000.1.1.1", "-1.2.3.4", "::1",      "0x1.2.3.4"};
    static const char *const keys[] = {"guest_v4_ip_addr", "guest_v4_default_gw", "guest_v4_dns1", "guest_v4_dns2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) cr_assert(hvd_ipv4_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) cr_assert_not(hvd_ipv4_valid(bad[i]), "%s", bad[i]);
    cr_assert_not(hvd_ipv4_valid(NULL));
    for (size_t k = 0; k < 4; k++) {
        char loc[128];
        snprintf(loc, sizeof(loc), "request.guest_config.%s", keys[k]);
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
            expect_ok(with(full_body(), "request.guest_config", keys[k], hvd_node_str(good[i])));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            expect_err(with(full_body(), "request.guest_config", keys[k], hvd_node_str(bad[i])), loc, "value_error",
                       NULL);
    }
}

/* ---------------------------------------------------------------- all-or-none groups */

static HvdNode *guest_only(const char *const *keys_to_keep)
{
    /* full guest config minus every optional key not listed */
    static const char *const optional[] = {"guest_domain_join_target",
                                           "guest_domain_join_uid",
                                           "guest_domain_join_pw",
                                           "guest_domain_join_ou",
                                           "cnf_ansible_ssh_user",
                                           "cnf_ansible_ssh_key",
                                           "guest_v4_ip_addr",
                                           "guest_v4_cidr_prefix",
                                           "guest_v4_default_gw",
                                           "guest_v4_dns1",
                                           "guest_v4_dns2",
                                           "guest_net_dns_suffix",
                                           NULL};
    HvdNode *b = full_body();
    for (size_t i = 0; optional[i]; i++) {
        bool keep = false;
        for (size_t j = 0; keys_to_keep && keys_to_keep[j]; j++) keep |= strcmp(keys_to_keep[j], optional[i]) == 0;
        if (!keep) without(b, "request.guest_config", optional[i]);
    }
    return b;
}

static void group_rule(const char *what, const char *const *group)
{
    size_t n = 0;
    while (group[n]) n++;
    expect_ok(guest_only(group));
    expect_ok(guest_only(NULL));
    for (size_t miss = 0; miss < n; miss++) {
        char expect[512];
        HvdBuf all = {0};
        for (size_t i = 0; i < n; i++) hvd_buf_printf(&all, "%s%s", i ? ", " : "", group[i]);
        snprintf(expect, sizeof(expect), "Value error, %s configuration requires all fields: %s; missing: %s", what,
                 all.data, group[miss]);
        hvd_buf_free(&all);
        /* one absent */
        expect_err(without(guest_only(group), "request.guest_config", group[miss]), "request.guest_config",
                   "value_error", expect);
        /* one nil */
        expect_err(with(guest_only(group), "request.guest_config", group[miss], hvd_node_nil()), "request.guest_config",
                   "value_error", expect);
        /* one empty string: counts as absent (not for the int prefix, which has no empty form) */
        if (strcmp(group[miss], "guest_v4_cidr_prefix") != 0)
            expect_err(with(guest_only(group), "request.guest_config", group[miss], hvd_node_str("")),
                       "request.guest_config", "value_error", expect);
        /* only that one given */
        const char *only[] = {group[miss], NULL};
        HvdJob job;
        HvdErrors errs = {0};
        HvdNode *b = guest_only(only);
        cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
        cr_assert_eq(errs.n, 1);
        cr_assert_str_eq(errs.items[0].loc, "request.guest_config");
        for (size_t i = 0; i < n; i++)
            if (i != miss) {
                char needle[80];
                snprintf(needle, sizeof(needle), "%s", group[i]);
                cr_assert(strstr(strstr(errs.items[0].msg, "missing:"), needle), "%s names %s", errs.items[0].msg,
                          needle);
            }
        hvd_job_free(&job);
        hvd_errors_free(&errs);
        hvd_node_free(b);
    }
    /* every member empty: the group is absent */
    HvdNode *b = guest_only(group);
    for (size_t i = 0; i < n; i++)
        if (strcmp(group[i], "guest_v4_cidr_prefix") == 0)
            with(b, "request.guest_config", group[i], hvd_node_nil());
        else
            with(b, "request.guest_config", group[i], hvd_node_str(""));
    HvdJob job;
    expect_ok_opts(b, NULL, &job);
    cr_assert_null(job.guest.guest_domain_join_target);
    cr_assert_null(job.guest.cnf_ansible_ssh_user);
    cr_assert_null(job.guest.guest_v4_ip_addr);
    hvd_job_free(&job);
}

Test(validate, domain_join_all_or_none)
{
    static const char *const g[] = {"guest_domain_join_target", "guest_domain_join_uid", "guest_domain_join_pw",
                                    "guest_domain_join_ou", NULL};
    group_rule("Domain join", g);
}

Test(validate, ansible_all_or_none)
{
    static const char *const g[] = {"cnf_ansible_ssh_user", "cnf_ansible_ssh_key", NULL};
    group_rule("Ansible", g);
}

Test(validate, static_ip_all_or_none)
{
    static const char *const g[] = {"guest_v4_ip_addr", "guest_v4_cidr_prefix", "guest_v4_default_gw", "guest_v4_dns1",
                                    NULL};
    group_rule("Static IP", g);
}

Test(validate, static_ip_optional_members)
{
    /* dns2 and the suffix are outside the all-or-none set */
    static const char *const with_ip[] = {"guest_v4_ip_addr", "guest_v4_cidr_prefix", "guest_v4_default_gw",
                                          "guest_v4_dns1", NULL};
    expect_ok(guest_only(with_ip));
    static const char *const extras_only[] = {"guest_v4_dns2", "guest_net_dns_suffix", NULL};
    expect_ok(guest_only(extras_only));
    expect_ok(with(full_body(), "request.guest_config", "guest_v4_dns2", hvd_node_str("")));
    expect_ok(with(full_body(), "request.guest_config", "guest_v4_dns2", hvd_node_nil()));
}

Test(validate, several_groups_broken_at_once)
{
    HvdNode *b = full_body();
    without(b, "request.guest_config", "guest_domain_join_ou");
    without(b, "request.guest_config", "cnf_ansible_ssh_key");
    without(b, "request.guest_config", "guest_v4_dns1");
    HvdJob job;
    HvdErrors errs = {0};
    cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
    cr_assert_eq(errs.n, 3);
    cr_assert(strstr(errs.items[0].msg, "Domain join") && strstr(errs.items[0].msg, "missing: guest_domain_join_ou"));
    cr_assert(strstr(errs.items[1].msg, "Ansible") && strstr(errs.items[1].msg, "missing: cnf_ansible_ssh_key"));
    cr_assert(strstr(errs.items[2].msg, "Static IP") && strstr(errs.items[2].msg, "missing: guest_v4_dns1"));
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(b);
}

/* ---------------------------------------------------------------- every error at once */

Test(validate, every_error_is_reported_in_field_order)
{
    HvdNode *b = full_body();
    with(b, "", "job_id", hvd_node_str("not-a-uuid"));
    with(b, "", "job_type", hvd_node_str("other"));
    with(b, "request.vm_spec", "vm_name", hvd_node_str("a/b"));
    with(b, "request.vm_spec", "gb_ram", hvd_node_int(513));
    with(b, "request.vm_spec", "cpu_cores", hvd_node_str("4"));
    with(b, "request.vm_spec", "vm_clustered", hvd_node_int(1));
    with(b, "request.vm_spec", "os_family", hvd_node_str("bsd"));
    with(b, "request.disk_spec", "image_name", repeat("x", 129));
    with(b, "request.disk_spec", "disk_size_gb", hvd_node_float(10.0));
    with(b, "request.disk_spec", "disk_type", hvd_node_str("Sparse"));
    with(b, "request.disk_spec", "controller_type", hvd_node_str("NVMe"));
    with(b, "request.disk_spec", "vm_id", hvd_node_str("short"));
    without(b, "request.nic_spec", "network");
    with(b, "request.guest_config", "guest_la_uid", hvd_node_int(5));
    with(b, "request.guest_config", "guest_v4_ip_addr", hvd_node_str("01.2.3.4"));
    with(b, "request.guest_config", "guest_v4_cidr_prefix", hvd_node_int(-1));
    without(b, "request.guest_config", "guest_domain_join_pw");
    with(b, "request", "target_host", hvd_node_str("bad_host"));
    with(b, "", "options", hvd_node_map());
    with(b, "options", "on_failure", hvd_node_str("explode"));
    with(b, "options", "deadline", hvd_node_str("soon"));

    static const char *const expected[][2] = {
        {"job_id", "uuid_parsing"},
        {"job_type", "literal_error"},
        {"request.vm_spec.vm_name", "value_error"},
        {"request.vm_spec.gb_ram", "less_than_equal"},
        {"request.vm_spec.cpu_cores", "int_type"},
        {"request.vm_spec.vm_clustered", "bool_type"},
        {"request.vm_spec.os_family", "literal_error"},
        {"request.disk_spec.image_name", "string_too_long"},
        {"request.disk_spec.disk_size_gb", "int_type"},
        {"request.disk_spec.disk_type", "literal_error"},
        {"request.disk_spec.controller_type", "literal_error"},
        {"request.disk_spec.vm_id", "string_too_short"},
        {"request.nic_spec.network", "missing"},
        {"request.guest_config.guest_la_uid", "string_type"},
        {"request.guest_config.guest_v4_ip_addr", "value_error"},
        {"request.guest_config.guest_v4_cidr_prefix", "greater_than_equal"},
        {"request.guest_config", "value_error"},
        {"request.target_host", "value_error"},
        {"options.on_failure", "literal_error"},
        {"options.deadline", "datetime_parsing"},
    };
    size_t n_expected = sizeof(expected) / sizeof(expected[0]);
    HvdJob job;
    HvdErrors errs = {0};
    cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
    char *d = dump(&errs);
    cr_assert_eq(errs.n, n_expected, "got %zu errors:%s", errs.n, d);
    for (size_t i = 0; i < n_expected; i++) {
        cr_assert_str_eq(errs.items[i].loc, expected[i][0], "#%zu:%s", i, d);
        cr_assert_str_eq(errs.items[i].type, expected[i][1], "#%zu:%s", i, d);
    }
    free(d);

    /* and as a node: [{loc, msg, type}, ...] in that key order */
    HvdNode *arr = hvd_errors_to_node(&errs);
    cr_assert_eq(arr->type, HVD_ARRAY);
    cr_assert_eq(arr->u.arr.n, n_expected);
    HvdNode *first = arr->u.arr.items[0];
    cr_assert_eq(first->u.map.n, 3);
    cr_assert_str_eq(first->u.map.keys[0], "loc");
    cr_assert_str_eq(first->u.map.keys[1], "msg");
    cr_assert_str_eq(first->u.map.keys[2], "type");
    cr_assert_str_eq(hvd_node_get_str(first, "loc"), "job_id");
    hvd_node_free(arr);

    /* no secret value appears in any message */
    for (size_t i = 0; i < errs.n; i++) {
        cr_assert_null(strstr(errs.items[i].msg, "S3cret"));
        cr_assert_null(strstr(errs.items[i].msg, "J0in"));
    }
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    hvd_node_free(b);
}

Test(validate, errors_helpers)
{
    HvdErrors e = {0};
    for (int i = 0; i < 20; i++) hvd_errors_add(&e, "a.b", "missing", "Field %s #%d", "required", i);
    cr_assert_eq(e.n, 20);
    cr_assert_str_eq(e.items[19].msg, "Field required #19");
    HvdNode *n = hvd_errors_to_node(&e);
    cr_assert_eq(n->u.arr.n, 20);
    hvd_node_free(n);
    hvd_errors_free(&e);
    hvd_errors_free(&e);
    hvd_errors_free(NULL);
    n = hvd_errors_to_node(NULL);
    cr_assert_eq(n->type, HVD_ARRAY);
    cr_assert_eq(n->u.arr.n, 0);
    hvd_node_free(n);
}

Test(validate, helpers)
{
    bool valid;
    cr_assert_eq(hvd_utf8_count("h\xc3\xa9llo", 6, &valid), 5);
    cr_assert(valid);
    cr_assert_eq(hvd_utf8_count("\xf0\x9f\x96\xa5", 4, &valid), 1);
    cr_assert(valid);
    hvd_utf8_count("\xe2\x82", 2, &valid);
    cr_assert_not(valid, "truncated sequence");
    hvd_utf8_count("\xf4\x90\x80\x80", 4, &valid);
    cr_assert_not(valid, "above U+10FFFF");
    cr_assert_eq(hvd_utf8_count("abc", 3, NULL), 3);
    cr_assert_null(hvd_name_problem("web-01", 64));
    cr_assert_not_null(hvd_name_problem("", 64));
    cr_assert_not_null(hvd_name_problem(NULL, 64));
    cr_assert_not_null(hvd_name_problem("abcdef", 5));
    cr_assert_null(hvd_name_problem("abcde", 5));
    cr_assert_not_null(hvd_name_problem("a|b", 64));
}

/* ---------------------------------------------------------------- msgpack == JSON */

static void same_result_both_formats(HvdNode *body, const HvdValidateOpts *opts)
{
    HvdErrors errs[2] = {{0}, {0}};
    HvdJob jobs[2];
    bool ok[2];
    HvdContentType cts[2] = {HVD_CT_MSGPACK, HVD_CT_JSON};
    for (int f = 0; f < 2; f++) {
        HvdBuf wire = {0};
        hvd_encode(cts[f], body, &wire);
        HvdNode *decoded = NULL;
        char why[256] = "";
        cr_assert_eq(hvd_decode(cts[f], wire.data, wire.len, &decoded, why, sizeof(why)), HVD_DECODE_OK, "%s: %s",
                     hvd_content_type_name(cts[f]), why);
        ok[f] = hvd_job_validate(decoded, opts, &jobs[f], &errs[f]);
        hvd_node_free(decoded);
        hvd_buf_free(&wire);
    }
    cr_assert_eq(ok[0], ok[1]);
    char *d0 = dump(&errs[0]), *d1 = dump(&errs[1]);
    cr_assert_eq(errs[0].n, errs[1].n, "msgpack:%s\njson:%s", d0, d1);
    for (size_t i = 0; i < errs[0].n; i++) {
        cr_assert_str_eq(errs[0].items[i].loc, errs[1].items[i].loc);
        cr_assert_str_eq(errs[0].items[i].msg, errs[1].items[i].msg);
        cr_assert_str_eq(errs[0].items[i].type, errs[1].items[i].type);
    }
    free(d0);
    free(d1);
    cr_assert_str_eq(jobs[0].job_id, jobs[1].job_id);
    cr_assert_eq(jobs[0].vm.gb_ram, jobs[1].vm.gb_ram);
    cr_assert_str_eq(jobs[0].os_family, jobs[1].os_family);
    for (int f = 0; f < 2; f++) {
        hvd_job_free(&jobs[f]);
        hvd_errors_free(&errs[f]);
    }
    hvd_node_free(body);
}

Test(validate, msgpack_and_json_agree)
{
    same_result_both_formats(full_body(), NULL);
    same_result_both_formats(minimal_body(), NULL);
    HvdNode *b = full_body();
    with(b, "request.vm_spec", "gb_ram", hvd_node_int(513));
    with(b, "request.vm_spec", "cpu_cores", hvd_node_str("4"));
    with(b, "request.vm_spec", "vm_name", repeat("\xc3\xa9", 65));
    with(b, "request.vm_spec", "vm_clustered", hvd_node_int(0));
    with(b, "request.disk_spec", "disk_size_gb", hvd_node_float(1.5));
    with(b, "request.guest_config", "guest_v4_cidr_prefix", hvd_node_int(33));
    without(b, "request.guest_config", "guest_domain_join_uid");
    with(b, "request", "target_host", hvd_node_str("hv09.lab.example"));
    const char *const hosts[] = {"hv01.lab.example"};
    HvdValidateOpts o = {.allowed_hosts = hosts, .n_allowed_hosts = 1, .message_id = JOB_ID};
    same_result_both_formats(b, &o);
}

/* ---------------------------------------------------------------- hvdeployctl validate */

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL HVD_BIN_DIR "/hvdeployctl"
#define JOBS HVD_SOURCE_DIR "/tests/data/jobs/"

/* Runs "hvdeployctl ARGS" through sh; returns the exit code, stdout in *out. */
static int run_ctl(const char *args, char **out)
{
    struct stat st;
    if (stat(CTL, &st) != 0) cr_skip_test("%s is not built", CTL);
    char *cmd = hvd_xasprintf("env -u HVD_ALLOWED_HOSTS %s %s 2>/dev/null", CTL, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    HvdBuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) hvd_buf_append(&b, chunk, n);
    int status = pclose(p);
    free(cmd);
    *out = hvd_buf_steal(&b);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(ctl_validate, valid_sample_human)
{
    char *out;
    cr_assert_eq(run_ctl("validate " JOBS "full-windows.json", &out), 0);
    cr_assert_str_eq(out, "valid: managed_deployment job 6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11 for hv01.lab.example "
                          "(stages: vm.create, disk.create, nic.create, vm.initialize)\n");
    free(out);
    cr_assert_eq(run_ctl("validate " JOBS "minimal.json", &out), 0);
    cr_assert(strstr(out, "(stages: vm.create)\n"), "%s", out);
    free(out);
}

Test(ctl_validate, invalid_sample_lists_every_error)
{
    char *out;
    cr_assert_eq(run_ctl("validate " JOBS "invalid.json", &out), 1);
    cr_assert(strstr(out, "request.vm_spec.gb_ram: Input should be less than or equal to 512 [less_than_equal]\n"),
              "%s", out);
    cr_assert(strstr(out, "request.nic_spec.network: Field required [missing]\n"), "%s", out);
    cr_assert(strstr(out, "\ninvalid: 15 errors\n"), "%s", out);
    cr_assert_null(strstr(out, "S3cret"), "no secret in the output");
    free(out);
}

Test(ctl_validate, json_output)
{
    char *out;
    cr_assert_eq(run_ctl("validate --output json " JOBS "linux-static-ip.json", &out), 0);
    cr_assert_str_eq(out, "{\"valid\":true,\"errors\":[]}\n");
    free(out);
    cr_assert_eq(run_ctl("validate --output=json --allowed-hosts hv01.lab.example " JOBS "linux-static-ip.json", &out),
                 1);
    HvdNode *n = NULL;
    char why[128];
    cr_assert_eq(hvd_json_to_node(out, strlen(out), 0, &n, why, sizeof(why)), HVD_DECODE_OK, "%s", out);
    cr_assert_eq(hvd_node_get(n, "valid")->type, HVD_BOOL);
    cr_assert_not(hvd_node_get(n, "valid")->u.b);
    const HvdNode *errs = hvd_node_get(n, "errors");
    cr_assert_eq(errs->u.arr.n, 1);
    cr_assert_str_eq(hvd_node_get_str(errs->u.arr.items[0], "loc"), "request.target_host");
    cr_assert_str_eq(hvd_node_get_str(errs->u.arr.items[0], "type"), "host_not_allowed");
    hvd_node_free(n);
    free(out);
}

Test(ctl_validate, allowed_hosts_from_environment)
{
    char *out;
    struct stat st;
    if (stat(CTL, &st) != 0) cr_skip_test("%s is not built", CTL);
    /* run_ctl unsets the variable; set it inside the command instead */
    cr_assert_eq(run_ctl("validate " JOBS "minimal.json; HVD_ALLOWED_HOSTS=hv02.lab.example " CTL " validate " JOBS
                         "minimal.json",
                         &out),
                 1);
    cr_assert(strstr(out, "[host_not_allowed]"), "%s", out);
    free(out);
}

Test(ctl_validate, msgpack_and_stdin)
{
    char *a, *b;
    cr_assert_eq(run_ctl("validate --msgpack --output json - < " JOBS "invalid.msgpack", &a), 1);
    cr_assert_eq(run_ctl("validate --output json " JOBS "invalid.json", &b), 1);
    cr_assert_str_eq(a, b, "msgpack and JSON of the same body give the same errors");
    free(a);
    free(b);
    cr_assert_eq(run_ctl("validate --msgpack " JOBS "linux-static-ip.msgpack", &a), 0);
    free(a);
}

Test(ctl_validate, undecodable_bodies_are_one_error_at_body)
{
    char *out;
    cr_assert_eq(run_ctl("validate --output json - <<'EOF'\n{\"job_id\": \nEOF", &out), 1);
    cr_assert(strstr(out, "\"loc\":\"body\""), "%s", out);
    cr_assert(strstr(out, "\"type\":\"malformed_message\""), "%s", out);
    free(out);
    cr_assert_eq(run_ctl("validate - < /dev/null", &out), 1);
    cr_assert(strstr(out, "body: "), "%s", out);
    free(out);
    cr_assert_eq(run_ctl("validate --output json - < " JOBS "../../../CMakeLists.txt", &out), 1);
    cr_assert(strstr(out, "\"loc\":\"body\""), "%s", out);
    free(out);
    /* over 256 KiB */
    cr_assert_eq(run_ctl("validate --output json - < /dev/zero", &out), 1);
    cr_assert(strstr(out, "{\"loc\":\"body\",") && strstr(out, "\"type\":\"message_too_large\""), "%s", out);
    cr_assert_eq(strstr(out, "\"loc\""), strrchr(out, '{') + 1, "exactly one error: %s", out);
    free(out);
}

Test(ctl_validate, usage_and_exit_codes)
{
    char *out;
    cr_assert_eq(run_ctl("validate /nonexistent/job.json", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate a.json b.json", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate --output yaml " JOBS "minimal.json", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate --bogus " JOBS "minimal.json", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate --help", &out), 0);
    cr_assert(strstr(out, "usage: hvdeployctl validate"), "%s", out);
    free(out);
    cr_assert_eq(run_ctl("help validate", &out), 0);
    cr_assert(strstr(out, "usage: hvdeployctl validate"), "%s", out);
    free(out);
    cr_assert_eq(run_ctl("--help", &out), 0);
    static const char *const cmds[] = {"validate", "submit",  "status",      "list",  "cancel",
                                       "dead",     "migrate", "agent-check", "keygen"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) cr_assert(strstr(out, cmds[i]), "%s", cmds[i]);
    free(out);
    cr_assert_eq(run_ctl("no-such-command", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("help no-such-command", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("", &out), 2);
    free(out);
    cr_assert_eq(run_ctl("validate --message-id 0b7e3c52-2a1f-4f0e-8d6c-5a9b1e2d3c41 " JOBS "minimal.json", &out), 1);
    cr_assert(strstr(out, "job_id: Value error, job_id does not match the message_id property [value_error]"), "%s",
              out);
    free(out);
}

/* ---------------------------------------------------------------- issue 12: text the database cannot take */

/* A \u0000 anywhere in the body (also in a key validation ignores) failed the
 * jsonb insert (22P05) and the message was never acked: it is a validation
 * error at that string's loc. */
Test(validate, nul_anywhere_in_the_body_is_a_validation_error)
{
    expect_err(with(full_body(), "request.vm_spec", "notes", hvd_node_strn("a\0b", 3)), "request.vm_spec.notes",
               "value_error", "Value error, strings must not contain NUL characters (\\u0000)");
    HvdNode *tags = hvd_node_array();
    hvd_node_array_push(tags, hvd_node_str("ok"));
    hvd_node_array_push(tags, hvd_node_strn("\0", 1));
    expect_err(with(full_body(), "request", "tags", tags), "request.tags.1", "value_error", NULL);
    expect_err(with(full_body(), "", "extra", hvd_node_strn("x\0", 2)), "extra", "value_error", NULL);
    /* a known field reports it once, in its own words */
    expect_err(with(full_body(), "request.vm_spec", "vm_name", hvd_node_strn("web\0", 4)), "request.vm_spec.vm_name",
               "value_error", "Value error, vm_name must not contain NUL characters");
}

Test(validate, many_nul_strings_are_counted_not_listed)
{
    HvdNode *b = full_body();
    HvdNode *arr = hvd_node_array();
    for (int i = 0; i < 30; i++) hvd_node_array_push(arr, hvd_node_strn("\0", 1));
    hvd_node_map_set(at(b, "request"), "junk", arr);
    HvdJob job;
    HvdErrors errs = {0};
    cr_assert_not(hvd_job_validate(b, NULL, &job, &errs));
    cr_assert_eq(errs.n, 11, "10 listed + one count, got %zu", errs.n);
    cr_assert_str_eq(errs.items[10].loc, "body");
    cr_assert_str_eq(errs.items[10].msg, "Value error, 20 more strings contain NUL characters (\\u0000)");
    hvd_errors_free(&errs);
    hvd_job_free(&job);
    hvd_node_free(b);
}

/* A correlation_id, reply_to or message_id property that is not UTF-8 failed a
 * text insert (22021): a validation error naming the property. */
Test(validate, properties_must_be_utf8)
{
    HvdValidateOpts o = {.correlation_id = "corr-\xff\xfe"};
    expect_err_opts(full_body(), &o, "properties.correlation_id", "string_unicode",
                    "Input should be a valid string, unable to parse raw data as a unicode string");
    o = (HvdValidateOpts){.reply_to = "replies.\xe9t\xe9"};
    expect_err_opts(full_body(), &o, "properties.reply_to", "string_unicode", NULL);
    o = (HvdValidateOpts){.correlation_id = "caf\xc3\xa9", .reply_to = "amq.gen-abc"};
    expect_ok_opts(full_body(), &o, NULL);
    /* a message_id that is not UTF-8 cannot equal the job id either: both say so */
    o = (HvdValidateOpts){.message_id = "\xff"};
    HvdJob job;
    HvdErrors errs = {0};
    HvdNode *b = full_body();
    cr_assert_not(hvd_job_validate(b, &o, &job, &errs));
    bool prop = false;
    for (size_t i = 0; i < errs.n; i++) prop |= strcmp(errs.items[i].loc, "properties.message_id") == 0;
    cr_assert(prop);
    hvd_errors_free(&errs);
    hvd_job_free(&job);
    hvd_node_free(b);
}
