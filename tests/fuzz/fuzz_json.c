/* libFuzzer harness: hvd_decode(JSON) on arbitrary bytes, then checks that the
 * tree re-encodes byte-stably in JSON and msgpack and reads back equal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"

static const HvdDecodeLimits ROUND_TRIP = {SIZE_MAX, SIZE_MAX, HVD_MAX_DEPTH};

static void check_stable(HvdContentType ct, const HvdNode *n)
{
    HvdBuf a = {0}, b = {0};
    HvdNode *back = NULL;
    char why[256];
    hvd_encode(ct, n, &a);
    if (hvd_decode_limited(ct, a.data, a.len, &ROUND_TRIP, &back, why, sizeof(why)) != HVD_DECODE_OK) abort();
    if (!hvd_node_equal(n, back)) abort(); /* JSON trees hold no bin and no NaN: exact */
    hvd_encode(ct, back, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
    hvd_node_free(back);
    hvd_buf_free(&a);
    hvd_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HvdNode *n = NULL;
    char why[256];
    HvdDecodeStatus st = hvd_decode(HVD_CT_JSON, data, size, &n, why, sizeof(why));
    if (st != HVD_DECODE_OK) {
        if (n || why[0] == '\0') abort();
        return 0;
    }
    check_stable(HVD_CT_JSON, n);
    check_stable(HVD_CT_MSGPACK, n);
    char *s = hvd_node_to_json(n);
    free(s);
    hvd_node_free(n);
    return 0;
}
