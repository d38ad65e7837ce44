-- Retention (contract §8 v1.1) and the fleet view of /metrics.
--
-- The pruner deletes finished jobs whose envelope was sent, oldest first, a
-- bounded batch at a time: it walks this index from its oldest end.
CREATE INDEX jobs_prunable ON hvdeploy.jobs (finished_at)
    WHERE status IN ('succeeded','failed','cancelled') AND envelope_sent_at IS NOT NULL;
-- The fleet view counts jobs by status and waiting reason and reads the age of
-- the oldest queued and waiting one: for live jobs from this small index, and
-- for finished ones by status from an index-only scan of the second (so the
-- count does not read the wide rows: requests and envelopes).
CREATE INDEX jobs_live_state ON hvdeploy.jobs (status, waiting_reason, created_at)
    WHERE status IN ('queued','running','retrying');
CREATE INDEX jobs_finished_status ON hvdeploy.jobs (status)
    WHERE status IN ('succeeded','failed','cancelled');
