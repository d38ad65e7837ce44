/* Growable byte buffers and allocation helpers that abort on out-of-memory. */
#include "buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("{\"level\":\"fatal\",\"msg\":\"out of memory\"}\n", stderr);
    abort();
}

void *hvd_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *hvd_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom();
    return p;
}

void *hvd_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}

char *hvd_xstrdup(const char *s)
{
    return s ? hvd_xstrndup(s, strlen(s)) : NULL;
}

char *hvd_xstrndup(const char *s, size_t n)
{
    char *p = hvd_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *hvd_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) oom();
    va_end(ap);
    return out;
}

static void reserve(HvdBuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = hvd_xrealloc(b->data, cap);
    b->cap = cap;
}

void hvd_buf_append(HvdBuf *b, const void *p, size_t n)
{
    reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hvd_buf_puts(HvdBuf *b, const char *s)
{
    hvd_buf_append(b, s, strlen(s));
}

void hvd_buf_printf(HvdBuf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void hvd_buf_reset(HvdBuf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void hvd_buf_free(HvdBuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *hvd_buf_steal(HvdBuf *b)
{
    char *d = b->data ? b->data : hvd_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
