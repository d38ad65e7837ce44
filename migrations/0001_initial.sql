-- hvdeploy schema v1: jobs, their stages, secrets at rest, the append-only
-- event log, leases (fencing epochs) and per-host slots. PostgreSQL is the
-- source of truth for every job; RabbitMQ only carries doorbells.
CREATE SCHEMA IF NOT EXISTS hvdeploy;

CREATE TABLE hvdeploy.jobs (
    job_id            uuid PRIMARY KEY,
    seq               bigserial NOT NULL,          -- arrival order (per-host fairness)
    job_type          text NOT NULL,
    status            text NOT NULL CHECK (status IN
                        ('queued','running','retrying','succeeded','failed','cancelled')),
    target_host       text,                        -- NULL only for jobs that failed validation
    vm_name           text,
    correlation_id    text NOT NULL,
    reply_to          text NOT NULL,
    content_type      text NOT NULL,
    request           jsonb,                       -- redacted: secrets masked
    options           jsonb NOT NULL DEFAULT '{}'::jsonb,
    outputs           jsonb NOT NULL DEFAULT '{}'::jsonb,  -- vm_id, disk_id, ... from finished stages
    attempts          integer NOT NULL DEFAULT 0,  -- runs started: first, each resume, each takeover
    -- lease: holder, expiry and a fencing epoch bumped on every acquisition
    lease_owner       text,
    lease_expires_at  timestamptz,
    lease_epoch       bigint NOT NULL DEFAULT 0,
    holds_slot        boolean NOT NULL DEFAULT false, -- holds one of its host's slots
    waiting_reason    text,                        -- 'retry', 'host_busy', 'circuit_open' while not running
    next_run_at       timestamptz,                 -- earliest time a waiting job may run again
    cancel_requested  boolean NOT NULL DEFAULT false,
    code              text,                        -- terminal code (NULL on success)
    envelope          bytea,                       -- the terminal envelope, exact bytes as published
    envelope_sent_at  timestamptz,                 -- set once the broker confirmed it
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

-- A VM name is unique among live jobs of one host (duplicate_vm_name).
CREATE UNIQUE INDEX jobs_live_vm_name ON hvdeploy.jobs (target_host, lower(vm_name))
    WHERE status IN ('queued','running','retrying');
-- Sweep: running jobs with an expired lease, waiting jobs that are due.
CREATE INDEX jobs_sweep ON hvdeploy.jobs (next_run_at)
    WHERE status IN ('queued','running','retrying');
-- Slots and the queue of a host.
CREATE INDEX jobs_host_live ON hvdeploy.jobs (target_host, seq)
    WHERE status IN ('queued','running','retrying');
-- Outbox: terminal envelopes not yet confirmed by the broker.
CREATE INDEX jobs_outbox ON hvdeploy.jobs (finished_at)
    WHERE envelope IS NOT NULL AND envelope_sent_at IS NULL;
CREATE INDEX jobs_recent ON hvdeploy.jobs (created_at DESC);

CREATE TABLE hvdeploy.job_stages (
    job_id       uuid NOT NULL REFERENCES hvdeploy.jobs(job_id) ON DELETE CASCADE,
    position     smallint NOT NULL,
    stage        text NOT NULL,
    status       text NOT NULL CHECK (status IN
                   ('pending','running','succeeded','failed','rolled_back')),
    attempts     integer NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    output       jsonb,          -- the agent's data on success
    error        text,           -- last error message
    code         text,           -- hvdeploy code of the last failure
    agent_code   text,           -- the agent's own code of the last failure
    agent_log    text,           -- last agent log lines of the last failure (redacted)
    PRIMARY KEY (job_id, stage)
);

CREATE TABLE hvdeploy.job_secrets (
    job_id       uuid PRIMARY KEY REFERENCES hvdeploy.jobs(job_id) ON DELETE CASCADE,
    key_id       text NOT NULL,
    ciphertext   bytea NOT NULL,      -- version | key id | nonce | XChaCha20-Poly1305 box
    erase_after  timestamptz          -- retention after a failure; NULL while needed
);

CREATE TABLE hvdeploy.job_events (
    id           bigserial PRIMARY KEY,
    job_id       uuid NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    stage        text,
    from_status  text,
    to_status    text NOT NULL,
    attempt      integer NOT NULL DEFAULT 0,
    worker       text,
    detail       text
);
CREATE INDEX job_events_job ON hvdeploy.job_events (job_id, id);

-- Per-host circuit breaker state, shared by the fleet.
CREATE TABLE hvdeploy.host_health (
    target_host        text PRIMARY KEY,
    consecutive_fails  integer NOT NULL DEFAULT 0,
    open_until         timestamptz,
    trial_owner        text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
