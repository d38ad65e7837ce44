/* The job model of contract §3: validates a decoded body into HvdJob and
 * reports every error the way Pydantic v2 does ({loc, msg, type}). Error
 * messages never quote an input value, so a secret cannot leak through them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "guestcfg.h"
#include "model_priv.h"
#include "textcheck.h"
#include "timefmt.h"
#include "utf8.h"

static const char *const OS_FAMILIES[] = {"windows", "linux", NULL};

static const char *const DISK_TYPES[] = {"Dynamic", "Fixed", NULL};

static const char *const CONTROLLER_TYPES[] = {"SCSI", "IDE", NULL};

static const char *const ON_FAILURE[] = {"keep", "rollback", NULL};

static const char *const JOB_TYPES[] = {HVD_JOB_TYPE_MANAGED, NULL};

static void check_vm_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.vm_spec";
    const HvdNode *m;
    if (mv_read_map(v, req, "request", "vm_spec", true, false, &m) != F_OK) return;
    const char *s;
    if (mv_read_name(v, m, P, "vm_name", true, false, 64, &s) == F_OK) job->vm.vm_name = hvd_xstrdup(s);
    (void)mv_read_int(v, m, P, "gb_ram", true, false, 1, 512, &job->vm.gb_ram);
    (void)mv_read_int(v, m, P, "cpu_cores", true, false, 1, 64, &job->vm.cpu_cores);
    if (mv_read_str(v, m, P, "storage_class", false, true, 0, 0, &s) == F_OK) job->vm.storage_class = hvd_xstrdup(s);
    (void)mv_read_bool(v, m, P, "vm_clustered", &job->vm.vm_clustered);
    const HvdNode *os = hvd_node_get(m, "os_family");
    if (os && os->type != HVD_NIL) { /* a Literal: anything else is literal_error */
        if (os->type == HVD_STR && mv_in_list(os->u.s.ptr, OS_FAMILIES) && strlen(os->u.s.ptr) == os->u.s.len)
            job->vm.os_family = hvd_xstrdup(os->u.s.ptr);
        else
            mv_literal_err(v, P, "os_family", OS_FAMILIES);
    }
}

static void check_disk_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.disk_spec";
    const HvdNode *m;
    job->disk.disk_size_gb = 100;
    if (mv_read_map(v, req, "request", "disk_spec", false, true, &m) != F_OK) return;
    job->disk.present = true;
    const char *s;
    if (mv_read_name(v, m, P, "image_name", false, true, 128, &s) == F_OK) job->disk.image_name = hvd_xstrdup(s);
    (void)mv_read_int(v, m, P, "disk_size_gb", false, false, 1, 65536, &job->disk.disk_size_gb);
    if (mv_read_choice(v, m, P, "disk_type", false, false, DISK_TYPES, &s) == F_OK)
        job->disk.disk_type = hvd_xstrdup(s);
    if (mv_read_choice(v, m, P, "controller_type", false, false, CONTROLLER_TYPES, &s) == F_OK)
        job->disk.controller_type = hvd_xstrdup(s);
    mv_check_vm_id(v, m, P);
    (void)mv_read_str(v, m, P, "storage_class", false, true, 0, 0, &s); /* deprecated, ignored */
}

static void check_nic_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.nic_spec";
    const HvdNode *m;
    if (mv_read_map(v, req, "request", "nic_spec", false, true, &m) != F_OK) return;
    job->nic.present = true;
    const char *s;
    if (mv_read_str(v, m, P, "network", true, false, 0, 0, &s) == F_OK) job->nic.network = hvd_xstrdup(s);
    if (mv_read_str(v, m, P, "adapter_name", false, true, 0, 0, &s) == F_OK) job->nic.adapter_name = hvd_xstrdup(s);
    mv_check_vm_id(v, m, P);
}

static const char *const DOMAIN_KEYS[] = {"guest_domain_join_target", "guest_domain_join_uid", "guest_domain_join_pw",
                                          "guest_domain_join_ou", NULL};
static const char *const ANSIBLE_KEYS[] = {"cnf_ansible_ssh_user", "cnf_ansible_ssh_key", NULL};

static const char *const STATIC_IP_KEYS[] = {"guest_v4_ip_addr", "guest_v4_cidr_prefix", "guest_v4_default_gw",
                                             "guest_v4_dns1", NULL};

static void check_guest_config(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.guest_config";
    const HvdNode *m;
    HvdGuestConfig *g = &job->guest;
    if (mv_read_map(v, req, "request", "guest_config", false, true, &m) != F_OK) return;
    g->present = true;
    const char *s;
    /* Required; kept as given (an empty string stays "", never NULL once valid). */
    if (mv_read_str(v, m, P, "guest_la_uid", true, false, 0, 0, &s) == F_OK) g->guest_la_uid = hvd_xstrdup(s);
    if (mv_read_str(v, m, P, "guest_la_pw", true, false, 0, 0, &s) == F_OK) g->guest_la_pw = hvd_xstrdup(s);
    mv_read_opt_str(v, m, P, "guest_domain_join_target", &g->guest_domain_join_target);
    mv_read_opt_str(v, m, P, "guest_domain_join_uid", &g->guest_domain_join_uid);
    mv_read_opt_str(v, m, P, "guest_domain_join_pw", &g->guest_domain_join_pw);
    mv_read_opt_str(v, m, P, "guest_domain_join_ou", &g->guest_domain_join_ou);
    mv_read_opt_str(v, m, P, "cnf_ansible_ssh_user", &g->cnf_ansible_ssh_user);
    mv_read_opt_str(v, m, P, "cnf_ansible_ssh_key", &g->cnf_ansible_ssh_key);
    mv_read_ipv4(v, m, P, "guest_v4_ip_addr", &g->guest_v4_ip_addr);
    if (mv_read_int(v, m, P, "guest_v4_cidr_prefix", false, true, 0, 32, &g->guest_v4_cidr_prefix) == F_OK)
        g->has_cidr_prefix = true;
    mv_read_ipv4(v, m, P, "guest_v4_default_gw", &g->guest_v4_default_gw);
    mv_read_ipv4(v, m, P, "guest_v4_dns1", &g->guest_v4_dns1);
    mv_read_ipv4(v, m, P, "guest_v4_dns2", &g->guest_v4_dns2);
    mv_read_opt_str(v, m, P, "guest_net_dns_suffix", &g->guest_net_dns_suffix);
    mv_all_or_none(v, m, P, "Domain join", DOMAIN_KEYS);
    mv_all_or_none(v, m, P, "Ansible", ANSIBLE_KEYS);
    mv_all_or_none(v, m, P, "Static IP", STATIC_IP_KEYS);
}

static void check_target_host(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *s;
    if (mv_read_str(v, req, "request", "target_host", true, false, 0, 0, &s) != F_OK) return;
    if (!hvd_hostname_valid(s)) {
        hvd_errors_add(v->errs, "request.target_host", "value_error",
                       "Value error, target_host must be an RFC 1123 hostname or a dotted-quad IPv4 address");
        return;
    }
    const HvdValidateOpts *o = v->opts;
    if (o && o->allowed_hosts && o->n_allowed_hosts > 0) {
        bool ok = false;
        for (size_t i = 0; i < o->n_allowed_hosts && !ok; i++)
            ok = o->allowed_hosts[i] && strcasecmp(o->allowed_hosts[i], s) == 0;
        if (!ok) {
            hvd_errors_add(v->errs, "request.target_host", "host_not_allowed",
                           "target_host %s is not one of the hosts this fleet may touch (HVD_ALLOWED_HOSTS)", s);
            return;
        }
    }
    char *h = hvd_xstrdup(s);
    for (char *q = h; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    job->target_host = h;
}

static void check_job_id(Val *v, const HvdNode *body, HvdJob *job)
{
    const HvdNode *n = hvd_node_get(body, "job_id");
    const char *s;
    if (mv_read_str(v, body, "", "job_id", true, false, 0, 0, &s) != F_OK) return;
    if (!hvd_uuid_valid(s, n->u.s.len)) {
        hvd_errors_add(v->errs, "job_id", "uuid_parsing",
                       "Input should be a valid UUID, in the canonical hyphenated form of 36 characters "
                       "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        return;
    }
    for (size_t i = 0; i < HVD_UUID_LEN; i++) {
        char c = s[i];
        job->job_id[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    job->job_id[HVD_UUID_LEN] = '\0';
    const char *mid = v->opts ? v->opts->message_id : NULL;
    if (mid && *mid && strcasecmp(mid, job->job_id) != 0)
        hvd_errors_add(v->errs, "job_id", "value_error", "Value error, job_id does not match the message_id property");
    if (v->opts && hvd_reply_to_is_direct(v->opts->reply_to))
        hvd_errors_add(v->errs, "reply_to", "direct_reply_to",
                       "Value error, RabbitMQ's direct reply-to (" HVD_DIRECT_REPLY_TO
                       ") lasts only as long as the sender's channel and cannot carry the envelope of a job "
                       "that may run for hours: set reply_to to a durable named queue (or none for "
                       "hvdeploy.results)");
}

bool hvd_reply_to_is_direct(const char *reply_to)
{
    size_t n = strlen(HVD_DIRECT_REPLY_TO);
    return reply_to && strncmp(reply_to, HVD_DIRECT_REPLY_TO, n) == 0 && (reply_to[n] == '\0' || reply_to[n] == '.');
}

static void check_options(Val *v, const HvdNode *body, HvdJob *job)
{
    const HvdNode *m;
    if (mv_read_map(v, body, "", "options", false, true, &m) != F_OK) return;
    const char *s;
    if (mv_read_choice(v, m, "options", "on_failure", false, true, ON_FAILURE, &s) == F_OK)
        job->rollback = strcmp(s, "rollback") == 0;
    if (mv_read_str(v, m, "options", "deadline", false, true, 0, 0, &s) != F_OK) return;
    int64_t ms;
    const char *why = hvd_time_parse_rfc3339_why(s, &ms);
    if (why && strcmp(why, "timezone") == 0) {
        hvd_errors_add(v->errs, "options.deadline", "timezone_aware", "Input should have timezone info");
    } else if (why) {
        hvd_errors_add(v->errs, "options.deadline", "datetime_parsing", "Input should be a valid datetime, %s", why);
    } else {
        job->has_deadline = true;
        job->deadline_ms = ms;
        job->deadline_text = hvd_xstrdup(s);
    }
}

bool hvd_job_validate(const HvdNode *body, const HvdValidateOpts *opts, HvdJob *job, HvdErrors *errs)
{
    Val v = {.errs = errs, .opts = opts};
    size_t before = errs->n;
    memset(job, 0, sizeof(*job));
    job->disk.disk_size_gb = 100;
    job->os_family = "windows";

    if (!body || body->type != HVD_MAP) {
        hvd_errors_add(errs, "body", "dict_type", "Input should be a valid dictionary");
        return false;
    }
    check_job_id(&v, body, job);
    const char *s;
    if (mv_read_choice(&v, body, "", "job_type", true, false, JOB_TYPES, &s) == F_OK) {
        job->job_type = hvd_xstrdup(s);
    } else if ((s = hvd_node_get_str(body, "job_type")) != NULL) {
        job->job_type = hvd_xstrdup(s); /* kept so the worker can answer unsupported_job_type */
    }
    const HvdNode *req;
    if (mv_read_map(&v, body, "", "request", true, false, &req) == F_OK) {
        check_vm_spec(&v, req, job);
        check_disk_spec(&v, req, job);
        check_nic_spec(&v, req, job);
        check_guest_config(&v, req, job);
        check_target_host(&v, req, job);
    }
    check_options(&v, body, job);
    hvd_check_no_nul(body, errs);
    if (opts) hvd_check_properties(opts->message_id, opts->correlation_id, opts->reply_to, errs);

    /* Defaults for what was absent (or invalid) so the struct is usable either way. */
    if (job->disk.present && !job->disk.disk_type) job->disk.disk_type = hvd_xstrdup("Dynamic");
    if (job->disk.present && !job->disk.controller_type) job->disk.controller_type = hvd_xstrdup("SCSI");
    job->os_family = hvd_os_family_resolve(job);
    return errs->n == before;
}

void hvd_job_free(HvdJob *job)
{
    if (!job) return;
    free(job->job_type);
    free(job->target_host);
    free(job->vm.vm_name);
    free(job->vm.storage_class);
    free(job->vm.os_family);
    free(job->disk.image_name);
    free(job->disk.disk_type);
    free(job->disk.controller_type);
    free(job->nic.network);
    free(job->nic.adapter_name);
    HvdGuestConfig *g = &job->guest;
    char *const secrets[] = {g->guest_la_pw, g->guest_domain_join_pw, g->cnf_ansible_ssh_key};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (secrets[i]) explicit_bzero(secrets[i], strlen(secrets[i])); /* leave no password in freed memory */
    free(g->guest_la_uid);
    free(g->guest_la_pw);
    free(g->guest_domain_join_target);
    free(g->guest_domain_join_uid);
    free(g->guest_domain_join_pw);
    free(g->guest_domain_join_ou);
    free(g->cnf_ansible_ssh_user);
    free(g->cnf_ansible_ssh_key);
    free(g->guest_v4_ip_addr);
    free(g->guest_v4_default_gw);
    free(g->guest_v4_dns1);
    free(g->guest_v4_dns2);
    free(g->guest_net_dns_suffix);
    free(job->deadline_text);
    memset(job, 0, sizeof(*job));
}
