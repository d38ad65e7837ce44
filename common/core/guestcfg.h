/* Guest configuration and OS family (contract §7) and secret redaction.
 * These are the only places that know which request fields are secrets. */
#ifndef HVD_GUESTCFG_H
#define HVD_GUESTCFG_H
#include "model.h"
#include "node.h"

#define HVD_REDACTED "***"

/* "linux" or "windows" (static strings) from an image name (§7 table). */
const char *hvd_os_family_from_image(const char *image_name);
/* Explicit vm_spec.os_family wins, else from disk_spec.image_name, else "windows". */
const char *hvd_os_family_resolve(const HvdJob *job);

/* The vm.initialize keys of Aether-V's generate_guest_config, in its order, as a
 * map of strings (guest_v4_cidr_prefix as an int). Returns NULL when the job has
 * no guest_config. Contains secrets: never log it. */
HvdNode *hvd_guest_config_keys(const HvdJob *job);
/* Names only (for the envelope's data.guest_config_keys): array of strings. */
HvdNode *hvd_guest_config_key_names(const HvdJob *job);

/* The job's secret values (guest_la_pw, guest_domain_join_pw,
 * cnf_ansible_ssh_key, those set) into out, borrowed from job: how many.
 * What is masked in the agent's output (HvdAgentCallOpts.secrets). */
#define HVD_JOB_MAX_SECRETS 3
size_t hvd_job_secret_values(const HvdJob *job, const char *out[HVD_JOB_MAX_SECRETS]);

/* The secret fields of a guest_config. */
extern const char *const HVD_SECRET_FIELDS[]; /* NULL-terminated */
bool hvd_is_secret_field(const char *key);

/* A deep copy of a job body (or of any node) with every secret field of
 * request.guest_config replaced by HVD_REDACTED when it was a non-empty value.
 * Used wherever a request is logged, stored or dead-lettered. NUL characters
 * in strings become U+FFFD in the copy (jsonb cannot hold them). */
HvdNode *hvd_redact_body(const HvdNode *body);
/* Moves the secrets of request.guest_config into a new map {field: value}
 * (NULL when there are none) — what gets encrypted at rest. */
HvdNode *hvd_extract_secrets(const HvdNode *body);
/* Puts secrets (from hvd_extract_secrets) back into a redacted body. */
void hvd_restore_secrets(HvdNode *body, const HvdNode *secrets);

#endif
