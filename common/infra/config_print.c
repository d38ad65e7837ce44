/* Output of the settings: --help (from the table) and --print-config (the
 * effective values as KEY=VALUE lines, passwords masked). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "buf.h"
#include "config_priv.h"
#include "mask.h"

void hvd_config_usage(FILE *out, const char *program)
{
    const char *prog = program ? program : "hvdeploy-worker";
    bool worker = cfg_is_worker(prog);
    fprintf(out, "Usage: %s [--help] [--print-config] [--SETTING VALUE]...\n\n", prog);
    fprintf(out, "Every setting is an environment variable and a flag (--x-y VALUE or --x-y=VALUE;\n"
                 "a boolean also takes --x-y and --no-x-y). Precedence: defaults < HVD_CONFIG_FILE\n"
                 "< environment < flags. Durations are seconds, optionally with s, m, h or d.\n\n");
    fprintf(out, "  --help            print this help and exit\n"
                 "  --print-config    print the effective settings (passwords masked) and exit\n\n");
    for (size_t i = 0; i < cfg_nrows; i++) {
        const CfgRow *r = &cfg_rows[i];
        char flag[64];
        hvd_config_flag_name(r->name, flag, sizeof flag);
        fprintf(out, "  %s, %s %s\n      %s\n", r->name, flag, r->type == CT_BOOL ? "[BOOL]" : r->metavar, r->help);
        if (r->required && worker)
            fprintf(out, "      (required)\n");
        else if (strcmp(r->name, "HVD_WORKER_ID") == 0)
            fprintf(out, "      default: <hostname>:<pid>\n");
        else if (!*r->def)
            fprintf(out, "      default: (empty)\n");
        else
            fprintf(out, "      default: %s\n", r->def);
    }
}

static void print_value(FILE *out, const char *name, const char *v)
{
    bool plain = !*v || (!isspace((unsigned char)v[0]) && !isspace((unsigned char)v[strlen(v) - 1]) && v[0] != '\'' &&
                         v[0] != '"' && !strpbrk(v, "\n\r"));
    if (plain) {
        fprintf(out, "%s=%s\n", name, v);
        return;
    }
    fprintf(out, "%s=\"", name);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') fputc('\\', out);
        if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
    fputs("\"\n", out);
}

void hvd_config_print(FILE *out, const HvdConfig *cfg)
{
    for (size_t i = 0; i < cfg_nrows; i++) {
        const CfgRow *r = &cfg_rows[i];
        const void *f = (const char *)cfg + r->off;
        HvdBuf b = {0};
        hvd_buf_puts(&b, "");
        switch (r->type) {
        case CT_STR:
        case CT_NAME:
        case CT_PROFILE:
        case CT_ADDR: {
            const char *s = *(char *const *)f;
            hvd_buf_puts(&b, s ? s : "");
            break;
        }
        case CT_AMQP_URL:
        case CT_PG_DSN: {
            const char *s = *(char *const *)f;
            if (s) hvd_mask_url_into(&b, s);
            break;
        }
        case CT_INT:
        case CT_DUR: hvd_buf_printf(&b, "%lld", (long long)*(const int64_t *)f); break;
        case CT_BOOL: hvd_buf_puts(&b, *(const bool *)f ? "true" : "false"); break;
        case CT_LEVEL: hvd_buf_puts(&b, hvd_log_level_name(*(const HvdLogLevel *)f)); break;
        case CT_INTLIST: {
            const HvdIntList *l = f;
            for (size_t k = 0; k < l->n; k++) hvd_buf_printf(&b, "%s%lld", k ? "," : "", (long long)l->v[k]);
            break;
        }
        case CT_HOSTLIST:
        case CT_CODELIST:
        case CT_TEXTLIST:
        case CT_PATHLIST: {
            const HvdStrList *l = f;
            for (size_t k = 0; k < l->n; k++) hvd_buf_printf(&b, "%s%s", k ? "," : "", l->v[k]);
            break;
        }
        case CT_TIMEOUTS: {
            const HvdTimeouts *t = f;
            for (size_t k = 0; k < t->n; k++)
                hvd_buf_printf(&b, "%s%s=%lld", k ? "," : "", t->v[k].op, (long long)t->v[k].seconds);
            break;
        }
        }
        print_value(out, r->name, b.data);
        hvd_buf_free(&b);
    }
}
