/* The host-agent protocol (§6), pure half: the JobRequest line written to the
 * agent's stdin and the parser of its stdout. The process side is agent.h. */
#ifndef HVD_AGENTPROTO_H
#define HVD_AGENTPROTO_H
#include <stdbool.h>
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
    bool output;                 /* metadata.output: ask a session agent with `output` for live lines (§6a) */
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
 * key. A line that is not UTF-8 (a Windows code page) is read with U+FFFD in
 * place of each invalid byte. */
HvdAgentParse hvd_agent_output_parse(const char *out, size_t len, HvdNode **envelope);

/* The longest message kept from an answer, in bytes (cut on a character
 * boundary, "..." appended): what the envelope and job_stages keep. */
#define HVD_AGENT_MESSAGE_MAX 511

/* Makes a parsed answer safe to store, in place: in every string (message,
 * code, logs, data...) NUL becomes U+FFFD and each of secrets[0..n) is masked
 * (mask.h's rule); then the message is cut to HVD_AGENT_MESSAGE_MAX bytes. */
void hvd_agent_answer_clean(HvdNode *envelope, const char *const *secrets, size_t n);

/* Whether a parsed answer belongs to the request it answers (issue 12): a
 * correlation_id, when present (not nil, not ""), must equal the request's
 * (expected_corr, NULL = not checked); a successful vm.create must carry
 * data.vm_id as a GUID (36 characters, hex and hyphens); data.disk_id and
 * data.nic_id, when present, must be non-empty strings. Returns false with
 * one sentence in why when not: the call is then an agent_protocol_error. */
bool hvd_agent_answer_check(const HvdNode *envelope, const char *operation, const char *expected_corr, char *why,
                            size_t whylen);

#endif
