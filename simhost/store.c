/* The simulated host's state under DIR/<host>/: state.json (VMs, MAC
 * counter), effects.jsonl (one line per applied side effect), answers.jsonl
 * (the stored answer of each idempotency key) and an flock'd lock file that
 * serialises concurrent calls. state.json is replaced by write, fsync,
 * rename, so a crash at any instant leaves the old or the new state; it also
 * records the committed length and last line of both logs, so a crash after
 * the commit but before an append is repaired by the next call. The logs are
 * append-only, which keeps a call's cost from growing with the answers. */
#include "simhost.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_VERSION 1

static bool mkdir_p(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "state path too long");
        return false;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
                return false;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return true;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static char *path_in(const SimStore *s, const char *name)
{
    size_t n = strlen(s->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", s->dir, name);
    return p;
}

static void ensure(json_t *state, const char *key, json_t *fresh)
{
    if (!json_object_get(state, key))
        json_object_set_new(state, key, fresh);
    else
        json_decref(fresh);
}

static bool load_state(SimStore *s, const char *host, char *err, size_t errlen)
{
    char *path = path_in(s, "state.json");
    json_error_t je;
    json_t *st = json_load_file(path, 0, &je);
    bool ok = true;
    if (!st) {
        if (access(path, F_OK) == 0) {
            snprintf(err, errlen, "host state %s is unreadable: %s", path, je.text);
            ok = false;
        } else {
            st = json_object();
        }
    }
    free(path);
    if (!ok) return false;
    if (!json_is_object(st)) {
        json_decref(st);
        snprintf(err, errlen, "host state is not a JSON object");
        return false;
    }
    ensure(st, "version", json_integer(STATE_VERSION));
    ensure(st, "host", json_string(host));
    ensure(st, "mac_seq", json_integer(0));
    ensure(st, "effects_len", json_integer(0));
    ensure(st, "last_effect", json_null());
    ensure(st, "vms", json_array());
    ensure(st, "orphan_disks", json_array());
    ensure(st, "answers_len", json_integer(0));
    ensure(st, "last_answer", json_null());
    s->state = st;
    return true;
}

/* A crash between the state commit and the append of its line leaves a log
 * short of the committed length: put the last line back. */
static bool repair_log(SimStore *s, const char *file, const char *len_key, const char *last_key, char *err,
                       size_t errlen)
{
    json_int_t want = json_integer_value(json_object_get(s->state, len_key));
    const char *last = json_string_value(json_object_get(s->state, last_key));
    if (want <= 0 || !last) return true;
    char *path = path_in(s, file);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
        return false;
    }
    struct stat sb;
    bool ok = fstat(fd, &sb) == 0;
    json_int_t len = (json_int_t)strlen(last);
    if (ok && sb.st_size < want) {
        off_t at = (off_t)(want - len);
        if (at < 0 || sb.st_size < at) at = sb.st_size; /* the log was cut elsewhere: just append */
        ok = ftruncate(fd, at) == 0 && lseek(fd, at, SEEK_SET) == at && write_all(fd, last, (size_t)len) &&
             fsync(fd) == 0;
        if (!ok) snprintf(err, errlen, "cannot repair %s: %s", file, strerror(errno));
    }
    close(fd);
    return ok;
}

bool sim_store_open(SimStore *s, const char *state_dir, const char *host, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
    size_t n = strlen(state_dir) + strlen(host) + 2;
    s->dir = malloc(n);
    snprintf(s->dir, n, "%s/%s", state_dir, host);
    if (!mkdir_p(s->dir, err, errlen)) return false;
    char *lock = path_in(s, "lock");
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(lock);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "cannot open lock file: %s", strerror(errno));
        return false;
    }
    while (flock(s->lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "cannot lock host state: %s", strerror(errno));
            return false;
        }
    }
    if (!load_state(s, host, err, errlen)) return false;
    return repair_log(s, "effects.jsonl", "effects_len", "last_effect", err, errlen) &&
           repair_log(s, "answers.jsonl", "answers_len", "last_answer", err, errlen);
}

/* answers.jsonl holds one {"key","op","answer"} object a line; the key is
 * first, so a line is only parsed when it starts with the key sought. */
const char *sim_store_answer(SimStore *s, const char *key, const char **op_out)
{
    if (!key) return NULL;
    json_int_t committed = json_integer_value(json_object_get(s->state, "answers_len"));
    if (committed <= 0) return NULL;
    json_t *k = json_string(key);
    char *kj = json_dumps(k, JSON_ENCODE_ANY);
    json_decref(k);
    char *prefix = kj ? malloc(strlen(kj) + 9) : NULL;
    if (prefix) sprintf(prefix, "{\"key\":%s,", kj);
    free(kj);
    char *path = path_in(s, "answers.jsonl");
    FILE *f = prefix ? fopen(path, "re") : NULL;
    free(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    json_int_t at = 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    while (f && at < committed && (n = getline(&line, &cap, f)) > 0) {
        at += n;
        if ((size_t)n <= plen || strncmp(line, prefix, plen) != 0) continue;
        json_t *a = json_loads(line, 0, NULL);
        if (!a) continue;
        json_decref(s->found);
        s->found = a; /* the last line for the key wins (there is one) */
    }
    if (f) fclose(f);
    free(line);
    free(prefix);
    if (!s->found) return NULL;
    if (op_out) *op_out = json_string_value(json_object_get(s->found, "op"));
    return json_string_value(json_object_get(s->found, "answer"));
}

static bool fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static bool save_state(SimStore *s, char *err, size_t errlen)
{
    char *tmp = path_in(s, "state.json.tmp");
    char *dst = path_in(s, "state.json");
    char *text = json_dumps(s->state, JSON_COMPACT);
    bool ok = false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && text) {
        ok = write_all(fd, text, strlen(text)) && write_all(fd, "\n", 1) && fsync(fd) == 0;
        ok = (close(fd) == 0) && ok;
        fd = -1;
        ok = ok && rename(tmp, dst) == 0 && fsync_dir(s->dir);
    }
    if (!ok) snprintf(err, errlen, "cannot write host state: %s", strerror(errno));
    if (fd >= 0) close(fd);
    free(text);
    free(tmp);
    free(dst);
    return ok;
}

static bool append_line(SimStore *s, const char *file, const char *line, char *err, size_t errlen)
{
    char *path = path_in(s, file);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(path);
    bool ok = fd >= 0 && write_all(fd, line, strlen(line)) && fsync(fd) == 0;
    if (!ok) snprintf(err, errlen, "cannot append to %s: %s", file, strerror(errno));
    if (fd >= 0) close(fd);
    return ok;
}

/* Records in the state that file will hold line at its end once appended. */
static bool plan_append(SimStore *s, const char *file, const char *len_key, const char *last_key, const char *line,
                        char *err, size_t errlen)
{
    char *path = path_in(s, file);
    struct stat sb;
    off_t size = 0;
    if (stat(path, &sb) == 0) {
        size = sb.st_size;
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "cannot stat %s: %s", file, strerror(errno));
        free(path);
        return false;
    }
    free(path);
    json_object_set_new(s->state, len_key, json_integer((json_int_t)size + (json_int_t)strlen(line)));
    json_object_set_new(s->state, last_key, json_string(line));
    return true;
}

bool sim_store_commit(SimStore *s, const char *op, const char *key, const char *answer_line, const char *effect_lines,
                      char *err, size_t errlen)
{
    char *aline = NULL;
    bool ok = true;
    if (key && answer_line) {
        json_t *a = json_pack("{s:s, s:s, s:s}", "key", key, "op", op, "answer", answer_line);
        aline = sim_dump_line(a);
        json_decref(a);
        ok = aline && plan_append(s, "answers.jsonl", "answers_len", "last_answer", aline, err, errlen);
    }
    /* Several effect lines are one chunk: appended, and repaired, together. */
    if (ok && effect_lines)
        ok = plan_append(s, "effects.jsonl", "effects_len", "last_effect", effect_lines, err, errlen);
    ok = ok && save_state(s, err, errlen);
    /* Committed: from here a crash is repaired by the next sim_store_open. */
    if (ok && effect_lines) ok = append_line(s, "effects.jsonl", effect_lines, err, errlen);
    if (ok && aline) ok = append_line(s, "answers.jsonl", aline, err, errlen);
    free(aline);
    return ok;
}

void sim_store_close(SimStore *s)
{
    if (!s || !s->dir) return;              /* zeroed or never opened */
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    json_decref(s->state);
    json_decref(s->found);
    free(s->dir);
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
}
