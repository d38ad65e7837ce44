/* The maintainer thread (maint.c): leases, sweeps, outbox, secrets. */
#ifndef HVD_W_MAINT_H
#define HVD_W_MAINT_H
#include "context.h"

void *maint_main(void *w);

#endif
