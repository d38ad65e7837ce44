/* Secrets at rest: key files and ids, seal/open, wrong key, tampering,
 * rotation, and keygen (library and `hvdeployctl keygen`). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "config.h"
#include "log.h"
#include "secret.h"

static char dir[] = "/tmp/hvd-test-secret-XXXXXX";
static char err[512];

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    cr_assert(sodium_init() >= 0);
    err[0] = '\0';
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(secret, .init = setup, .fini = teardown);

static char *in_dir(const char *name)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
}

static HvdSecretKey new_key_file(const char *name)
{
    HvdSecretKey k;
    cr_assert_eq(hvd_secret_key_write_new(in_dir(name), &k, err, sizeof err), 0, "%s", err);
    return k;
}

Test(secret, key_file_and_key_id)
{
    HvdSecretKey written = new_key_file("k1");
    struct stat st;
    cr_assert_eq(stat(in_dir("k1"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    HvdSecretKey loaded;
    cr_assert_eq(hvd_secret_load_key(in_dir("k1"), &loaded, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(written.key, loaded.key, 32), 0);
    cr_assert_str_eq(written.id, loaded.id);
    /* id = first 8 hex chars of BLAKE2b(key) */
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, loaded.key, 32, NULL, 0);
    char hex[2 * crypto_generichash_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    cr_assert_eq(strlen(loaded.id), 8);
    cr_assert_eq(strncmp(loaded.id, hex, 8), 0);
    /* the file is base64 of the 32 bytes, one line */
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, loaded.key, 32, sodium_base64_VARIANT_ORIGINAL);
    FILE *f = fopen(in_dir("k1"), "r");
    char line[128] = {0};
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_eq(strlen(line), strlen(b64) + 1);
    cr_assert_eq(strncmp(line, b64, strlen(b64)), 0);
}

Test(secret, key_file_forms_and_errors)
{
    unsigned char raw[32];
    for (int i = 0; i < 32; i++) raw[i] = (unsigned char)i;
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, raw, 32, sodium_base64_VARIANT_ORIGINAL);
    char text[128];
    HvdSecretKey k;
    /* no newline, CRLF, trailing spaces: all fine */
    write_text(in_dir("a"), b64, 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("a"), &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(k.key, raw, 32), 0);
    snprintf(text, sizeof text, "%s\r\n", b64);
    write_text(in_dir("b"), text, 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("b"), &k, err, sizeof err), 0, "%s", err);
    snprintf(text, sizeof text, "%s  \n\n", b64);
    write_text(in_dir("c"), text, 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("c"), &k, err, sizeof err), 0, "%s", err);

    char want[600];
    cr_assert_eq(hvd_secret_load_key(in_dir("missing"), &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "HVD_SECRET_KEY_FILE %s: cannot read: No such file or directory", in_dir("missing"));
    cr_assert_str_eq(err, want);

    sodium_bin2base64(text, sizeof text, raw, 12, sodium_base64_VARIANT_ORIGINAL);
    write_text(in_dir("short"), text, 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("short"), &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "HVD_SECRET_KEY_FILE %s: expected 32 bytes of base64, got 12", in_dir("short"));
    cr_assert_str_eq(err, want);

    write_text(in_dir("notb64"), "this is not base64 at all!\n", 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("notb64"), &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "HVD_SECRET_KEY_FILE %s: expected 32 bytes of base64, got text that is not base64",
             in_dir("notb64"));
    cr_assert_str_eq(err, want);

    write_text(in_dir("empty"), "", 0600);
    cr_assert_eq(hvd_secret_load_key(in_dir("empty"), &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "HVD_SECRET_KEY_FILE %s: expected 32 bytes of base64, got 0", in_dir("empty"));
    cr_assert_str_eq(err, want);

    cr_assert_eq(hvd_secret_load_key(dir, &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "HVD_SECRET_KEY_FILE %s: not a regular file", dir);
    cr_assert_str_eq(err, want);
}

/* Issue 12: a key file others can read is an error, not a warning. */
Test(secret, world_readable_key_is_refused)
{
    new_key_file("k");
    HvdSecretKey k;
    static const mode_t bad[] = {0644, 0604, 0606, 0660, 0620, 0610, 0666, 0777};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        chmod(in_dir("k"), bad[i]);
        cr_assert_eq(hvd_secret_load_key(in_dir("k"), &k, err, sizeof err), -1, "mode %04o was accepted",
                     (unsigned)bad[i]);
        char want[512];
        snprintf(want, sizeof want,
                 "HVD_SECRET_KEY_FILE %s: mode %04o lets other users read or change the key: chmod 600 it", in_dir("k"),
                 (unsigned)bad[i]);
        cr_assert_str_eq(err, want);
    }
    chmod(in_dir("k"), 0400);
    cr_assert_eq(hvd_secret_load_key(in_dir("k"), &k, err, sizeof err), 0, "%s", err);
}

/* Group-readable by another group is refused; by this process's own group
 * (Kubernetes' fsGroup mounts) it loads with a warning. */
Test(secret, group_readable_key_only_for_our_own_group)
{
    char logpath[] = "/tmp/hvd-test-secret-log-XXXXXX";
    int lfd = mkstemp(logpath);
    hvd_log_set_fd(lfd);
    new_key_file("k");
    HvdSecretKey k;
    cr_assert_eq(chown(in_dir("k"), (uid_t)-1, getegid()), 0);
    chmod(in_dir("k"), 0640);
    cr_assert_eq(hvd_secret_load_key(in_dir("k"), &k, err, sizeof err), 0, "%s", err);
    char buf[1024] = {0};
    cr_assert(pread(lfd, buf, sizeof buf - 1, 0) > 0);
    cr_assert_not_null(strstr(buf, "\"level\":\"warn\""));
    cr_assert_not_null(strstr(buf, "readable by its group"));
    hvd_log_set_fd(2);
    close(lfd);
    unlink(logpath);
    if (geteuid() == 0) { /* only root can hand the file to another group */
        gid_t other = getegid() == 0 ? 1 : 0;
        cr_assert_eq(chown(in_dir("k"), (uid_t)-1, other), 0);
        cr_assert_eq(hvd_secret_load_key(in_dir("k"), &k, err, sizeof err), -1, "another group may read it");
        cr_assert_not_null(strstr(err, "mode 0640 lets other users read or change the key"), "%s", err);
    }
}

static HvdSecretKeys ring_of(const char *current, const char *old)
{
    HvdSecretKeys keys = {0};
    const char *olds[1] = {old ? in_dir(old) : NULL};
    cr_assert_eq(hvd_secret_keys_load(&keys, in_dir(current), olds, old ? 1 : 0, err, sizeof err), 0, "%s", err);
    return keys;
}

Test(secret, seal_open_round_trip_and_format)
{
    HvdSecretKey k = new_key_file("k");
    HvdSecretKeys keys = ring_of("k", NULL);
    const char *job = "6f1c2b1e-8d4a-4c57-9a53-2f0e4d7b9c11";
    const char *msg = "{\"guest_la_pw\":\"S3cret!pw\"}";
    HvdBuf sealed = {0}, again = {0}, plain = {0};
    cr_assert_eq(hvd_secret_seal(&k, msg, strlen(msg), job, &sealed), 0);
    cr_assert_eq(sealed.len, 1 + 8 + 24 + strlen(msg) + 16);
    cr_assert_eq(sealed.len, strlen(msg) + HVD_SECRET_OVERHEAD);
    cr_assert_eq((unsigned char)sealed.data[0], 1);
    cr_assert_eq(memcmp(sealed.data + 1, k.id, 8), 0);
    cr_assert_null(memmem(sealed.data, sealed.len, "S3cret", 6));
    char id[9];
    cr_assert(hvd_secret_blob_key_id(sealed.data, sealed.len, id));
    cr_assert_str_eq(id, k.id);
    /* a fresh nonce every time */
    cr_assert_eq(hvd_secret_seal(&k, msg, strlen(msg), job, &again), 0);
    cr_assert_neq(memcmp(sealed.data, again.data, sealed.len), 0);
    cr_assert_eq(hvd_secret_open(&keys, sealed.data, sealed.len, job, &plain, err, sizeof err), 0, "%s", err);
    cr_assert_eq(plain.len, strlen(msg));
    cr_assert_str_eq(plain.data, msg);
    hvd_secret_buf_free(&plain);
    cr_assert_null(plain.data);
    /* empty plaintext works too */
    cr_assert_eq(hvd_secret_seal(&k, "", 0, NULL, &again), 0);
    cr_assert_eq(hvd_secret_open(&keys, again.data, again.len, NULL, &plain, err, sizeof err), 0, "%s", err);
    cr_assert_eq(plain.len, 0);
    cr_assert_str_eq(plain.data, "");
    hvd_secret_buf_free(&plain);
    hvd_buf_free(&sealed);
    hvd_buf_free(&again);
    hvd_secret_keys_free(&keys);
    cr_assert_null(keys.v);
    hvd_secret_keys_free(NULL);
}

Test(secret, wrong_job_wrong_key_tampered)
{
    HvdSecretKey k = new_key_file("k");
    new_key_file("other");
    HvdSecretKeys keys = ring_of("k", NULL);
    HvdSecretKeys other = ring_of("other", NULL);
    HvdBuf sealed = {0}, plain = {0};
    cr_assert_eq(hvd_secret_seal(&k, "pw", 2, "job-a", &sealed), 0);

    /* another job's id as aad */
    cr_assert_eq(hvd_secret_open(&keys, sealed.data, sealed.len, "job-b", &plain, err, sizeof err), -1);
    cr_assert_str_eq(err, "ciphertext failed authentication");
    cr_assert_null(plain.data);

    /* a keyring without the key */
    cr_assert_eq(hvd_secret_open(&other, sealed.data, sealed.len, "job-a", &plain, err, sizeof err), -1);
    char want[300];
    snprintf(want, sizeof want,
             "sealed secret uses key id %s, which is not loaded (current key %s; add the old "
             "key file to HVD_SECRET_OLD_KEY_FILES)",
             k.id, other.v[0].id);
    cr_assert_str_eq(err, want);

    /* every single flipped byte after the header fails authentication */
    for (size_t i = 1 + 8; i < sealed.len; i++) {
        sealed.data[i] ^= 0x01;
        cr_assert_eq(hvd_secret_open(&keys, sealed.data, sealed.len, "job-a", &plain, err, sizeof err), -1);
        cr_assert_str_eq(err, "ciphertext failed authentication", "byte %zu", i);
        sealed.data[i] ^= 0x01;
    }
    /* the header is authenticated too: a blob relabelled with a key id that
     * is loaded still fails */
    HvdSecretKeys both = ring_of("k", "other");
    char saved[8];
    memcpy(saved, sealed.data + 1, 8);
    memcpy(sealed.data + 1, both.v[1].id, 8);
    cr_assert_eq(hvd_secret_open(&both, sealed.data, sealed.len, "job-a", &plain, err, sizeof err), -1);
    cr_assert_str_eq(err, "ciphertext failed authentication");
    memcpy(sealed.data + 1, saved, 8);

    sealed.data[0] = 7;
    cr_assert_eq(hvd_secret_open(&keys, sealed.data, sealed.len, "job-a", &plain, err, sizeof err), -1);
    cr_assert_str_eq(err, "sealed secret has unknown version 7");
    sealed.data[0] = 1;
    cr_assert_eq(hvd_secret_open(&keys, sealed.data, 20, "job-a", &plain, err, sizeof err), -1);
    cr_assert_str_eq(err, "sealed secret too short (20 bytes)");
    /* untouched, it still opens */
    cr_assert_eq(hvd_secret_open(&keys, sealed.data, sealed.len, "job-a", &plain, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(plain.data, "pw");
    hvd_secret_buf_free(&plain);
    hvd_buf_free(&sealed);
    hvd_secret_keys_free(&keys);
    hvd_secret_keys_free(&other);
    hvd_secret_keys_free(&both);
}

Test(secret, rotation)
{
    HvdSecretKey old = new_key_file("old");
    HvdSecretKey cur = new_key_file("new");
    HvdBuf by_old = {0}, by_new = {0}, plain = {0};
    cr_assert_eq(hvd_secret_seal(&old, "old secret", 10, "j", &by_old), 0);

    /* through the config: HVD_SECRET_KEY_FILE + HVD_SECRET_OLD_KEY_FILES */
    for (size_t i = 0; hvd_config_var_name(i); i++) unsetenv(hvd_config_var_name(i));
    setenv("HVD_SECRET_KEY_FILE", in_dir("new"), 1);
    char olds[600];
    snprintf(olds, sizeof olds, "%s,%s", in_dir("old"), in_dir("new")); /* a duplicate is harmless */
    setenv("HVD_SECRET_OLD_KEY_FILES", olds, 1);
    HvdConfig cfg;
    char *argv[] = {"hvdeployctl", NULL};
    cr_assert_eq(hvd_config_load(&cfg, 1, argv, "hvdeployctl", err, sizeof err), 0, "%s", err);
    HvdSecretKeys keys = {0};
    cr_assert_eq(hvd_secret_keys_load_config(&keys, &cfg, err, sizeof err), 0, "%s", err);
    hvd_config_free(&cfg);
    cr_assert_eq(keys.n, 2);
    cr_assert_str_eq(keys.v[0].id, cur.id); /* the current key seals */
    cr_assert_str_eq(keys.v[1].id, old.id);
    cr_assert_eq(hvd_secret_open(&keys, by_old.data, by_old.len, "j", &plain, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(plain.data, "old secret");
    cr_assert_eq(hvd_secret_seal(&keys.v[0], "new secret", 10, "j", &by_new), 0);
    cr_assert_eq(memcmp(by_new.data + 1, cur.id, 8), 0);
    cr_assert_eq(hvd_secret_open(&keys, by_new.data, by_new.len, "j", &plain, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(plain.data, "new secret");
    hvd_secret_buf_free(&plain);
    hvd_secret_keys_free(&keys);

    /* without the old key, the old blob names its key id */
    keys = ring_of("new", NULL);
    cr_assert_eq(hvd_secret_open(&keys, by_old.data, by_old.len, "j", &plain, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, old.id));
    hvd_secret_keys_free(&keys);

    /* a bad old key file is named as such; keys is left as it was */
    keys = ring_of("new", NULL);
    const char *bad[] = {in_dir("missing")};
    cr_assert_eq(hvd_secret_keys_load(&keys, in_dir("new"), bad, 1, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "HVD_SECRET_OLD_KEY_FILES %s: cannot read: No such file or directory", bad[0]);
    cr_assert_str_eq(err, want);
    cr_assert_eq(keys.n, 1);
    cr_assert_str_eq(keys.v[0].id, cur.id);
    hvd_secret_keys_free(&keys);
    hvd_buf_free(&by_old);
    hvd_buf_free(&by_new);
}

Test(secret, keygen_refuses_to_overwrite_and_sets_0600)
{
    umask(0); /* 0600 whatever the umask */
    HvdSecretKey k1;
    cr_assert_eq(hvd_secret_key_write_new(in_dir("key"), &k1, err, sizeof err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(in_dir("key"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    char before[128] = {0}, after[128] = {0};
    FILE *f = fopen(in_dir("key"), "r");
    cr_assert_eq(fread(before, 1, sizeof before - 1, f), 45);
    fclose(f);
    HvdSecretKey k2;
    cr_assert_eq(hvd_secret_key_write_new(in_dir("key"), &k2, err, sizeof err), -1);
    char want[400];
    snprintf(want, sizeof want, "%s: already exists; refusing to overwrite a secret key", in_dir("key"));
    cr_assert_str_eq(err, want);
    f = fopen(in_dir("key"), "r");
    cr_assert_eq(fread(after, 1, sizeof after - 1, f), 45);
    fclose(f);
    cr_assert_str_eq(before, after);
    /* not through a symlink either, even a dangling one */
    cr_assert_eq(symlink(in_dir("target"), in_dir("link")), 0);
    cr_assert_eq(hvd_secret_key_write_new(in_dir("link"), NULL, err, sizeof err), -1);
    cr_assert_eq(access(in_dir("target"), F_OK), -1);
    /* a directory that does not exist */
    cr_assert_eq(hvd_secret_key_write_new(in_dir("no/such/dir/key"), NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot create: No such file or directory", in_dir("no/such/dir/key"));
    cr_assert_str_eq(err, want);
    /* two generated keys differ */
    HvdSecretKey a, b;
    cr_assert_eq(hvd_secret_key_generate(&a), 0);
    cr_assert_eq(hvd_secret_key_generate(&b), 0);
    cr_assert_neq(memcmp(a.key, b.key, 32), 0);
}

/* Runs hvdeployctl with args; returns the exit code, stdout in out. */
static int run_ctl(char *out, size_t outlen, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/hvdeployctl %s 2>%s/stderr", HVD_BIN_DIR, args, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(secret, hvdeployctl_keygen)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/hvdeployctl", HVD_BIN_DIR);
    if (access(bin, X_OK) != 0) cr_skip_test("%s is not built", bin);
    char out[2048], args[600];
    snprintf(args, sizeof args, "keygen '%s'", in_dir("ctl.key"));
    cr_assert_eq(run_ctl(out, sizeof out, args), 0);
    HvdSecretKey k;
    cr_assert_eq(hvd_secret_load_key(in_dir("ctl.key"), &k, err, sizeof err), 0, "%s", err);
    char want[64];
    snprintf(want, sizeof want, "key id: %s\n", k.id);
    cr_assert_not_null(strstr(out, want), "%s", out);
    struct stat st;
    cr_assert_eq(stat(in_dir("ctl.key"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    /* again: refused, exit 1, file unchanged */
    cr_assert_eq(run_ctl(out, sizeof out, args), 1);
    HvdSecretKey k2;
    cr_assert_eq(hvd_secret_load_key(in_dir("ctl.key"), &k2, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(k.id, k2.id);
    /* json output */
    snprintf(args, sizeof args, "keygen --output json '%s'", in_dir("ctl2.key"));
    cr_assert_eq(run_ctl(out, sizeof out, args), 0);
    cr_assert_not_null(strstr(out, "\"key_id\":\""));
    /* usage errors and help */
    cr_assert_eq(run_ctl(out, sizeof out, "keygen"), 2);
    cr_assert_eq(run_ctl(out, sizeof out, "keygen a b"), 2);
    cr_assert_eq(run_ctl(out, sizeof out, "keygen --bogus x"), 2);
    cr_assert_eq(run_ctl(out, sizeof out, "keygen --help"), 0);
    cr_assert_not_null(strstr(out, "usage: hvdeployctl keygen FILE"));
}
