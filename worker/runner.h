/* The runner pool (runner.c): HVD_CONCURRENCY threads running claimed jobs. */
#ifndef HVD_W_RUNNER_H
#define HVD_W_RUNNER_H
#include "context.h"
#include "record.h"

Runners *runners_start(Worker *w, int n);
/* Reserves a runner for a job about to be claimed; false when all are busy. */
bool runners_reserve(Runners *r);
void runners_unreserve(Runners *r);
/* Hands a claimed job (lease held) to the reserved runner; takes ownership of rec. */
void runners_submit(Runners *r, HvdJobRecord *rec, bool takeover);
size_t runners_free(Runners *r);
/* Stops: running jobs finish their current stage within grace_s, then the
 * agents are stopped and what still runs is released. True when every
 * runner thread ended (the pool is freed); false when some still run (a
 * rollback's wait, a store retry): the pool, and everything the runners
 * use, must then stay as it is until the process exits. */
bool runners_stop(Runners *r, int grace_s);

#endif
