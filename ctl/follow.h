/* hvdeployctl: printing progress events (contract §5) for `submit --follow`
 * and `status --follow`, stage transitions and live output lines alike, and
 * the follow loop of `status --follow`. */
#ifndef HVD_CTL_FOLLOW_H
#define HVD_CTL_FOLLOW_H
#include <stdbool.h>
#include "broker.h"
#include "ctl.h"
#include "config.h"
#include "node.h"
#include "store.h"

/* Decodes a delivery in its content type (msgpack, then JSON, when it has
 * none). NULL when it does not decode to a map. */
HvdNode *ctl_follow_decode(const HvdDelivery *d);

/* Prints one event: a JSON line with --output json, else one human line per
 * transition ("12:00:01.250  stage vm.create  running  (attempt 1)") or per
 * output line ("12:00:01.500  vm.create | text"). Output lines are printed as
 * received, with control characters shown as '?'. Flushes stdout. */
void ctl_follow_print_event(const HvdNode *ev, CtlOutput output);

/* "HH:MM:SS.mmm" (local time) of an RFC 3339 text (the text itself when it does not parse). */
void ctl_follow_clock(const char *at, char *out, size_t outlen);

/* True for the routing key of a job's terminal transition (job.succeeded, job.failed, job.cancelled). */
bool ctl_follow_is_terminal(const char *routing_key);

/* status --follow: prints the job's stored output so far, then its events
 * from <prefix>.events (bound before the job is read, so nothing between is
 * lost; a line stored and published in that instant may show twice) until
 * its terminal transition, which is also looked for in PostgreSQL every few
 * seconds in case an event was lost. final_status receives the job's status
 * at the end. Returns -1 when the job ended, else the exit code (2: broker
 * or database error, 1: unknown job). */
int ctl_follow_job(const char *cmd, const HvdConfig *cfg, HvdStore *store, const char *job_id, CtlOutput output,
                   char final_status[16]);

#endif
