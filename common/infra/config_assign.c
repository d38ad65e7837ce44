/* Validation of one setting: a value checked against its row's type and
 * limits and stored into its HvdConfig field, or one line saying what is
 * wrong and where the value came from (passwords masked). */
#include <amqp.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config_priv.h"
#include "model.h"
#include "plan.h"
#include "urllist.h"

/* HVD_AMQP_URL: one URL, or the nodes of a cluster separated by whitespace
 * (urllist.h), each a URL amqp_parse_url accepts and none naming several
 * hosts with a comma (which rabbitmq-c would cut to the first). */
static bool amqp_url_list_ok(const char *name, const char *v, const char *src, char *err, size_t errlen)
{
    HvdUrlList urls;
    char q[128], why[64];
    if (!hvd_url_list_split(v, &urls, why, sizeof why)) {
        cfg_set_err(err, errlen, "%s: %s (amqp://user:password@host:port/vhost, several separated by spaces)%s", name,
                    why, src);
        return false;
    }
    bool good = true;
    for (size_t i = 0; good && i < urls.n; i++) {
        char *m = cfg_mask_dup(urls.v[i]);
        cfg_quote_val(m, q, sizeof q);
        free(m);
        char at[64] = ""; /* " (URL i of n)" */
        if (urls.n > 1) snprintf(at, sizeof at, " (URL %zu of %zu)", i + 1, urls.n);
        struct amqp_connection_info info;
        if (hvd_url_host_has_comma(urls.v[i])) {
            cfg_set_err(
                err, errlen,
                "%s: '%s'%s names several hosts with ',', which rabbitmq-c would cut to the first: give one URL "
                "per node, separated by spaces (amqp://u:p@a:5672/%%2f amqp://u:p@b:5672/%%2f)%s",
                name, q, at, src);
            good = false;
        } else if (amqp_parse_url(urls.v[i], &info) != AMQP_STATUS_OK) { /* parses in place: a copy */
            cfg_set_err(err, errlen,
                        "%s: '%s'%s is not an AMQP URL (amqp://user:password@host:port/vhost or amqps://...)%s", name,
                        q, at, src);
            good = false;
        }
    }
    hvd_url_list_free(&urls);
    return good;
}

/* Parses v into the row's field. On failure writes the one-line error. */
bool cfg_assign(HvdConfig *cfg, const CfgRow *r, const char *v, const char *src, char *err, size_t errlen)
{
    char q[128];
    cfg_quote_val(v, q, sizeof q);
    char *bad = NULL;
    switch (r->type) {
    case CT_STR: {
        char **f = FIELD(cfg, r, char *);
        free(*f);
        *f = hvd_xstrdup(v);
        return true;
    }
    case CT_NAME:
        if (!cfg_name_ok(v)) {
            cfg_set_err(err, errlen, "%s: '%s' is not a name of 1 to 100 letters, digits, '.', '_', ':' or '-'%s",
                        r->name, q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_AMQP_URL:
        if (!amqp_url_list_ok(r->name, v, src, err, errlen)) return false;
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_PG_DSN: {
        char *perr = NULL;
        PQconninfoOption *opts = *v ? PQconninfoParse(v, &perr) : NULL;
        if (!opts) {
            char *m = cfg_mask_dup(v);
            cfg_quote_val(m, q, sizeof q);
            free(m);
            /* libpq's reason unless it quotes part of the string (a password could be in it) */
            char reason[160] = "";
            if (perr && !strchr(perr, '"') && !strchr(perr, '\'')) {
                snprintf(reason, sizeof reason, ": %s", perr);
                cfg_trim(reason);
            }
            cfg_set_err(err, errlen,
                        "%s: '%s' is not a libpq connection string (postgresql://host/db or host=... dbname=...)%s%s",
                        r->name, q, reason, src);
            PQfreemem(perr);
            return false;
        }
        PQconninfoFree(opts);
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    }
    case CT_INT:
        if (!cfg_parse_int(v, r->min, r->max, FIELD(cfg, r, int64_t))) {
            cfg_set_err(err, errlen, "%s: '%s' is not a whole number between %lld and %lld%s", r->name, q,
                        (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    case CT_DUR:
        if (!cfg_parse_dur(v, r->min, r->max, FIELD(cfg, r, int64_t))) {
            cfg_set_err(err, errlen, "%s: '%s' is not a duration of %lld to %lld seconds (e.g. 30, 30s, 5m, 2h, 7d)%s",
                        r->name, q, (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    case CT_BOOL:
        if (!cfg_parse_bool(v, FIELD(cfg, r, bool))) {
            cfg_set_err(err, errlen, "%s: '%s' is not a boolean (true or false)%s", r->name, q, src);
            return false;
        }
        return true;
    case CT_PROFILE:
        if (!hvd_plan_profile_valid(v)) {
            cfg_set_err(err, errlen,
                        "%s: '%s' is not auto, raw, hvdeploy or a list of idempotency, probe, session, output%s",
                        r->name, q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    case CT_LEVEL:
        if (!hvd_log_level_parse(v, FIELD(cfg, r, HvdLogLevel))) {
            cfg_set_err(err, errlen, "%s: '%s' is not one of debug, info, warn, error%s", r->name, q, src);
            return false;
        }
        return true;
    case CT_INTLIST: {
        HvdStrList items = {0};
        HvdIntList *l = FIELD(cfg, r, HvdIntList);
        bool good = cfg_split_list(v, &items, NULL, false, &bad) && items.n >= 1 && items.n <= HVD_CFG_MAX_RETRY_DELAYS;
        for (size_t i = 0; good && i < items.n; i++)
            if (!cfg_parse_int(items.v[i], r->min, r->max, &l->v[i])) good = false;
        if (good) l->n = items.n;
        cfg_strlist_free(&items);
        free(bad);
        if (!good) {
            cfg_set_err(err, errlen, "%s: '%s' is not a comma list of 1 to %d whole numbers between %lld and %lld%s",
                        r->name, q, HVD_CFG_MAX_RETRY_DELAYS, (long long)r->min, (long long)r->max, src);
            return false;
        }
        return true;
    }
    case CT_HOSTLIST:
    case CT_CODELIST:
    case CT_TEXTLIST:
    case CT_PATHLIST: {
        HvdStrList *l = FIELD(cfg, r, HvdStrList), tmp = {0};
        bool (*ok)(const char *) = r->type == CT_HOSTLIST   ? hvd_hostname_valid
                                   : r->type == CT_CODELIST ? cfg_code_ok
                                                            : NULL;
        if (!cfg_split_list(v, &tmp, ok, r->type == CT_HOSTLIST, &bad)) {
            char qb[128];
            cfg_quote_val(bad, qb, sizeof qb);
            const char *what = r->type == CT_HOSTLIST   ? "a valid hostname or IPv4 address"
                               : r->type == CT_CODELIST ? "an agent code (letters, digits, '.', '_', '-')"
                               : r->type == CT_TEXTLIST ? "a text"
                                                        : "a file path";
            if (*bad)
                cfg_set_err(err, errlen, "%s: '%s' is not %s (in '%s')%s", r->name, qb, what, q, src);
            else
                cfg_set_err(err, errlen, "%s: '%s' has an empty entry; expected a comma list of %ss%s", r->name, q,
                            r->type == CT_HOSTLIST   ? "host name"
                            : r->type == CT_CODELIST ? "agent code"
                            : r->type == CT_TEXTLIST ? "text"
                                                     : "file path",
                            src);
            free(bad);
            return false;
        }
        cfg_strlist_free(l);
        *l = tmp;
        return true;
    }
    case CT_TIMEOUTS: {
        HvdTimeouts *t = FIELD(cfg, r, HvdTimeouts), tmp = {0};
        if (!cfg_timeouts_apply(&tmp, r->def, &bad)) abort(); /* the built-in default must parse */
        if (!cfg_timeouts_apply(&tmp, v, &bad)) {
            char qb[128];
            cfg_quote_val(bad ? bad : v, qb, sizeof qb);
            cfg_set_err(err, errlen,
                        "%s: '%s' is not OP=SECONDS with OP one of vm.create, disk.create, nic.create, "
                        "vm.initialize, vm.delete, default and SECONDS 1 to 86400%s",
                        r->name, qb, src);
            free(bad);
            return false;
        }
        *t = tmp;
        return true;
    }
    case CT_ADDR:
        if (*v && !cfg_addr_ok(v)) {
            cfg_set_err(err, errlen,
                        "%s: '%s' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable%s", r->name,
                        q, src);
            return false;
        }
        free(*FIELD(cfg, r, char *));
        *FIELD(cfg, r, char *) = hvd_xstrdup(v);
        return true;
    }
    return false;
}
