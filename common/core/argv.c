/* Command-line templates split into words with '...' and "..." quoting (argv.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include "argv.h"
#include "buf.h"

static void push(char ***v, size_t *n, size_t *cap, HvdBuf *word)
{
    if (*n + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = realloc(*v, *cap * sizeof **v);
        if (!*v) abort();
    }
    (*v)[(*n)++] = word->data ? hvd_buf_steal(word) : hvd_xstrdup("");
    (*v)[*n] = NULL;
    *word = (HvdBuf){0};
}

char **hvd_argv_split(const char *s, size_t *n, char *err, size_t errlen)
{
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    HvdBuf word = {0};
    bool in_word = false;
    *n = 0;
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == ' ' || *p == '\t') {
            if (in_word) push(&v, &cnt, &cap, &word);
            in_word = false;
            continue;
        }
        in_word = true;
        if (*p == '\'' || *p == '"') {
            char q = *p;
            const char *start = p;
            for (p++; *p && *p != q; p++) {
                if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                hvd_buf_append(&word, p, 1);
            }
            if (!*p) {
                snprintf(err, errlen, "unterminated %s quote starting at '%.40s'", q == '"' ? "double" : "single",
                         start);
                hvd_buf_free(&word);
                hvd_argv_free(v);
                return NULL;
            }
            continue; /* "" alone is an empty word */
        }
        hvd_buf_append(&word, p, 1);
    }
    if (in_word) push(&v, &cnt, &cap, &word);
    if (!v) v = hvd_xcalloc(1, sizeof *v);
    *n = cnt;
    return v;
}

void hvd_argv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}
