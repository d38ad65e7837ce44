/* RabbitMQ and settings helpers shared by hvdeployctl submit and dead. */
#include "amqp_util.h"
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "codec.h"
#include "ctl.h"
#include "guestcfg.h"

bool ctlq_load_config(const char *cmd, int *argc, char **argv, HvdConfig *cfg)
{
    char err[512] = "";
    char prog[64];
    snprintf(prog, sizeof prog, "hvdeployctl %s", cmd);
    int rc = hvd_config_load_args(cfg, argc, argv, prog, HVD_CFG_KEEP_UNKNOWN | HVD_CFG_NO_HELP | HVD_CFG_NO_REQUIRED,
                                  err, sizeof err);
    if (rc != 0) {
        ctl_error(cmd, "%s", err[0] ? err : "invalid settings");
        return false;
    }
    return true;
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

HvdBroker *ctlq_connect(const char *cmd, const HvdConfig *cfg, bool confirms)
{
    char err[512] = "";
    char name[96];
    snprintf(name, sizeof name, "hvdeployctl %s", cmd);
    HvdBrokerOptions o = {
        .url = cfg->amqp_url,
        .connection_name = name,
        .heartbeat_s = cfg->heartbeat > 0 ? (int)cfg->heartbeat : 30,
        .connect_timeout_ms = 10000,
        .rpc_timeout_ms = 15000,
        .confirms = confirms,
        .tls_ca_file = nonempty(cfg->amqp_ca_file),
        .tls_cert_file = nonempty(cfg->amqp_cert_file),
        .tls_key_file = nonempty(cfg->amqp_key_file),
        .tls_no_verify_peer = !cfg->amqp_verify,
        .tls_no_verify_hostname = !cfg->amqp_verify,
    };
    HvdBroker *b = hvd_broker_connect(&o, err, sizeof err);
    if (!b) {
        /* The broker module never puts the password in err; say which URL (masked)
         * so that a wrong HVD_AMQP_URL is easy to spot. */
        char masked[512];
        hvd_mask_url(cfg->amqp_url ? cfg->amqp_url : HVD_BROKER_DEFAULT_URL, masked, sizeof masked);
        ctl_error(cmd, "%s (HVD_AMQP_URL=%s)", err[0] ? err : "cannot connect to RabbitMQ", masked);
    }
    return b;
}

void ctlq_name(char *out, size_t outlen, const char *prefix, const char *what)
{
    snprintf(out, outlen, "%s.%s", prefix && *prefix ? prefix : "hvdeploy", what);
}

typedef struct {
    uint64_t seq;
    HvdConfirm status;
    bool seen;
} ConfirmWait;

static void on_confirm(void *ctx, uint64_t seq, HvdConfirm status)
{
    ConfirmWait *w = ctx;
    if (seq == w->seq) {
        w->status = status;
        w->seen = true;
    }
}

HvdConfirm ctlq_publish_wait(HvdBroker *b, const HvdPublish *p, int timeout_ms, char *err, size_t errlen)
{
    ConfirmWait w = {.status = HVD_CONFIRM_LOST};
    HvdBrokerStatus st = hvd_broker_publish(b, p, &w.seq, err, errlen);
    if (st == HVD_BROKER_BLOCKED) {
        snprintf(err, errlen, "RabbitMQ blocks publishing on this connection (a resource alarm)");
        return HVD_CONFIRM_LOST;
    }
    if (st != HVD_BROKER_OK) {
        if (err && errlen && !err[0]) snprintf(err, errlen, "publish failed: %s", hvd_broker_status_name(st));
        return HVD_CONFIRM_LOST;
    }
    int64_t deadline = hvd_mono_ms() + timeout_ms;
    while (!w.seen) {
        int64_t left = deadline - hvd_mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "no publisher confirm from RabbitMQ within %d ms", timeout_ms);
            return HVD_CONFIRM_LOST;
        }
        st = hvd_broker_wait_confirms(b, left > 1000 ? 1000 : (int)left, on_confirm, &w);
        if (st == HVD_BROKER_CLOSED && !w.seen) {
            snprintf(err, errlen, "the connection to RabbitMQ closed before the confirm");
            return HVD_CONFIRM_LOST;
        }
    }
    if (w.status == HVD_CONFIRM_LOST)
        snprintf(err, errlen, "RabbitMQ closed the channel before confirming (does exchange '%s' exist?)",
                 p->exchange && *p->exchange ? p->exchange : "(default)");
    return w.status;
}

void ctlq_uuid4(char out[37])
{
    unsigned char r[16];
    if (sodium_init() < 0) abort();
    randombytes_buf(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

void ctlq_age(int64_t s, char *out, size_t outlen)
{
    if (s < 0) s = 0;
    if (s < 120)
        snprintf(out, outlen, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(out, outlen, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(out, outlen, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, outlen, "%lldd", (long long)(s / 86400));
}

HvdNode *ctlq_redact_all(const HvdNode *n)
{
    if (!n) return NULL;
    if (n->type == HVD_ARRAY) {
        HvdNode *a = hvd_node_array();
        for (size_t i = 0; i < n->u.arr.n; i++) hvd_node_array_push(a, ctlq_redact_all(n->u.arr.items[i]));
        return a;
    }
    if (n->type != HVD_MAP) return hvd_node_clone(n);
    HvdNode *m = hvd_node_map();
    for (size_t i = 0; i < n->u.map.n; i++) {
        const HvdNode *v = n->u.map.vals[i];
        bool empty = v->type == HVD_NIL || ((v->type == HVD_STR || v->type == HVD_BIN) && v->u.s.len == 0);
        if (hvd_is_secret_field(n->u.map.keys[i]) && !empty)
            hvd_node_map_set_str(m, n->u.map.keys[i], HVD_REDACTED);
        else
            hvd_node_map_set(m, n->u.map.keys[i], ctlq_redact_all(v));
    }
    return m;
}

char *ctlq_pretty_json(const HvdNode *node)
{
    char *compact = hvd_node_to_json(node);
    json_error_t jerr;
    json_t *j = json_loads(compact, JSON_DECODE_ANY, &jerr);
    if (!j) return compact; /* cannot happen for our own encoding; compact is still JSON */
    char *pretty = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (!pretty) return compact;
    free(compact);
    char *out = hvd_xstrdup(pretty); /* jansson's allocator may differ from ours */
    free(pretty);
    return out;
}
