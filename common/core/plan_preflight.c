/* The preflight (§6a "Probe operations"): does the host's hostresources
 * document have the storage class, network and golden image the job names?
 * Aether-V's server makes the same check before it queues a job. */
#include <stdio.h>
#include <strings.h>
#include "plan.h"

/* Whether list (of {name}) names want; *checkable false when the document
 * has no such list. The names it has go into have (comma list, cut). */
static bool has_name(const HvdNode *resources, const char *list_key, const char *want, bool *checkable, char *have,
                     size_t havelen)
{
    const HvdNode *list = hvd_node_get(resources, list_key);
    *checkable = list && list->type == HVD_ARRAY;
    have[0] = '\0';
    if (!*checkable) return true;
    size_t used = 0;
    bool found = false;
    for (size_t i = 0; i < list->u.arr.n; i++) {
        const char *name = hvd_node_get_str(list->u.arr.items[i], "name");
        if (!name) continue;
        if (strcasecmp(name, want) == 0) found = true;
        int w = snprintf(have + used, havelen - used, "%s%s", used ? ", " : "", name);
        if (w < 0 || (size_t)w >= havelen - used) break;
        used += (size_t)w;
    }
    return found;
}

static void check(const HvdNode *resources, const char *list_key, const char *want, const char *what, const char *loc,
                  HvdErrors *errs, bool *ok)
{
    if (!want || !*want) return;
    bool checkable;
    char have[200];
    if (has_name(resources, list_key, want, &checkable, have, sizeof have)) return;
    *ok = false;
    hvd_errors_add(errs, loc, "host_resource_missing", "The host has no %s named '%.100s' (it has: %s)", what, want,
                   have[0] ? have : "none");
}

bool hvd_plan_preflight(const HvdJob *job, const HvdNode *resources, HvdErrors *errs)
{
    bool ok = true;
    if (!resources || resources->type != HVD_MAP) return true;
    check(resources, "storage_classes", job->vm.storage_class, "storage class", "request.vm_spec.storage_class", errs,
          &ok);
    if (job->disk.present)
        check(resources, "golden_images", job->disk.image_name, "golden image", "request.disk_spec.image_name", errs,
              &ok);
    if (job->nic.present)
        check(resources, "networks", job->nic.network, "network", "request.nic_spec.network", errs, &ok);
    return ok;
}
