"""Chaos against the two agent flavours (issue 9, "What it must show"): the
agent crashing before or after its effect, hanging past its timeout, and
kill -9 of workers during vm.create, 100+ jobs each.

- `--flavor aether-v` (Main-NewProtocol.ps1 as it is: no agent.hello, keys
  ignored, duplicate VM names allowed): no VM name appears in two vm.create
  effects on a host; every job ends exactly once, succeeded or failed with
  outcome_unknown and its evidence (message naming the stage and what to
  check, a dead letter); none is lost.
- `--flavor hvdeploy` (the host shim): every job succeeds, adopted or
  replayed, with no effect twice.
"""

import harness as H
from harness import finish_common, log, now, workers_alive

# kinds of fault, with what the workers and the simhost get for each
FAULTS = {
    "crash": {"env": {"CHAOS_CRASH_P": "0.05"}, "wrap": True,
              "desc": "agent crash before or after its effect, 5 % of calls"},
    "hang": {"env": {"HVD_SIM_HANG": "*=0.03", "CHAOS_CRASH_P": "0",
                     "HVD_AGENT_TIMEOUTS": "vm.create=3,disk.create=3,nic.create=3,vm.initialize=3,vm.delete=3",
                     "HVD_AGENT_KILL_GRACE": "1"},
             "wrap": True, "desc": "agent hangs past its 3 s timeout, 3 % of calls"},
    "kill": {"env": {"HVD_SIM_LATENCY_MS": "*=50-150,vm.create=800-1500"}, "wrap": False,
             "desc": "kill -9 of the worker running a vm.create"},
}


def killer(fleet, ids, rng, state):
    """Every 1-2.5 s: kill -9 a worker that is running some job's vm.create
    (from job_stages), restarted 0.3-1 s later."""
    def chaos():
        t = now()
        for item in list(state["restart"]):
            if item[0] <= t:
                fleet.start_worker(item[1])
                state["restart"].remove(item)
        if t < state["next"]:
            return
        state["next"] = t + rng.uniform(1.0, 2.5)
        live = {w.worker_id: w for w in fleet.alive()}
        if len(live) < 2:
            return
        rows = fleet.db.query(
            "SELECT j.lease_owner FROM hvdeploy.jobs j JOIN hvdeploy.job_stages s USING (job_id)"
            " WHERE j.job_id = ANY(%s::uuid[]) AND j.status = 'running' AND s.stage = 'vm.create'"
            " AND s.status = 'running' AND j.lease_owner = ANY(%s)"
            # a job is picked at most twice: far from HVD_MAX_TAKEOVERS (5), which
            # a job whose worker keeps dying ends with (another guarantee)
            " AND j.takeovers < 2 LIMIT 1", (ids, list(live)))
        if rows:
            w = live[rows[0][0]]
            fleet.kill9(w)
            state["kills"] += 1
            state["restart"].append((t + rng.uniform(0.3, 1.0), w))
    return chaos


def dead_lettered(fleet, res, ids, envelopes):
    """The outcome_unknown jobs and their dead letters."""
    dead = H.drain(fleet.ctx, fleet.dead_queue)
    dead_ids = {p.message_id for p, _ in dead} | {p.correlation_id for p, _ in dead}
    unknown = []
    for i in ids:
        got = envelopes.get(i) or []
        if not got or got[0][0] == "success":
            continue
        d = got[0][2] or {}
        code, msg = d.get("code"), d.get("message") or ""
        if code != "outcome_unknown":
            res.fail("job %s ended %s with code %s: only success or outcome_unknown may come from a raw agent (%s)"
                     % (i, got[0][0], code, msg[:200]))
            continue
        unknown.append(i)
        stages = [s.get("stage") or s.get("name") for s in (d.get("stages") or []) if isinstance(s, dict)]
        if "unknown" not in msg or not any(st and st in msg for st in stages + ["vm.create", "disk.create",
                                                                                  "nic.create", "vm.initialize"]):
            res.fail("job %s: outcome_unknown without its evidence in the message: %r" % (i, msg[:300]))
        if i not in dead_ids:
            res.fail("job %s ended outcome_unknown but was not dead-lettered" % i)
    return unknown


def scenario(flavor, fault):
    spec = FAULTS[fault]

    def run(ctx, res):
        n = 100 if ctx.short else 300
        tag = "av" if flavor == "aether-v" else "hd"
        env = {"HVD_HOST_CONCURRENCY": "2"}
        env.update(spec["env"])
        fleet = H.Fleet(ctx, "%s-%s" % (tag, fault), flavor=flavor, agent_wrap=spec["wrap"], env=env)
        res.fleet = fleet
        fleet.setup()
        fleet.start()
        jobs = [fleet.make_job(i) for i in range(n)]
        ids = [j["id"] for j in jobs]
        sub = fleet.submitter(jobs, rate=10)
        sub.start()
        state = {"next": now() + 1.0, "restart": [], "kills": 0}
        also = killer(fleet, ids, ctx.rng, state) if fault == "kill" else None
        states = fleet.wait_terminal(ids, 300 if ctx.short else 900, also=also)
        for _, w in state["restart"]:
            fleet.start_worker(w)
        raw = flavor == "aether-v"
        sub.done.wait(30)
        envelopes = H.collect_envelopes(fleet)
        H.check_jobs(fleet, res, ids, envelopes, expect_success=not raw, resent=sub.resent,
                     states=fleet.job_states(ids), unknown_vms_ok=raw)
        for i, why in sub.failed:
            res.fail("job %s could not be published: %s" % (i, why))
        H.check_names_created_once(fleet, res)
        if raw:
            unknown = dead_lettered(fleet, res, ids, envelopes)
            res.notes.append("succeeded %d, outcome_unknown %d (dead-lettered with the evidence)" %
                             (len(ids) - len(unknown), len(unknown)))
        res.notes.append("stages adopted via vm.find: %d" % len(fleet.grep_logs('"msg":"stage adopted"')))
        if fault == "kill":
            res.faults = state["kills"]
            if state["kills"] == 0:
                res.fail("no worker was killed during a vm.create")
        elif fault == "crash":
            c = H.count_faults(fleet.fault_log)
            res.faults = c["crash before"] + c["crash after"]
            if c["crash before"] == 0 or c["crash after"] == 0:
                res.fail("the agent wrapper injected no crash of some kind: %s" % dict(c))
        else:
            res.faults = H.count_faults(fleet.fault_log)["hang"]
            if res.faults == 0:
                res.fail("the simhost injected no hang")
        res.fault_desc = spec["desc"]
        workers_alive(fleet, res)
        del states  # wait_terminal's view; the checks read the rows again
        log("  [%s] %d jobs on %s" % (fleet.name, n, flavor))

    run.__doc__ = "%s against --flavor %s" % (spec["desc"], flavor)
    return run


# (name, function); the aether-v ones are per call whatever the pass (the
# script has no agent.hello, so no session)
SCENARIOS = [("%s-%s" % (flavor, fault), scenario(flavor, fault))
             for flavor in ("aether-v", "hvdeploy") for fault in ("crash", "hang", "kill")]
ONE_MODE = {name for name, _ in SCENARIOS if name.startswith("aether-v")}
