/* Checks of single values that the job model and its neighbours (agent
 * transport, config, simhost, CLI) share: UUIDs, host names and IPv4
 * addresses (the one validator of each), VM and image names (§3 hardening),
 * and host lists. No I/O, no allocation but hvd_hosts_parse's. */
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "model.h"
#include "textcheck.h"
#include "utf8.h"

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
