/* Parsing of setting values: numbers, durations, booleans, host:port,
 * names and agent codes, comma lists, per-operation timeouts; the one-line
 * error helpers and password masking of the config files. Host names are
 * judged by the core's hvd_hostname_valid, as a job's target_host is. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "config_priv.h"
#include "mask.h"
#include "model.h"

static const char *const timeout_ops[] = {"vm.create",     "disk.create", "nic.create",
                                          "vm.initialize", "vm.delete",   "default"};

void cfg_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value made safe to quote in a one-line error: cut, control chars as '?'. */
void cfg_quote_val(const char *v, char *out, size_t outlen)
{
    size_t j = 0, max = 80;
    for (size_t i = 0; v[i] && j + 4 < outlen; i++) {
        if (i == max) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
        unsigned char c = (unsigned char)v[i];
        out[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[j] = '\0';
}

char *cfg_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

bool cfg_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool cfg_parse_dur(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!*s || !isdigit((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return false;
    int64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return false;
        }
        if (end[1]) return false;
    }
    if (v > INT64_MAX / mul) return false;
    v *= mul;
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool hvd_config_parse_duration(const char *s, int64_t max, int64_t *out)
{
    return s && cfg_parse_dur(s, 0, max, out);
}

bool cfg_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "1", "yes", "on"}, *const f[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = true, true;
        if (strcasecmp(s, f[i]) == 0) return *out = false, true;
    }
    return false;
}

bool hvd_parse_host_port(const char *s, char *host, size_t hostlen, int *port, bool allow_zero)
{
    if (!s) return false;
    const char *colon, *hstart = s, *hend;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (!hend || hend[1] != ':') return false;
        hstart = s + 1;
        colon = hend + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return false;
        hend = colon;
        if (memchr(s, ':', (size_t)(colon - s))) return false; /* bare IPv6 needs brackets */
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= hostlen) return false;
    int64_t p;
    if (!cfg_parse_int(colon + 1, allow_zero ? 0 : 1, 65535, &p)) return false;
    memcpy(host, hstart, hl);
    host[hl] = '\0';
    *port = (int)p;
    return true;
}

bool cfg_addr_ok(const char *s)
{
    char host[256];
    int port;
    if (!hvd_parse_host_port(s, host, sizeof host, &port, false)) return false;
    if (*s == '[') {
        for (const char *p = host; *p; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') return false;
        return true;
    }
    return hvd_hostname_valid(host);
}

bool cfg_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:-", *s)) return false;
    return true;
}

bool cfg_code_ok(const char *s)
{
    if (!*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return false;
    return true;
}

void cfg_strlist_free(HvdStrList *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void strlist_push(HvdStrList *l, const char *s)
{
    l->v = hvd_xrealloc(l->v, (l->n + 2) * sizeof *l->v);
    l->v[l->n++] = hvd_xstrdup(s);
    l->v[l->n] = NULL;
}

/* Splits a comma list into trimmed items; calls ok() on each. Returns false
 * and the bad item in *bad (owned by the caller) when an item is empty or
 * refused. An empty (or all-blank) string is an empty list. */
bool cfg_split_list(const char *s, HvdStrList *out, bool (*ok)(const char *), bool lower, char **bad)
{
    char *copy = hvd_xstrdup(s);
    char *all = cfg_trim(copy);
    bool good = true;
    if (*all) {
        char *p = all;
        for (;;) {
            char *comma = strchr(p, ',');
            if (comma) *comma = '\0';
            char *item = cfg_trim(p);
            if (lower)
                for (char *c = item; *c; c++) *c = (char)tolower((unsigned char)*c);
            if (!*item || (ok && !ok(item))) {
                *bad = hvd_xstrdup(item);
                good = false;
                break;
            }
            strlist_push(out, item);
            if (!comma) break;
            p = comma + 1;
        }
    }
    free(copy);
    if (!good) cfg_strlist_free(out);
    return good;
}

static bool timeout_op_known(const char *op)
{
    for (size_t k = 0; k < sizeof timeout_ops / sizeof *timeout_ops; k++)
        if (strcmp(op, timeout_ops[k]) == 0) return true;
    return false;
}

/* Applies "op=seconds,..." over t. On failure *bad is the first bad item. */
bool cfg_timeouts_apply(HvdTimeouts *t, const char *s, char **bad)
{
    HvdStrList items = {0};
    if (!cfg_split_list(s, &items, NULL, false, bad)) return false;
    bool good = true;
    for (size_t i = 0; i < items.n && good; i++) {
        char *orig = hvd_xstrdup(items.v[i]);
        char *eq = strchr(items.v[i], '=');
        int64_t secs = 0;
        char *op = NULL;
        if (eq) {
            *eq = '\0';
            op = cfg_trim(items.v[i]);
        }
        good = eq && timeout_op_known(op) && cfg_parse_dur(cfg_trim(eq + 1), 1, 86400, &secs);
        if (good) {
            size_t j = 0;
            while (j < t->n && strcmp(t->v[j].op, op) != 0) j++;
            if (j == t->n && t->n < HVD_CFG_MAX_TIMEOUTS) {
                t->n++;
                snprintf(t->v[j].op, sizeof t->v[j].op, "%s", op);
            }
            if (j < t->n) t->v[j].seconds = secs;
            free(orig);
        } else {
            *bad = orig;
        }
    }
    cfg_strlist_free(&items);
    return good;
}

void hvd_mask_url(const char *url, char *out, size_t outlen)
{
    if (!out || outlen == 0) return;
    HvdBuf o = {0};
    hvd_mask_url_into(&o, url);
    snprintf(out, outlen, "%s", o.data);
    hvd_buf_free(&o);
}

char *cfg_mask_dup(const char *url)
{
    return hvd_mask_url_dup(url ? url : "");
}
