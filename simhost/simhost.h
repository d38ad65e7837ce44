/* hvdeploy-simhost: a simulated Hyper-V host agent (contract §6, §6a). Shared
 * declarations of its modules: call parsing and the run of one call (call.c),
 * answers and helpers (answer.c), Aether-V's wording (aether.c), host
 * resources (resources.c), the per-host state store (store.c), the
 * operations (ops_vm.c, ops_dev.c, probe.c, nullmode.c), fault injection
 * (faults.c) and session mode (session.c). The wire behaviour is described in
 * simhost/README.md. */
#ifndef HVD_SIMHOST_H
#define HVD_SIMHOST_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_VERSION "1.1" /* the protocol version of contract §6a */
#define SIM_AGENT_NAME "hvdeploy-simhost " SIM_VERSION
#define SIM_CODE_OPERATION "OPERATION_ERROR"
#define SIM_CODE_UNSUPPORTED "UNSUPPORTED_OPERATION"
#define SIM_CODE_CONFIG "SIM_CONFIG_ERROR" /* a bad HVD_SIM_* variable or resources file */
#define SIM_CODE_KEY_REUSED "IDEMPOTENCY_KEY_REUSED"
#define SIM_CODE_CANCELLED "CANCELLED"     /* session mode: stopped by {"cancel": id} */
#define SIM_CODE_BAD_REQUEST "BAD_REQUEST" /* session mode: a line that is no request */
#define SIM_CODE_BUSY "HOST_BUSY"
#define SIM_MAX_INPUT (4 * 1024 * 1024) /* bytes of stdin read at most (per call, per session line) */
#define SIM_ERR_LEN 1024
#define SIM_INSTALL_DIR "C:\\Program Files\\Aether-V" /* where Aether-V's scripts live */

typedef enum {
    SIM_FLAVOR_HVDEPLOY, /* hvdeploy's host shim: idempotency, probe, session, output */
    SIM_FLAVOR_AETHER,   /* Main-NewProtocol.ps1 as it is (aether-v-agent.md) */
} SimFlavor;

typedef struct {
    const char *state_dir;
    const char *resources_file; /* NULL = built-in sample */
    const char *host;           /* --host, NULL = metadata.host */
    bool null_mode;
    bool session;
    SimFlavor flavor;
} SimArgs;

/* How a call waits and talks while it runs: per call it sleeps and prints
 * nothing; in session mode a wait ends early on cancel and output lines go
 * to the session (see session.c). */
typedef struct {
    /* Waits until deadline_ns (CLOCK_MONOTONIC; INT64_MAX = forever). Returns
     * false when the call was cancelled meanwhile. */
    bool (*wait_until)(void *ctx, int64_t deadline_ns);
    /* True when the call was cancelled (checked before the effect). */
    bool (*cancelled)(void *ctx);
    /* One live output line (NULL: no output lines). */
    void (*output)(void *ctx, const char *line, const char *stream);
    void *ctx;
} SimHooks;

/* One call: the parsed request plus what the answer is being built from. */
typedef struct {
    json_t *req;                /* owned */
    const char *operation;      /* borrowed from req */
    json_t *spec;               /* resource_spec, borrowed (an object) */
    const char *correlation_id; /* NULL when absent */
    const char *host;           /* --host or metadata.host, may be NULL */
    const char *idem_key;       /* metadata.idempotency_key, NULL when absent */
    const char *job_id;         /* metadata.job_id, NULL when absent */
    int64_t attempt;            /* metadata.attempt, default 1 */
    bool want_output;           /* metadata.output is true (session mode, hvdeploy flavour) */
    SimFlavor flavor;
    const SimHooks *hooks; /* NULL = per call */
    json_t *logs;          /* array of strings (the envelope's logs) */
    json_t *noise;         /* array of strings: Write-Host lines printed while running */
    /* Filled by an operation that fails: */
    char code[64];
    char error[SIM_ERR_LEN];
    char error_type[64];
    const char *error_func; /* the PowerShell function that threw (stack trace), NULL = the script body */
    const char *error_file; /* its script file name */
    int error_line;
} SimCall;

/* --- call.c: one call from request to answer line --- */
/* Fills c from request text (per call: everything read on stdin). On failure
 * the error is recorded in c (answer with sim_error_envelope). c->logs and
 * c->noise must be arrays already. */
bool sim_call_parse_text(SimCall *c, const char *in, size_t len, const SimArgs *a);
/* Same from a parsed object (stolen). */
bool sim_call_parse_object(SimCall *c, json_t *req, const SimArgs *a);
void sim_call_init(SimCall *c, const SimArgs *a, const SimHooks *hooks);
void sim_call_free(SimCall *c);
/* Runs a parsed call with its faults: latency, hang, crash, failure, then
 * the operation. Returns the answer line (malloc'd, '\n'-terminated); an
 * injected crash exits the process instead. */
char *sim_call_run(SimCall *c, const SimArgs *a);
/* The capabilities of a flavour (a new array) and the agent's name. */
json_t *sim_capabilities(SimFlavor f, bool null_mode, bool session);
const char *sim_agent_name(SimFlavor f, bool null_mode);
bool sim_parse_flavor(const char *s, SimFlavor *out);
int64_t sim_now_ns(void); /* CLOCK_MONOTONIC */

/* --- answer.c: envelopes and small helpers --- */
void sim_log(SimCall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A Write-Host line of the operation (aether-v-agent.md "What it prints"). */
void sim_noise(SimCall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a failure of the operation (message without the "Operation error: " prefix). */
void sim_fail(SimCall *c, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The envelope {status, message, data, code, logs, correlation_id}; data is
 * stolen. The aether-v flavour omits code, logs and correlation_id when empty. */
json_t *sim_envelope(const SimCall *c, const char *status, const char *message, json_t *data, const char *code);
/* One JSON line (compact, '\n'-terminated, malloc'd). */
char *sim_dump_line(const json_t *j);
void sim_guid_random(char out[37]);
void sim_guid_from(uint64_t a, uint64_t b, char out[37]);
uint64_t sim_hash(uint64_t h, const char *s); /* FNV-1a step over s, then a separator */
uint64_t sim_mix(uint64_t x);                 /* splitmix64 finaliser */
void sim_now_rfc3339(char out[32]);
bool sim_host_safe(const char *s);                                  /* usable as a directory name and a host */
const char *sim_spec_str(const SimCall *c, const char *key);        /* string or NULL (also for "") */
bool sim_spec_int(const SimCall *c, const char *key, int64_t *out); /* int, or integral number/string */
/* Case-insensitive equality as PowerShell's -eq: Unicode simple case folding. */
bool sim_strieq(const char *a, const char *b);
size_t sim_utf8_chars(const char *s); /* code points of a UTF-8 string */

/* --- aether.c: how Main-NewProtocol.ps1 words things --- */
/* The error envelope of a failed call (after sim_fail); in the aether-v
 * flavour with code OPERATION_ERROR and the stack trace as its logs. */
json_t *sim_error_envelope(const SimCall *c);
/* The PowerShell stack trace ($_.ScriptStackTrace) of a failed call. */
char *sim_aether_stack_trace(const SimCall *c);
/* Records the injected failure of HVD_SIM_FAIL (code as given, maybe with a
 * "/kind" suffix) in the call's flavour; draw picks a transient text. */
void sim_inject_failure(SimCall *c, const char *fail_code, double draw);
/* The text of a transient Hyper-V/WinRM/file-lock condition by kind
 * ("file-lock", "vm-state", "winrm-quota", "no-resources", "timeout"), or
 * the one draw picks when kind is NULL; NULL for an unknown kind. */
const char *sim_transient_text(const char *kind, double draw, const char **error_type);
/* TRANSIENT or HOST_BUSY when message holds one of those texts (the shim's
 * mapping), else NULL. */
const char *sim_transient_code(const char *message);

/* --- resources.c --- */
typedef struct {
    char *name, *path;
} SimStorageClass;
typedef struct {
    char *name, *model, *virtual_switch;
    bool has_vlan;
    int64_t vlan_id;
} SimNetwork;
typedef struct {
    char *name, *os_family;
} SimImage;
typedef struct {
    SimStorageClass *storage;
    size_t n_storage;
    SimNetwork *networks;
    size_t n_networks;
    SimImage *images;
    size_t n_images;
    char *vm_path;     /* virtual_machines_path */
    char *images_path; /* where golden images live (DiskImages) */
    json_t *document;  /* the hostresources document, golden_images filled in */
} SimResources;

/* Loads FILE (Aether-V hostresources.json shape, plus the optional extensions
 * "golden_images" and "disk_images_path") or the built-in sample when file is
 * NULL. Returns false with err set. */
bool sim_resources_load(SimResources *r, const char *file, char *err, size_t errlen);
void sim_resources_free(SimResources *r);
const SimStorageClass *sim_storage_find(const SimResources *r, const char *name);
const SimNetwork *sim_network_find(const SimResources *r, const char *name);
const SimImage *sim_image_find(const SimResources *r, const char *name);

/* --- store.c: DIR/<host>/{state.json,effects.jsonl,answers.jsonl,lock} --- */
typedef struct {
    char *dir;     /* DIR/<host> */
    int lock_fd;   /* flock'd while open */
    json_t *state; /* {version, host, mac_seq, vms, orphan_disks, effects_len, last_effect,
                         answers_len, last_answer} */
    json_t *found; /* the answers.jsonl entry last found by sim_store_answer */
} SimStore;

/* Creates DIR/<host>, takes the exclusive lock, loads the state and repairs
 * effects.jsonl after a crash between the state commit and its append. Safe
 * from several threads of one process: each open has its own lock file
 * description, and flock excludes them from each other. */
bool sim_store_open(SimStore *s, const char *state_dir, const char *host, char *err, size_t errlen);
/* The stored answer line for key (borrowed until the next lookup or close),
 * NULL when none; *op_out is the operation it answered. */
const char *sim_store_answer(SimStore *s, const char *key, const char **op_out);
/* Commits the state together with the answer to store under key (may be
 * NULL) and the effect lines (one or more, may be NULL), then appends them to
 * answers.jsonl and effects.jsonl. Crash-safe: the state file is replaced by
 * rename after fsync, and lines committed but not yet appended are appended
 * by the next sim_store_open. */
bool sim_store_commit(SimStore *s, const char *op, const char *key, const char *answer_line, const char *effect_lines,
                      char *err, size_t errlen);
void sim_store_close(SimStore *s); /* releases the lock; safe on a zeroed store */

/* --- faults.c --- */
typedef enum { SIM_CRASH_NONE, SIM_CRASH_BEFORE, SIM_CRASH_AFTER } SimCrash;
typedef struct {
    int64_t latency_ms;
    bool fail;
    char fail_code[64];
    double fail_draw; /* picks the transient text of an injected failure */
    SimCrash crash;
    bool hang;
    bool hang_after;      /* the hang comes after the effect (HVD_SIM_HANG op=p:after) */
    int64_t output_lines; /* HVD_SIM_OUTPUT_LINES for this operation */
} SimFaults;
/* Reads HVD_SIM_SEED, HVD_SIM_LATENCY_MS, HVD_SIM_FAIL, HVD_SIM_CRASH,
 * HVD_SIM_HANG, HVD_SIM_OUTPUT_LINES and draws this call's faults from (seed,
 * operation, key, attempt). Returns false with err set when a variable is
 * malformed. */
bool sim_faults_draw(const char *operation, const char *key, int64_t attempt, SimFaults *f, char *err, size_t errlen);
/* The draw in [0,1) for one fault kind (exposed for tests of determinism). */
double sim_fault_uniform(uint64_t seed, const char *kind, const char *operation, const char *key, int64_t attempt);

/* --- operations: each returns the success data (new object) or NULL after sim_fail --- */
typedef struct {
    SimCall *call;
    const SimResources *res;
    json_t *state; /* mutable state (ops change it in place) */
    const char *host;
    json_t *effects; /* [{vm_id, vm_name}] the op applied; empty = one, from the data */
    bool adopted;    /* nothing was applied (the shim found its own VM): no effect line */
} SimOpCtx;

/* Records one side effect on the VM (an effects.jsonl line). */
void sim_effect(SimOpCtx *x, const char *vm_id, const char *vm_name); /* ops_vm.c */
json_t *sim_op_vm_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_vm_delete(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_disk_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_nic_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_vm_initialize(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_noop(SimCall *c, char *message, size_t mlen);
/* probe.c (hvdeploy flavour) */
json_t *sim_op_hello(SimCall *c, bool null_mode, char *message, size_t mlen);
json_t *sim_op_vm_find(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_host_resources(SimCall *c, const SimResources *r, char *message, size_t mlen);
json_t *sim_vm_by_id(json_t *state, const char *vm_id);  /* borrowed or NULL */
json_t *sim_vm_by_name(json_t *state, const char *name); /* case-insensitive; the first */
size_t sim_vms_named(json_t *state, const char *name);   /* how many VMs have that name */
/* The job id stamped in a VM's Notes ("hvdeploy:<job_id>"), NULL when none. */
char *sim_notes_job_id(const char *notes);

/* --- nullmode.c --- */
json_t *sim_null_answer(SimCall *c);

/* --- session.c --- */
/* Session mode (contract §6a): hello, then requests until EOF. Returns the
 * process's exit status. */
int sim_session_run(const SimArgs *a);

#endif
