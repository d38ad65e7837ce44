/* Guest configuration keys and OS family (contract §7), and the one place
 * that knows which request fields are secrets: redaction and extraction. */
#include "guestcfg.h"
#include <stdlib.h>
#include <string.h>
#include "utf8.h"

/* §7: an image whose name contains one of these (case-insensitively) is linux. */
static const char *const LINUX_MARKERS[] = {
    "linux", "ubuntu", "debian", "centos", "rhel",         "redhat",       "fedora", "suse", "opensuse",
    "arch",  "alpine", "rocky",  "alma",   "oracle linux", "amazon linux", "kali",   "mint", NULL,
};

const char *const HVD_SECRET_FIELDS[] = {"guest_la_pw", "guest_domain_join_pw", "cnf_ansible_ssh_key", NULL};

const char *hvd_os_family_from_image(const char *image_name)
{
    if (!image_name) return "windows";
    for (size_t i = 0; LINUX_MARKERS[i]; i++)
        if (strcasestr(image_name, LINUX_MARKERS[i])) return "linux";
    return "windows";
}

const char *hvd_os_family_resolve(const HvdJob *job)
{
    if (!job) return "windows";
    if (job->vm.os_family && strcmp(job->vm.os_family, "linux") == 0) return "linux";
    if (job->vm.os_family && strcmp(job->vm.os_family, "windows") == 0) return "windows";
    if (job->disk.present && job->disk.image_name) return hvd_os_family_from_image(job->disk.image_name);
    return "windows";
}

/* Appends name (and value when map is non-NULL): one builder serves both the
 * keys map and the names-only list, so they cannot disagree. */
static void put(HvdNode *out, bool names_only, const char *key, const char *val)
{
    if (names_only)
        hvd_node_array_push(out, hvd_node_str(key));
    else
        hvd_node_map_set_str(out, key, val);
}

static HvdNode *build(const HvdJob *job, bool names_only)
{
    if (!job || !job->guest.present) return NULL;
    const HvdGuestConfig *g = &job->guest;
    HvdNode *out = names_only ? hvd_node_array() : hvd_node_map();
    put(out, names_only, "guest_la_uid", g->guest_la_uid ? g->guest_la_uid : "");
    put(out, names_only, "guest_la_pw", g->guest_la_pw ? g->guest_la_pw : "");
    if (g->guest_domain_join_target) {
        put(out, names_only, "guest_domain_join_target", g->guest_domain_join_target);
        put(out, names_only, "guest_domain_join_uid", g->guest_domain_join_uid);
        put(out, names_only, "guest_domain_join_pw", g->guest_domain_join_pw);
        put(out, names_only, "guest_domain_join_ou", g->guest_domain_join_ou);
    }
    if (g->cnf_ansible_ssh_user) {
        put(out, names_only, "cnf_ansible_ssh_user", g->cnf_ansible_ssh_user);
        put(out, names_only, "cnf_ansible_ssh_key", g->cnf_ansible_ssh_key);
    }
    if (g->guest_v4_ip_addr) {
        put(out, names_only, "guest_v4_ip_addr", g->guest_v4_ip_addr);
        if (names_only)
            hvd_node_array_push(out, hvd_node_str("guest_v4_cidr_prefix"));
        else if (g->has_cidr_prefix)
            hvd_node_map_set_int(out, "guest_v4_cidr_prefix", g->guest_v4_cidr_prefix);
        else
            hvd_node_map_set(out, "guest_v4_cidr_prefix", hvd_node_nil());
        put(out, names_only, "guest_v4_default_gw", g->guest_v4_default_gw);
        put(out, names_only, "guest_v4_dns1", g->guest_v4_dns1);
        if (g->guest_v4_dns2) put(out, names_only, "guest_v4_dns2", g->guest_v4_dns2);
        if (g->guest_net_dns_suffix) put(out, names_only, "guest_net_dns_suffix", g->guest_net_dns_suffix);
    }
    return out;
}

HvdNode *hvd_guest_config_keys(const HvdJob *job)
{
    return build(job, false);
}

HvdNode *hvd_guest_config_key_names(const HvdJob *job)
{
    return build(job, true);
}

size_t hvd_job_secret_values(const HvdJob *job, const char *out[HVD_JOB_MAX_SECRETS])
{
    size_t n = 0;
    if (!job) return 0;
    const char *const v[] = {job->guest.guest_la_pw, job->guest.guest_domain_join_pw, job->guest.cnf_ansible_ssh_key};
    for (size_t i = 0; i < HVD_JOB_MAX_SECRETS; i++)
        if (v[i] && *v[i]) out[n++] = v[i];
    return n;
}

bool hvd_is_secret_field(const char *key)
{
    if (!key) return false;
    for (size_t i = 0; HVD_SECRET_FIELDS[i]; i++)
        if (strcmp(key, HVD_SECRET_FIELDS[i]) == 0) return true;
    return false;
}

/* A value worth hiding: anything but nil and the empty string. */
static bool has_content(const HvdNode *n)
{
    if (!n || n->type == HVD_NIL) return false;
    return !(n->type == HVD_STR && n->u.s.len == 0);
}

/* Replaces secret fields at any depth, not only under request.guest_config:
 * a secret misplaced in an invalid body must not leak through a log or a
 * dead letter either. */
static void redact_in_place(HvdNode *n)
{
    if (!n) return;
    if (n->type == HVD_STR && memchr(n->u.s.ptr, '\0', n->u.s.len)) {
        /* An invalid body is stored for the record: jsonb cannot hold \u0000. */
        HvdBuf clean = {0};
        hvd_utf8_sanitize(n->u.s.ptr, n->u.s.len, HVD_UTF8_NUL, &clean);
        free(n->u.s.ptr);
        n->u.s.len = clean.len;
        n->u.s.ptr = hvd_buf_steal(&clean);
        return;
    }
    if (n->type == HVD_ARRAY) {
        for (size_t i = 0; i < n->u.arr.n; i++) redact_in_place(n->u.arr.items[i]);
        return;
    }
    if (n->type != HVD_MAP) return;
    for (size_t i = 0; i < n->u.map.n; i++) {
        if (hvd_is_secret_field(n->u.map.keys[i]) && has_content(n->u.map.vals[i])) {
            hvd_node_free(n->u.map.vals[i]);
            n->u.map.vals[i] = hvd_node_str(HVD_REDACTED);
        } else {
            redact_in_place(n->u.map.vals[i]);
        }
    }
}

HvdNode *hvd_redact_body(const HvdNode *body)
{
    if (!body) return NULL;
    HvdNode *copy = hvd_node_clone(body);
    redact_in_place(copy);
    return copy;
}

static HvdNode *guest_config_of(HvdNode *body)
{
    HvdNode *gc = hvd_node_get_mut(hvd_node_get_mut(body, "request"), "guest_config");
    return gc && gc->type == HVD_MAP ? gc : NULL;
}

HvdNode *hvd_extract_secrets(const HvdNode *body)
{
    const HvdNode *gc = guest_config_of((HvdNode *)body);
    HvdNode *out = NULL;
    for (size_t i = 0; HVD_SECRET_FIELDS[i]; i++) {
        const HvdNode *v = hvd_node_get(gc, HVD_SECRET_FIELDS[i]);
        if (!has_content(v)) continue;
        if (!out) out = hvd_node_map();
        hvd_node_map_set(out, HVD_SECRET_FIELDS[i], hvd_node_clone(v));
    }
    return out;
}

void hvd_restore_secrets(HvdNode *body, const HvdNode *secrets)
{
    HvdNode *gc = guest_config_of(body);
    if (!gc || !secrets || secrets->type != HVD_MAP) return;
    for (size_t i = 0; i < secrets->u.map.n; i++) {
        const char *key = secrets->u.map.keys[i];
        if (!hvd_is_secret_field(key)) continue; /* restore secrets only, never other fields */
        hvd_node_map_set(gc, key, hvd_node_clone(secrets->u.map.vals[i]));
    }
}
