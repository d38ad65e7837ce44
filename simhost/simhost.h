/* hvdeploy-simhost: a simulated Hyper-V host agent (contract §6). Shared
 * declarations of its modules: call parsing and answers (main.c, answer.c),
 * host resources (resources.c), the per-host state store (store.c), the
 * operations (ops_vm.c, ops_dev.c, nullmode.c) and fault injection (faults.c). */
#ifndef HVD_SIMHOST_H
#define HVD_SIMHOST_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_CODE_OPERATION "OPERATION_ERROR"
#define SIM_CODE_UNSUPPORTED "UNSUPPORTED_OPERATION"
#define SIM_CODE_CONFIG "SIM_CONFIG_ERROR" /* a bad HVD_SIM_* variable or resources file */
#define SIM_CODE_KEY_REUSED "IDEMPOTENCY_KEY_REUSED"
#define SIM_MAX_INPUT (4 * 1024 * 1024) /* bytes of stdin read at most */
#define SIM_ERR_LEN 1024

typedef struct {
    const char *state_dir;
    const char *resources_file; /* NULL = built-in sample */
    const char *host;           /* --host, NULL = metadata.host */
    bool null_mode;
} SimArgs;

/* One call: the parsed request plus what the answer is being built from. */
typedef struct {
    json_t *req;                /* owned */
    const char *operation;      /* borrowed from req */
    json_t *spec;               /* resource_spec, borrowed (an object) */
    const char *correlation_id; /* NULL when absent */
    const char *host;           /* --host or metadata.host, may be NULL */
    const char *idem_key;       /* metadata.idempotency_key, NULL when absent */
    int64_t attempt;            /* metadata.attempt, default 1 */
    json_t *logs;               /* array of strings */
    /* Filled by an operation that fails: */
    char code[64];
    char error[SIM_ERR_LEN];
    char error_type[64];
} SimCall;

/* --- answer.c: envelopes and small helpers --- */
void sim_log(SimCall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a failure of the operation (message without the "Operation error: " prefix). */
void sim_fail(SimCall *c, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The envelope {status, message, data, code, logs, correlation_id}; data is stolen. */
json_t *sim_envelope(const SimCall *c, const char *status, const char *message, json_t *data, const char *code);
/* The error envelope of a failed call (after sim_fail). */
json_t *sim_error_envelope(const SimCall *c);
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
bool sim_strieq(const char *a, const char *b);

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
 * effects.jsonl after a crash between the state commit and its append. */
bool sim_store_open(SimStore *s, const char *state_dir, const char *host, char *err, size_t errlen);
/* The stored answer line for key (borrowed until the next lookup or close),
 * NULL when none; *op_out is the operation it answered. */
const char *sim_store_answer(SimStore *s, const char *key, const char **op_out);
/* Commits the state together with the answer to store under key (may be
 * NULL) and the effect line, then appends them to answers.jsonl and
 * effects.jsonl. Crash-safe: the state file is replaced by rename after
 * fsync, and a line committed but not yet appended is appended by the next
 * sim_store_open. */
bool sim_store_commit(SimStore *s, const char *op, const char *key, const char *answer_line, const char *effect_line,
                      char *err, size_t errlen);
void sim_store_close(SimStore *s); /* releases the lock; safe on a zeroed store */

/* --- faults.c --- */
typedef enum { SIM_CRASH_NONE, SIM_CRASH_BEFORE, SIM_CRASH_AFTER } SimCrash;
typedef struct {
    int64_t latency_ms;
    bool fail;
    char fail_code[64];
    SimCrash crash;
    bool hang;
} SimFaults;
/* Reads HVD_SIM_SEED, HVD_SIM_LATENCY_MS, HVD_SIM_FAIL, HVD_SIM_CRASH,
 * HVD_SIM_HANG and draws this call's faults from (seed, operation, key,
 * attempt). Returns false with err set when a variable is malformed. */
bool sim_faults_draw(const char *operation, const char *key, int64_t attempt, SimFaults *f, char *err, size_t errlen);
/* The draw in [0,1) for one fault kind (exposed for tests of determinism). */
double sim_fault_uniform(uint64_t seed, const char *kind, const char *operation, const char *key, int64_t attempt);

/* --- operations: each returns the success data (new object) or NULL after sim_fail --- */
typedef struct {
    SimCall *call;
    const SimResources *res;
    json_t *state; /* mutable state (ops change it in place) */
    const char *host;
} SimOpCtx;

json_t *sim_op_vm_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_vm_delete(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_disk_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_nic_create(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_vm_initialize(SimOpCtx *x, char *message, size_t mlen);
json_t *sim_op_noop(SimCall *c, char *message, size_t mlen);
json_t *sim_vm_by_id(json_t *state, const char *vm_id);  /* borrowed or NULL */
json_t *sim_vm_by_name(json_t *state, const char *name); /* case-insensitive */
bool sim_op_known(const char *operation);
bool sim_op_mutates(const char *operation);

/* --- nullmode.c --- */
json_t *sim_null_answer(SimCall *c);

#endif
