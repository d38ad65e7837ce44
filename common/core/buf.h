/* A growable byte buffer. Always NUL-terminated after its len bytes, so a
 * buffer holding text can be used as a C string. */
#ifndef HVD_BUF_H
#define HVD_BUF_H
#include <stddef.h>
#include <stdarg.h>

typedef struct {
    char *data; /* NULL until the first append; then data[len] == '\0' */
    size_t len;
    size_t cap;
} HvdBuf;

void hvd_buf_append(HvdBuf *b, const void *p, size_t n);
void hvd_buf_puts(HvdBuf *b, const char *s);
void hvd_buf_printf(HvdBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hvd_buf_reset(HvdBuf *b);  /* len = 0, keeps the memory */
void hvd_buf_free(HvdBuf *b);   /* safe on a zeroed buffer */
char *hvd_buf_steal(HvdBuf *b); /* returns data (never NULL), leaves b empty */

/* Allocation that aborts on out-of-memory: the worker cannot do anything
 * useful without memory, and checking every malloc hides the real logic. */
void *hvd_xmalloc(size_t n);
void *hvd_xcalloc(size_t n, size_t size);
void *hvd_xrealloc(void *p, size_t n);
char *hvd_xstrdup(const char *s); /* NULL in, NULL out */
char *hvd_xstrndup(const char *s, size_t n);
char *hvd_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
