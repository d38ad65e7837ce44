/* The job model of contract §3: validates a decoded body into HvdJob and
 * reports every error the way Pydantic v2 does ({loc, msg, type}). Error
 * messages never quote an input value, so a secret cannot leak through them. */
#include "timefmt.h"
#include "model.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "guestcfg.h"
#include "textcheck.h"
#include "utf8.h"

/* Longest dotted loc we build: "request.guest_config.guest_domain_join_target". */
#define LOC_MAX 128

/* ---------------------------------------------------------------- helpers */

bool hvd_uuid_valid(const char *s, size_t len)
{
    if (!s || len != HVD_UUID_LEN) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool hvd_ipv4_valid(const char *s)
{
    if (!s) return false;
    const char *p = s;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (*p != '.') return false;
            p++;
        }
        int digits = 0, value = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 3) return false;
            value = value * 10 + (*p - '0');
            p++;
        }
        if (digits == 0 || value > 255) return false;
        if (digits > 1 && *start == '0') return false; /* 01.2.3.4 is ambiguous (octal) */
    }
    return *p == '\0';
}

static bool is_alnum_ascii(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool hvd_hostname_valid(const char *s)
{
    if (!s || !*s) return false;
    if (hvd_ipv4_valid(s)) return true;
    size_t total = strlen(s);
    if (total > 253) return false;
    const char *label = s;
    bool last_all_digits = false;
    for (;;) {
        const char *end = strchr(label, '.');
        size_t n = end ? (size_t)(end - label) : strlen(label);
        if (n == 0 || n > 63) return false;
        if (label[0] == '-' || label[n - 1] == '-') return false;
        bool all_digits = true;
        for (size_t i = 0; i < n; i++) {
            char c = label[i];
            if (!is_alnum_ascii(c) && c != '-') return false;
            if (c < '0' || c > '9') all_digits = false;
        }
        last_all_digits = all_digits;
        if (!end) break;
        label = end + 1;
    }
    /* RFC 1123 §2.1: a name must never look like a dotted-decimal address, so
     * an all-numeric top label that is not a valid IPv4 (256.1.1.1, 1.2.3) is
     * rejected rather than resolved. */
    return !last_all_digits;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

const char *hvd_name_problem(const char *s, size_t max_chars)
{
    if (!s || !*s) return "must not be empty";
    size_t bytes = strlen(s);
    bool valid;
    size_t chars = hvd_utf8_count(s, bytes, &valid);
    if (!valid) return "must be valid UTF-8";
    if (chars > max_chars) return "is too long";
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < bytes;) {
        uint32_t cp = 0;
        size_t l = hvd_utf8_decode(p + i, bytes - i, &cp);
        if (is_control(cp)) return "must not contain control characters";
        i += l;
    }
    if (strpbrk(s, "/\\:*?\"<>|")) return "must not contain any of / \\ : * ? \" < > |";
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return "must not be \".\" or \"..\"";
    if (s[0] == ' ' || s[bytes - 1] == ' ') return "must not begin or end with a space";
    return hvd_windows_name_problem(s);
}

size_t hvd_hosts_parse(const char *csv, char ***out)
{
    *out = NULL;
    size_t n = 0, cap = 0;
    char **hosts = NULL;
    const char *p = csv ? csv : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (b > a) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                hosts = hvd_xrealloc(hosts, cap * sizeof(*hosts));
            }
            char *h = hvd_xstrndup(a, (size_t)(b - a));
            for (char *q = h; *q; q++)
                if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
            hosts[n++] = h;
        }
        if (!comma) break;
        p = comma + 1;
    }
    *out = hosts;
    return n;
}

void hvd_hosts_free(char **hosts, size_t n)
{
    if (!hosts) return;
    for (size_t i = 0; i < n; i++) free(hosts[i]);
    free(hosts);
}

/* ---------------------------------------------------------------- field readers */

typedef struct {
    HvdErrors *errs;
    const HvdValidateOpts *opts;
} Val;

typedef enum {
    F_ABSENT, /* key missing (a "missing" error was added when required) */
    F_NIL,    /* nil, and the field allows it */
    F_OK,     /* the value has the right type and passed the field's checks */
    F_BAD,    /* an error was added */
} FieldState;

static void loc_join(char *out, const char *prefix, const char *key)
{
    snprintf(out, LOC_MAX, "%s%s%s", prefix ? prefix : "", prefix && *prefix ? "." : "", key);
}

static void field_err(Val *v, const char *prefix, const char *key, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void field_err(Val *v, const char *prefix, const char *key, const char *type, const char *fmt, ...)
{
    char loc[LOC_MAX];
    loc_join(loc, prefix, key);
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    hvd_errors_add(v->errs, loc, type, "%s", msg ? msg : "(message unavailable)");
    free(msg);
}

/* Common start of every reader: absent / nil handling. Returns true when the
 * caller should go on to check the value's type. */
static bool field_begin(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                        const char *type, const char *type_msg, const HvdNode **out, FieldState *st)
{
    const HvdNode *n = hvd_node_get(map, key);
    *out = n;
    if (!n) {
        if (required) field_err(v, prefix, key, "missing", "Field required");
        *st = required ? F_BAD : F_ABSENT;
        return false;
    }
    if (n->type == HVD_NIL) {
        if (nullable) {
            *st = F_NIL;
        } else {
            field_err(v, prefix, key, type, "%s", type_msg);
            *st = F_BAD;
        }
        return false;
    }
    return true;
}

/* A str field: type, UTF-8, no NUL. min/max in code points (0 = no limit). */
static FieldState read_str(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required,
                           bool nullable, size_t min, size_t max, const char **out)
{
    const HvdNode *n;
    FieldState st;
    *out = NULL;
    if (!field_begin(v, map, prefix, key, required, nullable, "string_type", "Input should be a valid string", &n, &st))
        return st;
    if (n->type != HVD_STR) {
        field_err(v, prefix, key, "string_type", "Input should be a valid string");
        return F_BAD;
    }
    bool valid;
    size_t chars = hvd_utf8_count(n->u.s.ptr, n->u.s.len, &valid);
    if (!valid) {
        field_err(v, prefix, key, "string_unicode",
                  "Input should be a valid string, unable to parse raw data as a unicode string");
        return F_BAD;
    }
    if (memchr(n->u.s.ptr, '\0', n->u.s.len)) {
        field_err(v, prefix, key, "value_error", "Value error, %s must not contain NUL characters", key);
        return F_BAD;
    }
    if (min && chars < min) {
        field_err(v, prefix, key, "string_too_short", "String should have at least %zu character%s", min,
                  min == 1 ? "" : "s");
        return F_BAD;
    }
    if (max && chars > max) {
        field_err(v, prefix, key, "string_too_long", "String should have at most %zu character%s", max,
                  max == 1 ? "" : "s");
        return F_BAD;
    }
    *out = n->u.s.ptr;
    return F_OK;
}

static FieldState read_int(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required,
                           bool nullable, int64_t lo, int64_t hi, int64_t *out)
{
    const HvdNode *n;
    FieldState st;
    if (!field_begin(v, map, prefix, key, required, nullable, "int_type", "Input should be a valid integer", &n, &st))
        return st;
    if (n->type != HVD_INT) { /* strict: no float, bool or numeric string */
        field_err(v, prefix, key, "int_type", "Input should be a valid integer");
        return F_BAD;
    }
    if (n->u.i < lo) {
        field_err(v, prefix, key, "greater_than_equal", "Input should be greater than or equal to %lld", (long long)lo);
        return F_BAD;
    }
    if (n->u.i > hi) {
        field_err(v, prefix, key, "less_than_equal", "Input should be less than or equal to %lld", (long long)hi);
        return F_BAD;
    }
    *out = n->u.i;
    return F_OK;
}

static FieldState read_bool(Val *v, const HvdNode *map, const char *prefix, const char *key, bool *out)
{
    const HvdNode *n;
    FieldState st;
    if (!field_begin(v, map, prefix, key, false, false, "bool_type", "Input should be a valid boolean", &n, &st))
        return st;
    if (n->type != HVD_BOOL) {
        field_err(v, prefix, key, "bool_type", "Input should be a valid boolean");
        return F_BAD;
    }
    *out = n->u.b;
    return F_OK;
}

static FieldState read_map(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required,
                           bool nullable, const HvdNode **out)
{
    const HvdNode *n;
    FieldState st;
    *out = NULL;
    if (!field_begin(v, map, prefix, key, required, nullable, "dict_type", "Input should be a valid dictionary", &n,
                     &st))
        return st;
    if (n->type != HVD_MAP) {
        field_err(v, prefix, key, "dict_type", "Input should be a valid dictionary");
        return F_BAD;
    }
    *out = n;
    return F_OK;
}

/* "Input should be 'a'", "'a' or 'b'", "'a', 'b' or 'c'". */
static void literal_err(Val *v, const char *prefix, const char *key, const char *const *allowed)
{
    HvdBuf b = {0};
    hvd_buf_puts(&b, "Input should be ");
    size_t n = 0;
    while (allowed[n]) n++;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) hvd_buf_puts(&b, i == n - 1 ? " or " : ", ");
        hvd_buf_printf(&b, "'%s'", allowed[i]);
    }
    field_err(v, prefix, key, "literal_error", "%s", b.data);
    hvd_buf_free(&b);
}

static bool in_list(const char *s, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(s, allowed[i]) == 0) return true;
    return false;
}

/* A str field restricted to a few values (string_type for a non-string). */
static FieldState read_choice(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required,
                              bool nullable, const char *const *allowed, const char **out)
{
    FieldState st = read_str(v, map, prefix, key, required, nullable, 0, 0, out);
    if (st == F_OK && !in_list(*out, allowed)) {
        literal_err(v, prefix, key, allowed);
        *out = NULL;
        return F_BAD;
    }
    return st;
}

/* A name (vm_name, image_name): lengths, then the §3 hardening rules. */
static FieldState read_name(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required,
                            bool nullable, size_t max, const char **out)
{
    FieldState st = read_str(v, map, prefix, key, required, nullable, 1, max, out);
    if (st != F_OK) return st;
    const char *why = hvd_name_problem(*out, max);
    if (why) {
        field_err(v, prefix, key, "value_error", "Value error, %s %s", key, why);
        *out = NULL;
        return F_BAD;
    }
    return F_OK;
}

/* vm_id on input: ignored, but when given it must be 36 characters. */
static void check_vm_id(Val *v, const HvdNode *map, const char *prefix)
{
    const char *s;
    (void)read_str(v, map, prefix, "vm_id", false, true, HVD_UUID_LEN, HVD_UUID_LEN, &s);
}

/* An optional dotted-quad field; empty counts as absent. Stores a copy or NULL. */
static void read_ipv4(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst)
{
    const char *s;
    if (read_str(v, map, prefix, key, false, true, 0, 0, &s) != F_OK || !*s) return;
    if (!hvd_ipv4_valid(s)) {
        field_err(v, prefix, key, "value_error",
                  "Value error, %s must be a dotted-quad IPv4 address (four numbers 0-255, no leading zeros)", key);
        return;
    }
    *dst = hvd_xstrdup(s);
}

/* An optional str whose empty value counts as absent (guest config). */
static void read_opt_str(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst)
{
    const char *s;
    if (read_str(v, map, prefix, key, false, true, 0, 0, &s) == F_OK && *s) *dst = hvd_xstrdup(s);
}

/* Given for the all-or-none rule: present, not nil, not an empty string. A
 * value of the wrong type counts as given (its own error says what is wrong). */
static bool given(const HvdNode *map, const char *key)
{
    const HvdNode *n = hvd_node_get(map, key);
    if (!n || n->type == HVD_NIL) return false;
    if (n->type == HVD_STR && n->u.s.len == 0) return false;
    return true;
}

static void all_or_none(Val *v, const HvdNode *map, const char *loc, const char *what, const char *const *keys)
{
    size_t n = 0, have = 0;
    for (; keys[n]; n++)
        if (given(map, keys[n])) have++;
    if (have == 0 || have == n) return;
    HvdBuf all = {0}, missing = {0};
    for (size_t i = 0; i < n; i++) {
        hvd_buf_printf(&all, "%s%s", i ? ", " : "", keys[i]);
        if (!given(map, keys[i])) hvd_buf_printf(&missing, "%s%s", missing.len ? ", " : "", keys[i]);
    }
    hvd_errors_add(v->errs, loc, "value_error", "Value error, %s configuration requires all fields: %s; missing: %s",
                   what, all.data, missing.data);
    hvd_buf_free(&all);
    hvd_buf_free(&missing);
}

/* ---------------------------------------------------------------- sections */

static const char *const OS_FAMILIES[] = {"windows", "linux", NULL};
static const char *const DISK_TYPES[] = {"Dynamic", "Fixed", NULL};
static const char *const CONTROLLER_TYPES[] = {"SCSI", "IDE", NULL};
static const char *const ON_FAILURE[] = {"keep", "rollback", NULL};
static const char *const JOB_TYPES[] = {HVD_JOB_TYPE_MANAGED, NULL};

static void check_vm_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.vm_spec";
    const HvdNode *m;
    if (read_map(v, req, "request", "vm_spec", true, false, &m) != F_OK) return;
    const char *s;
    if (read_name(v, m, P, "vm_name", true, false, 64, &s) == F_OK) job->vm.vm_name = hvd_xstrdup(s);
    (void)read_int(v, m, P, "gb_ram", true, false, 1, 512, &job->vm.gb_ram);
    (void)read_int(v, m, P, "cpu_cores", true, false, 1, 64, &job->vm.cpu_cores);
    if (read_str(v, m, P, "storage_class", false, true, 0, 0, &s) == F_OK) job->vm.storage_class = hvd_xstrdup(s);
    (void)read_bool(v, m, P, "vm_clustered", &job->vm.vm_clustered);
    const HvdNode *os = hvd_node_get(m, "os_family");
    if (os && os->type != HVD_NIL) { /* a Literal: anything else is literal_error */
        if (os->type == HVD_STR && in_list(os->u.s.ptr, OS_FAMILIES) && strlen(os->u.s.ptr) == os->u.s.len)
            job->vm.os_family = hvd_xstrdup(os->u.s.ptr);
        else
            literal_err(v, P, "os_family", OS_FAMILIES);
    }
}

static void check_disk_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.disk_spec";
    const HvdNode *m;
    job->disk.disk_size_gb = 100;
    if (read_map(v, req, "request", "disk_spec", false, true, &m) != F_OK) return;
    job->disk.present = true;
    const char *s;
    if (read_name(v, m, P, "image_name", false, true, 128, &s) == F_OK) job->disk.image_name = hvd_xstrdup(s);
    (void)read_int(v, m, P, "disk_size_gb", false, false, 1, 65536, &job->disk.disk_size_gb);
    if (read_choice(v, m, P, "disk_type", false, false, DISK_TYPES, &s) == F_OK) job->disk.disk_type = hvd_xstrdup(s);
    if (read_choice(v, m, P, "controller_type", false, false, CONTROLLER_TYPES, &s) == F_OK)
        job->disk.controller_type = hvd_xstrdup(s);
    check_vm_id(v, m, P);
    (void)read_str(v, m, P, "storage_class", false, true, 0, 0, &s); /* deprecated, ignored */
}

static void check_nic_spec(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *P = "request.nic_spec";
    const HvdNode *m;
    if (read_map(v, req, "request", "nic_spec", false, true, &m) != F_OK) return;
    job->nic.present = true;
    const char *s;
    if (read_str(v, m, P, "network", true, false, 0, 0, &s) == F_OK) job->nic.network = hvd_xstrdup(s);
    if (read_str(v, m, P, "adapter_name", false, true, 0, 0, &s) == F_OK) job->nic.adapter_name = hvd_xstrdup(s);
    check_vm_id(v, m, P);
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
    if (read_map(v, req, "request", "guest_config", false, true, &m) != F_OK) return;
    g->present = true;
    const char *s;
    /* Required; kept as given (an empty string stays "", never NULL once valid). */
    if (read_str(v, m, P, "guest_la_uid", true, false, 0, 0, &s) == F_OK) g->guest_la_uid = hvd_xstrdup(s);
    if (read_str(v, m, P, "guest_la_pw", true, false, 0, 0, &s) == F_OK) g->guest_la_pw = hvd_xstrdup(s);
    read_opt_str(v, m, P, "guest_domain_join_target", &g->guest_domain_join_target);
    read_opt_str(v, m, P, "guest_domain_join_uid", &g->guest_domain_join_uid);
    read_opt_str(v, m, P, "guest_domain_join_pw", &g->guest_domain_join_pw);
    read_opt_str(v, m, P, "guest_domain_join_ou", &g->guest_domain_join_ou);
    read_opt_str(v, m, P, "cnf_ansible_ssh_user", &g->cnf_ansible_ssh_user);
    read_opt_str(v, m, P, "cnf_ansible_ssh_key", &g->cnf_ansible_ssh_key);
    read_ipv4(v, m, P, "guest_v4_ip_addr", &g->guest_v4_ip_addr);
    if (read_int(v, m, P, "guest_v4_cidr_prefix", false, true, 0, 32, &g->guest_v4_cidr_prefix) == F_OK)
        g->has_cidr_prefix = true;
    read_ipv4(v, m, P, "guest_v4_default_gw", &g->guest_v4_default_gw);
    read_ipv4(v, m, P, "guest_v4_dns1", &g->guest_v4_dns1);
    read_ipv4(v, m, P, "guest_v4_dns2", &g->guest_v4_dns2);
    read_opt_str(v, m, P, "guest_net_dns_suffix", &g->guest_net_dns_suffix);
    all_or_none(v, m, P, "Domain join", DOMAIN_KEYS);
    all_or_none(v, m, P, "Ansible", ANSIBLE_KEYS);
    all_or_none(v, m, P, "Static IP", STATIC_IP_KEYS);
}

static void check_target_host(Val *v, const HvdNode *req, HvdJob *job)
{
    const char *s;
    if (read_str(v, req, "request", "target_host", true, false, 0, 0, &s) != F_OK) return;
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
    if (read_str(v, body, "", "job_id", true, false, 0, 0, &s) != F_OK) return;
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
    if (read_map(v, body, "", "options", false, true, &m) != F_OK) return;
    const char *s;
    if (read_choice(v, m, "options", "on_failure", false, true, ON_FAILURE, &s) == F_OK)
        job->rollback = strcmp(s, "rollback") == 0;
    if (read_str(v, m, "options", "deadline", false, true, 0, 0, &s) != F_OK) return;
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
    if (read_choice(&v, body, "", "job_type", true, false, JOB_TYPES, &s) == F_OK) {
        job->job_type = hvd_xstrdup(s);
    } else if ((s = hvd_node_get_str(body, "job_type")) != NULL) {
        job->job_type = hvd_xstrdup(s); /* kept so the worker can answer unsupported_job_type */
    }
    const HvdNode *req;
    if (read_map(&v, body, "", "request", true, false, &req) == F_OK) {
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
