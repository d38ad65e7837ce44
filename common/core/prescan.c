/* Limit pre-scans: walk untrusted msgpack / JSON bytes without allocating,
 * so that an oversized string or a deep nest is refused before any decoder
 * builds anything for it. */
#include "codec_priv.h"
#include <stdint.h>
#include <string.h>

/* One open msgpack container: elements still to read, and its shape. */
typedef struct {
    uint64_t left; /* elements (for a map: keys + values) not yet read */
    uint64_t total;
    bool is_map;
} Frame;

static uint64_t be_read(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

HvdDecodeStatus hvd_prescan_msgpack(const unsigned char *p, size_t len, const HvdDecodeLimits *lim, char *why,
                                    size_t whylen)
{
    Frame stack[HVD_DEPTH_CAP + 1];
    int depth = 0; /* open containers */
    size_t pos = 0;

    for (;;) {
        if (pos >= len) goto truncated_here;
        size_t start = pos;
        unsigned char t = p[pos++];
        size_t rest = len - pos; /* bytes after the type byte */
        bool is_key = depth > 0 && stack[depth - 1].is_map && (stack[depth - 1].total - stack[depth - 1].left) % 2 == 0;
        if (depth > 0) stack[depth - 1].left--;

        size_t lenbytes = 0; /* width of a length / payload field after t */
        enum { SCALAR, STR, BIN, ARRAY, MAP } kind = SCALAR;
        uint64_t n = 0; /* payload bytes (SCALAR, STR, BIN) or element count */
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            n = 0;
        } else if (t >= 0x80 && t <= 0x8f) {
            kind = MAP;
            n = t & 0x0f;
        } else if (t >= 0x90 && t <= 0x9f) {
            kind = ARRAY;
            n = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            kind = STR;
            n = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4:
                kind = BIN;
                lenbytes = 1;
                break;
            case 0xc5:
                kind = BIN;
                lenbytes = 2;
                break;
            case 0xc6:
                kind = BIN;
                lenbytes = 4;
                break;
            case 0xca: n = 4; break;
            case 0xcb: n = 8; break;
            case 0xcc:
            case 0xd0: n = 1; break;
            case 0xcd:
            case 0xd1: n = 2; break;
            case 0xce:
            case 0xd2: n = 4; break;
            case 0xcf:
            case 0xd3: n = 8; break;
            case 0xd9:
                kind = STR;
                lenbytes = 1;
                break;
            case 0xda:
                kind = STR;
                lenbytes = 2;
                break;
            case 0xdb:
                kind = STR;
                lenbytes = 4;
                break;
            case 0xdc:
                kind = ARRAY;
                lenbytes = 2;
                break;
            case 0xdd:
                kind = ARRAY;
                lenbytes = 4;
                break;
            case 0xde:
                kind = MAP;
                lenbytes = 2;
                break;
            case 0xdf:
                kind = MAP;
                lenbytes = 4;
                break;
            case 0xc7:
            case 0xc8:
            case 0xc9:
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                hvd_codec_why(why, whylen, "invalid msgpack: extension type at byte %zu is not accepted", start);
                return HVD_DECODE_MALFORMED;
            default: /* 0xc1, never used */
                hvd_codec_why(why, whylen, "invalid msgpack: unknown type byte 0x%02x at byte %zu", t, start);
                return HVD_DECODE_MALFORMED;
            }
        }
        if (lenbytes) {
            if (rest < lenbytes) goto truncated;
            n = be_read(p + pos, lenbytes);
            pos += lenbytes;
            rest -= lenbytes;
        }
        if (is_key && kind != STR) is_key = false; /* a non-string key is dropped later */

        switch (kind) {
        case SCALAR:
            if (n > rest) goto truncated;
            if (t == 0xcf && be_read(p + pos, 8) > (uint64_t)INT64_MAX) {
                /* the tree holds int64: refuse what JSON refuses, in the same words */
                hvd_codec_why(why, whylen, "invalid msgpack: too big integer at byte %zu (%s)", start,
                              HVD_CODEC_INT_RANGE);
                return HVD_DECODE_MALFORMED;
            }
            pos += (size_t)n;
            break;
        case STR:
        case BIN:
            if (n > lim->max_string) {
                hvd_codec_why(why, whylen, "%s of %llu bytes at depth %d is over the %zu-byte limit",
                              kind == BIN ? "bin"
                              : is_key    ? "map key"
                                          : "string",
                              (unsigned long long)n, depth, lim->max_string);
                return HVD_DECODE_TOO_LARGE;
            }
            if (n > rest) goto truncated;
            if (kind == STR && !hvd_utf8_valid((const char *)p + pos, (size_t)n)) {
                hvd_codec_why(why, whylen, "invalid msgpack: the string at byte %zu is not valid UTF-8", start);
                return HVD_DECODE_MALFORMED;
            }
            if (is_key && memchr(p + pos, '\0', (size_t)n)) {
                hvd_codec_why(why, whylen, "invalid msgpack: the map key at byte %zu contains a NUL byte", start);
                return HVD_DECODE_MALFORMED;
            }
            pos += (size_t)n;
            break;
        case ARRAY:
        case MAP:
            if (depth + 1 > lim->max_depth) {
                hvd_codec_why(why, whylen, "nesting deeper than %d levels", lim->max_depth);
                return HVD_DECODE_TOO_LARGE;
            }
            if (kind == MAP) n *= 2; /* n < 2^32, no wrap */
            /* every element takes at least one byte */
            if (n > rest) goto truncated;
            if (n > 0) stack[depth++] = (Frame){n, n, kind == MAP};
            break;
        }
        while (depth > 0 && stack[depth - 1].left == 0) depth--;
        if (depth == 0) break;
        continue;
    truncated:
        hvd_codec_why(
            why, whylen,
            "invalid msgpack: truncated at byte %zu (the value starting there runs past the end of the %zu-byte body)",
            start, len);
        return HVD_DECODE_MALFORMED;
    }
    if (pos != len) {
        hvd_codec_why(why, whylen, "invalid msgpack: %zu trailing bytes after the value ending at byte %zu", len - pos,
                      pos);
        return HVD_DECODE_MALFORMED;
    }
    return HVD_DECODE_OK;

truncated_here:
    hvd_codec_why(why, whylen, "invalid msgpack: truncated at byte %zu (the body ends where a value should start)",
                  pos);
    return HVD_DECODE_MALFORMED;
}

/* Bytes that the \uXXXX escape at p (pointing at the 'u') decodes to, as jansson
 * would write them; a high surrogate counts for its whole pair (4), a low one 0. */
static size_t json_u_escape_bytes(const unsigned char *p, size_t avail)
{
    if (avail < 5) return 1;
    unsigned v = 0;
    for (int i = 1; i <= 4; i++) {
        unsigned char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 1; /* jansson will refuse it */
        v = (v << 4) | d;
    }
    if (v < 0x80) return 1;
    if (v < 0x800) return 2;
    if (v >= 0xD800 && v <= 0xDBFF) return 4;
    if (v >= 0xDC00 && v <= 0xDFFF) return 0;
    return 3;
}

HvdDecodeStatus hvd_prescan_json(const unsigned char *p, size_t len, const HvdDecodeLimits *lim, char *why,
                                 size_t whylen)
{
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c == '{' || c == '[') {
            if (++depth > lim->max_depth) {
                hvd_codec_why(why, whylen, "nesting deeper than %d levels", lim->max_depth);
                return HVD_DECODE_TOO_LARGE;
            }
            i++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
            i++;
        } else if (c == '"') {
            size_t decoded = 0; /* bytes the string holds once unescaped */
            i++;
            while (i < len && p[i] != '"') {
                if (p[i] == '\\' && i + 1 < len) {
                    if (p[i + 1] == 'u') {
                        decoded += json_u_escape_bytes(p + i + 1, len - i - 1);
                        i += 2; /* the hex digits count as plain bytes below otherwise */
                        for (int k = 0; k < 4 && i < len && p[i] != '"' && p[i] != '\\'; k++) i++;
                    } else {
                        decoded++;
                        i += 2;
                    }
                } else {
                    decoded++;
                    i++;
                }
            }
            i++; /* closing quote (or past the end: jansson reports it) */
            if (decoded > lim->max_string) {
                hvd_codec_why(why, whylen, "string of %zu bytes at depth %d is over the %zu-byte limit", decoded, depth,
                              lim->max_string);
                return HVD_DECODE_TOO_LARGE;
            }
        } else {
            i++;
        }
    }
    return HVD_DECODE_OK;
}
