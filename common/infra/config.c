/* Settings: layered loading (defaults < file < env < flags) of the table
 * (config_table.c) through the file layers (config_file.c) and validation
 * (config_assign.c); required settings; freeing; lookups of a loaded config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config_priv.h"

int hvd_config_require(const HvdConfig *cfg, const char *name, char *err, size_t errlen)
{
    const CfgRow *r = cfg_row_by_name(name, strlen(name));
    if (!r) {
        cfg_set_err(err, errlen, "%s: no such setting", name);
        return -1;
    }
    bool empty = false;
    switch (r->type) {
    case CT_STR:
    case CT_NAME:
    case CT_AMQP_URL:
    case CT_PG_DSN:
    case CT_ADDR: {
        const char *v = *(char *const *)((const char *)cfg + r->off);
        empty = !v || !v[strspn(v, " \t")];
        break;
    }
    case CT_HOSTLIST:
    case CT_CODELIST:
    case CT_PATHLIST: empty = ((const HvdStrList *)((const char *)cfg + r->off))->n == 0; break;
    default: break;
    }
    if (empty) {
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        cfg_set_err(err, errlen, "%s is required: set it in the environment, the config file or with %s", r->name,
                    flag);
        return -1;
    }
    return 0;
}

int hvd_config_load_args(HvdConfig *cfg, int *argc, char **argv, const char *program, unsigned flags, char *err,
                         size_t errlen)
{
    Layer *layers = hvd_xcalloc(cfg_nrows, sizeof *layers);
    int rc = -1, keep = 1;
    memset(cfg, 0, sizeof *cfg);
    if (err && errlen) err[0] = '\0';
    const char *prog = program ? program : (argv && argv[0] ? argv[0] : "hvdeploy");
    for (size_t i = 0; i < cfg_nrows; i++) cfg_layer_set(&layers[i], cfg_rows[i].def, NULL);

    /* Flags are parsed first (into their own layer) so that --config-file is
     * known before the file is read; they are applied last. */
    Layer *flag_layers = hvd_xcalloc(cfg_nrows, sizeof *flag_layers);
    int n = argc ? *argc : 0;
    bool opts_done = false;
    for (int i = 1; i < n; i++) {
        char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (!(flags & HVD_CFG_KEEP_UNKNOWN)) {
                char qa[128];
                cfg_quote_val(a, qa, sizeof qa);
                cfg_set_err(err, errlen, "unexpected argument '%s' (see %s --help)", qa, prog);
                goto out;
            }
            argv[keep++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            if (!(flags & HVD_CFG_KEEP_UNKNOWN)) {
                opts_done = true;
                continue;
            }
            for (; i < n; i++) argv[keep++] = argv[i];
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (flags & HVD_CFG_NO_HELP) {
                argv[keep++] = a;
                continue;
            }
            hvd_config_usage(stdout, prog);
            rc = 1;
            goto out;
        }
        if (strcmp(a, "--print-config") == 0 && !(flags & HVD_CFG_KEEP_UNKNOWN)) {
            cfg->print_config = true;
            continue;
        }
        const char *name = a + 2, *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const CfgRow *r = a[1] == '-' ? cfg_row_by_flag(a, nlen) : NULL;
        bool negated = false;
        if (!r && a[1] == '-' && strncmp(name, "no-", 3) == 0 && !eq) {
            char pos[64];
            snprintf(pos, sizeof pos, "--%s", name + 3);
            r = cfg_row_by_flag(pos, strlen(pos));
            if (r && r->type != CT_BOOL) r = NULL;
            negated = r != NULL;
        }
        if (!r) {
            if (flags & HVD_CFG_KEEP_UNKNOWN) {
                argv[keep++] = a;
                continue;
            }
            char qa[128];
            cfg_quote_val(a, qa, sizeof qa);
            cfg_set_err(err, errlen, "unknown option '%s' (see %s --help)", qa, prog);
            goto out;
        }
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (r->type == CT_BOOL) {
            val = negated ? "false" : "true";
        } else if (i + 1 < n) {
            val = argv[++i];
        } else {
            cfg_set_err(err, errlen, "%s needs a value (%s)", flag, r->metavar);
            goto out;
        }
        cfg_layer_set(&flag_layers[r - cfg_rows], val, hvd_xasprintf(" (from %s)", flag));
    }
    if (argc) {
        *argc = keep;
        if (argv) argv[keep] = NULL;
    }

    /* config file: flag, else environment */
    const char *cfile = NULL;
    size_t cfi = (size_t)(cfg_row_by_name("HVD_CONFIG_FILE", 15) - cfg_rows);
    if (flag_layers[cfi].val)
        cfile = flag_layers[cfi].val;
    else if (getenv("HVD_CONFIG_FILE"))
        cfile = getenv("HVD_CONFIG_FILE");
    if (cfile && *cfile && cfg_load_file(layers, cfile, err, errlen) != 0) goto out;

    for (size_t i = 0; i < cfg_nrows; i++) {
        const char *e = getenv(cfg_rows[i].name);
        if (e) cfg_layer_set(&layers[i], e, NULL);
        if (flag_layers[i].val) {
            cfg_layer_set(&layers[i], flag_layers[i].val, flag_layers[i].src);
            flag_layers[i].src = NULL;
        }
    }
    if (cfg_apply_file_variant(layers, "HVD_AMQP_URL_FILE", "HVD_AMQP_URL", err, errlen) != 0) goto out;
    if (cfg_apply_file_variant(layers, "HVD_PG_DSN_FILE", "HVD_PG_DSN", err, errlen) != 0) goto out;

    for (size_t i = 0; i < cfg_nrows; i++)
        if (!cfg_assign(cfg, &cfg_rows[i], layers[i].val, layers[i].src, err, errlen)) goto out;

    if (!*cfg->worker_id) {
        char host[256] = "localhost";
        if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
        host[sizeof host - 1] = '\0';
        free(cfg->worker_id);
        cfg->worker_id = hvd_xasprintf("%s:%ld", host, (long)getpid());
    }
    if (!!*cfg->amqp_cert_file != !!*cfg->amqp_key_file) {
        cfg_set_err(err, errlen, "HVD_AMQP_CERT_FILE and HVD_AMQP_KEY_FILE go together: set both or neither");
        goto out;
    }
    if (!(flags & HVD_CFG_NO_REQUIRED) && cfg_is_worker(prog)) {
        for (size_t i = 0; i < cfg_nrows; i++)
            if ((cfg_rows[i].required & REQ_WORKER) && hvd_config_require(cfg, cfg_rows[i].name, err, errlen) != 0)
                goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < cfg_nrows; i++) {
        free(layers[i].val);
        free(layers[i].src);
        free(flag_layers[i].val);
        free(flag_layers[i].src);
    }
    free(layers);
    free(flag_layers);
    if (rc == -1 && err && errlen && !err[0]) cfg_set_err(err, errlen, "invalid configuration");
    return rc;
}

int hvd_config_load(HvdConfig *cfg, int argc, char **argv, const char *program, char *err, size_t errlen)
{
    /* work on a copy of argv: the strict form never needs to rewrite it */
    char **copy = hvd_xcalloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof *copy);
    for (int i = 0; i < argc; i++) copy[i] = argv[i];
    int n = argc;
    int rc = hvd_config_load_args(cfg, &n, copy, program, 0, err, errlen);
    free(copy);
    return rc;
}

void hvd_config_free(HvdConfig *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg_nrows; i++) {
        const CfgRow *r = &cfg_rows[i];
        switch (r->type) {
        case CT_STR:
        case CT_NAME:
        case CT_AMQP_URL:
        case CT_PG_DSN:
        case CT_PROFILE:
        case CT_ADDR: {
            char **f = FIELD(cfg, r, char *);
            if (*f && (r->type == CT_AMQP_URL || r->type == CT_PG_DSN)) memset(*f, 0, strlen(*f));
            free(*f);
            break;
        }
        case CT_HOSTLIST:
        case CT_CODELIST:
        case CT_TEXTLIST:
        case CT_PATHLIST: cfg_strlist_free(FIELD(cfg, r, HvdStrList)); break;
        default: break;
        }
    }
    memset(cfg, 0, sizeof *cfg);
}

int64_t hvd_config_agent_timeout(const HvdConfig *cfg, const char *op)
{
    int64_t def = HVD_AGENT_TIMEOUT_FALLBACK;
    for (size_t i = 0; i < cfg->agent_timeouts.n; i++) {
        if (op && strcmp(cfg->agent_timeouts.v[i].op, op) == 0) return cfg->agent_timeouts.v[i].seconds;
        if (strcmp(cfg->agent_timeouts.v[i].op, "default") == 0) def = cfg->agent_timeouts.v[i].seconds;
    }
    return def;
}

bool hvd_config_code_retryable(const HvdConfig *cfg, const char *code)
{
    if (!code) return false;
    for (size_t i = 0; i < cfg->agent_retryable_codes.n; i++)
        if (strcmp(cfg->agent_retryable_codes.v[i], code) == 0) return true;
    return false;
}
