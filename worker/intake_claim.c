/* Claiming a job that is already recorded (a doorbell, a redelivery, a
 * sweep) and handing a claimed job to a runner — or, for a finished job that
 * upstream sent again, publishing its stored envelope. */
#include <string.h>
#include "answer.h"
#include "intake.h"
#include "intake_priv.h"
#include "log.h"
#include "publisher.h"
#include "runner.h"

void intake_after_claim(Worker *w, const HvdDelivery *d, const HvdClaim *claim, HvdJobRecord *rec, bool reserved)
{
    if (claim->decision.verdict == HVD_CLAIM_RUN) {
        HvdJobRecord *heap = hvd_xmalloc(sizeof *heap);
        *heap = *rec;
        memset(rec, 0, sizeof *rec);
        runners_submit(w->runners, heap, claim->decision.takeover);
        return;
    }
    if (reserved) runners_unreserve(w->runners);
    if (claim->decision.verdict == HVD_CLAIM_FINISHED && rec->envelope.len &&
        (!d || (!d->redelivered && !d->doorbell))) {
        /* Upstream sent a finished job again: the stored envelope, byte for byte. */
        HvdLogCtx lc = {.job_id = rec->job_id, .correlation_id = rec->correlation_id};
        hvd_log_info(&lc, "job already finished: publishing its stored envelope again");
        answer_publish(w, rec->job_id, rec->reply_to, rec->correlation_id, rec->content_type, &rec->envelope);
    }
}

void intake_claim_existing(Worker *w, const char *job_id, bool *ran)
{
    *ran = false;
    if (!runners_reserve(w->runners)) {
        /* Every runner is busy (our consumer is pausing): ring the doorbell
         * again, for a worker with room — paused consumers get none. */
        pub_doorbell(w, job_id, 0);
        return;
    }
    HvdJobRecord rec = {0};
    HvdClaim claim;
    char err[256];
    HvdStoreStatus st;
    for (int a = 0;; a++) {
        st = hvd_store_claim(w->store, job_id, &claim, &rec, err, sizeof err);
        if (st != HVD_STORE_RETRY || atomic_load(&w->stopping) || a >= 3) break;
        worker_backoff_sleep(w, a);
    }
    if (st != HVD_STORE_OK) {
        HvdLogCtx lc = {.job_id = job_id};
        hvd_log_warn(&lc, "cannot claim the job (the sweep will retry): %s", err);
        runners_unreserve(w->runners);
        hvd_job_record_free(&rec);
        return;
    }
    *ran = claim.decision.verdict == HVD_CLAIM_RUN;
    /* A doorbell or sweep never republishes a finished job's envelope. */
    HvdDelivery none = {.doorbell = true};
    intake_after_claim(w, &none, &claim, &rec, true);
    hvd_job_record_free(&rec);
}
