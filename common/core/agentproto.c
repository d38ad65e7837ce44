/* Host-agent protocol (§6), pure half: resource specs, the JobRequest line,
 * and the tolerant parser of the agent's stdout. */
#include "agentproto.h"
#include "codec.h"
#include "envelope.h"
#include "guestcfg.h"
#include "mask.h"
#include "model.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static HvdNode *output_vm_id(const HvdNode *outputs)
{
    const HvdNode *v = hvd_node_get(outputs, "vm_id");
    return v ? hvd_node_clone(v) : hvd_node_nil();
}

static const char *os_family_of(const HvdJob *job)
{
    return job->os_family ? job->os_family : hvd_os_family_resolve(job);
}

HvdNode *hvd_agent_resource_spec(const HvdJob *job, const char *operation, const HvdNode *outputs)
{
    if (!job || !operation) return NULL;
    HvdNode *m = hvd_node_map();
    if (strcmp(operation, HVD_STAGE_VM_CREATE) == 0) {
        hvd_node_map_set_str(m, "vm_name", job->vm.vm_name);
        hvd_node_map_set_int(m, "gb_ram", job->vm.gb_ram);
        hvd_node_map_set_int(m, "cpu_cores", job->vm.cpu_cores);
        hvd_node_map_set_str(m, "storage_class", job->vm.storage_class);
        hvd_node_map_set_bool(m, "vm_clustered", job->vm.vm_clustered);
        hvd_node_map_set_str(m, "os_family", os_family_of(job));
    } else if (strcmp(operation, HVD_STAGE_DISK_CREATE) == 0) {
        hvd_node_map_set_str(m, "image_name", job->disk.image_name);
        hvd_node_map_set_int(m, "disk_size_gb", job->disk.disk_size_gb);
        hvd_node_map_set_str(m, "disk_type", job->disk.disk_type);
        hvd_node_map_set_str(m, "controller_type", job->disk.controller_type);
        hvd_node_map_set(m, "vm_id", output_vm_id(outputs));
    } else if (strcmp(operation, HVD_STAGE_NIC_CREATE) == 0) {
        hvd_node_map_set_str(m, "network", job->nic.network);
        hvd_node_map_set_str(m, "adapter_name", job->nic.adapter_name);
        hvd_node_map_set(m, "vm_id", output_vm_id(outputs));
    } else if (strcmp(operation, HVD_STAGE_VM_INITIALIZE) == 0) {
        hvd_node_map_set(m, "vm_id", output_vm_id(outputs));
        hvd_node_map_set_str(m, "vm_name", job->vm.vm_name);
        hvd_node_map_set_str(m, "os_family", os_family_of(job));
        HvdNode *keys = hvd_guest_config_keys(job);
        for (size_t i = 0; keys && keys->type == HVD_MAP && i < keys->u.map.n; i++) {
            hvd_node_map_set(m, keys->u.map.keys[i], keys->u.map.vals[i]);
            keys->u.map.vals[i] = NULL; /* moved into m */
        }
        hvd_node_free(keys);
    } else if (strcmp(operation, HVD_OP_VM_DELETE) == 0) {
        hvd_node_map_set(m, "vm_id", output_vm_id(outputs));
        hvd_node_map_set_str(m, "vm_name", job->vm.vm_name);
        hvd_node_map_set_bool(m, "delete_disks", true);
    } else {
        hvd_node_free(m);
        return NULL;
    }
    return m;
}

void hvd_agent_request_encode(const HvdAgentRequest *req, HvdBuf *out)
{
    HvdNode *m = hvd_node_map();
    hvd_node_map_set_str(m, "operation", req->operation);
    hvd_node_map_set(m, "resource_spec", req->resource_spec ? hvd_node_clone(req->resource_spec) : hvd_node_map());
    hvd_node_map_set_str(m, "correlation_id", req->correlation_id);
    HvdNode *meta = hvd_node_map();
    hvd_node_map_set_str(meta, "timestamp", req->timestamp);
    hvd_node_map_set_str(meta, "host", req->host);
    hvd_node_map_set_str(meta, "job_id", req->job_id);
    hvd_node_map_set_str(meta, "stage", req->stage);
    hvd_node_map_set_int(meta, "attempt", req->attempt);
    hvd_node_map_set_str(meta, "idempotency_key", req->idempotency_key);
    if (req->output) hvd_node_map_set(meta, "output", hvd_node_bool(true));
    hvd_node_map_set(m, "metadata", meta);
    hvd_encode(HVD_CT_JSON, m, out); /* compact: control characters are escaped, so one line */
    hvd_buf_append(out, "\n", 1);
    hvd_node_free(m);
}

/* ---- output parser ------------------------------------------------------ */

#define BOM "\xEF\xBB\xBF"
#define CLIXML_MARK "#< CLIXML"
#define CLIXML_END "</Objs>"

typedef struct {
    const char *p;
    size_t n;
} Span;

static Span trim(Span s)
{
    if (s.n >= 3 && memcmp(s.p, BOM, 3) == 0) {
        s.p += 3;
        s.n -= 3;
    }
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t' || s.p[0] == '\r')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t' || s.p[s.n - 1] == '\r')) s.n--;
    return s;
}

/* Decodes s when it is one JSON object with a "status" key; NULL otherwise.
 * Bytes that are not UTF-8 (an agent writing in a Windows code page) become
 * U+FFFD first, so such an answer is read rather than lost. */
static HvdNode *status_object(Span s)
{
    if (s.n < 2 || s.p[0] != '{' || s.p[s.n - 1] != '}') return NULL;
    const size_t cap = 3 * (size_t)HVD_AGENT_MAX_OUTPUT; /* U+FFFD takes 3 bytes where a bad byte took 1 */
    const HvdDecodeLimits lim = {cap, cap, HVD_DEPTH_CAP};
    HvdNode *n = NULL;
    HvdBuf clean = {0};
    if (!hvd_utf8_valid(s.p, s.n)) {
        hvd_utf8_sanitize(s.p, s.n, 0, &clean);
        s = (Span){clean.data, clean.len};
    }
    HvdDecodeStatus st = hvd_decode_limited(HVD_CT_JSON, s.p, s.n, &lim, &n, NULL, 0);
    hvd_buf_free(&clean);
    if (st != HVD_DECODE_OK) return NULL;
    if (n->type == HVD_MAP && hvd_node_get(n, "status")) return n;
    hvd_node_free(n);
    return NULL;
}

HvdAgentParse hvd_agent_output_parse(const char *out, size_t len, HvdNode **envelope)
{
    *envelope = NULL;
    if (len > HVD_AGENT_MAX_OUTPUT) return HVD_AGENT_PARSE_TOO_LARGE;
    if (!out) return HVD_AGENT_PARSE_NONE;
    HvdNode *best = NULL;
    bool in_clixml = false;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(out + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - out) : len;
        Span line = trim((Span){out + i, end - i});
        i = nl ? end + 1 : len;
        for (;;) { /* a line may end a CLIXML block and carry more after it */
            if (in_clixml) {
                const char *e = memmem(line.p, line.n, CLIXML_END, strlen(CLIXML_END));
                if (!e) break;
                in_clixml = false;
                size_t skip = (size_t)(e - line.p) + strlen(CLIXML_END);
                line = trim((Span){line.p + skip, line.n - skip});
                continue;
            }
            if (line.n >= strlen(CLIXML_MARK) && memcmp(line.p, CLIXML_MARK, strlen(CLIXML_MARK)) == 0) {
                in_clixml = true;
                line = trim((Span){line.p + strlen(CLIXML_MARK), line.n - strlen(CLIXML_MARK)});
                continue;
            }
            HvdNode *n = status_object(line);
            if (n) {
                hvd_node_free(best);
                best = n;
            }
            break;
        }
    }
    *envelope = best;
    return best ? HVD_AGENT_PARSE_OK : HVD_AGENT_PARSE_NONE;
}

/* ---- what the worker keeps of an answer --------------------------------- */

static void clean_string(HvdNode *n, const char *const *secrets, size_t ns)
{
    bool nul = memchr(n->u.s.ptr, '\0', n->u.s.len) != NULL;
    HvdBuf masked = {0};
    bool hit = hvd_mask_secrets(n->u.s.ptr, n->u.s.len, secrets, ns, 0, &masked);
    if (!nul && !hit) {
        hvd_buf_free(&masked);
        return;
    }
    HvdBuf out = {0};
    hvd_utf8_sanitize(masked.data, masked.len, HVD_UTF8_NUL, &out);
    explicit_bzero(n->u.s.ptr, n->u.s.len);
    free(n->u.s.ptr);
    n->u.s.len = out.len;
    n->u.s.ptr = hvd_buf_steal(&out);
    explicit_bzero(masked.data, masked.len);
    hvd_buf_free(&masked);
}

static void clean_tree(HvdNode *n, const char *const *secrets, size_t ns)
{
    if (!n) return;
    if (n->type == HVD_STR) clean_string(n, secrets, ns);
    if (n->type == HVD_ARRAY)
        for (size_t i = 0; i < n->u.arr.n; i++) clean_tree(n->u.arr.items[i], secrets, ns);
    if (n->type == HVD_MAP)
        for (size_t i = 0; i < n->u.map.n; i++) clean_tree(n->u.map.vals[i], secrets, ns);
}

void hvd_agent_answer_clean(HvdNode *envelope, const char *const *secrets, size_t n)
{
    clean_tree(envelope, secrets, n);
    HvdNode *msg = hvd_node_get_mut(envelope, "message");
    if (msg && msg->type == HVD_STR && msg->u.s.len > HVD_AGENT_MESSAGE_MAX) {
        size_t keep = hvd_utf8_truncate(msg->u.s.ptr, msg->u.s.len, HVD_AGENT_MESSAGE_MAX - 3);
        memcpy(msg->u.s.ptr + keep, "...", 4);
        msg->u.s.len = keep + 3;
    }
}

bool hvd_agent_answer_check(const HvdNode *env, const char *operation, const char *expected_corr, char *why,
                            size_t whylen)
{
    const HvdNode *corr = hvd_node_get(env, "correlation_id");
    bool corr_given = corr && corr->type != HVD_NIL && !(corr->type == HVD_STR && corr->u.s.len == 0);
    if (expected_corr && corr_given && (corr->type != HVD_STR || strcmp(corr->u.s.ptr, expected_corr) != 0)) {
        snprintf(why, whylen, "the agent's answer carries another request's correlation_id");
        return false;
    }
    const HvdNode *data = hvd_node_get(env, "data");
    const char *status = hvd_node_get_str(env, "status");
    if (operation && strcmp(operation, HVD_STAGE_VM_CREATE) == 0 && status && strcmp(status, "success") == 0) {
        const HvdNode *id = hvd_node_get(data, "vm_id");
        if (!id || id->type != HVD_STR || !hvd_uuid_valid(id->u.s.ptr, id->u.s.len)) {
            snprintf(why, whylen,
                     "vm.create answered success without a GUID in data.vm_id (36 hex digits and hyphens)");
            return false;
        }
    }
    static const char *const ids[] = {"disk_id", "nic_id"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const HvdNode *v = hvd_node_get(data, ids[i]);
        if (v && v->type != HVD_NIL && (v->type != HVD_STR || v->u.s.len == 0)) {
            snprintf(why, whylen, "the agent's answer has an empty or non-string data.%s", ids[i]);
            return false;
        }
    }
    return true;
}
