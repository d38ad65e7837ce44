/* Running one claimed job: its stages in order, then its terminal state and
 * envelope (jobrun.c); the envelope and dead-letter builders (answer.c). */
#ifndef HVD_JOBRUN_H
#define HVD_JOBRUN_H
#include <stdbool.h>
#include "codec.h"
#include "envelope.h"
#include "model.h"
#include "store.h"
#include "worker.h"

/* Runs the job whose lease rec holds until it ends, waits for a retry, is
 * released (shutdown) or its lease is lost. */
void jobrun_execute(Worker *w, HvdJobRecord *rec, bool takeover);
/* Releases the leases of every job still running in this process (end of
 * the shutdown grace) and rings their doorbells. */
void jobrun_release_all(Worker *w);

/* ---- answer.c ---- */

/* Encodes env in the content type ct into out. */
void answer_encode(const HvdEnvelope *env, HvdContentType ct, HvdBuf *out);
/* Publishes a stored envelope to reply_to (or <prefix>.results); the
 * publisher marks it sent once the broker confirmed it. */
void answer_publish(Worker *w, const char *job_id, const char *reply_to, const char *correlation_id,
                    const char *content_type, const HvdBuf *bytes);
/* Sends the evidence of a job that ran out of retries to <prefix>.dead. */
void answer_dead_letter(Worker *w, const HvdJobRecord *rec, const char *stage, const char *code, const char *message,
                        const char *agent_code, const char *agent_log);
/* The queue a job's envelope goes to: its reply_to, or "<prefix>.results"
 * when it has none. */
const char *answer_reply_queue(Worker *w, const char *reply_to);

#endif
