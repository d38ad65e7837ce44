/* Unit tests of guest config keys, OS family detection and secret redaction (contract §7, §4). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "guestcfg.h"
#include "model.h"

/* A valid body; guest_config gets the listed groups. */
enum { G_NONE = 0, G_CREDS = 1, G_DOMAIN = 2, G_ANSIBLE = 4, G_IP = 8, G_IP_EXTRAS = 16, G_NO_GUEST = 32 };

static HvdNode *body_with(int groups, const char *image, const char *os_family)
{
    HvdNode *b = hvd_node_map();
    hvd_node_map_set_str(b, "job_id", "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11");
    hvd_node_map_set_str(b, "job_type", "managed_deployment");
    HvdNode *req = hvd_node_map();
    hvd_node_map_set_str(req, "target_host", "hv01.lab.example");
    HvdNode *vm = hvd_node_map();
    hvd_node_map_set_str(vm, "vm_name", "web-01");
    hvd_node_map_set_int(vm, "gb_ram", 4);
    hvd_node_map_set_int(vm, "cpu_cores", 2);
    if (os_family) hvd_node_map_set_str(vm, "os_family", os_family);
    hvd_node_map_set(req, "vm_spec", vm);
    if (image) {
        HvdNode *disk = hvd_node_map();
        hvd_node_map_set_str(disk, "image_name", image);
        hvd_node_map_set(req, "disk_spec", disk);
    }
    if (!(groups & G_NO_GUEST)) {
        HvdNode *gc = hvd_node_map();
        hvd_node_map_set_str(gc, "guest_la_uid", "Administrator");
        hvd_node_map_set_str(gc, "guest_la_pw", "S3cret!pw-TEST");
        if (groups & G_DOMAIN) {
            hvd_node_map_set_str(gc, "guest_domain_join_target", "corp.lab.example");
            hvd_node_map_set_str(gc, "guest_domain_join_uid", "LAB\\svc_join");
            hvd_node_map_set_str(gc, "guest_domain_join_pw", "J0in!pw-TEST");
            hvd_node_map_set_str(gc, "guest_domain_join_ou", "OU=Servers,DC=lab,DC=example");
        }
        if (groups & G_ANSIBLE) {
            hvd_node_map_set_str(gc, "cnf_ansible_ssh_user", "ansible");
            hvd_node_map_set_str(gc, "cnf_ansible_ssh_key", "ssh-ed25519 AAAATESTKEY-TEST ansible@TEST");
        }
        if (groups & G_IP) {
            hvd_node_map_set_str(gc, "guest_v4_ip_addr", "10.0.0.20");
            hvd_node_map_set_int(gc, "guest_v4_cidr_prefix", 24);
            hvd_node_map_set_str(gc, "guest_v4_default_gw", "10.0.0.1");
            hvd_node_map_set_str(gc, "guest_v4_dns1", "10.0.0.2");
        }
        if (groups & G_IP_EXTRAS) {
            hvd_node_map_set_str(gc, "guest_v4_dns2", "10.0.0.3");
            hvd_node_map_set_str(gc, "guest_net_dns_suffix", "lab.example");
        }
        hvd_node_map_set(req, "guest_config", gc);
    }
    hvd_node_map_set(b, "request", req);
    return b;
}

static void parse(HvdNode *body, HvdJob *job)
{
    HvdErrors errs = {0};
    bool ok = hvd_job_validate(body, NULL, job, &errs);
    cr_assert(ok, "body should be valid (%zu errors, first: %s %s)", errs.n, errs.n ? errs.items[0].loc : "",
              errs.n ? errs.items[0].msg : "");
    hvd_errors_free(&errs);
    hvd_node_free(body);
}

/* keys must be exactly expected, in order; strings compare to values (NULL = skip) */
static void expect_keys(int groups, const char *const *expected, const char *const *values)
{
    HvdJob job;
    parse(body_with(groups, "Windows Server 2022", NULL), &job);
    HvdNode *keys = hvd_guest_config_keys(&job);
    HvdNode *names = hvd_guest_config_key_names(&job);
    cr_assert_not_null(keys);
    cr_assert_eq(keys->type, HVD_MAP);
    cr_assert_eq(names->type, HVD_ARRAY);
    size_t n = 0;
    while (expected[n]) n++;
    cr_assert_eq(keys->u.map.n, n, "expected %zu keys, got %zu", n, keys->u.map.n);
    cr_assert_eq(names->u.arr.n, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(keys->u.map.keys[i], expected[i], "key #%zu", i);
        cr_assert_str_eq(names->u.arr.items[i]->u.s.ptr, expected[i], "name #%zu", i);
        if (values && values[i]) cr_assert_str_eq(hvd_node_get_str(keys, expected[i]), values[i]);
    }
    hvd_node_free(keys);
    hvd_node_free(names);
    hvd_job_free(&job);
}

Test(guestcfg, no_guest_config)
{
    HvdJob job;
    parse(body_with(G_NO_GUEST, "Windows Server 2022", NULL), &job);
    cr_assert_null(hvd_guest_config_keys(&job));
    cr_assert_null(hvd_guest_config_key_names(&job));
    hvd_job_free(&job);
    cr_assert_null(hvd_guest_config_keys(NULL));
}

Test(guestcfg, credentials_only)
{
    const char *const k[] = {"guest_la_uid", "guest_la_pw", NULL};
    const char *const v[] = {"Administrator", "S3cret!pw-TEST"};
    expect_keys(G_CREDS, k, v);
}

Test(guestcfg, with_domain_join)
{
    const char *const k[] = {"guest_la_uid",
                             "guest_la_pw",
                             "guest_domain_join_target",
                             "guest_domain_join_uid",
                             "guest_domain_join_pw",
                             "guest_domain_join_ou",
                             NULL};
    const char *const v[] = {"Administrator", "S3cret!pw-TEST", "corp.lab.example",
                             "LAB\\svc_join", "J0in!pw-TEST",   "OU=Servers,DC=lab,DC=example"};
    expect_keys(G_CREDS | G_DOMAIN, k, v);
}

Test(guestcfg, with_ansible)
{
    const char *const k[] = {"guest_la_uid", "guest_la_pw", "cnf_ansible_ssh_user", "cnf_ansible_ssh_key", NULL};
    const char *const v[] = {NULL, NULL, "ansible", "ssh-ed25519 AAAATESTKEY-TEST ansible@TEST"};
    expect_keys(G_CREDS | G_ANSIBLE, k, v);
}

Test(guestcfg, static_ip_without_extras)
{
    const char *const k[] = {
        "guest_la_uid",  "guest_la_pw", "guest_v4_ip_addr", "guest_v4_cidr_prefix", "guest_v4_default_gw",
        "guest_v4_dns1", NULL};
    const char *const v[] = {NULL, NULL, "10.0.0.20", NULL, "10.0.0.1", "10.0.0.2"};
    expect_keys(G_CREDS | G_IP, k, v);

    HvdJob job;
    parse(body_with(G_IP, NULL, NULL), &job);
    HvdNode *keys = hvd_guest_config_keys(&job);
    const HvdNode *prefix = hvd_node_get(keys, "guest_v4_cidr_prefix");
    cr_assert_eq(prefix->type, HVD_INT, "the prefix stays an int");
    cr_assert_eq(prefix->u.i, 24);
    hvd_node_free(keys);
    hvd_job_free(&job);
}

Test(guestcfg, static_ip_with_dns2_and_suffix)
{
    const char *const k[] = {"guest_la_uid",         "guest_la_pw",          "guest_v4_ip_addr",
                             "guest_v4_cidr_prefix", "guest_v4_default_gw",  "guest_v4_dns1",
                             "guest_v4_dns2",        "guest_net_dns_suffix", NULL};
    const char *const v[] = {NULL, NULL, NULL, NULL, NULL, NULL, "10.0.0.3", "lab.example"};
    expect_keys(G_CREDS | G_IP | G_IP_EXTRAS, k, v);
}

Test(guestcfg, dns_extras_without_ip_are_dropped)
{
    const char *const k[] = {"guest_la_uid", "guest_la_pw", NULL};
    expect_keys(G_CREDS | G_IP_EXTRAS, k, NULL);
}

Test(guestcfg, everything_in_generate_guest_config_order)
{
    const char *const k[] = {"guest_la_uid",          "guest_la_pw",          "guest_domain_join_target",
                             "guest_domain_join_uid", "guest_domain_join_pw", "guest_domain_join_ou",
                             "cnf_ansible_ssh_user",  "cnf_ansible_ssh_key",  "guest_v4_ip_addr",
                             "guest_v4_cidr_prefix",  "guest_v4_default_gw",  "guest_v4_dns1",
                             "guest_v4_dns2",         "guest_net_dns_suffix", NULL};
    expect_keys(G_CREDS | G_DOMAIN | G_ANSIBLE | G_IP | G_IP_EXTRAS, k, NULL);
}

Test(guestcfg, empty_group_values_are_no_group)
{
    HvdNode *b = body_with(G_CREDS, NULL, NULL);
    HvdNode *gc = hvd_node_get_mut(hvd_node_get_mut(b, "request"), "guest_config");
    hvd_node_map_set_str(gc, "guest_domain_join_target", "");
    hvd_node_map_set_str(gc, "guest_domain_join_uid", "");
    hvd_node_map_set_str(gc, "guest_domain_join_pw", "");
    hvd_node_map_set_str(gc, "guest_domain_join_ou", "");
    hvd_node_map_set_str(gc, "cnf_ansible_ssh_user", "");
    hvd_node_map_set(gc, "cnf_ansible_ssh_key", hvd_node_nil());
    hvd_node_map_set_str(gc, "guest_v4_ip_addr", "");
    HvdJob job;
    parse(b, &job);
    HvdNode *keys = hvd_guest_config_keys(&job);
    cr_assert_eq(keys->u.map.n, 2);
    hvd_node_free(keys);
    hvd_job_free(&job);
}

/* ---------------------------------------------------------------- OS family */

Test(guestcfg, os_family_table)
{
    static const char *const linux_images[] = {"Ubuntu 22.04",
                                               "UBUNTU 24.04 LTS",
                                               "Debian 12",
                                               "CentOS Stream 9",
                                               "RHEL 9",
                                               "RedHat Enterprise",
                                               "Fedora 40",
                                               "SUSE Linux Enterprise",
                                               "openSUSE Leap",
                                               "Arch",
                                               "Alpine 3.19",
                                               "Rocky Linux 9",
                                               "AlmaLinux 9",
                                               "Oracle Linux 8",
                                               "Amazon Linux 2023",
                                               "Kali Rolling",
                                               "Linux Mint 21",
                                               "my-linux-golden",
                                               "golden-ubuntu"};
    for (size_t i = 0; i < sizeof(linux_images) / sizeof(linux_images[0]); i++)
        cr_assert_str_eq(hvd_os_family_from_image(linux_images[i]), "linux", "%s", linux_images[i]);
    static const char *const windows_images[] = {"Windows Server 2022", "Windows Server 2019", "Win11 Enterprise",
                                                 "golden-2022", ""};
    for (size_t i = 0; i < sizeof(windows_images) / sizeof(windows_images[0]); i++)
        cr_assert_str_eq(hvd_os_family_from_image(windows_images[i]), "windows", "%s", windows_images[i]);
    cr_assert_str_eq(hvd_os_family_from_image(NULL), "windows");
}

Test(guestcfg, os_family_resolution)
{
    static const struct {
        const char *image, *explicit_family, *want;
    } cases[] = {
        {"Ubuntu 22.04", NULL, "linux"},
        {"Windows Server 2022", NULL, "windows"},
        {NULL, NULL, "windows"},                /* no disk_spec */
        {"Ubuntu 22.04", "windows", "windows"}, /* explicit wins over the image */
        {"Windows Server 2022", "linux", "linux"},
        {NULL, "linux", "linux"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        HvdJob job;
        parse(body_with(G_CREDS, cases[i].image, cases[i].explicit_family), &job);
        cr_assert_str_eq(job.os_family, cases[i].want, "case %zu", i);
        cr_assert_str_eq(hvd_os_family_resolve(&job), cases[i].want, "case %zu", i);
        hvd_job_free(&job);
    }
    /* a disk_spec with a nil image: blank disk, windows */
    HvdNode *b = body_with(G_CREDS, "x", NULL);
    hvd_node_map_set(hvd_node_get_mut(hvd_node_get_mut(b, "request"), "disk_spec"), "image_name", hvd_node_nil());
    HvdJob job;
    parse(b, &job);
    cr_assert_str_eq(job.os_family, "windows");
    hvd_job_free(&job);
    cr_assert_str_eq(hvd_os_family_resolve(NULL), "windows");
}

/* ---------------------------------------------------------------- secrets */

static const char *const SECRET_VALUES[] = {"S3cret!pw-TEST", "J0in!pw-TEST", "AAAATESTKEY-TEST"};

Test(guestcfg, secret_fields)
{
    cr_assert(hvd_is_secret_field("guest_la_pw"));
    cr_assert(hvd_is_secret_field("guest_domain_join_pw"));
    cr_assert(hvd_is_secret_field("cnf_ansible_ssh_key"));
    cr_assert_not(hvd_is_secret_field("guest_la_uid"));
    cr_assert_not(hvd_is_secret_field("cnf_ansible_ssh_user"));
    cr_assert_not(hvd_is_secret_field(NULL));
    size_t n = 0;
    while (HVD_SECRET_FIELDS[n]) n++;
    cr_assert_eq(n, 3);
}

Test(guestcfg, redaction_hides_every_secret)
{
    HvdNode *body = body_with(G_CREDS | G_DOMAIN | G_ANSIBLE | G_IP, "Ubuntu 22.04", NULL);
    HvdNode *red = hvd_redact_body(body);
    char *json = hvd_node_to_json(red);
    for (size_t i = 0; i < 3; i++)
        cr_assert_null(strstr(json, SECRET_VALUES[i]), "%s leaked: %s", SECRET_VALUES[i], json);
    const HvdNode *gc = hvd_node_get(hvd_node_get(red, "request"), "guest_config");
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_la_pw"), HVD_REDACTED);
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_domain_join_pw"), HVD_REDACTED);
    cr_assert_str_eq(hvd_node_get_str(gc, "cnf_ansible_ssh_key"), HVD_REDACTED);
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_la_uid"), "Administrator", "non-secrets are kept");
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_v4_ip_addr"), "10.0.0.20");
    /* the original is untouched */
    const HvdNode *ogc = hvd_node_get(hvd_node_get(body, "request"), "guest_config");
    cr_assert_str_eq(hvd_node_get_str(ogc, "guest_la_pw"), "S3cret!pw-TEST");
    /* a redacted body still validates (the stand-ins are strings) */
    HvdJob job;
    HvdErrors errs = {0};
    cr_assert(hvd_job_validate(red, NULL, &job, &errs));
    hvd_job_free(&job);
    hvd_errors_free(&errs);
    free(json);
    hvd_node_free(red);
    hvd_node_free(body);
}

Test(guestcfg, redaction_keeps_empty_and_nil_and_catches_misplaced)
{
    HvdNode *body = body_with(G_CREDS, NULL, NULL);
    HvdNode *gc = hvd_node_get_mut(hvd_node_get_mut(body, "request"), "guest_config");
    hvd_node_map_set_str(gc, "guest_la_pw", "");
    hvd_node_map_set(gc, "guest_domain_join_pw", hvd_node_nil());
    hvd_node_map_set_int(gc, "cnf_ansible_ssh_key", 12345); /* wrong type still hidden */
    hvd_node_map_set_str(hvd_node_get_mut(body, "request"), "guest_la_pw", "Flat!pw-TEST"); /* misplaced */
    HvdNode *arr = hvd_node_array();
    HvdNode *inner = hvd_node_map();
    hvd_node_map_set_str(inner, "guest_domain_join_pw", "Deep!pw-TEST");
    hvd_node_array_push(arr, inner);
    hvd_node_map_set(body, "extra", arr);
    HvdNode *red = hvd_redact_body(body);
    char *json = hvd_node_to_json(red);
    cr_assert_null(strstr(json, "Flat!pw-TEST"), "%s", json);
    cr_assert_null(strstr(json, "Deep!pw-TEST"), "%s", json);
    cr_assert_null(strstr(json, "12345"), "%s", json);
    const HvdNode *rgc = hvd_node_get(hvd_node_get(red, "request"), "guest_config");
    cr_assert_str_eq(hvd_node_get_str(rgc, "guest_la_pw"), "", "an empty secret stays empty");
    cr_assert_eq(hvd_node_get(rgc, "guest_domain_join_pw")->type, HVD_NIL);
    free(json);
    hvd_node_free(red);
    hvd_node_free(body);
    cr_assert_null(hvd_redact_body(NULL));
}

Test(guestcfg, extract_and_restore_round_trip)
{
    HvdNode *body = body_with(G_CREDS | G_DOMAIN | G_ANSIBLE | G_IP | G_IP_EXTRAS, "Ubuntu 22.04", NULL);
    HvdNode *secrets = hvd_extract_secrets(body);
    cr_assert_not_null(secrets);
    cr_assert_eq(secrets->u.map.n, 3);
    cr_assert_str_eq(hvd_node_get_str(secrets, "guest_la_pw"), "S3cret!pw-TEST");
    cr_assert_str_eq(hvd_node_get_str(secrets, "guest_domain_join_pw"), "J0in!pw-TEST");
    cr_assert_str_eq(hvd_node_get_str(secrets, "cnf_ansible_ssh_key"), "ssh-ed25519 AAAATESTKEY-TEST ansible@TEST");

    HvdNode *red = hvd_redact_body(body);
    cr_assert_not(hvd_node_equal(red, body));
    /* through the wire and back, as the store would keep them */
    char *red_json = hvd_node_to_json(red), *sec_json = hvd_node_to_json(secrets);
    HvdNode *red2 = NULL, *sec2 = NULL;
    char why[128];
    cr_assert_eq(hvd_json_to_node(red_json, strlen(red_json), 0, &red2, why, sizeof(why)), HVD_DECODE_OK);
    cr_assert_eq(hvd_json_to_node(sec_json, strlen(sec_json), 0, &sec2, why, sizeof(why)), HVD_DECODE_OK);
    hvd_restore_secrets(red2, sec2);
    cr_assert(hvd_node_equal(red2, body), "restore(redact(b), extract(b)) == b");

    /* the restored body yields the same guest keys as the original */
    HvdJob a, b2;
    parse(hvd_node_clone(body), &a);
    parse(hvd_node_clone(red2), &b2);
    HvdNode *ka = hvd_guest_config_keys(&a), *kb = hvd_guest_config_keys(&b2);
    cr_assert(hvd_node_equal(ka, kb));
    hvd_node_free(ka);
    hvd_node_free(kb);
    hvd_job_free(&a);
    hvd_job_free(&b2);

    free(red_json);
    free(sec_json);
    hvd_node_free(red2);
    hvd_node_free(sec2);
    hvd_node_free(red);
    hvd_node_free(secrets);
    hvd_node_free(body);
}

Test(guestcfg, extract_edge_cases)
{
    HvdNode *body = body_with(G_NO_GUEST, NULL, NULL);
    cr_assert_null(hvd_extract_secrets(body), "no guest_config: no secrets");
    hvd_node_free(body);

    body = body_with(G_CREDS, NULL, NULL);
    hvd_node_map_set_str(hvd_node_get_mut(hvd_node_get_mut(body, "request"), "guest_config"), "guest_la_pw", "");
    cr_assert_null(hvd_extract_secrets(body), "an empty password is nothing to keep");
    hvd_node_free(body);
    cr_assert_null(hvd_extract_secrets(NULL));

    /* restore only puts secret fields back, and only into an existing guest_config */
    body = body_with(G_CREDS, NULL, NULL);
    HvdNode *red = hvd_redact_body(body);
    HvdNode *evil = hvd_node_map();
    hvd_node_map_set_str(evil, "guest_la_uid", "root");
    hvd_node_map_set_str(evil, "guest_la_pw", "S3cret!pw-TEST");
    hvd_restore_secrets(red, evil);
    const HvdNode *gc = hvd_node_get(hvd_node_get(red, "request"), "guest_config");
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_la_uid"), "Administrator");
    cr_assert_str_eq(hvd_node_get_str(gc, "guest_la_pw"), "S3cret!pw-TEST");
    hvd_restore_secrets(red, NULL);
    HvdNode *noguest = body_with(G_NO_GUEST, NULL, NULL);
    HvdNode *before = hvd_node_clone(noguest);
    hvd_restore_secrets(noguest, evil);
    cr_assert(hvd_node_equal(noguest, before));
    hvd_node_free(before);
    hvd_node_free(noguest);
    hvd_node_free(evil);
    hvd_node_free(red);
    hvd_node_free(body);
}

/* The sample jobs in tests/data/jobs validate as their names say. */
static HvdNode *load_sample(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/data/jobs/%s", HVD_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    HvdBuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) hvd_buf_append(&b, chunk, n);
    fclose(f);
    HvdNode *node = NULL;
    char why[256];
    cr_assert_eq(hvd_decode(HVD_CT_JSON, b.data, b.len, &node, why, sizeof(why)), HVD_DECODE_OK, "%s: %s", name, why);
    hvd_buf_free(&b);
    return node;
}

Test(guestcfg, sample_jobs)
{
    HvdJob job;
    parse(load_sample("full-windows.json"), &job);
    cr_assert(job.disk.present && job.nic.present && job.guest.present);
    cr_assert_str_eq(job.os_family, "windows");
    cr_assert_str_eq(job.disk.image_name, "Windows Server 2022");
    cr_assert_not_null(job.guest.guest_domain_join_target);
    cr_assert(job.rollback);
    hvd_job_free(&job);

    parse(load_sample("linux-static-ip.json"), &job);
    cr_assert_str_eq(job.os_family, "linux");
    cr_assert_str_eq(job.guest.guest_v4_ip_addr, "10.0.0.20");
    cr_assert(job.has_deadline);
    hvd_job_free(&job);

    parse(load_sample("minimal.json"), &job);
    cr_assert_not(job.disk.present || job.nic.present || job.guest.present);
    hvd_job_free(&job);

    HvdNode *bad = load_sample("invalid.json");
    HvdErrors errs = {0};
    cr_assert_not(hvd_job_validate(bad, NULL, &job, &errs));
    cr_assert_geq(errs.n, 10, "invalid.json has many errors at once, got %zu", errs.n);
    hvd_errors_free(&errs);
    hvd_job_free(&job);
    hvd_node_free(bad);
}
