/* The file layers of the settings: HVD_CONFIG_FILE (KEY=VALUE lines, shell
 * quoting, unknown HVD_* keys refused) and the *_FILE variants that read a
 * secret from a file (container secrets). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "config_priv.h"

void cfg_layer_set(Layer *l, const char *val, char *src)
{
    free(l->val);
    free(l->src);
    l->val = hvd_xstrdup(val);
    l->src = src ? src : hvd_xstrdup("");
}

/* Reads a whole small file (secrets, config). NULL with errno on failure. */
static char *read_small_file(const char *path, size_t max, bool *too_big)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    HvdBuf b = {0};
    hvd_buf_puts(&b, "");
    char chunk[4096];
    size_t n;
    *too_big = false;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        hvd_buf_append(&b, chunk, n);
        if (b.len > max) {
            *too_big = true;
            break;
        }
    }
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad || *too_big) {
        if (b.data) memset(b.data, 0, b.len);
        hvd_buf_free(&b);
        errno = bad ? saved : EFBIG;
        return NULL;
    }
    return hvd_buf_steal(&b);
}

/* Unquotes a config-file value in place: '...' literal, "..." with \" \\ \n. */
static bool unquote(char *v)
{
    size_t n = strlen(v);
    if (n == 0 || (v[0] != '\'' && v[0] != '"')) return true;
    char qc = v[0];
    if (n < 2 || v[n - 1] != qc) return false;
    char *w = v;
    for (size_t i = 1; i < n - 1; i++) {
        if (qc == '"' && v[i] == '\\' && i + 1 < n - 1) {
            i++;
            *w++ = v[i] == 'n' ? '\n' : v[i];
        } else {
            *w++ = v[i];
        }
    }
    *w = '\0';
    return true;
}

int cfg_load_file(Layer *layers, const char *path, char *err, size_t errlen)
{
    bool big;
    char *text = read_small_file(path, 1 << 20, &big);
    if (!text) {
        cfg_set_err(err, errlen, "HVD_CONFIG_FILE %s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0, lineno = 0;
    for (char *line = text, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *s = cfg_trim(line);
        if (!*s || *s == '#') continue;
        if (strncmp(s, "export ", 7) == 0) s = cfg_trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            cfg_set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: expected KEY=VALUE", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = cfg_trim(s), *val = cfg_trim(eq + 1);
        const CfgRow *r = cfg_row_by_name(key, strlen(key));
        if (!r) {
            if (strncmp(key, "HVD_", 4) == 0) {
                char qk[128];
                cfg_quote_val(key, qk, sizeof qk);
                cfg_set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: unknown setting '%s' (see --help)", path, lineno, qk);
                rc = -1;
            }
            continue;
        }
        if (strcmp(r->name, "HVD_CONFIG_FILE") == 0) {
            cfg_set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: HVD_CONFIG_FILE cannot be set in the config file", path,
                        lineno);
            rc = -1;
            break;
        }
        if (!unquote(val)) {
            cfg_set_err(err, errlen, "HVD_CONFIG_FILE %s:%d: unbalanced quotes in the value of %s", path, lineno,
                        r->name);
            rc = -1;
            break;
        }
        cfg_layer_set(&layers[r - cfg_rows], val, hvd_xasprintf(" (from %s:%d)", path, lineno));
    }
    free(text);
    return rc;
}

/* Replaces the layer of target by the trimmed content of the file named by
 * the layer of file_row, when that is set. */
int cfg_apply_file_variant(Layer *layers, const char *file_var, const char *target_var, char *err, size_t errlen)
{
    Layer *fl = &layers[cfg_row_by_name(file_var, strlen(file_var)) - cfg_rows];
    Layer *tl = &layers[cfg_row_by_name(target_var, strlen(target_var)) - cfg_rows];
    if (!fl->val || !*fl->val) return 0;
    bool big;
    char *text = read_small_file(fl->val, 64 * 1024, &big);
    if (!text) {
        cfg_set_err(err, errlen, "%s %s: cannot read: %s", file_var, fl->val, strerror(errno));
        return -1;
    }
    char *t = cfg_trim(text);
    if (!*t) {
        cfg_set_err(err, errlen, "%s %s: the file is empty", file_var, fl->val);
        free(text);
        return -1;
    }
    cfg_layer_set(tl, t, hvd_xasprintf(" (from %s %s)", file_var, fl->val));
    memset(text, 0, strlen(text));
    free(text);
    return 0;
}
