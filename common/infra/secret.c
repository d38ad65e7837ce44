/* Secrets at rest: key files, key ids, XChaCha20-Poly1305 seal/open. */
#include "secret.h"
#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 4096 /* a key file is ~45 bytes; anything this large is not one */
#define HDR_LEN (1 + HVD_SECRET_KEY_ID_LEN)

static bool sodium_ready(void)
{
    return sodium_init() >= 0; /* thread-safe; 1 when already initialised */
}

void hvd_secret_key_id(HvdSecretKey *key)
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, key->key, sizeof key->key, NULL, 0);
    sodium_bin2hex(key->id, sizeof key->id, h, HVD_SECRET_KEY_ID_LEN / 2);
}

/* Loads one key; what names the setting in errors. */
static int load_key(const char *what, const char *path, HvdSecretKey *key, char *err, size_t errlen)
{
    unsigned char raw[KEY_FILE_MAX + 1];
    unsigned char bin[KEY_FILE_MAX];
    size_t binlen = 0, n = 0;
    int rc = -1, fd = -1;
    struct stat st;
    if (!sodium_ready()) {
        snprintf(err, errlen, "%s %s: libsodium failed to initialise", what, path);
        return -1;
    }
    if (!path || !*path) {
        snprintf(err, errlen, "%s is not set", what);
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", what, path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, raw + n, sizeof raw - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof raw) break;
    }
    if (n > KEY_FILE_MAX) {
        snprintf(err, errlen, "%s %s: expected 32 bytes of base64, got a file of over %d bytes", what, path,
                 KEY_FILE_MAX);
        goto out;
    }
    while (n && (raw[n - 1] == '\n' || raw[n - 1] == '\r' || raw[n - 1] == ' ' || raw[n - 1] == '\t')) n--;
    const char *end = NULL;
    if (sodium_base642bin(bin, sizeof bin, (const char *)raw, n, NULL, &binlen, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        end != (const char *)raw + n) {
        snprintf(err, errlen, "%s %s: expected 32 bytes of base64, got text that is not base64", what, path);
        goto out;
    }
    if (binlen != HVD_SECRET_KEY_BYTES) {
        snprintf(err, errlen, "%s %s: expected 32 bytes of base64, got %zu", what, path, binlen);
        goto out;
    }
    /* The fleet's key opens every job's secrets: a file others (or another
     * group) can read is refused. One exception, with a warning: group read
     * when the group is this process's own, which is how Kubernetes mounts a
     * Secret for a non-root pod (defaultMode 0440 with fsGroup). */
    if ((st.st_mode & S_IRWXO) || (st.st_mode & (S_IWGRP | S_IXGRP)) ||
        ((st.st_mode & S_IRGRP) && st.st_gid != getegid())) {
        snprintf(err, errlen, "%s %s: mode %04o lets other users read or change the key: chmod 600 it", what, path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    memcpy(key->key, bin, sizeof key->key);
    hvd_secret_key_id(key);
    if (st.st_mode & S_IRGRP)
        hvd_log_kv(HVD_LOG_WARN, NULL, "secret key file is readable by its group (this process's own); chmod 600 it",
                   "setting", what, "file", path, NULL);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(bin, sizeof bin);
    return rc;
}

int hvd_secret_load_key(const char *path, HvdSecretKey *key, char *err, size_t errlen)
{
    return load_key("HVD_SECRET_KEY_FILE", path, key, err, errlen);
}

void hvd_secret_keys_free(HvdSecretKeys *keys)
{
    if (!keys) return;
    if (keys->v) sodium_memzero(keys->v, keys->n * sizeof *keys->v);
    free(keys->v);
    keys->v = NULL;
    keys->n = 0;
}

int hvd_secret_keys_load(HvdSecretKeys *keys, const char *key_file, const char *const *old_files, size_t n_old,
                         char *err, size_t errlen)
{
    HvdSecretKeys k = {hvd_xcalloc(n_old + 1, sizeof(HvdSecretKey)), 0};
    if (load_key("HVD_SECRET_KEY_FILE", key_file, &k.v[0], err, errlen) != 0) goto fail;
    k.n = 1;
    for (size_t i = 0; i < n_old; i++) {
        HvdSecretKey *nk = &k.v[k.n];
        if (load_key("HVD_SECRET_OLD_KEY_FILES", old_files[i], nk, err, errlen) != 0) goto fail;
        bool dup = false;
        for (size_t j = 0; j < k.n; j++)
            if (strcmp(k.v[j].id, nk->id) == 0) dup = true;
        if (dup)
            sodium_memzero(nk, sizeof *nk); /* the same key twice: keep one */
        else
            k.n++;
    }
    hvd_secret_keys_free(keys);
    *keys = k;
    return 0;
fail:
    k.n = n_old + 1;
    hvd_secret_keys_free(&k);
    return -1;
}

int hvd_secret_keys_load_config(HvdSecretKeys *keys, const HvdConfig *cfg, char *err, size_t errlen)
{
    return hvd_secret_keys_load(keys, cfg->secret_key_file, (const char *const *)cfg->secret_old_key_files.v,
                                cfg->secret_old_key_files.n, err, errlen);
}

/* header || aad: the additional data of a blob */
static unsigned char *make_ad(const unsigned char *hdr, const char *aad, size_t *adlen)
{
    size_t al = aad ? strlen(aad) : 0;
    unsigned char *ad = hvd_xmalloc(HDR_LEN + al);
    memcpy(ad, hdr, HDR_LEN);
    if (al) memcpy(ad + HDR_LEN, aad, al);
    *adlen = HDR_LEN + al;
    return ad;
}

int hvd_secret_seal(const HvdSecretKey *key, const void *plain, size_t len, const char *aad, HvdBuf *out)
{
    if (!sodium_ready()) return -1;
    size_t total = HDR_LEN + HVD_SECRET_NONCE_BYTES + len + HVD_SECRET_TAG_BYTES;
    hvd_buf_reset(out);
    hvd_buf_append(out, "", 0);
    unsigned char *blob = hvd_xmalloc(total + 1);
    blob[0] = HVD_SECRET_VERSION;
    memcpy(blob + 1, key->id, HVD_SECRET_KEY_ID_LEN);
    unsigned char *nonce = blob + HDR_LEN;
    randombytes_buf(nonce, HVD_SECRET_NONCE_BYTES);
    size_t adlen;
    unsigned char *ad = make_ad(blob, aad, &adlen);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + HVD_SECRET_NONCE_BYTES, &clen, plain, len, ad, adlen, NULL,
                                               nonce, key->key);
    free(ad);
    hvd_buf_append(out, blob, HDR_LEN + HVD_SECRET_NONCE_BYTES + (size_t)clen);
    free(blob); /* holds only ciphertext */
    return 0;
}

bool hvd_secret_blob_key_id(const void *blob, size_t len, char id[HVD_SECRET_KEY_ID_LEN + 1])
{
    const unsigned char *b = blob;
    if (!b || len < HDR_LEN || b[0] != HVD_SECRET_VERSION) return false;
    memcpy(id, b + 1, HVD_SECRET_KEY_ID_LEN);
    id[HVD_SECRET_KEY_ID_LEN] = '\0';
    for (int i = 0; i < HVD_SECRET_KEY_ID_LEN; i++)
        if (!strchr("0123456789abcdef", id[i]) || !id[i]) id[i] = '?';
    return true;
}

void hvd_secret_buf_free(HvdBuf *b)
{
    if (!b) return;
    if (b->data) sodium_memzero(b->data, b->cap);
    hvd_buf_free(b);
}

int hvd_secret_open(const HvdSecretKeys *keys, const void *blob, size_t len, const char *aad, HvdBuf *plain, char *err,
                    size_t errlen)
{
    const unsigned char *b = blob;
    char id[HVD_SECRET_KEY_ID_LEN + 1];
    if (!sodium_ready()) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    if (!b || len < HVD_SECRET_OVERHEAD) {
        snprintf(err, errlen, "sealed secret too short (%zu bytes)", b ? len : (size_t)0);
        return -1;
    }
    if (b[0] != HVD_SECRET_VERSION) {
        snprintf(err, errlen, "sealed secret has unknown version %u", (unsigned)b[0]);
        return -1;
    }
    hvd_secret_blob_key_id(b, len, id);
    const HvdSecretKey *key = NULL;
    for (size_t i = 0; keys && i < keys->n; i++)
        if (memcmp(keys->v[i].id, b + 1, HVD_SECRET_KEY_ID_LEN) == 0) key = &keys->v[i];
    if (!key) {
        snprintf(err, errlen,
                 "sealed secret uses key id %s, which is not loaded (current key %s; add the old key file to "
                 "HVD_SECRET_OLD_KEY_FILES)",
                 id, keys && keys->n ? keys->v[0].id : "none");
        return -1;
    }
    size_t clen = len - HDR_LEN - HVD_SECRET_NONCE_BYTES;
    size_t mlen = clen - HVD_SECRET_TAG_BYTES;
    /* the plaintext goes into a buffer of exactly the right size, so no
     * realloc leaves a copy behind */
    hvd_secret_buf_free(plain);
    plain->data = hvd_xmalloc(mlen + 1);
    plain->cap = mlen + 1;
    size_t adlen;
    unsigned char *ad = make_ad(b, aad, &adlen);
    unsigned long long got = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)plain->data, &got, NULL,
                                                        b + HDR_LEN + HVD_SECRET_NONCE_BYTES, clen, ad, adlen,
                                                        b + HDR_LEN, key->key);
    free(ad);
    if (rc != 0) {
        hvd_secret_buf_free(plain);
        snprintf(err, errlen, "ciphertext failed authentication");
        return -1;
    }
    plain->len = (size_t)got;
    plain->data[plain->len] = '\0';
    return 0;
}

int hvd_secret_key_generate(HvdSecretKey *key)
{
    if (!sodium_ready()) return -1;
    randombytes_buf(key->key, sizeof key->key);
    hvd_secret_key_id(key);
    return 0;
}

int hvd_secret_key_write_new(const char *path, HvdSecretKey *key, char *err, size_t errlen)
{
    HvdSecretKey k;
    char b64[sodium_base64_ENCODED_LEN(HVD_SECRET_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) + 1];
    int rc = -1, fd = -1;
    bool created = false;
    if (!path || !*path) {
        snprintf(err, errlen, "no key file given");
        return -1;
    }
    if (hvd_secret_key_generate(&k) != 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s: already exists; refusing to overwrite a secret key", path);
        else
            snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    created = true;
    if (fchmod(fd, 0600) != 0) { /* exactly 0600 whatever the umask */
        snprintf(err, errlen, "%s: cannot set mode 0600: %s", path, strerror(errno));
        goto out;
    }
    sodium_bin2base64(b64, sizeof b64 - 1, k.key, sizeof k.key, sodium_base64_VARIANT_ORIGINAL);
    size_t n = strlen(b64);
    b64[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, b64 + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (key) *key = k;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc != 0 && created) unlink(path);
    sodium_memzero(&k, sizeof k);
    sodium_memzero(b64, sizeof b64);
    return rc;
}
