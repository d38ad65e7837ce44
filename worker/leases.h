/* The leases this worker holds (leases.c), renewed by the maintainer. */
#ifndef HVD_W_LEASES_H
#define HVD_W_LEASES_H
#include "context.h"

LeaseSet *leases_new(void);
void leases_free(LeaseSet *l);
void leases_add(LeaseSet *l, const char *job_id, int64_t epoch);
void leases_remove(LeaseSet *l, const char *job_id);
bool leases_lost(LeaseSet *l, const char *job_id);
/* Renews every lease in one statement; marks those lost. */
void leases_renew(LeaseSet *l, HvdStore *s);
/* Copies out (job_id, epoch) pairs; returns the count (at most max). */
size_t leases_snapshot(LeaseSet *l, char (*ids)[37], int64_t *epochs, size_t max);

#endif
