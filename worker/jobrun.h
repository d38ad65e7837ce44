/* Running one claimed job (jobrun*.c): its stages in the order and manner
 * hvd_plan_step decides, then its terminal state and envelope. */
#ifndef HVD_W_JOBRUN_H
#define HVD_W_JOBRUN_H
#include <stdbool.h>
#include "context.h"
#include "record.h"

/* Runs the job whose lease rec holds until it ends, waits for a retry, is
 * released (shutdown) or its lease is lost. */
void jobrun_execute(Worker *w, HvdJobRecord *rec, bool takeover);
/* Releases the leases of every job still running in this process (end of
 * the shutdown grace) and rings their doorbells. */
void jobrun_release_all(Worker *w);

#endif
