/* libFuzzer harness: the text helpers every stored string goes through
 * (core/utf8.c, core/mask.c) on arbitrary bytes. Checks: sanitised text is
 * UTF-8 (and NUL-free when asked), valid text is left as is, cuts stay within
 * their bound on a character boundary, a long secret (without '*') is never
 * left in masked text, and the URL and raw-body maskers hold up. The first
 * byte picks the length of a secret taken from the input's start. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mask.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    HvdBuf b = {0};
    hvd_utf8_sanitize(s, size, HVD_UTF8_NUL, &b);
    if (!hvd_utf8_valid(b.data, b.len) || memchr(b.data, '\0', b.len)) abort();
    if (!hvd_utf8_clean(b.data, b.len, HVD_UTF8_NUL)) abort();
    HvdBuf again = {0};
    hvd_utf8_sanitize(b.data, b.len, HVD_UTF8_NUL, &again);
    if (again.len != b.len || memcmp(again.data, b.data, b.len) != 0) abort(); /* idempotent */
    hvd_buf_free(&again);
    for (size_t max = 0; max <= b.len && max < 40; max++) {
        size_t cut = hvd_utf8_truncate(b.data, b.len, max);
        if (cut > max || !hvd_utf8_valid(b.data, cut)) abort();
        size_t from = hvd_utf8_tail_start(b.data, b.len, max);
        if (b.len - from > max || !hvd_utf8_valid(b.data + from, b.len - from)) abort();
    }
    if (hvd_utf8_truncate(s, size, size / 2) > size / 2) abort();

    if (size > 1) {
        size_t k = data[0] % 24;
        if (k > size - 1) k = size - 1;
        char *secret = strndup(s + 1, k);
        const char *text = s + 1 + k;
        size_t tlen = size - 1 - k;
        const char *const secrets[] = {secret, "S3cret!pw"};
        for (unsigned flags = 0; flags < 4; flags++) {
            HvdBuf m = {0};
            hvd_mask_secrets(text, tlen, secrets, 2, flags, &m);
            size_t sl = strlen(secret);
            bool is_long = hvd_utf8_count(secret, sl, NULL) >= HVD_MASK_MIN_ANYWHERE;
            if (is_long && !strchr(secret, '*') && memmem(m.data, m.len, secret, sl)) abort();
            if (memmem(m.data, m.len, "S3cret!pw", 9)) abort();
            hvd_buf_free(&m);
        }
        free(secret);
    }
    HvdBuf r = {0};
    size_t n = hvd_mask_raw_secrets(data, size, &r);
    if (n == 0 && (r.len != size || memcmp(r.data, data, size) != 0)) abort(); /* nothing found: as received */
    hvd_buf_free(&r);
    char *z = strndup(s, size);
    char *u = hvd_mask_url_dup(z);
    free(u);
    free(z);
    hvd_buf_free(&b);
    return 0;
}
