/* Tests of hvdeploy-simhost's two flavours per call (contract §6a): aether-v
 * point by point as aether-v-agent.md describes Main-NewProtocol.ps1 (no
 * agent.hello, keys ignored, duplicate names, repeated attach,
 * OPERATION_ERROR with exit 0, the stack trace in logs, Write-Host lines
 * before the JSON line, optional keys omitted), hvdeploy's capabilities
 * (agent.hello, vm.find with the job from the Notes, host.resources),
 * effects with vm_name, non-ASCII names, and fault injection in both. The
 * simhost runs as a child with pipes, so its raw stdout, stderr and exit
 * status are seen as a worker would see them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"

extern char **environ;
static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hvd-simflav-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char *rm = hvd_xasprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(rm);
}

TestSuite(flavor, .init = setup, .fini = teardown);

typedef struct {
    char *out, *err;
    int status; /* exit status, or 128 + signal */
} Run;

static char *slurp(int fd)
{
    HvdBuf b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) hvd_buf_append(&b, chunk, (size_t)n);
    close(fd);
    return hvd_buf_steal(&b);
}

/* Runs the simhost with --state-dir and the space-separated extra args,
 * input on stdin. */
static Run run_sim(const char *args, const char *input)
{
    char *bin = hvd_xasprintf("%s/hvdeploy-simhost", HVD_BIN_DIR);
    char *argv[16] = {bin, "--state-dir", dir};
    int argc = 3;
    char *copy = hvd_xstrdup(args ? args : "");
    for (char *t = strtok(copy, " "); t && argc < 15; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    int in[2], out[2], err[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0 && pipe(err) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    for (int i = 0; i < 2; i++) {
        posix_spawn_file_actions_addclose(&fa, in[i]);
        posix_spawn_file_actions_addclose(&fa, out[i]);
        posix_spawn_file_actions_addclose(&fa, err[i]);
    }
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    size_t len = strlen(input);
    cr_assert_eq(write(in[1], input, len), (ssize_t)len);
    close(in[1]);
    Run r = {.out = slurp(out[0])};
    r.err = slurp(err[0]);
    int st;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    free(copy);
    free(bin);
    return r;
}

static void run_free(Run *r)
{
    free(r->out);
    free(r->err);
}

/* The JobRequest line; meta is extra metadata JSON members (may be ""). */
static char *request(const char *op, const char *spec, const char *key, const char *meta)
{
    return hvd_xasprintf("{\"operation\":\"%s\",\"resource_spec\":%s,\"correlation_id\":\"corr-1\",\"metadata\":"
                         "{\"host\":\"hv01\",\"job_id\":\"job-7\",\"attempt\":1%s%s%s%s%s}}\n",
                         op, spec, key ? ",\"idempotency_key\":\"" : "", key ? key : "", key ? "\"" : "",
                         meta && *meta ? "," : "", meta ? meta : "");
}

/* The answer: the last stdout line, which must be a JSON object. */
static json_t *answer_of(const Run *r)
{
    const char *end = r->out + strlen(r->out);
    cr_assert(end > r->out && end[-1] == '\n', "no answer line; stdout '%s' stderr '%s'", r->out, r->err);
    const char *start = end - 1;
    while (start > r->out && start[-1] != '\n') start--;
    json_error_t je;
    json_t *j = json_loadb(start, (size_t)(end - start), 0, &je);
    cr_assert_not_null(j, "last line is not JSON: %s (%s)", start, je.text);
    return j;
}

/* One call; returns the answer (status 0 asserted). */
static json_t *call(const char *args, const char *op, const char *spec, const char *key, const char *meta)
{
    char *req = request(op, spec, key, meta);
    Run r = run_sim(args, req);
    cr_assert_eq(r.status, 0, "%s exited %d: %s", op, r.status, r.err);
    json_t *a = answer_of(&r);
    run_free(&r);
    free(req);
    return a;
}

static const char *str(json_t *j, const char *path)
{
    /* "data.vm_id" style */
    char key[128];
    const char *dot;
    while ((dot = strchr(path, '.')) != NULL) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        j = json_object_get(j, key);
        path = dot + 1;
    }
    return json_string_value(json_object_get(j, path));
}

static void assert_success(json_t *a)
{
    cr_assert_str_eq(str(a, "status"), "success", "answer: %s", json_dumps(a, 0));
}

/* effects.jsonl as a list; each line must carry op, idempotency_key, vm_id, vm_name, at. */
static json_t *effects(void)
{
    char *p = hvd_xasprintf("%s/hv01/effects.jsonl", dir);
    FILE *f = fopen(p, "r");
    free(p);
    json_t *all = json_array();
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        json_t *e = json_loads(line, 0, NULL);
        cr_assert_not_null(e, "bad effects line %s", line);
        static const char *const KEYS[] = {"op", "idempotency_key", "vm_id", "vm_name", "at"};
        for (size_t i = 0; i < 5; i++) cr_assert(json_object_get(e, KEYS[i]), "effect lacks %s: %s", KEYS[i], line);
        json_array_append_new(all, e);
    }
    if (f) fclose(f);
    return all;
}

static size_t count_effects(const char *op)
{
    json_t *all = effects();
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(all, i, e) n += strcmp(str(e, "op"), op) == 0;
    json_decref(all);
    return n;
}

#define AV "--flavor aether-v"
#define VM_SPEC(name) "{\"vm_name\":\"" name "\",\"gb_ram\":2,\"cpu_cores\":1,\"storage_class\":\"fast-ssd\"}"

static char *create_vm(const char *args, const char *spec, const char *key)
{
    json_t *a = call(args, "vm.create", spec, key, "");
    assert_success(a);
    char *id = hvd_xstrdup(str(a, "data.vm_id"));
    json_decref(a);
    return id;
}

/* ---- aether-v, point by point ---- */

Test(flavor, aether_has_no_agent_hello_and_exits_0)
{
    char *req = request("agent.hello", "{}", NULL, "");
    Run r = run_sim(AV, req);
    cr_assert_eq(r.status, 0);
    json_t *a = answer_of(&r);
    cr_assert_str_eq(str(a, "status"), "error");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert_str_eq(str(a, "message"), "Operation error: Unsupported operation: agent.hello");
    cr_assert_str_eq(str(a, "data.error_type"), "RuntimeException");
    json_decref(a);
    run_free(&r);
    free(req);
    /* vm.find and host.resources are hvdeploy's too. */
    a = call(AV, "vm.find", "{\"vm_name\":\"x\"}", NULL, "");
    cr_assert_str_eq(str(a, "message"), "Operation error: Unsupported operation: vm.find");
    json_decref(a);
    a = call(AV, "host.resources", "{}", NULL, "");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    json_decref(a);
}

Test(flavor, aether_ignores_keys_a_repeated_vm_create_makes_a_second_vm)
{
    char *first = create_vm(AV, VM_SPEC("dup-01"), "job-1:vm.create");
    json_t *a = call(AV, "vm.create", VM_SPEC("dup-01"), "job-1:vm.create", "");
    assert_success(a);
    /* $vm = Get-VM -Name returns both VMs; $vm.Id.ToString() of the array. */
    cr_assert_str_eq(str(a, "data.vm_id"), "System.Object[]");
    json_decref(a);
    json_t *all = effects();
    cr_assert_eq(json_array_size(all), 2, "two effects for one key");
    for (size_t i = 0; i < 2; i++) {
        cr_assert_str_eq(str(json_array_get(all, i), "idempotency_key"), "job-1:vm.create");
        cr_assert_str_eq(str(json_array_get(all, i), "vm_name"), "dup-01");
    }
    cr_assert_str_eq(str(json_array_get(all, 0), "vm_id"), first);
    cr_assert_str_neq(str(json_array_get(all, 1), "vm_id"), first, "the second effect is another VM");
    json_decref(all);
    free(first);
}

Test(flavor, aether_allows_duplicate_names_and_vm_find_sees_both)
{
    free(create_vm(AV, VM_SPEC("web-01"), "j1:vm.create"));
    free(create_vm(AV, VM_SPEC("WEB-01"), "j2:vm.create")); /* names compare case-insensitively */
    json_t *a = call(NULL, "vm.find", "{\"vm_name\":\"Web-01\",\"job_id\":\"j1\"}", NULL, "");
    assert_success(a);
    json_t *vms = json_object_get(json_object_get(a, "data"), "vms");
    cr_assert_eq(json_array_size(vms), 2, "hvdeploy's vm.find lists both: %s", json_dumps(a, 0));
    cr_assert(json_is_null(json_object_get(json_array_get(vms, 0), "job_id")), "Main-NewProtocol.ps1 stamps no Notes");
    json_decref(a);
    /* hvdeploy's shim refuses a name in use. */
    a = call(NULL, "vm.create", VM_SPEC("web-01"), "j3:vm.create", "");
    cr_assert_str_eq(str(a, "message"), "Operation error: A VM named 'web-01' already exists on this host");
    json_decref(a);
    cr_assert_eq(count_effects("vm.create"), 2);
}

Test(flavor, aether_repeated_disk_and_nic_create_attach_again)
{
    char *vm = create_vm(AV, VM_SPEC("att-01"), "j:vm.create");
    char *dspec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"Ubuntu 22.04\"}", vm);
    json_t *d1 = call(AV, "disk.create", dspec, "j:disk.create", "");
    json_t *d2 = call(AV, "disk.create", dspec, "j:disk.create", "");
    assert_success(d1);
    assert_success(d2);
    cr_assert_str_neq(str(d1, "data.disk_path"), str(d2, "data.disk_path"), "a second disk");
    cr_assert_null(json_object_get(json_object_get(d1, "data"), "controller_number"), "the script's data only");
    char *nspec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"Production\",\"adapter_name\":\"eth0\"}", vm);
    json_t *n1 = call(AV, "nic.create", nspec, "j:nic.create", "");
    json_t *n2 = call(AV, "nic.create", nspec, "j:nic.create", "");
    assert_success(n1);
    assert_success(n2);
    /* A dynamic MAC is assigned at the VM's first start. */
    cr_assert_str_eq(str(n1, "data.mac_address"), "000000000000");
    /* Get-VMNetworkAdapter -Name eth0 now returns two adapters. */
    json_t *ids = json_object_get(json_object_get(n2, "data"), "nic_id");
    cr_assert(json_is_array(ids) && json_array_size(ids) == 2, "nic_id of two adapters: %s", json_dumps(n2, 0));
    cr_assert_eq(count_effects("disk.create"), 2);
    cr_assert_eq(count_effects("nic.create"), 2);
    json_t *f = call(NULL, "vm.find", "{\"vm_name\":\"att-01\"}", NULL, "");
    json_t *found = json_array_get(json_object_get(json_object_get(f, "data"), "vms"), 0);
    cr_assert_eq(json_array_size(json_object_get(found, "disks")), 2);
    cr_assert_eq(json_array_size(json_object_get(found, "nics")), 2);
    json_decref(f);
    /* vm.initialize starts the VM: the adapters get their MACs. */
    char *ispec = hvd_xasprintf("{\"vm_id\":\"%s\",\"vm_name\":\"att-01\",\"guest_la_uid\":\"admin\","
                                "\"guest_la_pw\":\"pw\"}",
                                vm);
    json_t *i = call(AV, "vm.initialize", ispec, "j:vm.initialize", "");
    assert_success(i);
    cr_assert_not_null(str(i, "data.provisioning_iso_path"));
    json_decref(i);
    f = call(NULL, "vm.find", "{\"vm_name\":\"att-01\"}", NULL, "");
    found = json_array_get(json_object_get(json_object_get(f, "data"), "vms"), 0);
    const char *mac = str(json_array_get(json_object_get(found, "nics"), 0), "mac_address");
    cr_assert(mac && strncmp(mac, "00155D", 6) == 0 && strlen(mac) == 12, "MAC after start: %s", mac);
    /* Sent again, vm.initialize waits for a guest that has provisioned already. */
    i = call(AV, "vm.initialize", ispec, "j:vm.initialize", "");
    cr_assert_str_eq(str(i, "code"), "OPERATION_ERROR");
    cr_assert(strstr(str(i, "message"), "did not reach 'waitingforaeskey' within 300 seconds"));
    json_decref(i);
    json_decref(f);
    json_decref(d1);
    json_decref(d2);
    json_decref(n1);
    json_decref(n2);
    free(ispec);
    free(nspec);
    free(dspec);
    free(vm);
}

Test(flavor, aether_blank_disks_of_one_second_collide)
{
    char *vm = create_vm(AV, VM_SPEC("blank-01"), "j:vm.create");
    char *spec = hvd_xasprintf("{\"vm_id\":\"%s\",\"disk_size_gb\":10}", vm);
    /* The blank disk's file name has a one-second timestamp: New-VHD fails
     * on the second of two calls within one second. Three tries. */
    bool collided = false;
    for (int t = 0; t < 3 && !collided; t++) {
        json_t *a = call(AV, "disk.create", spec, "k", "");
        json_t *b = call(AV, "disk.create", spec, "k", "");
        assert_success(a);
        if (strcmp(str(b, "status"), "error") == 0) {
            cr_assert_str_eq(str(b, "code"), "OPERATION_ERROR");
            cr_assert(strstr(str(b, "message"), "The file exists. (0x80070050)"), "%s", str(b, "message"));
            cr_assert_str_eq(str(b, "data.error_type"), "VirtualizationException");
            collided = true;
        }
        json_decref(a);
        json_decref(b);
    }
    cr_assert(collided, "three pairs of calls never fell in one second");
    free(spec);
    free(vm);
}

Test(flavor, aether_every_failure_is_operation_error_exit_0_with_a_stack_trace)
{
    char *req =
        request("vm.create", "{\"vm_name\":\"f\",\"gb_ram\":1,\"cpu_cores\":1,\"storage_class\":\"gold\"}", "k", "");
    Run r = run_sim(AV, req);
    cr_assert_eq(r.status, 0, "exit 0 on failure");
    json_t *a = answer_of(&r);
    cr_assert_str_eq(str(a, "status"), "error");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert_str_eq(str(a, "message"), "Operation error: Storage class 'gold' not found in host configuration");
    cr_assert_str_eq(str(a, "correlation_id"), "corr-1");
    json_t *logs = json_object_get(a, "logs");
    cr_assert_eq(json_array_size(logs), 1, "the logs are the stack trace only");
    const char *trace = json_string_value(json_array_get(logs, 0));
    cr_assert(strstr(trace, "at <ScriptBlock><End>, C:\\Program Files\\Aether-V\\Main-NewProtocol.ps1: line "), "%s",
              trace);
    cr_assert(strstr(trace, "\r\nat <ScriptBlock>, <No file>: line 1"), "%s", trace);
    json_decref(a);
    run_free(&r);
    free(req);
    /* A VM that is not there, a malformed envelope: the same code. */
    a = call(AV, "disk.create", "{\"vm_id\":\"0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f\"}", "k2", "");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert(strstr(str(a, "message"), "not found on this host"));
    json_decref(a);
    r = run_sim(AV, "{not json\n");
    cr_assert_eq(r.status, 0);
    a = answer_of(&r);
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert(strstr(json_string_value(json_array_get(json_object_get(a, "logs"), 0)), "at Read-JobEnvelope"));
    cr_assert_null(json_object_get(a, "correlation_id"), "omitted when there is none");
    json_decref(a);
    run_free(&r);
    cr_assert_eq(count_effects("vm.create"), 0);
}

Test(flavor, aether_prints_write_host_lines_before_one_compressed_json_line)
{
    char *req = request("vm.create", VM_SPEC("noisy-01"), "k", "");
    Run r = run_sim(AV, req);
    cr_assert_eq(r.status, 0);
    /* Lines: Write-Host ones, then exactly one JSON line, last. */
    int lines = 0, json_lines = 0;
    for (char *p = r.out, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        lines++;
        if (*p == '{') json_lines++;
        if (*p != '{') cr_assert_eq(json_lines, 0, "a non-JSON line after the JSON line");
    }
    cr_assert_eq(json_lines, 1);
    cr_assert_geq(lines, 3, "stdout: %s", r.out);
    cr_assert(strncmp(r.out, "Created VM base path: C:\\ClusterStorage\\Volume1\\Storage\\noisy-01\n", 65) == 0, "%s",
              r.out);
    cr_assert(strstr(r.out, "VM 'noisy-01' created successfully (not started - will be started during "
                            "initialization)\n"));
    json_decref(answer_of(&r));
    run_free(&r);
    /* The hvdeploy flavour keeps stdout for the answer: the lines go to stderr. */
    free(req);
    req = request("vm.create", VM_SPEC("noisy-02"), "k2", "");
    r = run_sim(NULL, req);
    cr_assert_eq(r.out[0], '{', "stdout: %s", r.out);
    cr_assert(strstr(r.err, "Created VM base path"), "stderr: %s", r.err);
    run_free(&r);
    free(req);
}

Test(flavor, aether_omits_empty_optional_keys)
{
    Run r = run_sim(AV, "{\"operation\":\"noop-test\",\"resource_spec\":{}}\n");
    json_t *a = answer_of(&r);
    cr_assert_eq(json_object_size(a), 4, "status, message, data, logs: %s", r.out);
    cr_assert_null(json_object_get(a, "code"));
    cr_assert_null(json_object_get(a, "correlation_id"));
    cr_assert_not_null(json_object_get(a, "logs"));
    json_decref(a);
    run_free(&r);
    json_t *b = call(AV, "noop-test", "{}", NULL, "");
    cr_assert_str_eq(str(b, "correlation_id"), "corr-1", "present when given");
    cr_assert_null(json_object_get(b, "code"));
    json_decref(b);
    /* The hvdeploy flavour always has all six. */
    b = call(NULL, "noop-test", "{}", NULL, "");
    cr_assert(json_is_null(json_object_get(b, "code")));
    json_decref(b);
}

Test(flavor, aether_vm_delete_by_name_removes_every_vm_of_the_name)
{
    free(create_vm(AV, VM_SPEC("twin"), "a"));
    free(create_vm(AV, VM_SPEC("twin"), "b"));
    free(create_vm(AV, VM_SPEC("other"), "c"));
    json_t *a = call(AV, "vm.delete", "{\"vm_name\":\"twin\",\"delete_disks\":true}", "d", "");
    assert_success(a);
    cr_assert(json_is_null(json_object_get(json_object_get(a, "data"), "vm_id")), "echoes the spec: no vm_id");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(a, "data"), "disk_count")), 0);
    json_decref(a);
    cr_assert_eq(count_effects("vm.delete"), 2, "one effect per VM removed");
    a = call(NULL, "vm.find", "{\"vm_name\":\"twin\"}", NULL, "");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(a, "data"), "vms")), 0);
    json_decref(a);
    a = call(AV, "vm.delete", "{\"vm_id\":\"0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f\"}", "e", "");
    cr_assert_str_eq(str(a, "message"), "Operation error: VM not found: ", "the script names vm_name, empty here");
    json_decref(a);
}

/* ---- hvdeploy's capabilities ---- */

Test(flavor, hvdeploy_agent_hello)
{
    json_t *a = call(NULL, "agent.hello", "{}", NULL, "");
    assert_success(a);
    cr_assert_str_eq(str(a, "data.agent"), "hvdeploy-simhost 1.1");
    json_t *caps = json_object_get(json_object_get(a, "data"), "capabilities");
    cr_assert_str_eq(json_dumps(caps, JSON_COMPACT), "[\"idempotency\",\"probe\",\"session\",\"output\"]");
    json_decref(a);
    /* No host needed, nothing kept. */
    Run r = run_sim(NULL, "{\"operation\":\"agent.hello\",\"resource_spec\":{}}\n");
    a = answer_of(&r);
    assert_success(a);
    json_decref(a);
    run_free(&r);
    /* --null answers it too, without output. */
    char *bin = hvd_xasprintf(
        "echo '{\"operation\":\"agent.hello\",\"resource_spec\":{}}' | %s/hvdeploy-simhost --null", HVD_BIN_DIR);
    FILE *p = popen(bin, "r");
    char line[1024] = "";
    cr_assert_not_null(fgets(line, sizeof line, p));
    pclose(p);
    cr_assert(strstr(line, "\"capabilities\":[\"idempotency\",\"probe\",\"session\"]"), "%s", line);
    free(bin);
}

Test(flavor, hvdeploy_vm_find_reads_the_job_from_the_notes)
{
    char *id = create_vm(NULL, VM_SPEC("find-01"), "job-7:vm.create");
    char *dspec = hvd_xasprintf("{\"vm_id\":\"%s\",\"image_name\":\"Rocky Linux 9\"}", id);
    json_t *d = call(NULL, "disk.create", dspec, "job-7:disk.create", "");
    char *nspec = hvd_xasprintf("{\"vm_id\":\"%s\",\"network\":\"Management\"}", id);
    json_t *n = call(NULL, "nic.create", nspec, "job-7:nic.create", "");
    json_t *a = call(NULL, "vm.find", "{\"vm_name\":\"FIND-01\",\"job_id\":\"job-7\"}", NULL, "");
    assert_success(a);
    json_t *vms = json_object_get(json_object_get(a, "data"), "vms");
    cr_assert_eq(json_array_size(vms), 1);
    json_t *vm = json_array_get(vms, 0);
    cr_assert_str_eq(str(vm, "vm_id"), id);
    cr_assert_str_eq(str(vm, "vm_name"), "find-01");
    cr_assert_str_eq(str(vm, "job_id"), "job-7", "from the Notes vm.create stamped");
    json_t *disk = json_array_get(json_object_get(vm, "disks"), 0);
    cr_assert_str_eq(str(disk, "disk_id"), str(d, "data.disk_id"));
    cr_assert_str_eq(str(disk, "disk_path"), str(d, "data.disk_path"));
    json_t *nic = json_array_get(json_object_get(vm, "nics"), 0);
    cr_assert_str_eq(str(nic, "nic_id"), str(n, "data.nic_id"));
    cr_assert_str_eq(str(nic, "mac_address"), str(n, "data.mac_address"));
    cr_assert_str_eq(str(nic, "adapter_name"), "Network Adapter 1");
    /* The Notes themselves. */
    char *sp = hvd_xasprintf("%s/hv01/state.json", dir);
    json_t *st = json_load_file(sp, 0, NULL);
    cr_assert_str_eq(str(json_array_get(json_object_get(st, "vms"), 0), "notes"), "hvdeploy:job-7");
    json_decref(st);
    json_decref(a);
    /* Nothing of that name, and a missing name. */
    a = call(NULL, "vm.find", "{\"vm_name\":\"none\"}", NULL, "");
    assert_success(a);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(a, "data"), "vms")), 0);
    json_decref(a);
    a = call(NULL, "vm.find", "{}", NULL, "");
    cr_assert_str_eq(str(a, "message"), "Operation error: vm_name is required for vm.find");
    json_decref(a);
    cr_assert_eq(count_effects("vm.find"), 0, "a probe has no effect");
    json_decref(d);
    json_decref(n);
    free(sp);
    free(nspec);
    free(dspec);
    free(id);
}

Test(flavor, hvdeploy_host_resources_is_the_hostresources_document)
{
    json_t *a = call(NULL, "host.resources", "{}", NULL, "");
    assert_success(a);
    json_t *d = json_object_get(a, "data");
    cr_assert_str_eq(str(d, "schema_name"), "hostresources");
    cr_assert_eq(json_array_size(json_object_get(d, "storage_classes")), 2);
    cr_assert_str_eq(str(json_array_get(json_object_get(d, "networks"), 0), "name"), "Production");
    cr_assert_eq(json_array_size(json_object_get(d, "golden_images")), 4);
    json_decref(a);
    /* A real file (no image list): its content, with the images listed. */
    char *rp = hvd_xasprintf("%s/res.json", dir);
    FILE *f = fopen(rp, "w");
    fputs(
        "{\"version\":1,\"schema_name\":\"hostresources\",\"storage_classes\":[{\"name\":\"gold\",\"path\":\"D:\\\\S\"}],"
        "\"networks\":[{\"name\":\"Lab\",\"model\":\"vlan\",\"configuration\":{\"virtual_switch\":\"SW\"}}],"
        "\"virtual_machines_path\":\"D:\\\\VMs\"}",
        f);
    fclose(f);
    char *args = hvd_xasprintf("--resources %s", rp);
    a = call(args, "host.resources", "{}", NULL, "");
    assert_success(a);
    d = json_object_get(a, "data");
    cr_assert_str_eq(str(json_array_get(json_object_get(d, "storage_classes"), 0), "name"), "gold");
    cr_assert_str_eq(str(json_array_get(json_object_get(d, "networks"), 0), "name"), "Lab");
    cr_assert_eq(json_array_size(json_object_get(d, "golden_images")), 4);
    json_decref(a);
    free(args);
    free(rp);
}

Test(flavor, effects_carry_the_vm_name_in_both_flavours)
{
    char *id = create_vm(NULL, VM_SPEC("eff-01"), "e:vm.create");
    char *dspec = hvd_xasprintf("{\"vm_id\":\"%s\"}", id);
    json_decref(call(AV, "disk.create", dspec, "e:disk.create", ""));
    char *del = hvd_xasprintf("{\"vm_id\":\"%s\",\"vm_name\":\"eff-01\",\"delete_disks\":true}", id);
    json_decref(call(NULL, "vm.delete", del, "e:vm.delete", ""));
    json_t *all = effects();
    cr_assert_eq(json_array_size(all), 3);
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        cr_assert_str_eq(str(e, "vm_name"), "eff-01");
        cr_assert_str_eq(str(e, "vm_id"), id);
    }
    json_decref(all);
    free(del);
    free(dspec);
    free(id);
}

/* ---- UTF-8 ---- */

Test(flavor, non_ascii_names_round_trip_in_both_flavours)
{
    const char *flavors[] = {NULL, AV};
    for (int f = 0; f < 2; f++) {
        const char *name = f == 0 ? "Ünïcödé-ВМ-01" : "Ünïcödé-ВМ-02";
        char *spec = hvd_xasprintf("{\"vm_name\":\"%s\",\"gb_ram\":1,\"cpu_cores\":1}", name);
        json_t *a = call(flavors[f], "vm.create", spec, name, "");
        assert_success(a);
        cr_assert_str_eq(str(a, "data.vm_name"), name);
        char *msg = hvd_xasprintf("VM '%s' created successfully", name);
        cr_assert_str_eq(str(a, "message"), msg);
        json_decref(a);
        free(msg);
        free(spec);
    }
    /* Found with other case (PowerShell's -eq folds Unicode case). */
    json_t *a = call(NULL, "vm.find", "{\"vm_name\":\"üNÏCÖDÉ-вм-02\"}", NULL, "");
    json_t *vm = json_array_get(json_object_get(json_object_get(a, "data"), "vms"), 0);
    cr_assert_not_null(vm, "%s", json_dumps(a, 0));
    cr_assert_str_eq(str(vm, "vm_name"), "Ünïcödé-ВМ-02");
    json_decref(a);
    json_t *all = effects();
    cr_assert_str_eq(str(json_array_get(all, 0), "vm_name"), "Ünïcödé-ВМ-01");
    cr_assert_str_eq(str(json_array_get(all, 1), "vm_name"), "Ünïcödé-ВМ-02");
    cr_assert_str_eq(str(json_array_get(all, 1), "idempotency_key"), "Ünïcödé-ВМ-02");
    json_decref(all);
    /* 100 characters are allowed (in two bytes each), 101 are not. */
    HvdBuf n = {0};
    for (int i = 0; i < 100; i++) hvd_buf_puts(&n, "é");
    char *spec = hvd_xasprintf("{\"vm_name\":\"%s\",\"gb_ram\":1,\"cpu_cores\":1}", n.data);
    a = call(NULL, "vm.create", spec, "long", "");
    assert_success(a);
    json_decref(a);
    free(spec);
    hvd_buf_puts(&n, "é");
    spec = hvd_xasprintf("{\"vm_name\":\"%s\",\"gb_ram\":1,\"cpu_cores\":1}", n.data);
    a = call(NULL, "vm.create", spec, "longer", "");
    cr_assert(strstr(str(a, "message"), "longer than 100 characters"));
    json_decref(a);
    free(spec);
    hvd_buf_free(&n);
    /* Invalid UTF-8 is refused as the envelope it is. */
    Run r = run_sim(NULL, "{\"operation\":\"noop-test\",\"resource_spec\":{\"test_field\":\"\xff\xfe\"}}\n");
    a = answer_of(&r);
    cr_assert(strstr(str(a, "message"), "Failed to parse JSON envelope"), "%s", str(a, "message"));
    json_decref(a);
    run_free(&r);
}

/* ---- faults in both flavours ---- */

Test(flavor, aether_injected_failures_are_operation_error_with_a_realistic_message)
{
    setenv("HVD_SIM_FAIL", "vm.create=1", 1);
    char *req = request("vm.create", VM_SPEC("inj-01"), "k", "");
    Run r = run_sim(AV, req);
    cr_assert_eq(r.status, 0);
    json_t *a = answer_of(&r);
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert(strstr(str(a, "message"), "Failed to create VM 'inj-01': "), "%s", str(a, "message"));
    cr_assert_null(strstr(str(a, "message"), "Injected"), "worded as the host would: %s", str(a, "message"));
    cr_assert(strstr(json_string_value(json_array_get(json_object_get(a, "logs"), 0)),
                     "at Invoke-ProvisioningRegisterVm, C:\\Program Files\\Aether-V\\Provisioning.RegisterVM.ps1"));
    cr_assert(strstr(r.err, "injected"), "stderr says it was injected: %s", r.err);
    json_decref(a);
    run_free(&r);
    /* Transient conditions: the text of each kind, and one drawn for TRANSIENT. */
    setenv("HVD_SIM_FAIL", "vm.create=1:TRANSIENT/file-lock", 1);
    a = call(AV, "vm.create", VM_SPEC("inj-01"), "k", "");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR");
    cr_assert_str_eq(str(a, "message"), "Operation error: Failed to create VM 'inj-01': The process cannot access the "
                                        "file because it is being used by another process.");
    json_decref(a);
    setenv("HVD_SIM_FAIL", "disk.create=1:TRANSIENT/file-lock", 1);
    a = call(AV, "disk.create", "{\"vm_id\":\"x\"}", "k", "");
    cr_assert_str_eq(
        str(a, "message"),
        "Operation error: The process cannot access the file because it is being used by another process.");
    cr_assert_str_eq(str(a, "data.error_type"), "IOException");
    json_decref(a);
    setenv("HVD_SIM_FAIL", "noop-test=1:HOST_BUSY", 1);
    a = call(AV, "noop-test", "{}", "k", "");
    cr_assert_str_eq(str(a, "code"), "OPERATION_ERROR", "no code but OPERATION_ERROR");
    cr_assert(strstr(str(a, "message"), "while the object is in its current state"));
    json_decref(a);
    setenv("HVD_SIM_FAIL", "noop-test=1:TRANSIENT", 1);
    int kinds = 0;
    const char *seen[8] = {0};
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        a = call(AV, "noop-test", "{}", key, "");
        const char *m = str(a, "message");
        bool known = strstr(m, "being used by another process") || strstr(m, "in its current state") ||
                     strstr(m, "WS-Management service") || strstr(m, "Insufficient system resources") ||
                     strstr(m, "timeout period expired");
        cr_assert(known, "unexpected transient text: %s", m);
        bool dup = false;
        for (int k = 0; k < kinds; k++) dup |= strcmp(seen[k], m) == 0;
        if (!dup && kinds < 8) seen[kinds++] = strdup(m);
        json_decref(a);
    }
    cr_assert_geq(kinds, 3, "the draw picks among the kinds");
    setenv("HVD_SIM_FAIL", "noop-test=1:TRANSIENT/solar-flare", 1);
    a = call(AV, "noop-test", "{}", "k", "");
    cr_assert_str_eq(str(a, "code"), "SIM_CONFIG_ERROR");
    json_decref(a);
    unsetenv("HVD_SIM_FAIL");
    cr_assert_eq(count_effects("vm.create"), 0);
    free(req);
}

Test(flavor, hvdeploy_injected_transient_keeps_its_code)
{
    setenv("HVD_SIM_FAIL", "vm.create=1:TRANSIENT/vm-state", 1);
    json_t *a = call(NULL, "vm.create", VM_SPEC("t-01"), "k", "");
    cr_assert_str_eq(str(a, "code"), "TRANSIENT");
    cr_assert_str_eq(str(a, "message"), "Operation error: Injected failure (HVD_SIM_FAIL) in vm.create: The "
                                        "operation cannot be performed while the object is in its current state.");
    json_decref(a);
    setenv("HVD_SIM_FAIL", "vm.create=1:QUOTA_EXCEEDED", 1);
    a = call(NULL, "vm.create", VM_SPEC("t-01"), "k", "");
    cr_assert_str_eq(str(a, "code"), "QUOTA_EXCEEDED");
    cr_assert_str_eq(str(a, "message"), "Operation error: Injected failure (HVD_SIM_FAIL) in vm.create");
    json_decref(a);
    unsetenv("HVD_SIM_FAIL");
}

Test(flavor, aether_crash_hang_and_latency)
{
    setenv("HVD_SIM_CRASH", "vm.create=1:after", 1);
    char *req = request("vm.create", VM_SPEC("c-01"), "k", "");
    Run r = run_sim(AV, req);
    cr_assert_neq(r.status, 0);
    cr_assert_null(strchr(r.out, '{'), "no answer: %s", r.out);
    run_free(&r);
    unsetenv("HVD_SIM_CRASH");
    cr_assert_eq(count_effects("vm.create"), 1, "the effect happened");
    /* Sent again, the same key makes a second VM. */
    json_decref(call(AV, "vm.create", VM_SPEC("c-01"), "k", ""));
    cr_assert_eq(count_effects("vm.create"), 2);
    setenv("HVD_SIM_CRASH", "vm.create=1:before", 1);
    r = run_sim(AV, req);
    cr_assert_neq(r.status, 0);
    run_free(&r);
    unsetenv("HVD_SIM_CRASH");
    cr_assert_eq(count_effects("vm.create"), 2);
    setenv("HVD_SIM_LATENCY_MS", "noop-test=200", 1);
    int64_t t0 = (int64_t)time(NULL);
    json_decref(call(AV, "noop-test", "{}", NULL, ""));
    cr_assert_leq((int64_t)time(NULL) - t0, 2);
    unsetenv("HVD_SIM_LATENCY_MS");
    free(req);
}

Test(flavor, a_bad_flavor_is_a_usage_error)
{
    Run r = run_sim("--flavor celery", "");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--flavor must be hvdeploy or aether-v"));
    run_free(&r);
}

Test(flavor, hvdeploy_maps_transient_texts_as_the_shim_does)
{
    setenv("HVD_SIM_FAIL", "vm.create=1:OPERATION_ERROR/file-lock", 1);
    json_t *a = call(NULL, "vm.create", VM_SPEC("m-01"), "k", "");
    cr_assert_str_eq(str(a, "code"), "TRANSIENT");
    json_decref(a);
    setenv("HVD_SIM_FAIL", "vm.create=1:OPERATION_ERROR/winrm-quota", 1);
    a = call(NULL, "vm.create", VM_SPEC("m-01"), "k", "");
    cr_assert_str_eq(str(a, "code"), "HOST_BUSY");
    json_decref(a);
    unsetenv("HVD_SIM_FAIL");
}

Test(flavor, hvdeploy_adopts_the_vm_of_its_own_job)
{
    /* A VM of this name stamped by this job but not in the journal under
     * the stage's key (as when the shim died between New-VM and its journal
     * entry): the stage's vm.create adopts it. */
    char *id = create_vm(NULL, VM_SPEC("own-01"), "not-the-stage-key");
    json_t *a = call(NULL, "vm.create", VM_SPEC("own-01"), "job-7:vm.create", "");
    assert_success(a);
    cr_assert_str_eq(str(a, "data.vm_id"), id);
    json_decref(a);
    cr_assert_eq(count_effects("vm.create"), 1, "adopted, not made again");
    /* Another key of the same job, or another job, is refused. */
    a = call(NULL, "vm.create", VM_SPEC("own-01"), "job-7:other", "");
    cr_assert_str_eq(str(a, "status"), "error");
    json_decref(a);
    char *req = hvd_xasprintf("{\"operation\":\"vm.create\",\"resource_spec\":%s,\"metadata\":{\"host\":\"hv01\","
                              "\"job_id\":\"job-8\",\"idempotency_key\":\"job-8:vm.create\"}}\n",
                              VM_SPEC("own-01"));
    Run r = run_sim(NULL, req);
    a = answer_of(&r);
    cr_assert_str_eq(str(a, "message"), "Operation error: A VM named 'own-01' already exists on this host");
    json_decref(a);
    run_free(&r);
    free(req);
    free(id);
}
