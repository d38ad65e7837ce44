/* A test agent that follows the protocol but ignores idempotency keys:
 * noop-test echoes the correlation id, unknown operations get an error
 * envelope, vm.create makes a new vm_id on every call, vm.delete succeeds. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

int main(void)
{
    char buf[65536];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(STDIN_FILENO, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    json_t *req = json_loadb(buf, n, 0, NULL);
    const char *op = json_string_value(json_object_get(req, "operation"));
    json_t *corr = json_object_get(req, "correlation_id");
    json_t *env;
    if (op && (strcmp(op, "noop-test") == 0 || strcmp(op, "vm.delete") == 0)) {
        env = json_pack("{s:s, s:s, s:{}, s:n, s:[], s:O?}", "status", "success", "message", "ok", "data", "code",
                        "logs", "correlation_id", corr);
    } else if (op && strcmp(op, "vm.create") == 0) {
        unsigned char b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return 1;
        char id[37];
        snprintf(id, sizeof id, "%02x%02x%02x%02x-%02x%02x-4%01x%02x-8%01x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6] & 15, b[7], b[8] & 15, b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        env = json_pack("{s:s, s:s, s:{s:s}, s:n, s:[], s:O?}", "status", "success", "message", "created", "data",
                        "vm_id", id, "code", "logs", "correlation_id", corr);
    } else {
        env = json_pack("{s:s, s:s, s:{}, s:s, s:[], s:O?}", "status", "error", "message",
                        "Operation error: Unsupported operation", "data", "code", "OPERATION_ERROR", "logs",
                        "correlation_id", corr);
    }
    char *out = json_dumps(env, JSON_COMPACT);
    if (out) puts(out);
    free(out);
    json_decref(env);
    json_decref(req);
    return 0;
}
