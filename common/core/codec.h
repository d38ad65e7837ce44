/* Wire codecs: msgpack (msgpack-c) and JSON (jansson) to and from HvdNode.
 *
 * Decoding enforces the contract's limits while it reads (§3): a body over
 * HVD_MAX_BODY bytes, a string (or map key, or bin) over HVD_MAX_STRING bytes,
 * or nesting deeper than HVD_MAX_DEPTH maps and lists (the body itself is
 * depth 1) is refused before anything is allocated for it, by a pre-scan of
 * the raw bytes. Encoding is deterministic: map entries in insertion order,
 * JSON compact with no spaces, integers as integers. */
#ifndef HVD_CODEC_H
#define HVD_CODEC_H
#include <stddef.h>
#include "node.h"
#include "buf.h"

#define HVD_MAX_BODY (256 * 1024)
#define HVD_MAX_STRING (16 * 1024)
#define HVD_MAX_DEPTH 16

typedef enum {
    HVD_CT_MSGPACK, /* application/msgpack (also accepted: application/x-msgpack) */
    HVD_CT_JSON,    /* application/json */
    HVD_CT_UNKNOWN,
} HvdContentType;

typedef enum {
    HVD_DECODE_OK = 0,
    HVD_DECODE_TOO_LARGE, /* body, string or depth over a limit: code message_too_large */
    HVD_DECODE_MALFORMED, /* not valid msgpack / JSON, trailing bytes, not UTF-8 ... */
} HvdDecodeStatus;

/* Maps a content_type property to the enum; NULL or empty -> HVD_CT_UNKNOWN.
 * Parameters after ';' (e.g. "; charset=utf-8") are ignored. */
HvdContentType hvd_content_type_parse(const char *content_type);
const char *hvd_content_type_name(HvdContentType ct); /* "application/msgpack", "application/json" */
/* (HVD_CT_UNKNOWN: hvd_encode writes JSON and hvd_content_type_name says
 * "application/json", so an answer to a message in an unsupported content
 * type still has a well-defined type; hvd_decode refuses it as MALFORMED.) */

/* Decodes one complete value occupying all of buf[0..len). On success *out is
 * a new tree (caller frees). On failure *out is NULL and why (if non-NULL)
 * holds one human sentence such as "body is 300000 bytes, over the 262144-byte
 * limit" or "invalid JSON at line 1 column 7: ...". */
HvdDecodeStatus hvd_decode(HvdContentType ct, const void *buf, size_t len, HvdNode **out, char *why, size_t whylen);

/* Appends the encoding of node to out. Never fails for a well-formed tree;
 * BIN nodes become base64 strings in JSON. */
void hvd_encode(HvdContentType ct, const HvdNode *node, HvdBuf *out);

/* JSON helpers for places that always speak JSON (agent protocol, database
 * jsonb columns, logs). hvd_json_to_node applies the same limits as hvd_decode
 * except the body cap, which is max_len (0 = HVD_MAX_BODY). */
HvdDecodeStatus hvd_json_to_node(const char *text, size_t len, size_t max_len, HvdNode **out, char *why, size_t whylen);
char *hvd_node_to_json(const HvdNode *node); /* compact, malloc'd, NUL-terminated */

/* hvd_decode with other limits, for input that is not a job body (the agent's
 * answer may carry long log strings). max_depth is capped at HVD_DEPTH_CAP. */
#define HVD_DEPTH_CAP 64
typedef struct {
    size_t max_body;   /* bytes */
    size_t max_string; /* bytes of one string, map key or bin */
    int max_depth;     /* maps and lists; a top-level map is depth 1 */
} HvdDecodeLimits;
HvdDecodeStatus hvd_decode_limited(HvdContentType ct, const void *buf, size_t len, const HvdDecodeLimits *limits,
                                   HvdNode **out, char *why, size_t whylen);

/* Notes on both formats: strings must be valid UTF-8 (else MALFORMED); a map
 * key holding a NUL byte is MALFORMED; a map holding a key twice is MALFORMED
 * with why naming the key ("duplicate key 'target_host'": last-wins here and
 * first-wins upstream could disagree on what was asked); integers outside
 * int64 are MALFORMED ("too big integer", in both formats); JSON integers
 * decode as INT and numbers with a fraction or exponent ("4.0", "1e3") as
 * FLOAT. Checking for repeated keys sorts them (O(n log n) whatever the keys),
 * so crafted keys cannot slow the decoder down. Encoding never fails: invalid
 * UTF-8 in a string built by the program is written with U+FFFD in its place,
 * and a NaN or infinite FLOAT is JSON null. JSON floats use the shortest text
 * that reads back to the same double. */

#endif
