/* How Aether-V's Main-NewProtocol.ps1 words a failure: the PowerShell stack
 * trace that its catch block puts in `logs`, and the messages of injected
 * failures (HVD_SIM_FAIL) in either flavour, including the texts of the
 * transient Hyper-V, WinRM and file-lock conditions that hvdeploy's
 * HVD_AGENT_RETRYABLE_MESSAGES is meant to recognise; and the error envelope
 * of a failed call in either flavour. */
#include "simhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The line of Main-NewProtocol.ps1 (main at b1622da) whose throw an operation's
 * failure comes from; approximate, for a realistic trace. */
static int script_line(const char *op)
{
    static const struct {
        const char *op;
        int line;
    } LINES[] = {
        {"vm.create", 318},  {"vm.delete", 380}, {"disk.create", 470}, {"nic.create", 690}, {"vm.initialize", 860},
        {"noop-test", 1010}, {NULL, 0}};
    for (size_t i = 0; op && LINES[i].op; i++)
        if (strcmp(LINES[i].op, op) == 0) return LINES[i].line;
    return 1040; /* throw "Unsupported operation: ..." */
}

char *sim_aether_stack_trace(const SimCall *c)
{
    char buf[1024];
    size_t n = 0;
    if (c->error_func)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "at %s, %s\\%s: line %d\r\n", c->error_func, SIM_INSTALL_DIR,
                              c->error_file ? c->error_file : "Main-NewProtocol.ps1", c->error_line);
    if (!c->operation) /* the envelope did not parse */
        n += (size_t)snprintf(buf + n, sizeof buf - n, "at Read-JobEnvelope, %s\\Main-NewProtocol.ps1: line 148\r\n",
                              SIM_INSTALL_DIR);
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n,
                 "at <ScriptBlock><End>, %s\\Main-NewProtocol.ps1: line %d\r\nat <ScriptBlock>, <No file>: line 1",
                 SIM_INSTALL_DIR, c->operation ? script_line(c->operation) : 226);
    return strdup(buf);
}

/* Texts of conditions that pass when tried again. Each is what Windows or
 * Hyper-V says (the Win32 message of the HRESULT shown). */
static const struct {
    const char *kind, *text, *error_type;
    const char *shim_code; /* what hvdeploy's shim maps the text to */
} TRANSIENT[] = {
    {"file-lock", "The process cannot access the file because it is being used by another process.", "IOException",
     "TRANSIENT"},
    {"vm-state", "The operation cannot be performed while the object is in its current state.",
     "VirtualizationException", "HOST_BUSY"},
    {"winrm-quota",
     "The WS-Management service cannot process the request. The maximum number of concurrent operations for this "
     "user has been exceeded. Close existing operations for this user, or raise the quota for this user.",
     "PSRemotingTransportException", "HOST_BUSY"},
    {"no-resources", "Insufficient system resources exist to complete the requested service.",
     "VirtualizationException", "HOST_BUSY"},
    {"timeout", "This operation returned because the timeout period expired.", "VirtualizationException", "TRANSIENT"},
};
#define N_TRANSIENT (sizeof TRANSIENT / sizeof TRANSIENT[0])

static size_t transient_index(const char *kind, double draw)
{
    size_t i = 0;
    if (kind && *kind) {
        while (i < N_TRANSIENT && strcmp(TRANSIENT[i].kind, kind) != 0) i++;
        return i;
    }
    i = (size_t)(draw * (double)N_TRANSIENT);
    return i >= N_TRANSIENT ? N_TRANSIENT - 1 : i;
}

const char *sim_transient_code(const char *message)
{
    for (size_t i = 0; message && i < N_TRANSIENT; i++)
        if (strstr(message, TRANSIENT[i].text)) return TRANSIENT[i].shim_code;
    return NULL;
}

const char *sim_transient_text(const char *kind, double draw, const char **error_type)
{
    size_t i = transient_index(kind, draw);
    if (i == N_TRANSIENT) return NULL;
    if (error_type) *error_type = TRANSIENT[i].error_type;
    return TRANSIENT[i].text;
}

/* A failure that does not pass on a retry, as the operation would report it. */
static void permanent_failure(SimCall *c)
{
    const char *op = c->operation;
    const char *name = sim_spec_str(c, "vm_name");
    snprintf(c->error_type, sizeof c->error_type, "RuntimeException");
    if (strcmp(op, "vm.create") == 0) {
        c->error_func = "Invoke-ProvisioningRegisterVm";
        c->error_file = "Provisioning.RegisterVM.ps1";
        c->error_line = 47;
        sim_fail(c, NULL,
                 "Failed to create VM '%s': The operation failed because the system cannot find the path "
                 "specified. (0x80070003)",
                 name ? name : "");
    } else if (strcmp(op, "disk.create") == 0) {
        snprintf(c->error_type, sizeof c->error_type, "VirtualizationException");
        sim_fail(c, NULL,
                 "Failed to create the virtual hard disk: There is not enough space on the disk. (0x80070070)");
    } else if (strcmp(op, "vm.initialize") == 0) {
        c->error_func = "Invoke-ProvisioningWaitForProvisioningKey";
        c->error_file = "Provisioning.WaitForProvisioningKey.ps1";
        c->error_line = 120;
        sim_fail(c, NULL,
                 "Guest on VM '%s' did not reach 'waitingforaeskey' within 300 seconds. Final state: '', "
                 "Public key: not received.",
                 name ? name : "");
    } else {
        snprintf(c->error_type, sizeof c->error_type, "VirtualizationException");
        sim_fail(c, NULL, "Access is denied. (0x80070005)");
    }
}

void sim_inject_failure(SimCall *c, const char *fail_code, double draw)
{
    char code[64];
    snprintf(code, sizeof code, "%s", fail_code);
    char *slash = strchr(code, '/');
    const char *kind = NULL;
    if (slash) {
        *slash = '\0';
        kind = slash + 1;
    }
    bool transient = kind || strcmp(code, "TRANSIENT") == 0 || strcmp(code, "HOST_BUSY") == 0;
    if (!kind && strcmp(code, "HOST_BUSY") == 0) kind = "vm-state";
    const char *etype = "RuntimeException";
    const char *text = transient ? sim_transient_text(kind, draw, &etype) : NULL;
    if (transient && !text) {
        sim_fail(c, SIM_CODE_CONFIG,
                 "HVD_SIM_FAIL: unknown transient kind '%s' (file-lock, vm-state, winrm-quota, "
                 "no-resources, timeout)",
                 kind);
        return;
    }
    if (c->flavor == SIM_FLAVOR_HVDEPLOY) {
        /* The shim maps Main-NewProtocol.ps1's OPERATION_ERROR with a known
         * transient text to TRANSIENT or HOST_BUSY. */
        if (text && strcmp(code, SIM_CODE_OPERATION) == 0) snprintf(code, sizeof code, "%s", sim_transient_code(text));
        if (text)
            sim_fail(c, code, "Injected failure (HVD_SIM_FAIL) in %s: %s", c->operation, text);
        else
            sim_fail(c, code, "Injected failure (HVD_SIM_FAIL) in %s", c->operation);
        return;
    }
    fprintf(stderr, "hvdeploy-simhost: injected %s failure (HVD_SIM_FAIL) in %s\n", transient ? "transient" : "a",
            c->operation);
    if (!text) {
        permanent_failure(c);
        return;
    }
    snprintf(c->error_type, sizeof c->error_type, "%s", etype);
    if (strcmp(c->operation, "vm.create") == 0) {
        /* Invoke-ProvisioningRegisterVm wraps New-VM's error. */
        const char *name = sim_spec_str(c, "vm_name");
        c->error_func = "Invoke-ProvisioningRegisterVm";
        c->error_file = "Provisioning.RegisterVM.ps1";
        c->error_line = 47;
        snprintf(c->error_type, sizeof c->error_type, "RuntimeException");
        sim_fail(c, NULL, "Failed to create VM '%s': %s", name ? name : "", text);
    } else {
        sim_fail(c, NULL, "%s", text);
    }
}

/* The error envelope of a failed call, as either flavour words it. */
json_t *sim_error_envelope(const SimCall *c)
{
    char msg[SIM_ERR_LEN + 32];
    snprintf(msg, sizeof msg, "Operation error: %s", c->error);
    json_t *data = json_object();
    json_object_set_new(data, "error_type", json_string(c->error_type[0] ? c->error_type : "RuntimeException"));
    if (c->flavor != SIM_FLAVOR_AETHER)
        return sim_envelope(c, "error", msg, data, c->code[0] ? c->code : SIM_CODE_OPERATION);
    /* The catch block of Main-NewProtocol.ps1: OPERATION_ERROR whatever went
     * wrong (a simulator configuration error keeps its own code), the logs
     * collected so far dropped for @($_.ScriptStackTrace). */
    const char *code = strcmp(c->code, SIM_CODE_CONFIG) == 0 || strcmp(c->code, SIM_CODE_CANCELLED) == 0 ||
                               strcmp(c->code, SIM_CODE_BAD_REQUEST) == 0 || strcmp(c->code, SIM_CODE_BUSY) == 0
                           ? c->code
                           : SIM_CODE_OPERATION;
    SimCall shown = *c;
    json_t *trace = json_array();
    char *t = sim_aether_stack_trace(c);
    json_array_append_new(trace, json_string(t));
    free(t);
    shown.logs = trace;
    json_t *env = sim_envelope(&shown, "error", msg, data, code);
    json_decref(trace);
    return env;
}
