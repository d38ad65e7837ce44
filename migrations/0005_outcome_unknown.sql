-- Outcome unknown (contract §6a): a stage whose call was under way when its
-- worker stopped is "in doubt" — the request may have reached the agent —
-- until vm.find settles it or an agent with idempotency keys is asked again.
-- Takeovers are counted so that a job that keeps losing its worker
-- mid-stage fails (takeovers_exhausted) instead of looping for ever.
ALTER TABLE hvdeploy.job_stages ADD COLUMN in_doubt boolean NOT NULL DEFAULT false;
ALTER TABLE hvdeploy.jobs ADD COLUMN takeovers integer NOT NULL DEFAULT 0;
-- What each host's agent said of itself (agent.hello, §6a), for operators
-- (hvdeployctl hosts): its name and version, its capabilities and the
-- profile the worker uses with it.
CREATE TABLE hvdeploy.host_agents (
    target_host   text PRIMARY KEY,
    agent         text,
    capabilities  text[] NOT NULL DEFAULT '{}',
    profile       text NOT NULL,                 -- raw or hvdeploy, or what HVD_AGENT_PROFILE forced
    seen_at       timestamptz NOT NULL DEFAULT now()
);
