/* What a handler reads from its request: query-string values, the fields of
 * a URL-encoded form body, and the check of a job id in a path. */
#include <ctype.h>
#include <string.h>
#include "request.h"

const char *web_arg(WebReq *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *web_form_value(const WebReq *r, const char *name)
{
    const char *p = r->form.data, *end = p ? p + r->form.len : NULL;
    size_t nl = strlen(name);
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
            HvdBuf v = {0};
            hvd_buf_puts(&v, "");
            for (const char *q = eq + 1; q < stop; q++) {
                if (*q == '+') {
                    hvd_buf_puts(&v, " ");
                } else if (*q == '%' && q + 2 < stop && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    char ch = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    hvd_buf_append(&v, &ch, 1);
                    q += 2;
                } else {
                    hvd_buf_append(&v, q, 1);
                }
            }
            return hvd_buf_steal(&v);
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}

bool web_uuid_ok(const char *s)
{
    if (!s || strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return false;
    }
    return true;
}
