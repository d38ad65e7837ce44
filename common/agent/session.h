/* Session mode of the host-agent transport (contract §6a): one long-lived
 * agent process per host (up to a few), requests multiplexed over its pipes
 * by request_id, several in flight, answered in any order.
 *
 * One reader thread serves every session of an HvdSessions: it reads their
 * stdout and stderr, hands each answer to the caller waiting for it (and
 * each output line to its callback), sends cancels, enforces deadlines,
 * closes idle sessions and notices dead ones. A session whose process exits
 * or whose pipe breaks ends every request in flight on it with
 * HVD_OUT_TRANSPORT ("session lost"): their outcome is unknown. Callers
 * block only on their own request. Thread-safe. */
#ifndef HVD_SESSION_H
#define HVD_SESSION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "agent.h"

typedef struct HvdSessions HvdSessions;

typedef struct {
    const HvdAgentCfg *agent; /* classification, timeouts, kill grace (borrowed; outlives the sessions) */
    char **argv;              /* the session command's words, "{host}" replaced per host (borrowed) */
    int max_per_host;         /* sessions per host, >= 1 */
    int depth;                /* requests in flight on one session before another is started */
    int64_t idle_ms;          /* a session without requests this long is closed */
    int64_t hello_ms;         /* how long a new session may take to print its hello */
    int64_t cancel_grace_ms;  /* after a cancel, how long its answer is awaited */
} HvdSessionCfg;

HvdSessions *hvd_sessions_start(const HvdSessionCfg *cfg);
/* Closes every session (EOF on stdin, then SIGTERM/SIGKILL after the
 * grace), ends what is in flight as lost, joins the reader. NULL-safe. */
void hvd_sessions_stop(HvdSessions *s);

/* One request over a session of host (one is started when needed): the
 * JobRequest line (len bytes, a JSON object) gets a request_id, and the call
 * returns its answer classified as hvd_agent_call classifies one, or
 * TIMEOUT (opts->timeout_ms or the operation's; a cancel was sent and no
 * answer came within the grace), CANCELLED (opts->cancel raised), TRANSPORT
 * (the session died), NOT_SENT (no session could be started or the request
 * could not be written). Output lines of the request go to opts->on_line.
 * res is always filled (free with hvd_agent_result_free). */
HvdOutcome hvd_session_call(HvdSessions *s, const HvdAgentCallOpts *opts, const char *host, const char *operation,
                            const char *request, size_t len, HvdAgentResult *res);

/* Counters for metrics and tests. */
typedef struct {
    uint64_t started, closed_idle, lost, bad_lines, unknown_ids, no_hello;
    size_t open; /* sessions running now */
} HvdSessionStats;
void hvd_sessions_stats(HvdSessions *s, HvdSessionStats *out);
/* Sessions running now for host. */
size_t hvd_sessions_count(HvdSessions *s, const char *host);

#endif
