/* The consumer thread (intake.c): job messages and doorbells in, claims, acks. */
#ifndef HVD_W_INTAKE_H
#define HVD_W_INTAKE_H
#include "context.h"

void *consumer_main(void *w);
/* Claims a job by id (doorbell, sweep) and hands it to a runner when ours. */
void intake_claim_existing(Worker *w, const char *job_id, bool *ran);

#endif
