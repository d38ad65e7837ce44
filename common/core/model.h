/* The job model of contract §3: a managed deployment request decoded and
 * validated into plain structs, and the list of validation errors reported
 * the way Pydantic reports them ({loc, msg, type}, every error). */
#ifndef HVD_MODEL_H
#define HVD_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node.h"

#define HVD_JOB_TYPE_MANAGED "managed_deployment"
#define HVD_UUID_LEN 36

typedef struct {
    char *loc;  /* dotted, e.g. "request.vm_spec.gb_ram" */
    char *msg;  /* e.g. "Input should be less than or equal to 512" */
    char *type; /* e.g. "less_than_equal", "missing", "int_type", "host_not_allowed" */
} HvdError;

typedef struct {
    HvdError *items;
    size_t n, cap;
} HvdErrors;

void hvd_errors_add(HvdErrors *e, const char *loc, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void hvd_errors_free(HvdErrors *e);
/* [{loc, msg, type}, ...] as a node (for envelopes and `validate --output json`). */
HvdNode *hvd_errors_to_node(const HvdErrors *e);

typedef struct {
    char *vm_name;
    int64_t gb_ram;
    int64_t cpu_cores;
    char *storage_class; /* NULL when absent / nil */
    bool vm_clustered;
    char *os_family; /* as given ("windows"/"linux") or NULL */
} HvdVmSpec;

typedef struct {
    bool present;
    char *image_name;      /* NULL = blank disk */
    int64_t disk_size_gb;  /* default 100 */
    char *disk_type;       /* default "Dynamic" */
    char *controller_type; /* default "SCSI" */
} HvdDiskSpec;

typedef struct {
    bool present;
    char *network;
    char *adapter_name; /* NULL when absent */
} HvdNicSpec;

/* Every string is NULL when absent, nil or empty (empty counts as absent). */
typedef struct {
    bool present;
    char *guest_la_uid, *guest_la_pw;
    char *guest_domain_join_target, *guest_domain_join_uid, *guest_domain_join_pw, *guest_domain_join_ou;
    char *cnf_ansible_ssh_user, *cnf_ansible_ssh_key;
    char *guest_v4_ip_addr;
    bool has_cidr_prefix;
    int64_t guest_v4_cidr_prefix;
    char *guest_v4_default_gw, *guest_v4_dns1, *guest_v4_dns2, *guest_net_dns_suffix;
} HvdGuestConfig;

typedef struct {
    char job_id[HVD_UUID_LEN + 1]; /* canonical lower-case form */
    char *job_type;
    char *target_host; /* lower-cased (host names are case-insensitive) */
    HvdVmSpec vm;
    HvdDiskSpec disk;
    HvdNicSpec nic;
    HvdGuestConfig guest;
    const char *os_family; /* resolved (§7): "windows" or "linux"; static string */
    bool rollback;         /* options.on_failure == "rollback" */
    bool has_deadline;
    int64_t deadline_ms; /* options.deadline, Unix epoch milliseconds */
    char *deadline_text; /* as given */
} HvdJob;

typedef struct {
    const char *const *allowed_hosts; /* NULL or empty list = any valid host */
    size_t n_allowed_hosts;
    const char *message_id; /* AMQP message_id property, NULL when absent */
    /* More AMQP properties, NULL when absent: like message_id, each must be
     * UTF-8 (an error at "properties.<name>" otherwise). */
    const char *correlation_id;
    const char *reply_to; /* (v1.1) RabbitMQ's direct reply-to is refused too */
} HvdValidateOpts;

/* RabbitMQ's direct reply-to pseudo-queue (amq.rabbitmq.reply-to and the
 * amq.rabbitmq.reply-to.<token> names it hands out): it lives only as long
 * as the requesting channel, so a job that runs for minutes or hours cannot
 * be answered on it. */
#define HVD_DIRECT_REPLY_TO "amq.rabbitmq.reply-to"
bool hvd_reply_to_is_direct(const char *reply_to);

/* Validates a decoded body against §3 and fills job. Returns true when there
 * are no errors; otherwise every error is appended to errs and job holds what
 * could be read (free it either way). job_id is copied into job->job_id when
 * it is a valid UUID even if other fields fail, so an answer can carry it. */
bool hvd_job_validate(const HvdNode *body, const HvdValidateOpts *opts, HvdJob *job, HvdErrors *errs);
void hvd_job_free(HvdJob *job); /* frees the members, not job itself */

/* Helpers shared with the simhost and the CLI. */
bool hvd_uuid_valid(const char *s, size_t len); /* 36 chars, canonical hyphenated, hex */
bool hvd_hostname_valid(const char *s);         /* RFC 1123 hostname or dotted-quad IPv4 */
bool hvd_ipv4_valid(const char *s);             /* dotted quad, each 0-255, no leading zeros */
/* NULL when the name is acceptable (§3 hardening), else the reason. */
const char *hvd_name_problem(const char *s, size_t max_chars);
/* Splits a comma list (HVD_ALLOWED_HOSTS) into trimmed, non-empty, lower-cased
 * names: returns the count and sets *out to a new array (NULL when 0). */
size_t hvd_hosts_parse(const char *csv, char ***out);
void hvd_hosts_free(char **hosts, size_t n); /* NULL-safe */

#endif
