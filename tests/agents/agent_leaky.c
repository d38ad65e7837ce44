/* Test agent that misbehaves the ways issue 12 lists, one per mode (argv[1]);
 * every operation it does not misbehave on succeeds with plausible ids, so a
 * whole job can run against it:
 *   leak      vm.initialize fails, echoing the request's guest_la_pw in its
 *             message, its logs and on stderr (as a PowerShell stack trace does)
 *   leaktransient  the same with the retryable code TRANSIENT
 *   cp1252    vm.create fails with its message and stderr in Windows-1252
 *             (not UTF-8), a NUL in its code
 *   longerr   like leak, with the password straddling the start of a stderr
 *             tail of 4096 bytes
 *   wrongcorr vm.create answers success with another request's correlation_id
 *   badvmid   vm.create answers success with vm_id ""
 *   env       every operation succeeds with data.env = its environment */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char GUID[] = "0b5e2c8e-6a1f-4b1e-9c3d-7e2f1a0b9c8d";

static void answer(json_t *env)
{
    char *out = json_dumps(env, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (out) puts(out);
    free(out);
    json_decref(env);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "leak";
    static char buf[1 << 20];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(STDIN_FILENO, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    json_t *req = json_loadb(buf, n, 0, NULL);
    const char *op = json_string_value(json_object_get(req, "operation"));
    const char *corr = json_string_value(json_object_get(req, "correlation_id"));
    const char *pw = json_string_value(json_object_get(json_object_get(req, "resource_spec"), "guest_la_pw"));
    op = op ? op : "";
    json_t *data = json_object();
    if (strcmp(op, "vm.create") == 0) json_object_set_new(data, "vm_id", json_string(GUID));
    if (strcmp(op, "disk.create") == 0) {
        json_object_set_new(data, "disk_id", json_string("disk-1"));
        json_object_set_new(data, "disk_path", json_string("C:/VMs/disk-1.vhdx"));
    }
    if (strcmp(op, "nic.create") == 0) {
        json_object_set_new(data, "nic_id", json_string("nic-1"));
        json_object_set_new(data, "adapter_name", json_string("Network Adapter"));
        json_object_set_new(data, "mac_address", json_string("00-15-5D-01-02-03"));
    }
    if (strcmp(mode, "env") == 0) {
        json_t *e = json_array();
        for (char **p = environ; *p; p++) json_array_append_new(e, json_string(*p));
        json_object_set_new(data, "env", e);
    }

    bool leaky = strcmp(mode, "leak") == 0 || strcmp(mode, "leaktransient") == 0 || strcmp(mode, "longerr") == 0;
    if (leaky && strcmp(op, "vm.initialize") == 0 && pw) {
        if (strcmp(mode, "longerr") == 0) {
            /* the last 4096 bytes of stderr start 3 characters into the password */
            fputs("noise before ", stderr);
            fputs(pw, stderr);
            for (size_t i = 0; i < 4096 - (strlen(pw) - 3); i++) fputc('.', stderr);
        } else {
            fprintf(stderr, "Set-LocalUser : Access is denied.\r\n    + $env:GuestLaPw = '%s'\r\n", pw);
        }
        char msg[512];
        snprintf(msg, sizeof msg, "Set-LocalUser failed: the password %s does not meet the policy", pw);
        char log[512];
        snprintf(log, sizeof log, "$env:GuestLaPw = '%s'", pw);
        const char *code = strcmp(mode, "leaktransient") == 0 ? "TRANSIENT" : "OPERATION_ERROR";
        answer(json_pack("{s:s, s:s, s:s, s:o, s:[s,s], s:s?}", "status", "error", "code", code, "message", msg, "data",
                         data, "logs", "Starting vm.initialize", log, "correlation_id", corr));
        json_decref(req);
        return 0;
    }
    if (strcmp(mode, "cp1252") == 0 && strcmp(op, "vm.create") == 0) {
        fputs("New-VM : \xe9"
              "chec: acc\xe8s refus\xe9 (Windows-1252)\r\n",
              stderr);
        /* written by hand: jansson would refuse to print invalid UTF-8 */
        printf("{\"status\":\"error\",\"code\":\"OPERATION_\\u0000ERROR\",\"message\":\"Acc\xe8s refus\xe9 "
               "\xe0 New-VM\",\"data\":{},\"logs\":[\"\xe9\x63hec\"]}\r\n");
        json_decref(data);
        json_decref(req);
        return 0;
    }
    if (strcmp(op, "vm.create") == 0 && strcmp(mode, "wrongcorr") == 0) corr = "someone-elses-request";
    if (strcmp(op, "vm.create") == 0 && strcmp(mode, "badvmid") == 0)
        json_object_set_new(data, "vm_id", json_string(""));
    answer(json_pack("{s:s, s:s, s:o, s:n, s:[], s:s?}", "status", "success", "message", "done", "data", data, "code",
                     "logs", "correlation_id", corr));
    json_decref(req);
    return 0;
}
