/* Validation errors ({loc, msg, type}, model.h): the list the model and the
 * text checks (textcheck.c) add to. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "buf.h"
#include "model.h"

void hvd_errors_add(HvdErrors *e, const char *loc, const char *type, const char *fmt, ...)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->items = hvd_xrealloc(e->items, e->cap * sizeof(*e->items));
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = hvd_xstrdup("(message unavailable)");
    va_end(ap);
    HvdError *it = &e->items[e->n++];
    it->loc = hvd_xstrdup(loc ? loc : "");
    it->type = hvd_xstrdup(type ? type : "value_error");
    it->msg = msg;
}

void hvd_errors_free(HvdErrors *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->items[i].loc);
        free(e->items[i].msg);
        free(e->items[i].type);
    }
    free(e->items);
    e->items = NULL;
    e->n = e->cap = 0;
}

HvdNode *hvd_errors_to_node(const HvdErrors *e)
{
    HvdNode *arr = hvd_node_array();
    for (size_t i = 0; e && i < e->n; i++) {
        HvdNode *m = hvd_node_map();
        hvd_node_map_set_str(m, "loc", e->items[i].loc);
        hvd_node_map_set_str(m, "msg", e->items[i].msg);
        hvd_node_map_set_str(m, "type", e->items[i].type);
        hvd_node_array_push(arr, m);
    }
    return arr;
}
