/* Statement parameters (text, integers, booleans, bytea, text arrays) and
 * result columns (copied, as numbers, booleans, bytea) of the store's SQL. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"

/* ---- parameters ---- */

static void p_push(StoreParams *p, const char *v, int len, int fmt)
{
    if (p->n >= STORE_MAX_PARAMS) abort(); /* a bug in a statement's call site */
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    p->n++;
}

void store_p_text(StoreParams *p, const char *s)
{
    p_push(p, s, 0, 0);
}

void store_p_int(StoreParams *p, int64_t v)
{
    if (p->n >= STORE_MAX_PARAMS) abort();
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
    p_push(p, p->num[p->n], 0, 0);
}

void store_p_bool(StoreParams *p, bool v)
{
    p_push(p, v ? "true" : "false", 0, 0);
}

void store_p_bin(StoreParams *p, const void *data, size_t len)
{
    if (len > INT_MAX) abort();
    p_push(p, data ? (const char *)data : NULL, (int)len, 1);
}

void store_array_add(HvdBuf *b, const char *s)
{
    hvd_buf_puts(b, b->len == 0 ? "{" : ",");
    if (!s) {
        hvd_buf_puts(b, "NULL");
        return;
    }
    hvd_buf_puts(b, "\"");
    for (const char *q = s; *q; q++) {
        if (*q == '"' || *q == '\\') hvd_buf_puts(b, "\\");
        hvd_buf_append(b, q, 1);
    }
    hvd_buf_puts(b, "\"");
}

void store_array_end(HvdBuf *b)
{
    hvd_buf_puts(b, b->len == 0 ? "{}" : "}");
}

/* ---- results ---- */

char *store_col_dup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : hvd_xstrdup(PQgetvalue(r, row, col));
}

bool store_col_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

int64_t store_col_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void store_col_copy(const PGresult *r, int row, int col, char *dst, size_t dstlen)
{
    snprintf(dst, dstlen, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

void store_col_bytea(const PGresult *r, int row, int col, HvdBuf *out)
{
    size_t n = 0;
    if (PQgetisnull(r, row, col)) return;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (!raw) abort();
    hvd_buf_append(out, raw, n);
    PQfreemem(raw);
}
