/* The host-agent protocol (§6), pure half: the JobRequest line written to the
 * agent's stdin and the parser of its stdout. The process side is agent.h. */
#ifndef HVD_AGENTPROTO_H
#define HVD_AGENTPROTO_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "model.h"
#include "node.h"

#define HVD_AGENT_MAX_OUTPUT (1024 * 1024)

/* resource_spec for an operation (§6 table). outputs is the map of what earlier
 * stages produced (vm_id, ...), may be NULL. Contains secrets for
 * vm.initialize: never log it. Returns NULL for an unknown operation. */
HvdNode *hvd_agent_resource_spec(const HvdJob *job, const char *operation, const HvdNode *outputs);

typedef struct {
    const char *operation;
    const HvdNode *resource_spec;
    const char *correlation_id;
    const char *timestamp; /* RFC 3339 UTC */
    const char *host;
    const char *job_id;
    const char *stage;
    int64_t attempt;
    const char *idempotency_key; /* "<job_id>:<stage>" */
} HvdAgentRequest;

/* Appends the JobRequest as one JSON line ending in "\n". */
void hvd_agent_request_encode(const HvdAgentRequest *req, HvdBuf *out);

typedef enum {
    HVD_AGENT_PARSE_OK = 0,    /* *envelope is the last JSON object line with a "status" key */
    HVD_AGENT_PARSE_NONE,      /* no such line */
    HVD_AGENT_PARSE_TOO_LARGE, /* output over HVD_AGENT_MAX_OUTPUT */
} HvdAgentParse;

/* Parses agent stdout: tolerates a UTF-8 BOM, CRLF, blank lines, PowerShell
 * CLIXML blocks ("#< CLIXML" ... "</Objs>") and any other non-JSON lines;
 * the answer is the last line that parses as a JSON object with a "status"
 * key. */
HvdAgentParse hvd_agent_output_parse(const char *out, size_t len, HvdNode **envelope);

#endif
