/* The fleet role of a worker (fleet.c, maintainer thread): on the one worker
 * holding it, the fleet-wide view in /metrics and the pruner of finished jobs. */
#ifndef HVD_W_FLEET_H
#define HVD_W_FLEET_H
#include <stdint.h>
#include "context.h"

typedef struct Fleet Fleet;
/* The fleet role, view and pruner of this worker. */
Fleet *fleet_new(Worker *w);
/* Tries the role, refreshes the view and prunes when their time has come. */
void fleet_tick(Fleet *f, int64_t now_mono_ms);
void fleet_free(Fleet *f); /* lets the role go */

#endif
