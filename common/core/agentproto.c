/* Host-agent protocol (§6), pure half: resource specs, the JobRequest line,
 * and the tolerant parser of the agent's stdout. */
#include "agentproto.h"
#include "codec.h"
#include "envelope.h"
#include "guestcfg.h"
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

/* Decodes s when it is one JSON object with a "status" key; NULL otherwise. */
static HvdNode *status_object(Span s)
{
    if (s.n < 2 || s.p[0] != '{' || s.p[s.n - 1] != '}') return NULL;
    const HvdDecodeLimits lim = {HVD_AGENT_MAX_OUTPUT, HVD_AGENT_MAX_OUTPUT, HVD_DEPTH_CAP};
    HvdNode *n = NULL;
    if (hvd_decode_limited(HVD_CT_JSON, s.p, s.n, &lim, &n, NULL, 0) != HVD_DECODE_OK) return NULL;
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
