/* Envelopes and dead letters (answer.c): encoding them in a job's content
 * type and handing them to the publisher. */
#ifndef HVD_W_ANSWER_H
#define HVD_W_ANSWER_H
#include "codec.h"
#include "context.h"
#include "envelope.h"
#include "record.h"

/* Encodes env in the content type ct into out. */
void answer_encode(const HvdEnvelope *env, HvdContentType ct, HvdBuf *out);
/* Publishes a stored envelope to reply_to (or <prefix>.results); the
 * publisher marks it sent once the broker confirmed it. */
void answer_publish(Worker *w, const char *job_id, const char *reply_to, const char *correlation_id,
                    const char *content_type, const HvdBuf *bytes);
/* Sends the evidence of a job that failed for good (retries or takeovers
 * exhausted, outcome unknown) to <prefix>.dead. */
void answer_dead_letter(Worker *w, const HvdJobRecord *rec, const char *stage, const char *code, const char *message,
                        const char *agent_code, const char *agent_log);
/* The queue a job's envelope goes to: its reply_to, or "<prefix>.results"
 * when it has none. */
const char *answer_reply_queue(Worker *w, const char *reply_to);

#endif
