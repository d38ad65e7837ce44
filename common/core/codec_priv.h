/* Private to the codec files (codec.c, codec_map.c, codec_msgpack.c, codec_json.c,
 * prescan.c): the pieces hvd_decode and hvd_encode are assembled from. */
#ifndef HVD_CODEC_PRIV_H
#define HVD_CODEC_PRIV_H
#include <stdbool.h>
#include <stddef.h>
#include "codec.h"
#include "utf8.h"

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

/* What both decoders say of an integer outside int64. */
#define HVD_CODEC_INT_RANGE "integers must be within -9223372036854775808..9223372036854775807"

/* Appends key/val to a map being decoded (takes both; no check for repeats). */
void hvd_codec_map_push(HvdNode *map, char *key, HvdNode *val);
/* A key that occurs more than once in map: the index of its second occurrence
 * (the earliest such in the map's order), or -1. O(n log n) whatever the keys
 * are (a merge sort, not a hash table that crafted keys could degrade). */
long hvd_codec_map_dup(const HvdNode *map);
/* "duplicate key 'name'" for why, the name cut to 64 bytes and made printable. */
void hvd_codec_dup_why(char *why, size_t whylen, const char *prefix, const char *key);

void hvd_codec_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
