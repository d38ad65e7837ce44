/* libFuzzer harness: hvd_decode(msgpack) on arbitrary bytes, then checks that
 * what decoded re-encodes canonically (msgpack and JSON) and reads back equal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"

/* A canonical re-encoding can be larger than its input (float32 becomes
 * float64, bin becomes base64 in JSON), so read it back without those caps. */
static const HvdDecodeLimits ROUND_TRIP = {SIZE_MAX, SIZE_MAX, HVD_MAX_DEPTH};

static void check_stable(HvdContentType ct, const HvdNode *n, int compare_tree)
{
    HvdBuf a = {0}, b = {0};
    HvdNode *back = NULL;
    char why[256];
    hvd_encode(ct, n, &a);
    if (hvd_decode_limited(ct, a.data, a.len, &ROUND_TRIP, &back, why, sizeof(why)) != HVD_DECODE_OK)
        abort(); /* our own encoding must decode */
    if (compare_tree && !hvd_node_equal(n, back)) abort();
    hvd_encode(ct, back, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort(); /* byte-stable */
    hvd_node_free(back);
    hvd_buf_free(&a);
    hvd_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    HvdNode *n = NULL;
    char why[256];
    HvdDecodeStatus st = hvd_decode(HVD_CT_MSGPACK, data, size, &n, why, sizeof(why));
    if (st != HVD_DECODE_OK) {
        if (n || why[0] == '\0') abort(); /* failures say why and leave nothing behind */
        return 0;
    }
    check_stable(HVD_CT_MSGPACK, n, 1);
    check_stable(HVD_CT_JSON, n, 0); /* bin -> base64 and NaN -> null change the tree */
    hvd_node_free(n);
    return 0;
}
