"""The chaos suite's scenarios (issue 5, "What it must show"): each runs 3
workers against the simhost with latency, injects its faults, waits for every
job to end and checks that none is lost, none ended twice, no effect applied
twice and the hosts hold exactly the VMs of successful or partial jobs.
Run through tests/chaos/run.sh [--short|--long]."""

import argparse
import json
import os
import random
import re
import signal
import sys
import time
import traceback
import uuid

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as C  # noqa: E402
import flavors as F  # noqa: E402
import harness as H  # noqa: E402
from harness import finish_common, log, now, workers_alive  # noqa: E402


# ---------------------------------------------------------------- 1. kill -9

def s_kill(ctx, res):
    n = 40 if ctx.short else 200
    fleet = H.Fleet(ctx, "kill", env={"HVD_HOST_CONCURRENCY": "2"})
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i) for i in range(n)]
    ids = [j["id"] for j in jobs]
    sub = fleet.submitter(jobs, rate=4 if ctx.short else 5)
    sub.start()
    rng = ctx.rng
    state = {"next": now() + rng.uniform(0.3, 2.0), "restart": [], "kills": 0}

    def chaos():
        t = now()
        for item in list(state["restart"]):
            if item[0] <= t:
                fleet.start_worker(item[1])
                state["restart"].remove(item)
        if t >= state["next"]:
            alive = fleet.alive()
            if alive:
                w = rng.choice(alive)
                fleet.kill9(w)
                state["kills"] += 1
                state["restart"].append((t + rng.uniform(0.0, 1.5), w))
            state["next"] = t + rng.uniform(0.3, 2.0)

    states = fleet.wait_terminal(ids, 180 if ctx.short else 600, also=chaos)
    for _, w in state["restart"]:
        fleet.start_worker(w)
    res.faults = state["kills"]
    res.fault_desc = "kill -9, each worker restarted"
    finish_common(fleet, res, ids, sub, states=states, timeout=30)
    workers_alive(fleet, res)


# ---------------------------------------------------------------- 2. broker and database outages

def s_outage(ctx, res):
    n = 40 if ctx.short else 150
    down = 3 if ctx.short else 8
    fleet = H.Fleet(ctx, "outage", env={"HVD_HOST_CONCURRENCY": "2"})
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i) for i in range(n)]
    ids = [j["id"] for j in jobs]
    rate = 2.0 if ctx.short else 3.0
    sub = fleet.submitter(jobs, rate=rate)
    sub.start()
    span = n / rate
    faults = []

    def outage(stop, start, label):
        rc, out = ctx.svc(stop)
        if rc != 0:
            res.fail("%s failed: %s" % (stop, out.strip()[-300:]))
            return
        faults.append(label)
        time.sleep(down)
        rc, out = ctx.svc(start)
        if rc != 0:
            res.fail("%s failed: %s" % (start, out.strip()[-300:]))

    time.sleep(span * 0.25)
    log("  [outage] stopping RabbitMQ for %d s" % down)
    outage("rmq-stop", "rmq-start", "RabbitMQ stop/start")
    time.sleep(max(3.0, span * 0.15))
    log("  [outage] stopping PostgreSQL for %d s" % down)
    outage("pg-stop", "pg-start", "PostgreSQL stop/start")
    if not ctx.short:
        time.sleep(span * 0.1)
        log("  [outage] restarting RabbitMQ and PostgreSQL together")
        rc1, _ = ctx.svc("rmq-restart")
        rc2, _ = ctx.svc("pg-restart")
        if rc1 == 0 and rc2 == 0:
            faults.append("both restarted")
    res.faults = len(faults)
    res.fault_desc = ", ".join(faults) or "none"
    finish_common(fleet, res, ids, sub, timeout=240 if ctx.short else 600)
    workers_alive(fleet, res)
    if sub.reconnects:
        res.notes.append("upstream publisher reconnected %d time(s); %d job(s) published again" %
                         (sub.reconnects, len(sub.resent)))


# ---------------------------------------------------------------- 3. agent crashes and hangs

def s_agent(ctx, res):
    n = 40 if ctx.short else 200
    fleet = H.Fleet(ctx, "agent", agent_wrap=True, env={
        "HVD_HOST_CONCURRENCY": "2",
        "HVD_SIM_HANG": "*=0.02",
        "CHAOS_CRASH_P": "0.10",
        "HVD_AGENT_TIMEOUTS": "vm.create=3,disk.create=3,nic.create=3,vm.initialize=3,vm.delete=3",
        "HVD_AGENT_KILL_GRACE": "1",
    })
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i) for i in range(n)]
    ids = [j["id"] for j in jobs]
    sub = fleet.submitter(jobs, rate=10)
    sub.start()
    envelopes = finish_common(fleet, res, ids, sub, expect_success=False, timeout=240 if ctx.short else 900)
    c = H.count_faults(fleet.fault_log)
    res.faults = sum(c.values())
    res.fault_desc = "agent crash before %d, after %d, hang %d" % (c["crash before"], c["crash after"], c["hang"])
    if c["crash before"] == 0 or c["crash after"] == 0:
        res.fail("the agent wrapper injected no crash of some kind: %s" % dict(c))
    bad = {}
    for i in ids:
        got = envelopes.get(i) or []
        if got and got[0][0] != "success":
            code = (got[0][2] or {}).get("code")
            bad[code] = bad.get(code, 0) + 1
            if code != "retries_exhausted":
                res.fail("job %s ended %s with code %s (only retries_exhausted is expected here)" %
                         (i, got[0][0], code))
    if bad:
        res.notes.append("jobs not successful: %s" % bad)
    workers_alive(fleet, res)


# ---------------------------------------------------------------- 4. a worker frozen past its lease

def s_freeze(ctx, res):
    n = 6 if ctx.short else 20
    cycles = 1 if ctx.short else 3
    fleet = H.Fleet(ctx, "freeze", env={
        "HVD_LEASE_TTL": "3",
        "HVD_SIM_LATENCY_MS": "*=50-200,disk.create=6000",
    })
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i, sample="linux-static-ip.json") for i in range(n)]
    ids = [j["id"] for j in jobs]
    sub = fleet.submitter(jobs, rate=2 if ctx.short else 1)
    sub.start()
    frozen_count = 0
    for cycle in range(cycles):
        live = [w.worker_id for w in fleet.alive()]
        pick = None
        deadline = now() + 40
        while now() < deadline and pick is None:
            rows = fleet.db.query(
                "SELECT j.job_id::text, j.lease_owner, j.lease_epoch FROM hvdeploy.jobs j"
                " JOIN hvdeploy.job_stages s USING (job_id) WHERE j.job_id = ANY(%s::uuid[])"
                " AND j.status = 'running' AND s.stage = 'disk.create' AND s.status = 'running'"
                " AND s.started_at > now() - interval '2 seconds' AND j.lease_owner = ANY(%s)"
                " ORDER BY s.started_at DESC LIMIT 1", (ids, live))
            if rows:
                pick = rows[0]
            else:
                time.sleep(0.2)
        if pick is None:
            res.fail("cycle %d: no job was in its slow disk.create stage to freeze" % (cycle + 1))
            break
        job_id, owner, epoch = pick
        w = fleet.by_worker_id(owner)
        mark = fleet.db.query("SELECT coalesce(max(id), 0) FROM hvdeploy.job_events")[0][0]
        lost_before = len(fleet.grep_logs("lease lost", [w]))
        fleet.signal(w, signal.SIGSTOP)
        t_stop = now()
        frozen_count += 1
        log("  [freeze] SIGSTOP %s while it runs disk.create of job %s (epoch %s)" % (owner, job_id, epoch))
        taken = None
        deadline = now() + 30
        while now() < deadline:
            rows = fleet.db.query("SELECT lease_owner, lease_epoch, status FROM hvdeploy.jobs WHERE job_id = %s::uuid",
                                  (job_id,))
            if rows and rows[0][1] > epoch and rows[0][0] not in (None, owner):
                taken = rows[0]
                break
            time.sleep(0.2)
        if taken is None:
            res.fail("cycle %d: job %s was not taken over within 30 s of freezing %s" % (cycle + 1, job_id, owner))
            fleet.signal(w, signal.SIGCONT)
            res.notes.extend(fleet.describe_job(job_id))
            continue
        log("  [freeze] %s took job %s over after %.1f s (epoch %s); SIGCONT %s" %
            (taken[0], job_id, now() - t_stop, taken[1], owner))
        # resume once its own agent call has answered too (the 6 s stage), so
        # that its runner wakes up with a result to record
        time.sleep(max(1.0, t_stop + 6.5 - now()))
        fleet.signal(w, signal.SIGCONT)
        deadline = now() + 20
        while now() < deadline and len(fleet.grep_logs("lease lost", [w])) <= lost_before:
            time.sleep(0.2)
        if len(fleet.grep_logs("lease lost", [w])) <= lost_before:
            res.fail("cycle %d: %s logged no 'lease lost' within 20 s of SIGCONT (see %s)" %
                     (cycle + 1, owner, w.log_path))
        late = fleet.db.query("SELECT id, stage, from_status, to_status, detail FROM hvdeploy.job_events"
                              " WHERE job_id = %s::uuid AND worker = %s AND id > %s", (job_id, owner, mark))
        # wait a little: a late write would come right after SIGCONT
        time.sleep(2.0)
        late = fleet.db.query("SELECT id, stage, from_status, to_status, detail FROM hvdeploy.job_events"
                              " WHERE job_id = %s::uuid AND worker = %s AND id > %s", (job_id, owner, mark))
        if late:
            res.fail("cycle %d: the frozen worker %s still wrote job %s after losing its lease: %s" %
                     (cycle + 1, owner, job_id, late))
    res.faults = frozen_count
    res.fault_desc = "SIGSTOP past a 3 s lease, then SIGCONT"
    finish_common(fleet, res, ids, sub, timeout=120 if ctx.short else 300)
    workers_alive(fleet, res)


# ---------------------------------------------------------------- 5. a stage longer than consumer_timeout

def rmq_consumer_timeout(ctx):
    rc, out = ctx.svc("rmqctl", "eval", "application:get_env(rabbit, consumer_timeout).")
    if rc == 0:
        m = re.search(r"\{ok,\s*(\d+)\}", out)
        if m:
            return int(m.group(1))
    return None


def s_ctimeout(ctx, res):
    stage_ms = 70000 if ctx.short else 130000
    old = rmq_consumer_timeout(ctx)
    rc, out = ctx.svc("rmq-consumer-timeout", "60000")
    if rc != 0:
        res.fail("cannot set consumer_timeout: %s" % out.strip()[-300:])
        return
    broker_log = os.path.join(ctx.state, "logs", "rabbitmq", "rabbit.log")
    offset = H.service_log_offset(broker_log)
    try:
        fleet = H.Fleet(ctx, "ctimeout", env={
            "HVD_SIM_LATENCY_MS": "*=50-200,disk.create=%d" % stage_ms,
            "HVD_AGENT_TIMEOUTS": "disk.create=%d" % (stage_ms // 1000 + 120),
        })
        res.fleet = fleet
        fleet.setup()
        fleet.start()
        # two slow jobs (disk.create), the rest quick ones (no disk) before, during and after
        slow = [fleet.make_job(i, sample="linux-static-ip.json", host=H.HOSTS[i]) for i in range(2)]
        quick = [fleet.make_job(10 + i, sample="minimal.json", host=H.HOSTS[2 + i % 2]) for i in range(12)]
        ids = [j["id"] for j in slow + quick]
        sub = fleet.submitter(slow + quick[:4])
        sub.start()
        sub.done.wait(60)
        t0 = now()
        later = []
        for k, at in enumerate((stage_ms / 3000.0, stage_ms / 1000.0 - 5)):
            time.sleep(max(0.0, t0 + at - now()))
            s = fleet.submitter(quick[4 + 4 * k: 8 + 4 * k])
            s.start()
            later.append(s)
        for s in later:
            s.done.wait(60)
            for i, why in s.failed + [(u, "unroutable") for u in s.unroutable]:
                res.fail("job %s could not be published: %s" % (i, why))
        res.faults = 1
        res.fault_desc = "disk.create of %d s with consumer_timeout 60 s" % (stage_ms // 1000)
        finish_common(fleet, res, ids, sub, timeout=stage_ms / 1000.0 + 120)
        lost_conn = fleet.grep_logs("lost its RabbitMQ connection")
        for path, line in lost_conn[:5]:
            res.fail("a worker lost its RabbitMQ connection: %s: %s" % (os.path.basename(path), line[:300]))
        text = H.read_from(broker_log, offset)
        # RabbitMQ 3.10 logs "Consumer N on channel N has timed out waiting for
        # delivery acknowledgement" and then closes the channel with
        # "precondition_failed: delivery acknowledgement on channel N timed out"
        # (the log names no client: on a shared broker it may be another one's)
        for line in text.splitlines():
            if "waiting for delivery acknowledgement" in line or "delivery acknowledgement on channel" in line:
                res.fail("broker log, during this scenario: %s" % line[:300])
        if not os.path.exists(broker_log):
            res.notes.append("broker log %s not found: only the worker logs were checked" % broker_log)
        workers_alive(fleet, res)
    finally:
        restore = str(old if old else 1800000)
        rc, out = ctx.svc("rmq-consumer-timeout", restore)
        if rc != 0:
            res.fail("cannot restore consumer_timeout to %s: %s" % (restore, out.strip()[-200:]))


# ---------------------------------------------------------------- 6. poison messages

def poison_messages(ctx, fleet, n):
    rng = ctx.rng
    out = []

    def add(kind, body, content_type="application/msgpack", mid=None):
        pid = str(uuid.uuid4())
        out.append({"id": "poison-%s-%s" % (kind, pid), "kind": kind, "body": body, "content_type": content_type,
                    "message_id": mid or pid, "correlation_id": "poison-%s-%s" % (kind, pid)})

    valid = fleet.make_job(99999)["json"]
    packed = msgpack.packb(valid, use_bin_type=True)
    for k in range(n):
        kind = k % 11
        if k == 0:
            # over the worker's 256 KiB, under the broker's max_message_size (4 MiB, which
            # refuses a 10 MiB publish outright: tests/integration/test_hardening.c shows that)
            blob = msgpack.packb({"job_id": str(uuid.uuid4()), "job_type": "managed_deployment",
                                  "request": {"pad": "x" * (3 * 1024 * 1024)}}, use_bin_type=True)
            add("3mib", blob)
        elif kind == 1:
            add("random", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))))
        elif kind == 2:
            add("random-json", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))), "application/json")
        elif kind == 3:
            add("truncated", packed[:rng.randint(1, len(packed) - 1)])
        elif kind == 4:
            bad = json.loads(json.dumps(valid))
            jid = str(uuid.uuid4())
            bad["job_id"] = jid
            bad["request"]["vm_spec"].update({"gb_ram": "4", "cpu_cores": 4.5, "vm_name": 12})
            bad["request"]["disk_spec"] = {"disk_size_gb": "big", "image_name": ["x"]}
            add("wrong-types", msgpack.packb(bad, use_bin_type=True), mid=jid)
        elif kind == 5:
            add("not-a-map", msgpack.packb([1, "two", {"three": 3}], use_bin_type=True))
        elif kind == 6:
            add("bad-utf8", b"\x81\xa6job_id\xa4\xff\xfe\xfd\xfc")
        elif kind == 7:
            add("text-plain", b"deploy me a vm please", "text/plain")
        elif kind == 8:
            add("truncated-json", json.dumps(valid).encode()[:rng.randint(1, 200)], "application/json")
        elif kind == 9:
            deep = "leaf"
            for _ in range(40):
                deep = {"d": deep}
            add("deep", msgpack.packb({"job_id": str(uuid.uuid4()), "job_type": "managed_deployment",
                                       "request": deep}, use_bin_type=True))
        elif kind == 10:
            other = json.loads(json.dumps(valid))
            jid = str(uuid.uuid4())
            other["job_id"] = jid
            other["job_type"] = "decommission"
            add("wrong-job-type", msgpack.packb(other, use_bin_type=True), mid=jid)
        else:
            add("empty", b"")
    return out


def s_poison(ctx, res):
    n = 20 if ctx.short else 100
    fleet = H.Fleet(ctx, "poison", env={"HVD_HOST_CONCURRENCY": "2"})
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i) for i in range(n)]
    ids = [j["id"] for j in jobs]
    poison = poison_messages(ctx, fleet, n)
    mixed = jobs + poison
    ctx.rng.shuffle(mixed)
    sub = fleet.submitter(mixed, rate=20)
    sub.start()
    sub.done.wait(120)
    states = fleet.wait_terminal(ids, 120 if ctx.short else 300)
    # poison answers come before or with the jobs; give the outbox a moment
    time.sleep(2)
    envelopes = H.collect_envelopes(fleet)
    dead = H.drain(ctx, fleet.dead_queue)
    dead_ids = {p.correlation_id for p, _ in dead} | {p.message_id for p, _ in dead}
    unanswered = []
    kinds = {}
    for m in poison:
        answered = m["correlation_id"] in envelopes
        dl = m["correlation_id"] in dead_ids
        kinds.setdefault(m["kind"], [0, 0, 0])
        kinds[m["kind"]][0] += 1
        kinds[m["kind"]][1] += answered
        kinds[m["kind"]][2] += dl
        if not answered and not dl:
            unanswered.append(m)
    for m in unanswered[:10]:
        res.fail("poison message %s (%s, %d bytes) was neither answered nor dead-lettered" %
                 (m["correlation_id"], m["kind"], len(m["body"])))
    for i, why in sub.failed:
        res.fail("message %s could not be published: %s" % (i, why))
    res.notes.append("poison by kind [sent, answered, dead-lettered]: %s" % kinds)
    H.check_jobs(fleet, res, ids, envelopes, expect_success=True, resent=sub.resent, states=states)
    res.jobs = len(ids)
    res.faults = len(poison)
    res.fault_desc = "poison messages"
    workers_alive(fleet, res)
    restarts = [w for w in fleet.workers if w.incarnation > 1]
    if restarts:
        res.fail("workers restarted: %s" % [w.worker_id for w in restarts])


# ---------------------------------------------------------------- 7. per-host limit

def s_hostlimit(ctx, res):
    n = 24 if ctx.short else 80
    fleet = H.Fleet(ctx, "hostlimit", env={
        "HVD_HOST_CONCURRENCY": "1",
        "HVD_SIM_LATENCY_MS": "*=100-300",
    })
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i, host=H.HOSTS[i % 4]) for i in range(n)]
    ids = [j["id"] for j in jobs]
    sub = fleet.submitter(jobs)
    sub.start()
    finish_common(fleet, res, ids, sub, timeout=180 if ctx.short else 400)
    rows = H.stage_intervals(fleet, ids)
    by_host = {}
    for host, job_id, stage, start, end in rows:
        if end is None:
            res.fail("job %s stage %s has no finished_at" % (job_id, stage))
            continue
        by_host.setdefault(host, []).append((start, end, job_id, stage))
    overlaps = 0
    for host, iv in by_host.items():
        iv.sort()
        for a in range(len(iv)):
            for b in range(a + 1, len(iv)):
                if iv[b][0] >= iv[a][1]:
                    break
                if iv[a][2] != iv[b][2]:
                    overlaps += 1
                    if overlaps <= 5:
                        res.fail("on %s, job %s %s [%s, %s] overlaps job %s %s [%s, %s]" %
                                 (host, iv[a][2], iv[a][3], iv[a][0], iv[a][1],
                                  iv[b][2], iv[b][3], iv[b][0], iv[b][1]))
    if overlaps > 5:
        res.fail("%d overlapping stage pairs on a host with limit 1 in all" % overlaps)
    cross = 0
    allv = sorted((s, e, h) for h, iv in by_host.items() for s, e, _, _ in iv)
    for a in range(len(allv)):
        for b in range(a + 1, len(allv)):
            if allv[b][0] >= allv[a][1]:
                break
            if allv[a][2] != allv[b][2]:
                cross += 1
    if len(by_host) < 4:
        res.fail("stages ran on %d hosts, want 4" % len(by_host))
    if cross == 0:
        res.fail("no two stages on different hosts overlapped: the hosts did not run in parallel")
    res.notes.append("stage intervals: %d on %d hosts; overlapping pairs across hosts: %d, on one host: %d" %
                     (len(rows), len(by_host), cross, overlaps))
    res.faults = 0
    res.fault_desc = "HVD_HOST_CONCURRENCY=1 on 4 hosts"
    workers_alive(fleet, res)


SCENARIOS = [
    ("kill", s_kill),
    ("outage", s_outage),
    ("agent", s_agent),
    ("freeze", s_freeze),
    ("ctimeout", s_ctimeout),
    ("poison", s_poison),
    ("hostlimit", s_hostlimit),
] + F.SCENARIOS + C.SCENARIOS
# Past one machine (tests/chaos/cluster.py): their short forms take 15-35 s (with
# the clusters' first start), so `./deploy/dev.sh test` runs them too.
CLUSTER = {name for name, _ in C.SCENARIOS}


def agent_label(ctx, name):
    """How this scenario's workers call their agents."""
    if name.startswith("aether-v"):
        return "aether-v, per call"
    return "hvdeploy, " + ("per call" if ctx.agent_mode == "per-call" else "session")


def run_one(ctx, name, fn):
    res = H.Result(name if ctx.agent_mode == "session" or name in F.ONE_MODE else name + "/per-call")
    res.agent = agent_label(ctx, name)
    res.fleet = None
    t0 = now()
    log("==== [%s] %s" % (name, (fn.__doc__ or "").strip() or "running"))
    try:
        fn(ctx, res)
    except Exception as e:  # the harness or a service failed: the scenario fails
        res.fail("scenario crashed: %r" % e)
        traceback.print_exc()
    finally:
        res.seconds = now() - t0
        if res.fleet is not None:
            try:
                res.fleet.stop()
            except Exception as e:
                res.fail("cannot stop the workers: %r" % e)
            try:
                res.fleet.cleanup(res.passed)
            except Exception as e:
                log("  warning: cleanup: %r" % e)
    for p in res.problems[:30]:
        log("  FAIL: %s" % p)
    if len(res.problems) > 30:
        log("  ... %d more problems" % (len(res.problems) - 30))
    for n in res.notes:
        log("  note: %s" % n)
    if res.fleet is not None and not res.passed:
        log("  logs: %s  state: %s  database: %s" % (res.fleet.log_dir, res.fleet.run_dir,
                                                     res.fleet.db_name if ctx.keep else "(dropped; --keep keeps it)"))
    log(res.line())
    return res


def write_summary(ctx, results, path, total_s):
    lines = [
        "# Chaos suite, long form",
        "",
        "Reproduce with `./deploy/dev.sh chaos` (tests/chaos/run.sh --long); seed %s, %s UTC, %d s in all." % (
            ctx.seed, time.strftime("%Y-%m-%d %H:%M", time.gmtime()), total_s),
        "Each scenario: 3 workers, a fresh database, simhost latency 50-200 ms per call; every scenario",
        "runs with the workers calling hvdeploy-flavour agents in session mode, then per call (/per-call).",
        "",
        "| scenario | agent | jobs | faults injected | lost | duplicated envelopes | result | time |",
        "|---|---|---:|---|---:|---:|---|---:|",
    ]
    for r in results:
        if r.skipped is not None:
            lines.append("| %s | %s | | skipped: %s | | | skipped | |" % (r.name, r.agent, r.skipped))
            continue
        lines.append("| %s | %s | %d | %d (%s) | %d | %d | %s | %.0f s |" % (
            r.name, r.agent, r.jobs, r.faults, r.fault_desc, r.lost, r.duplicated, "pass" if r.passed else "FAIL",
            r.seconds))
        extra = [n for n in r.notes if n.startswith("succeeded ") or n.startswith("vm.create effects")]
        if extra:
            lines.append("|  | | | %s | | | | |" % "; ".join(extra))
    lines += [
        "",
        "Checked at the end of every scenario: each job has exactly one terminal row and one terminal",
        "job_events transition, and at least one terminal envelope on its reply queue (lost = a job",
        "without either); every duplicate envelope is byte-identical to the first (the outbox resending",
        "an envelope whose publisher confirm was lost, which the contract allows; consumers deduplicate",
        "by job_id); effects.jsonl of every simulated host holds each idempotency key at most once; the",
        "hosts hold exactly the VMs named by success or partial envelopes.",
        "",
        "- kill: kill -9 of a random worker every 0.3-2 s, restarted within 1.5 s, while jobs arrive.",
        "- outage: RabbitMQ stopped and started, then PostgreSQL, then both restarted, mid-run.",
        "- agent: the agent crashes before or after its effect on 10 % of calls and hangs on 2 %",
        "  (3 s agent timeouts).",
        "- freeze: a worker SIGSTOPped mid-stage past its 3 s lease; another takes the job over; after",
        "  SIGCONT it logs 'lease lost' and writes nothing more for the job.",
        "- ctimeout: a stage longer than the broker's consumer_timeout (60 s): no channel closed, no",
        "  acknowledgement timeout in the broker log.",
        "- poison: random bytes, truncated msgpack/JSON, wrong types, non-maps, bad UTF-8, unsupported",
        "  content and job types, deep nesting, a 3 MiB body, mixed with valid jobs: all valid jobs",
        "  succeed, every poison message is answered or dead-lettered, no worker goes down.",
        "- hostlimit: HVD_HOST_CONCURRENCY=1: no two jobs' stage intervals overlap on a host",
        "  (job_stages), while stages on different hosts do overlap.",
        "- aether-v-crash, -hang, -kill: the agent is `hvdeploy-simhost --flavor aether-v` (Aether-V's",
        "  Main-NewProtocol.ps1: no agent.hello, idempotency keys ignored, duplicate VM names allowed).",
        "  crash: the agent exits without an answer before or after its effect on 5 % of calls; hang: it",
        "  never answers on 3 % (3 s timeouts); kill: kill -9 of the worker running a vm.create (a slow",
        "  one, 0.8-1.5 s) every 0.8-2 s. Checked: no VM name in two vm.create effects on a host; every job",
        "  succeeded or failed outcome_unknown with its evidence and a dead letter; VMs only of those.",
        "- hvdeploy-crash, -hang, -kill: the same against the hvdeploy flavour (the host shim): every job",
        "  succeeds (resent with its key, or adopted via vm.find), no effect twice.",
        "- broker-cluster: a three-node RabbitMQ cluster (deploy/lib/cluster.sh), the workers given all",
        "  three URLs; the node leading the jobs queue is killed (SIGKILL) mid-run and restarted later.",
        "- pg-failover: a PostgreSQL primary with a synchronous streaming standby (pg_basebackup); mid-run",
        "  the primary is killed (SIGKILL) and the standby promoted (pg_ctl promote).",
        "",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(prog="tests/chaos/run.sh", description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--short", dest="mode", action="store_const", const="short", help="bounded form (default)")
    g.add_argument("--long", dest="mode", action="store_const", const="long", help="full numbers, writes .state/chaos-summary.md")
    ap.add_argument("--only", help="comma list of scenarios: " + ",".join(n for n, _ in SCENARIOS))
    ap.add_argument("--skip", help="comma list of scenarios to leave out")
    ap.add_argument("--keep", action="store_true", help="keep databases, queues and simhost state")
    ap.add_argument("--seed", type=int, default=None, help="random seed of the fault schedule")
    ap.add_argument("--agent-mode", choices=("session", "per-call", "both"), default="both",
                    help="how the workers call hvdeploy-flavour agents: sessions, per call, or each scenario "
                         "both ways (default)")
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin-dir", required=True)
    a = ap.parse_args()
    mode = a.mode or "short"
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    ctx = H.Ctx(a.root, a.bin_dir, mode, a.keep, seed)
    only = set(a.only.split(",")) if a.only else None
    skip = set(a.skip.split(",")) if a.skip else set()
    unknown = ((only or set()) | skip) - {n for n, _ in SCENARIOS}
    if unknown:
        ap.error("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    log("chaos suite (%s), seed %d, binaries %s" % (mode, seed, a.bin_dir))
    t0 = now()
    results = []
    modes = ("session", "per-call") if a.agent_mode == "both" else (a.agent_mode,)
    for k, mode in enumerate(modes):
        ctx.agent_mode = mode
        for name, fn in SCENARIOS:
            if (only and name not in only) or name in skip:
                continue
            if name in F.ONE_MODE and k > 0:
                continue  # an aether-v agent is called per call whatever the pass
            results.append(run_one(ctx, name, fn))
    if any(r.name in CLUSTER for r in results):
        C.stop_clusters(ctx)
    total = now() - t0
    log("")
    log("==== chaos summary (%s, seed %d, %.0f s)" % (mode, seed, total))
    for r in results:
        log(r.line())
    if mode == "long":
        path = os.path.join(ctx.state, "chaos-summary.md")
        write_summary(ctx, results, path, total)
        log("summary table written to %s" % path)
    passed = sum(1 for r in results if r.passed)
    failed = sum(1 for r in results if not r.passed and r.skipped is None)
    log("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
