/* Secrets at rest (contract §8): XChaCha20-Poly1305 under the fleet's key
 * (HVD_SECRET_KEY_FILE), with a key id in every sealed blob so that keys can
 * be rotated (older keys from HVD_SECRET_OLD_KEY_FILES still open old blobs).
 *
 * Key file: 32 random bytes in standard base64 (one line; a trailing newline
 * or spaces are fine), written by `hvdeployctl keygen FILE`.
 * Key id: the first 8 hex characters of BLAKE2b-256 of the key.
 * Sealed blob: 1 byte version (1) | key id (8 ASCII hex chars) |
 *   24-byte nonce | ciphertext + 16-byte tag.
 * The additional data authenticated with it is the 9 header bytes followed by
 * the aad string (the job id), so a blob cannot be moved to another job nor
 * its header changed. */
#ifndef HVD_SECRET_H
#define HVD_SECRET_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "config.h"

#define HVD_SECRET_KEY_BYTES 32
#define HVD_SECRET_KEY_ID_LEN 8
#define HVD_SECRET_VERSION 1
#define HVD_SECRET_NONCE_BYTES 24
#define HVD_SECRET_TAG_BYTES 16
#define HVD_SECRET_OVERHEAD (1 + HVD_SECRET_KEY_ID_LEN + HVD_SECRET_NONCE_BYTES + HVD_SECRET_TAG_BYTES)

typedef struct {
    unsigned char key[HVD_SECRET_KEY_BYTES];
    char id[HVD_SECRET_KEY_ID_LEN + 1];
} HvdSecretKey;

/* The keys a worker knows: v[0] seals, every one opens. */
typedef struct {
    HvdSecretKey *v;
    size_t n;
} HvdSecretKeys;

/* Reads a key file. Returns 0, or -1 with one line in err:
 *   "HVD_SECRET_KEY_FILE /x: cannot read: No such file or directory"
 *   "HVD_SECRET_KEY_FILE /x: expected 32 bytes of base64, got 12"
 * A file readable by group or others is accepted with a warning in the log. */
int hvd_secret_load_key(const char *path, HvdSecretKey *key, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Loads the current key and the older ones (errors name
 * HVD_SECRET_OLD_KEY_FILES for those). keys is replaced; free it with
 * hvd_secret_keys_free. */
int hvd_secret_keys_load(HvdSecretKeys *keys, const char *key_file, const char *const *old_files, size_t n_old,
                         char *err, size_t errlen) __attribute__((warn_unused_result));
/* The same from a loaded config (secret_key_file, secret_old_key_files). */
int hvd_secret_keys_load_config(HvdSecretKeys *keys, const HvdConfig *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void hvd_secret_keys_free(HvdSecretKeys *keys); /* wipes; NULL-safe */

/* Seals plain (len bytes) for the job aad (NUL-terminated, may be NULL = "").
 * out is replaced (not appended to). Returns 0, -1 only if libsodium cannot
 * start. */
int hvd_secret_seal(const HvdSecretKey *key, const void *plain, size_t len, const char *aad, HvdBuf *out)
    __attribute__((warn_unused_result));

/* Opens a blob with whichever of keys has its key id. plain is replaced by
 * the plaintext (NUL-terminated after len bytes); free it with
 * hvd_secret_buf_free. Returns 0, or -1 with one line in err:
 *   "sealed secret too short (12 bytes)", "sealed secret has unknown version 7",
 *   "sealed secret uses key id 1a2b3c4d, which is not loaded (current key
 *    5e6f7a8b; add the old key file to HVD_SECRET_OLD_KEY_FILES)",
 *   "ciphertext failed authentication" (tampered, or another job's blob). */
int hvd_secret_open(const HvdSecretKeys *keys, const void *blob, size_t len, const char *aad, HvdBuf *plain, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* The key id of a sealed blob (false when too short or unknown version). */
bool hvd_secret_blob_key_id(const void *blob, size_t len, char id[HVD_SECRET_KEY_ID_LEN + 1]);

/* Fills key with fresh random bytes and its id. */
int hvd_secret_key_generate(HvdSecretKey *key) __attribute__((warn_unused_result));
/* Computes key->id from key->key. */
void hvd_secret_key_id(HvdSecretKey *key);

/* Writes a new random key to path (base64 + newline) with mode 0600, never
 * replacing an existing file (O_CREAT|O_EXCL|O_NOFOLLOW). On success key (if
 * not NULL) holds the new key. Returns 0, or -1 with err such as
 * "/x: already exists; refusing to overwrite a secret key". */
int hvd_secret_key_write_new(const char *path, HvdSecretKey *key, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Wipes (sodium_memzero) and frees a buffer that held a secret. */
void hvd_secret_buf_free(HvdBuf *b);

#endif
