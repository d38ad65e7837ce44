/* A fast, well-behaved test agent: reads the request, answers success with
 * the request's operation and correlation id echoed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    char buf[65536];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(STDIN_FILENO, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    json_t *req = json_loadb(buf, n, 0, NULL);
    json_t *env = json_pack("{s:s, s:s, s:{s:O?}, s:n, s:[], s:O?}", "status", "success", "message", "echo", "data",
                            "operation", json_object_get(req, "operation"), "code", "logs", "correlation_id",
                            json_object_get(req, "correlation_id"));
    char *out = json_dumps(env, JSON_COMPACT);
    if (out) puts(out);
    free(out);
    json_decref(env);
    json_decref(req);
    return 0;
}
