/* What the intake*.c files share: the consumer thread's handling of one job
 * message (intake_job.c), the answers to messages that never become running
 * jobs (intake_reject.c), and handing claimed jobs on (intake_claim.c). */
#ifndef HVD_W_INTAKE_PRIV_H
#define HVD_W_INTAKE_PRIV_H
#include "broker.h"
#include "codec.h"
#include "context.h"
#include "model.h"
#include "plan.h"
#include "store.h"

/* Handles a job message (not a doorbell). Returns false when the message
 * must not be acked (it was not claimed: PostgreSQL away or stopping). */
bool intake_job(Worker *w, HvdBroker *b, const HvdDelivery *d);

/* After a claim: RUN hands rec to the reserved runner; on every other
 * verdict the reservation is given back; a finished job sent again by
 * upstream (d not a redelivery or doorbell) gets its stored envelope. */
void intake_after_claim(Worker *w, const HvdDelivery *d, const HvdClaim *claim, HvdJobRecord *rec, bool reserved);

/* An undecodable message: answered with the rejection's code and
 * dead-lettered as received. */
bool intake_reject_undecodable(Worker *w, const HvdDelivery *d, const HvdRejection *why);
/* Records (when it has a job id) and answers a job that will never run. */
bool intake_reject_job(Worker *w, const HvdDelivery *d, const HvdJob *job, HvdContentType ct, const HvdRejection *why,
                       const HvdErrors *errs, const HvdNode *data, const char *const *stages, size_t n_stages,
                       const char *request_json);

#endif
