/* The answer to a message that never becomes a running job (§3, §4): which
 * code it gets and the one sentence that explains it. */
#include <stdio.h>
#include <string.h>
#include "plan.h"
#include "utf8.h"

/* A precision for "%.*s" that keeps at most max bytes of s, never half a character. */
static int cut(const char *s, size_t max)
{
    return (int)hvd_utf8_truncate(s, strlen(s), max);
}

HvdRejection hvd_plan_reject_invalid(const HvdJob *job, const HvdErrors *errs)
{
    HvdRejection r = {.code = "validation_error"};
    bool wrong_type = false, all_host = errs->n > 0;
    for (size_t i = 0; i < errs->n; i++) {
        if (strcmp(errs->items[i].loc, "job_type") == 0 && job->job_type &&
            strcmp(job->job_type, HVD_JOB_TYPE_MANAGED) != 0)
            wrong_type = true;
        if (strcmp(errs->items[i].type, "host_not_allowed") != 0) all_host = false;
    }
    if (wrong_type) {
        r.code = "unsupported_job_type";
        snprintf(r.message, sizeof r.message, "Job type '%.*s' is not handled by this fleet.", cut(job->job_type, 100),
                 job->job_type);
    } else if (all_host) {
        r.code = "host_not_allowed";
        const char *h = job->target_host ? job->target_host : "";
        snprintf(r.message, sizeof r.message, "Target host '%.*s' is not in this fleet's allowed hosts.", cut(h, 100),
                 h);
    } else if (errs->n == 1 && strcmp(errs->items[0].loc, "reply_to") == 0) {
        snprintf(r.message, sizeof r.message,
                 "Refused: reply_to is RabbitMQ's direct reply-to, which cannot carry the envelope of a job this "
                 "long; use a durable named queue.");
    } else {
        snprintf(r.message, sizeof r.message, "The request is invalid: %zu validation error%s.", errs->n,
                 errs->n == 1 ? "" : "s");
    }
    return r;
}

HvdRejection hvd_plan_reject_undecodable(bool content_type_known, HvdDecodeStatus ds, const char *why)
{
    HvdRejection r = {.code = "malformed_message"};
    if (!content_type_known)
        r.code = "unsupported_content_type";
    else if (ds == HVD_DECODE_TOO_LARGE)
        r.code = "message_too_large";
    const char *w = why ? why : "";
    snprintf(r.message, sizeof r.message, "The message could not be read: %.*s", cut(w, 200), w);
    return r;
}

HvdRejection hvd_plan_reject_duplicate(const char *target_host, const char *vm_name)
{
    HvdRejection r = {.code = "duplicate_vm_name"};
    snprintf(r.message, sizeof r.message, "Another job on %.*s is already deploying a VM named '%.*s'.",
             cut(target_host, 100), target_host, cut(vm_name, 64), vm_name);
    return r;
}
