/* Cleaning live agent output lines: secret masking and text sanitising. */
#include "outline.h"
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "codec.h"
#include "utf8.h"
#include "node.h"

/* s as it would appear inside a JSON string (only when that differs). */
static char *json_form(const char *s)
{
    HvdBuf b = {0};
    bool differs = false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            hvd_buf_printf(&b, "\\%c", c);
            differs = true;
        } else if (c == '\n') {
            hvd_buf_puts(&b, "\\n"), differs = true;
        } else if (c == '\t') {
            hvd_buf_puts(&b, "\\t"), differs = true;
        } else if (c == '\r') {
            hvd_buf_puts(&b, "\\r"), differs = true;
        } else if (c < 0x20) {
            hvd_buf_printf(&b, "\\u%04x", c), differs = true;
        } else {
            hvd_buf_append(&b, p, 1);
        }
    }
    if (!differs) {
        hvd_buf_free(&b);
        return NULL;
    }
    return hvd_buf_steal(&b);
}

/* Replaces every occurrence of needle in *b with the mask. */
static void mask_all(HvdBuf *b, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0 || b->len < nl) return;
    HvdBuf out = {0};
    size_t i = 0;
    bool hit = false;
    while (i < b->len) {
        const char *at = memmem(b->data + i, b->len - i, needle, nl);
        if (!at) break;
        hvd_buf_append(&out, b->data + i, (size_t)(at - (b->data + i)));
        hvd_buf_puts(&out, HVD_OUTLINE_MASK);
        i = (size_t)(at - b->data) + nl;
        hit = true;
    }
    if (!hit) return;
    hvd_buf_append(&out, b->data + i, b->len - i);
    hvd_buf_free(b);
    *b = out;
}

/* A cut line: its tail that is the beginning of needle is masked. */
static void mask_partial_tail(HvdBuf *b, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t k = nl - 1; k >= HVD_OUTLINE_MIN_PARTIAL && k > 0; k--) {
        if (k > b->len) continue;
        if (memcmp(b->data + b->len - k, needle, k) == 0) {
            b->len -= k;
            hvd_buf_puts(b, HVD_OUTLINE_MASK);
            return;
        }
    }
}

static int longest_first(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

char *hvd_outline_clean(const char *line, size_t len, bool truncated, char *const *secrets, size_t n_secrets)
{
    HvdBuf b = {0};
    hvd_buf_append(&b, line, len);
    /* the masks, longest first so that a secret containing another is masked whole;
     * made[] holds the JSON forms made here (the raw values are the caller's) */
    size_t n = 0, n_made = 0;
    char **forms = hvd_xcalloc(2 * n_secrets + 1, sizeof *forms);
    char **made = hvd_xcalloc(n_secrets + 1, sizeof *made);
    for (size_t i = 0; i < n_secrets; i++) {
        if (!secrets[i] || !*secrets[i]) continue;
        forms[n++] = secrets[i];
        char *j = json_form(secrets[i]);
        if (j) forms[n++] = made[n_made++] = j;
    }
    qsort(forms, n, sizeof *forms, longest_first);
    for (size_t i = 0; i < n; i++) mask_all(&b, forms[i]);
    if (truncated)
        for (size_t i = 0; i < n; i++) mask_partial_tail(&b, forms[i]);
    /* valid UTF-8, no control characters */
    HvdBuf out = {0};
    hvd_utf8_sanitize(b.data ? b.data : "", b.len, 0, &out); /* NUL: a control character, below */
    hvd_buf_puts(&out, "");
    for (size_t i = 0; i < out.len; i++) {
        unsigned char c = (unsigned char)out.data[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) out.data[i] = '?';
    }
    for (size_t i = 0; i < n_made; i++) free(made[i]);
    free(forms);
    free(made);
    hvd_buf_free(&b);
    return hvd_buf_steal(&out);
}

bool hvd_outline_is_answer(const char *line, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len || line[i] != '{' || !memmem(line, len, "\"status\"", 8)) return false;
    HvdNode *n = NULL;
    bool yes = false;
    if (hvd_json_to_node(line + i, len - i, 0, &n, NULL, 0) == HVD_DECODE_OK)
        yes = n->type == HVD_MAP && hvd_node_get(n, "status") != NULL;
    hvd_node_free(n);
    return yes;
}
