-- Live agent output of running stages (contract §5 stage.<stage>.output): the
-- last HVD_OUTPUT_KEEP lines of each stage of a job, redacted, for
-- `hvdeployctl status --follow` and the web dashboard. seq orders the lines of
-- a job across its stages and attempts; it is also the cursor of a live page.
CREATE TABLE hvdeploy.job_output (
    job_id   uuid NOT NULL REFERENCES hvdeploy.jobs(job_id) ON DELETE CASCADE,
    stage    text NOT NULL,
    attempt  integer NOT NULL,
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    stream   text NOT NULL CHECK (stream IN ('stdout','stderr')),
    line     text NOT NULL,
    PRIMARY KEY (job_id, stage, seq)
);
-- "the lines of a job's stage in order" is the primary key; "every line of a
-- job after a cursor" (live pages) needs this one.
CREATE INDEX job_output_job_seq ON hvdeploy.job_output (job_id, seq);
