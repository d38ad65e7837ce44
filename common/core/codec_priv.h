/* Private to the codec files (codec.c, codec_msgpack.c, codec_json.c,
 * prescan.c): the pieces hvd_decode and hvd_encode are assembled from. */
#ifndef HVD_CODEC_PRIV_H
#define HVD_CODEC_PRIV_H
#include <stdbool.h>
#include <stddef.h>
#include "codec.h"

/* Pre-scans: walk the raw bytes without allocating and check every limit of
 * lim (except max_body, checked by the caller), that declared lengths fit in
 * the bytes that are there, and (msgpack) UTF-8, ext types, NUL in keys and
 * trailing bytes. why gets one sentence on failure. */
HvdDecodeStatus hvd_prescan_msgpack(const unsigned char *p, size_t len, const HvdDecodeLimits *lim, char *why,
                                    size_t whylen);
HvdDecodeStatus hvd_prescan_json(const unsigned char *p, size_t len, const HvdDecodeLimits *lim, char *why,
                                 size_t whylen);

/* Decoders, run only after their pre-scan passed. */
HvdDecodeStatus hvd_msgpack_decode(const void *buf, size_t len, HvdNode **out, char *why, size_t whylen);
HvdDecodeStatus hvd_json_decode(const void *buf, size_t len, HvdNode **out, char *why, size_t whylen);

void hvd_msgpack_encode(const HvdNode *node, HvdBuf *out);
void hvd_json_encode(const HvdNode *node, HvdBuf *out);

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool hvd_codec_utf8_valid(const unsigned char *s, size_t len);
/* s with every invalid UTF-8 sequence replaced by U+FFFD, appended to out. */
void hvd_codec_utf8_sanitize(const unsigned char *s, size_t len, HvdBuf *out);

/* Appends key/val to a map being decoded. The map holds a key at most once
 * (a repeated key keeps its first position, takes the last value); seen is a
 * hash index that keeps this linear for large maps. */
typedef struct {
    size_t *slots; /* index + 1 into map's entries, 0 = empty */
    size_t cap;    /* power of two, 0 until the map grows past a few keys */
} HvdKeyIndex;
void hvd_codec_map_put(HvdNode *map, HvdKeyIndex *seen, char *key, HvdNode *val); /* takes key and val */
void hvd_codec_key_index_free(HvdKeyIndex *seen);

void hvd_codec_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
