/* The pieces every codec file shares (codec.c, codec_json.c, codec_msgpack.c,
 * prescan.c): the one-sentence reason of a failure and the building of a
 * decoded map with its duplicate-key check. A leaf: it calls no other codec file. */
#include "codec_priv.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hvd_codec_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap); /* a truncated reason is still a reason */
    va_end(ap);
}

/* ---- map building ---------------------------------------------------- */

#define KEY_SORT_FROM 16 /* below this many keys comparing every pair is cheaper */

void hvd_codec_map_push(HvdNode *map, char *key, HvdNode *val)
{
    if (map->u.map.n == map->u.map.cap) {
        size_t cap = map->u.map.cap ? map->u.map.cap * 2 : 8;
        map->u.map.keys = hvd_xrealloc(map->u.map.keys, cap * sizeof(*map->u.map.keys));
        map->u.map.vals = hvd_xrealloc(map->u.map.vals, cap * sizeof(*map->u.map.vals));
        map->u.map.cap = cap;
    }
    map->u.map.keys[map->u.map.n] = key;
    map->u.map.vals[map->u.map.n] = val;
    map->u.map.n++;
}

/* Merge sort of the indexes ix[0..n) by key, then by position (so equal keys
 * stay in map order); tmp has room for n. */
static void sort_keys(char *const *keys, size_t *ix, size_t *tmp, size_t n)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = strcmp(keys[ix[a]], keys[ix[b]]) <= 0 ? ix[a++] : ix[b++];
            while (a < mid) tmp[k++] = ix[a++];
            while (b < hi) tmp[k++] = ix[b++];
        }
        memcpy(ix, tmp, n * sizeof *ix);
    }
}

long hvd_codec_map_dup(const HvdNode *map)
{
    size_t n = map->u.map.n;
    char *const *keys = map->u.map.keys;
    if (n < KEY_SORT_FROM) {
        for (size_t j = 1; j < n; j++)
            for (size_t i = 0; i < j; i++)
                if (strcmp(keys[i], keys[j]) == 0) return (long)j;
        return -1;
    }
    size_t *ix = hvd_xmalloc(n * sizeof *ix), *tmp = hvd_xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) ix[i] = i;
    sort_keys(keys, ix, tmp, n);
    long best = -1;
    for (size_t k = 1; k < n; k++)
        if (strcmp(keys[ix[k - 1]], keys[ix[k]]) == 0 && (best < 0 || ix[k] < (size_t)best)) best = (long)ix[k];
    free(ix);
    free(tmp);
    return best;
}

void hvd_codec_dup_why(char *why, size_t whylen, const char *prefix, const char *key)
{
    char shown[65];
    size_t n = hvd_utf8_truncate(key, strlen(key), sizeof shown - 1);
    for (size_t i = 0; i < n; i++) shown[i] = (unsigned char)key[i] < 0x20 ? '?' : key[i];
    shown[n] = '\0';
    hvd_codec_why(why, whylen, "%sduplicate key '%s'%s", prefix, shown, n < strlen(key) ? "..." : "");
}
