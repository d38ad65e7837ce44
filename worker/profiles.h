/* The agent profile of each host (profiles.c, contract §6a): what its agent
 * honours, asked once with agent.hello and cached, asked again after a
 * failure. */
#ifndef HVD_W_PROFILES_H
#define HVD_W_PROFILES_H
#include <stdbool.h>
#include "context.h"
#include "plan.h"

/* The capabilities of host's agent. False (why set, *hello the call's
 * outcome) when HVD_AGENT_PROFILE is auto and the host did not answer
 * agent.hello within timeout_ms (0: the operation's own timeout): nothing
 * may be sent to it whose outcome would depend on them. */
bool profile_caps(Worker *w, const char *host, const char *job_id, int64_t timeout_ms, HvdAgentCaps *caps,
                  HvdOutcome *hello, char *why, size_t whylen);
/* Forgets what host said (a call failed at the transport: its agent may have
 * changed); the next call asks again. */
void profile_forget(const char *host);
/* The host's agent said it has sessions but none could be started (no
 * hello): it is used per call until its profile is asked again. */
void profile_no_session(const char *host);

#endif
