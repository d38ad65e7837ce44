-- tests/perf/fill_finished.sql: N finished jobs with their stages and events,
-- as a fleet leaves them behind (psql -v n=1000000 -v days=60 -f ...).
-- Finished times spread evenly over the last :days days; 90 % succeeded,
-- 8 % failed, 2 % cancelled; every envelope sent; 64 hosts. Job ids are
-- md5-derived UUIDs, so a rerun with the same :n makes the same ids.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO hvdeploy.jobs (job_id, job_type, status, target_host, vm_name, correlation_id, reply_to,
    content_type, request, options, outputs, attempts, lease_epoch, code, envelope, envelope_sent_at,
    created_at, updated_at, finished_at)
SELECT md5('hvd-perf-' || i)::uuid, 'managed_deployment',
       CASE WHEN i % 50 = 0 THEN 'cancelled' WHEN i % 12 = 0 THEN 'failed' ELSE 'succeeded' END,
       'hv' || lpad((i % 64)::text, 2, '0') || '.lab.example', 'vm-' || i,
       md5('hvd-perf-' || i), 'hvdeploy.results', 'application/msgpack',
       jsonb_build_object('target_host', 'hv' || (i % 64) || '.lab.example',
           'vm_spec', jsonb_build_object('vm_name', 'vm-' || i, 'gb_ram', 4, 'cpu_cores', 2, 'storage_class', 'fast-ssd'),
           'disk_spec', jsonb_build_object('image_name', 'Windows Server 2022', 'disk_size_gb', 100),
           'nic_spec', jsonb_build_object('network', 'Production'),
           'guest_config', jsonb_build_object('guest_la_uid', 'Administrator', 'guest_la_pw', '***',
               'guest_v4_ip_addr', '10.0.0.20', 'guest_v4_cidr_prefix', 24)),
       '{"on_failure":"keep"}', jsonb_build_object('vm_id', md5('vm' || i)::uuid, 'disk_id', md5('disk' || i)::uuid),
       1, 1,
       CASE WHEN i % 50 = 0 THEN 'cancelled' WHEN i % 12 = 0 THEN 'agent_error' END,
       decode(repeat(md5(i::text), 24), 'hex'), f, f - interval '2 minutes', f, f
FROM (SELECT i, now() - (i::float8 * :days * 86400 / :n) * interval '1 second' - interval '1 minute' AS f
      FROM generate_series(1, :n) AS i) AS g;

INSERT INTO hvdeploy.job_stages (job_id, position, stage, status, attempts, started_at, finished_at, output)
SELECT j.job_id, s.pos, s.stage, 'succeeded', 1, j.created_at + s.pos * interval '20 seconds',
       j.created_at + (s.pos + 1) * interval '20 seconds', '{"ok":true}'
FROM hvdeploy.jobs j
CROSS JOIN (VALUES (0, 'vm.create'), (1, 'disk.create'), (2, 'nic.create'), (3, 'vm.initialize')) AS s(pos, stage)
WHERE j.job_id = md5('hvd-perf-' || split_part(j.vm_name, '-', 2))::uuid;

-- 11 transitions a job: queued, running, 4 stages x (running, succeeded), the end
INSERT INTO hvdeploy.job_events (job_id, at, stage, from_status, to_status, attempt, worker, detail)
SELECT j.job_id, j.created_at + e.k * interval '10 seconds', e.stage, e.f, CASE WHEN e.t = 'END' THEN j.status ELSE e.t END,
       1, 'perf-fill', NULL
FROM hvdeploy.jobs j
CROSS JOIN (VALUES (0, NULL, NULL, 'queued'), (1, NULL, 'queued', 'running'),
                   (2, 'vm.create', 'pending', 'running'), (3, 'vm.create', 'running', 'succeeded'),
                   (4, 'disk.create', 'pending', 'running'), (5, 'disk.create', 'running', 'succeeded'),
                   (6, 'nic.create', 'pending', 'running'), (7, 'nic.create', 'running', 'succeeded'),
                   (8, 'vm.initialize', 'pending', 'running'), (9, 'vm.initialize', 'running', 'succeeded'),
                   (10, NULL, 'running', 'END')) AS e(k, stage, f, t)
WHERE j.job_id = md5('hvd-perf-' || split_part(j.vm_name, '-', 2))::uuid;
COMMIT;
VACUUM ANALYZE hvdeploy.jobs;
VACUUM ANALYZE hvdeploy.job_stages;
VACUUM ANALYZE hvdeploy.job_events;
