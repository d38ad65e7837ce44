/* UTF-8: decode, validate, count, cut on a character boundary, sanitise. */
#include "utf8.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t hvd_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        if (cp) *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if (cp) *cp = v;
    return len;
}

bool hvd_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = hvd_utf8_decode(p + i, len - i, NULL);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

size_t hvd_utf8_count(const char *s, size_t bytes, bool *valid)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0, i = 0;
    bool ok = true;
    while (p && i < bytes) {
        size_t l = p[i] < 0x80 ? 1 : hvd_utf8_decode(p + i, bytes - i, NULL);
        if (l == 0) {
            ok = false;
            l = 1; /* a bad byte counts as one character */
        }
        i += l;
        count++;
    }
    if (valid) *valid = ok;
    return count;
}

size_t hvd_utf8_truncate(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    const unsigned char *p = (const unsigned char *)s;
    if ((p[max] & 0xC0) != 0x80) return max; /* the cut is before a lead byte or ASCII */
    /* The cut is inside a character: find its lead byte and leave that character out. */
    size_t lead = max;
    while (lead > 0 && max - lead < 3 && (p[lead] & 0xC0) == 0x80) lead--;
    size_t n = hvd_utf8_decode(p + lead, len - lead, NULL);
    if (n && lead + n > max) return lead; /* it straddles the cut */
    return max;                           /* not UTF-8 there: bytes count one each */
}

int hvd_text_printf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *full = NULL;
    int n = vasprintf(&full, fmt, ap);
    va_end(ap);
    if (size == 0) {
        free(full);
        return n;
    }
    if (n < 0) {
        dst[0] = '\0';
        return n;
    }
    size_t keep = hvd_utf8_truncate(full, (size_t)n, size - 1);
    memcpy(dst, full, keep);
    dst[keep] = '\0';
    free(full);
    return n;
}

size_t hvd_utf8_tail_start(const char *s, size_t len, size_t max)
{
    if (len <= max) return 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t at = len - max;
    if ((p[at] & 0xC0) != 0x80) return at;
    /* at is inside a character: find its lead byte and start after that character */
    size_t lead = at;
    while (lead > 0 && at - lead < 3 && (p[lead] & 0xC0) == 0x80) lead--;
    size_t n = hvd_utf8_decode(p + lead, len - lead, NULL);
    return n && lead + n > at ? lead + n : at;
}

/* Length of the acceptable run at s[i] (1..4), or 0 when that byte must be replaced. */
static size_t keep_len(const unsigned char *p, size_t i, size_t len, unsigned flags)
{
    if (p[i] < 0x80) return p[i] == 0 && (flags & HVD_UTF8_NUL) ? 0 : 1;
    return hvd_utf8_decode(p + i, len - i, NULL);
}

bool hvd_utf8_clean(const char *s, size_t len, unsigned flags)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = keep_len(p, i, len, flags);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

void hvd_utf8_sanitize(const char *s, size_t len, unsigned flags, HvdBuf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending bytes kept as they are */
    hvd_buf_append(out, "", 0);
    while (i < len) {
        size_t n = keep_len(p, i, len, flags);
        if (n) {
            i += n;
            continue;
        }
        hvd_buf_append(out, s + run, i - run);
        hvd_buf_append(out, HVD_UTF8_REPLACEMENT, 3);
        run = ++i;
    }
    hvd_buf_append(out, s + run, len - run);
}

char *hvd_utf8_sanitize_dup(const char *s, size_t len, unsigned flags)
{
    if (!s) return NULL;
    HvdBuf b = {0};
    hvd_utf8_sanitize(s, len, flags, &b);
    return hvd_buf_steal(&b);
}
