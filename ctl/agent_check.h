/* hvdeployctl agent-check, shared between its files: one check's result,
 * the run's context, and the agent call every check makes
 * (cmd_agent_check.c: the protocol checks and the report;
 * agent_check_caps.c: agent.hello, the profile, vm.find, host.resources,
 * session, and the guarantees that do not hold without them). */
#ifndef HVD_CTL_AGENT_CHECK_H
#define HVD_CTL_AGENT_CHECK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "agent.h"
#include "ctl.h"
#include "model.h"
#include "plan.h"

typedef enum { CHECK_PASS, CHECK_FAIL, CHECK_WARN, CHECK_SKIP } CheckStatus;

typedef struct {
    const char *name;
    CheckStatus status;
    char reason[1024];
    int64_t elapsed_ms;
} Check;

/* What the agent said of itself (agent.hello). */
typedef struct {
    bool answered;     /* an envelope came back (success or error) */
    bool said;         /* success with a capability list: it knows agent.hello */
    HvdAgentCaps caps; /* what it says it honours (none when !said) */
    char agent[128];   /* its name and version ("" when it did not say) */
    char code[64];     /* the code of its error answer ("" when none) */
} AgentHello;

typedef struct {
    HvdAgentCfg cfg;
    const char *host;
    int64_t timeout_ms;
    char run_id[HVD_UUID_LEN + 1]; /* ties the check's requests together */
    AgentHello hello;
    char vm_name[48];      /* the throwaway VM's name */
    char vm_id[2][64];     /* what vm.create answered twice ("" when nothing) */
    char unknown_code[64]; /* the code of the unknown-operation answer */
} Ctx;

void ac_new_uuid(char out[HVD_UUID_LEN + 1]);
/* One agent call with a JobRequest built like the worker's (spec is the
 * caller's); timeout_ms 0 = the operation's default. */
HvdOutcome ac_call(Ctx *x, const char *op, const HvdNode *spec, const char *corr, const char *key, int64_t attempt,
                   int64_t timeout_ms, HvdAgentResult *res);
/* ac_call for a check's own single call: a fresh correlation id (copied to
 * cid when not NULL), the key "<run_id>:<op>", attempt 1, the check's timeout. */
HvdOutcome ac_call_op(Ctx *x, const char *op, const HvdNode *spec, char cid[HVD_UUID_LEN + 1], HvdAgentResult *res);
/* "timeout: agent did not answer within 60000 ms (stderr: ...)" */
void ac_describe(const HvdAgentResult *res, char *out, size_t len);

/* agent.hello: fills x->hello; PASS with the capabilities, WARN for an
 * error answer (the raw profile), FAIL for no answer or a malformed one. */
void ac_check_hello(Ctx *x, Check *c);
/* vm.find of the throwaway VM (made when x->vm_id[0] is set). */
void ac_check_find(Ctx *x, Check *c);
void ac_check_resources(Ctx *x, Check *c);
void ac_check_session(Ctx *x, Check *c);
/* The idempotency check's verdict in the light of what hello said: claimed
 * and broken is a FAIL; not claimed is a WARN saying what it costs. */
void ac_judge_idempotency(const Ctx *x, Check *c);

/* Prints the report; returns the exit status (1 when a check failed). */
int ac_report(CtlOutput out, const Ctx *x, const Check *checks, size_t n);

/* The guarantees of contract §9 that do not hold with this agent, one
 * sentence each, into out[0..max); returns how many. */
size_t ac_missing_guarantees(const Ctx *x, const char **out, size_t max);

#endif
