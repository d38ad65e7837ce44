/* Text a job may not carry: NUL in a body, non-UTF-8 properties, Windows-unsafe names. */
#include "textcheck.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "utf8.h"

static bool has_error_at(const HvdErrors *errs, const char *loc)
{
    for (size_t i = 0; i < errs->n; i++)
        if (strcmp(errs->items[i].loc, loc) == 0) return true;
    return false;
}

/* Walks n at path (a buffer holding the loc so far); counts every NUL string in *found. */
static void walk_nul(const HvdNode *n, HvdBuf *path, HvdErrors *errs, size_t *found)
{
    if (!n) return;
    size_t mark = path->len;
    if (n->type == HVD_STR) {
        if (!memchr(n->u.s.ptr, '\0', n->u.s.len) || has_error_at(errs, path->data)) return;
        if (++*found <= HVD_NUL_ERRORS_MAX)
            hvd_errors_add(errs, path->data, "value_error",
                           "Value error, strings must not contain NUL characters (\\u0000)");
    } else if (n->type == HVD_ARRAY) {
        for (size_t i = 0; i < n->u.arr.n; i++) {
            hvd_buf_printf(path, "%s%zu", path->len ? "." : "", i);
            walk_nul(n->u.arr.items[i], path, errs, found);
            path->len = mark;
            path->data[mark] = '\0';
        }
    } else if (n->type == HVD_MAP) {
        for (size_t i = 0; i < n->u.map.n; i++) {
            hvd_buf_printf(path, "%s%s", path->len ? "." : "", n->u.map.keys[i]);
            walk_nul(n->u.map.vals[i], path, errs, found);
            path->len = mark;
            path->data[mark] = '\0';
        }
    }
}

void hvd_check_no_nul(const HvdNode *body, HvdErrors *errs)
{
    HvdBuf path = {0};
    hvd_buf_puts(&path, "");
    size_t found = 0;
    walk_nul(body, &path, errs, &found);
    if (found > HVD_NUL_ERRORS_MAX)
        hvd_errors_add(errs, "body", "value_error", "Value error, %zu more strings contain NUL characters (\\u0000)",
                       found - HVD_NUL_ERRORS_MAX);
    hvd_buf_free(&path);
}

void hvd_check_properties(const char *message_id, const char *correlation_id, const char *reply_to, HvdErrors *errs)
{
    const struct {
        const char *loc, *value;
    } props[] = {
        {"properties.message_id", message_id},
        {"properties.correlation_id", correlation_id},
        {"properties.reply_to", reply_to},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (props[i].value && !hvd_utf8_valid(props[i].value, strlen(props[i].value)))
            hvd_errors_add(errs, props[i].loc, "string_unicode",
                           "Input should be a valid string, unable to parse raw data as a unicode string");
}

/* Invisible or direction-changing: a name holding one looks like another name. */
static bool is_invisible(uint32_t cp)
{
    return cp == 0x00A0 || cp == 0x061C || (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202A && cp <= 0x202E) || cp == 0x2060 || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

/* CON, PRN, AUX, NUL, COM1-9, LPT1-9: Windows opens the device whatever the
 * extension ("con.txt") and whatever spaces end the base name ("CON .x"). */
static bool is_device_name(const char *s)
{
    size_t n = strcspn(s, ".");
    while (n > 0 && s[n - 1] == ' ') n--;
    static const char *const three[] = {"CON", "PRN", "AUX", "NUL"};
    if (n == 3)
        for (size_t i = 0; i < sizeof three / sizeof three[0]; i++)
            if (strncasecmp(s, three[i], 3) == 0) return true;
    return n == 4 && (strncasecmp(s, "COM", 3) == 0 || strncasecmp(s, "LPT", 3) == 0) && s[3] >= '1' && s[3] <= '9';
}

const char *hvd_windows_name_problem(const char *s)
{
    if (!s || !*s) return NULL;
    size_t bytes = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < bytes;) {
        uint32_t cp = 0;
        size_t l = hvd_utf8_decode(p + i, bytes - i, &cp);
        if (l == 0) return "must be valid UTF-8";
        if (is_invisible(cp))
            return "must not contain invisible or direction-changing characters (no-break space, zero-width, "
                   "line/paragraph separator, bidi controls)";
        i += l;
    }
    if (s[bytes - 1] == '.') return "must not end with a dot (Windows drops it)";
    if (is_device_name(s)) return "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)";
    return NULL;
}
