/* Live agent output of running stages (contract §5 stage.<stage>.output):
 * each line the agent prints while a stage runs is redacted (the job's secret
 * values become ***), batched, published as an event at most a few times a
 * second per stage, and the last HVD_OUTPUT_KEEP lines of the stage are kept
 * in hvdeploy.job_output. A chatty agent cannot flood the broker: past
 * OUTPUT_BATCH_LINES lines per flush window, lines are dropped and counted,
 * and a "N lines dropped" marker line says so. Best effort: never delays the
 * stage (events are dropped with the publisher's queue full, store errors
 * are logged and the lines let go).
 *
 *     OutputStage *o = output_begin(w, job_id, corr, ctype, "vm.create", attempt, secrets, n);
 *     opts.on_line = output_line; opts.line_arg = o;   (HvdAgentCallOpts)
 *     hvd_agent_call_opts(...);
 *     output_flush(o);                                  (the stage's end: last batch, frees o)
 */
#ifndef HVD_WORKER_OUTPUT_H
#define HVD_WORKER_OUTPUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "agent.h"
#include "context.h"

#define OUTPUT_FLUSH_MS 500      /* a stage's lines go out at most every this often */
#define OUTPUT_BATCH_LINES 100   /* lines per flush window; more are dropped and counted */
#define OUTPUT_BATCH_BYTES 65536 /* bytes of lines per flush window */

typedef struct OutputStage OutputStage;

/* Starts collecting one agent call's output. secrets (n_secrets values, may
 * be 0) are copied; each is masked in every line, also in its JSON-escaped
 * form. Never NULL. */
OutputStage *output_begin(Worker *w, const char *job_id, const char *correlation_id, const char *content_type,
                          const char *stage, int attempt, char *const *secrets, size_t n_secrets);
/* An HvdAgentLineFn: arg is the OutputStage. The agent's answer (a stdout
 * line that is a JSON object with a "status" key) is not output. */
void output_line(void *arg, HvdAgentStream stream, const char *line, size_t len, bool truncated);
/* The stage's end: publishes and stores what is pending, then frees o. NULL-safe. */
void output_flush(OutputStage *o);

#endif
