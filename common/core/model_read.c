/* The field readers of job validation: each reads one key of a decoded map,
 * checks its type and limits, and adds Pydantic-style errors ({loc, msg,
 * type}) that never quote the value. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "model_priv.h"
#include "utf8.h"

/* Longest dotted loc we build: "request.guest_config.guest_domain_join_target". */
#define LOC_MAX 128

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
FieldState mv_read_str(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       size_t min, size_t max, const char **out)
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

FieldState mv_read_int(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       int64_t lo, int64_t hi, int64_t *out)
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

FieldState mv_read_bool(Val *v, const HvdNode *map, const char *prefix, const char *key, bool *out)
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

FieldState mv_read_map(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       const HvdNode **out)
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
void mv_literal_err(Val *v, const char *prefix, const char *key, const char *const *allowed)
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

bool mv_in_list(const char *s, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(s, allowed[i]) == 0) return true;
    return false;
}

/* A str field restricted to a few values (string_type for a non-string). */
FieldState mv_read_choice(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                          const char *const *allowed, const char **out)
{
    FieldState st = mv_read_str(v, map, prefix, key, required, nullable, 0, 0, out);
    if (st == F_OK && !mv_in_list(*out, allowed)) {
        mv_literal_err(v, prefix, key, allowed);
        *out = NULL;
        return F_BAD;
    }
    return st;
}

/* A name (vm_name, image_name): lengths, then the §3 hardening rules. */
FieldState mv_read_name(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                        size_t max, const char **out)
{
    FieldState st = mv_read_str(v, map, prefix, key, required, nullable, 1, max, out);
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
void mv_check_vm_id(Val *v, const HvdNode *map, const char *prefix)
{
    const char *s;
    (void)mv_read_str(v, map, prefix, "vm_id", false, true, HVD_UUID_LEN, HVD_UUID_LEN, &s);
}

/* An optional dotted-quad field; empty counts as absent. Stores a copy or NULL. */
void mv_read_ipv4(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst)
{
    const char *s;
    if (mv_read_str(v, map, prefix, key, false, true, 0, 0, &s) != F_OK || !*s) return;
    if (!hvd_ipv4_valid(s)) {
        field_err(v, prefix, key, "value_error",
                  "Value error, %s must be a dotted-quad IPv4 address (four numbers 0-255, no leading zeros)", key);
        return;
    }
    *dst = hvd_xstrdup(s);
}

/* An optional str whose empty value counts as absent (guest config). */
void mv_read_opt_str(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst)
{
    const char *s;
    if (mv_read_str(v, map, prefix, key, false, true, 0, 0, &s) == F_OK && *s) *dst = hvd_xstrdup(s);
}

/* Given for the all-or-none rule: present, not nil, not an empty string. A
 * value of the wrong type counts as given (its own error says what is wrong). */
bool mv_given(const HvdNode *map, const char *key)
{
    const HvdNode *n = hvd_node_get(map, key);
    if (!n || n->type == HVD_NIL) return false;
    if (n->type == HVD_STR && n->u.s.len == 0) return false;
    return true;
}

void mv_all_or_none(Val *v, const HvdNode *map, const char *loc, const char *what, const char *const *keys)
{
    size_t n = 0, have = 0;
    for (; keys[n]; n++)
        if (mv_given(map, keys[n])) have++;
    if (have == 0 || have == n) return;
    HvdBuf all = {0}, missing = {0};
    for (size_t i = 0; i < n; i++) {
        hvd_buf_printf(&all, "%s%s", i ? ", " : "", keys[i]);
        if (!mv_given(map, keys[i])) hvd_buf_printf(&missing, "%s%s", missing.len ? ", " : "", keys[i]);
    }
    hvd_errors_add(v->errs, loc, "value_error", "Value error, %s configuration requires all fields: %s; missing: %s",
                   what, all.data, missing.data);
    hvd_buf_free(&all);
    hvd_buf_free(&missing);
}
