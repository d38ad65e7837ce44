/* RabbitMQ and settings helpers shared by the hvdeployctl subcommands that
 * talk to the broker (submit, dead): settings from the HVD_* variables and
 * flags, a connection with one clear error line, publish-and-confirm, names
 * of the topology objects, UUIDs, and small printing helpers. */
#ifndef HVD_CTL_AMQP_UTIL_H
#define HVD_CTL_AMQP_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "broker.h"
#include "config.h"
#include "node.h"

/* Loads the HVD_* settings (defaults < HVD_CONFIG_FILE < environment < the
 * settings flags such as --amqp-url), removing the settings flags from argv and
 * leaving the subcommand's own arguments in order. Returns false after
 * printing one line "hvdeployctl CMD: ..." (the caller exits 2). cfg must be
 * freed with hvd_config_free either way. */
bool ctlq_load_config(const char *cmd, int *argc, char **argv, HvdConfig *cfg) __attribute__((warn_unused_result));

/* Connects to cfg->amqp_url (TLS settings from cfg) with connection name
 * "hvdeployctl CMD", publisher confirms on channel 1 when confirms. NULL after
 * printing "hvdeployctl CMD: cannot connect ..." (never the password). */
HvdBroker *ctlq_connect(const char *cmd, const HvdConfig *cfg, bool confirms) __attribute__((warn_unused_result));

/* "<prefix>.<what>" into out (e.g. "hvdeploy.jobs"). */
void ctlq_name(char *out, size_t outlen, const char *prefix, const char *what);

/* Publishes p on a confirm-mode connection and waits up to timeout_ms for its
 * confirm. Returns the settlement; HVD_CONFIRM_LOST also when the publish
 * itself failed, the connection closed or the wait timed out (err says which). */
HvdConfirm ctlq_publish_wait(HvdBroker *b, const HvdPublish *p, int timeout_ms, char *err, size_t errlen);

/* A random (version 4) UUID in canonical lower-case form. */
void ctlq_uuid4(char out[37]);

/* Formats a duration in whole seconds as "3s", "4m", "2h", "5d". */
void ctlq_age(int64_t seconds, char *out, size_t outlen);

/* A deep copy of node where the value of every map key that names a secret
 * (guest_la_pw, guest_domain_join_pw, cnf_ansible_ssh_key), at any depth, is
 * replaced by "***" (defence in depth for bodies printed to a terminal). */
HvdNode *ctlq_redact_all(const HvdNode *node);

/* node as indented JSON text (malloc'd, NUL-terminated, no trailing newline). */
char *ctlq_pretty_json(const HvdNode *node);

/* Publishes the doorbell {job_id, job_type, doorbell: true} of a job to
 * jobs_exchange (confirm awaited up to timeout_ms). False (with err) when it
 * went nowhere: the fleet's sweep still finds the job, only later. */
bool ctlq_ring_doorbell(HvdBroker *b, const char *jobs_exchange, const char *job_id, const char *job_type,
                        int timeout_ms, char *err, size_t errlen);

#endif
