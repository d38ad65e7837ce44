-- The per-host circuit breaker lets exactly one trial call through once an
-- open circuit cools down; the trial's holder and expiry live with the host.
ALTER TABLE hvdeploy.host_health ADD COLUMN trial_expires_at timestamptz;
ALTER TABLE hvdeploy.host_health ADD COLUMN opened_count integer NOT NULL DEFAULT 0;
