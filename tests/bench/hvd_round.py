"""One round of hvdeploy's own benchmark: K workers on a database of their own,
N jobs published as upstream would (msgpack, persistent, one confirm each, from
a feeder process running concurrently), every envelope awaited; measures
jobs/s, the workers' CPU, PostgreSQL transactions and round trips, broker
operations, peak RSS, and the agents' own CPU."""
import os
import socket
import statistics
import subprocess
import sys
import time

import msgpack
import pika

from probes import (db_dsn, live_children_cpu, metric_sum, metrics_text, pg_segments, proc_cpu_s, proc_cpu_split_s,
                    proc_hwm_kb, psql, reaped_children_cpu_s, segments_delta, service_pids, services_cpu,
                    services_delta, wait_healthy, xact_commit)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = service_pids()


def agent_env(agent, bindir, sim_dir):
    """The worker's agent settings for an agent mode of the benchmark."""
    sim = os.path.join(bindir, "hvdeploy-simhost")
    if agent == "null-session":  # one --null --session process per host, requests multiplexed
        return {"HVD_AGENT_CMD": sim + " --null", "HVD_AGENT_SESSION_CMD": sim + " --null --session",
                "HVD_AGENT_PROFILE": "idempotency,probe,session"}
    if agent == "null-call":  # a --null process per call
        return {"HVD_AGENT_CMD": sim + " --null", "HVD_AGENT_PROFILE": "idempotency,probe"}
    if agent in ("simhost", "simhost-50ms"):  # the default flavour with state; profile from agent.hello
        env = {"HVD_AGENT_CMD": sim + " --state-dir " + sim_dir, "HVD_AGENT_PROFILE": "auto"}
        if agent == "simhost-50ms":
            ops = ("vm.create", "disk.create", "nic.create", "vm.initialize")
            env.update(HVD_SIM_LATENCY_MS=",".join(op + "=50" for op in ops),
                       HVD_AGENT_ENV_PASS="HVD_SIM_LATENCY_MS")
        return env
    raise ValueError("unknown agent " + agent)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ts(s):
    # 2026-11-25T20:04:36.123Z -> epoch seconds
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + float("0." + s[20:23])


def fresh_db(base_dsn, db, template=None):
    psql(base_dsn, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    psql(base_dsn, "CREATE DATABASE %s%s" % (db, " TEMPLATE " + template if template else ""))


def make_template(base_dsn, db, bindir):
    """A migrated database the rounds' databases are copied from, so that the
    workers' startup does not add the migrations to the round's figures."""
    fresh_db(base_dsn, db)
    subprocess.run([os.path.join(bindir, "hvdeployctl"), "migrate"], check=True, capture_output=True,
                   env=dict(os.environ, HVD_PG_DSN=db_dsn(base_dsn, db)))


def start_workers(cfg, env, state):
    workers, ports = [], []
    for k in range(cfg["workers"]):
        port = free_port()
        ports.append(port)
        log = open(os.path.join(state, "worker-%d.log" % k), "w")
        workers.append(subprocess.Popen([os.path.join(cfg["bindir"], "hvdeploy-worker")], stderr=log,
                                        stdout=subprocess.DEVNULL,
                                        env=dict(env, HVD_WORKER_ID="bench-%d" % k,
                                                 HVD_METRICS_ADDR="127.0.0.1:%d" % port)))
        log.close()
    return workers, ports


def stop_workers(workers):
    for w in workers:
        if w.poll() is None:
            w.terminate()
    for w in workers:
        try:
            w.wait(40)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def snapshot(workers, ports, pg_port):
    pids = [w.pid for w in workers]
    texts = [metrics_text(p) for p in ports]
    return {
        "t": time.time(),
        "cpu": sum(proc_cpu_s(p) for p in pids),
        "sys": sum(proc_cpu_split_s(p)[1] for p in pids),
        "reaped": sum(reaped_children_cpu_s(p) for p in pids),
        "children": live_children_cpu(pids),
        "segs": pg_segments(pg_port, pids),
        "svc": services_cpu(SERVICES),
        "amqp": sum(metric_sum(0, "hvdeploy_amqp_operations_total", t) for t in texts),
        "wtx": sum(metric_sum(0, "hvdeploy_pg_transactions_total", t) for t in texts),
    }


def agent_cpu(a, b):
    live = sum(v - a["children"].get(k, 0) for k, v in b["children"].items())
    return live + (b["reaped"] - a["reaped"])


def perf_start(cfg, workers):
    """--perf: samples the workers' user-space stacks over the job window."""
    if not cfg.get("perf"):
        return None
    out = os.path.join(cfg["state"], "perf-%s-%d-%d.data" % (cfg["agent"], cfg["concurrency"], cfg["workers"]))
    p = subprocess.Popen(["perf", "record", "-q", "-F", "299", "--call-graph", "dwarf,16384", "-o", out, "-p",
                          ",".join(str(w.pid) for w in workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # perf attaches
    return p, out


def perf_stop(prof, cfg):
    if not prof:
        return
    p, out = prof
    p.send_signal(2)
    p.wait(60)
    with open(out[:-5] + ".txt", "w") as f:
        for how in (["--no-children", "--sort", "dso"], ["--no-children", "--sort", "dso,sym"],
                    ["--children", "--sort", "sym"]):  # self by library, self by function, inclusive
            f.write(subprocess.run(["perf", "report", "-i", out, "-g", "none", "--stdio", "--percent-limit", "1"]
                                   + how, capture_output=True, text=True).stdout)


def feed(prefix, reply, n, hosts):
    """Starts the feeder process; it prints its first and last publish times."""
    return subprocess.Popen([sys.executable, os.path.join(HERE, "feed.py"), prefix, reply, str(n), str(hosts)],
                            stdout=subprocess.PIPE, text=True)


def collect(ch, reply, n, timeout):
    envelopes = {}
    deadline = time.time() + timeout
    for method, _props, body in ch.consume(reply, inactivity_timeout=1, auto_ack=True):
        if method is not None:
            e = msgpack.unpackb(body, raw=False)
            envelopes[e["job_id"]] = e
        if len(envelopes) >= n or time.time() > deadline:
            break
    return envelopes, time.time()


def overheads(envelopes):
    over, in_agent_ms = [], []
    for e in envelopes.values():
        total = ts(e["finished_at"]) - ts(e["created_at"])
        in_agent = sum(ts(s["finished_at"]) - ts(s["started_at"]) for s in e["stages"]
                       if s.get("started_at") and s.get("finished_at"))
        over.append((total - in_agent) * 1000)
        in_agent_ms.append(in_agent * 1000)
    over.sort()
    p = (lambda q: over[min(len(over) - 1, int(len(over) * q))]) if over else (lambda q: 0)
    return p(0.5), p(0.99), (statistics.mean(in_agent_ms) if in_agent_ms else 0)


def one_round(cfg, db, keep_db=False):
    """cfg: agent, concurrency, workers, jobs, hosts, host_concurrency, prefix,
    bindir, state, pg_port, timeout, template. db: the database (created fresh unless
    keep_db)."""
    base_dsn = os.environ["HVD_PG_DSN"]
    if not keep_db:
        fresh_db(base_dsn, db, cfg.get("template"))
    sim_dir = os.path.join(cfg["state"], "sim")
    subprocess.run(["rm", "-rf", sim_dir])
    os.makedirs(sim_dir, exist_ok=True)
    env = dict(os.environ, HVD_PG_DSN=db_dsn(base_dsn, db), HVD_AMQP_PREFIX=cfg["prefix"],
               HVD_CONCURRENCY=str(cfg["concurrency"]), HVD_HOST_CONCURRENCY=str(cfg["host_concurrency"]),
               HVD_LOG_LEVEL="warn", **agent_env(cfg["agent"], cfg["bindir"], sim_dir))
    x0 = xact_commit(base_dsn, db)
    workers, ports = start_workers(cfg, env, cfg["state"])
    try:
        wait_healthy(ports, workers)
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["HVD_AMQP_URL"]))
        ch = conn.channel()
        reply = ch.queue_declare("", exclusive=True).method.queue
        s0 = snapshot(workers, ports, cfg["pg_port"])
        prof = perf_start(cfg, workers)
        feeder = feed(cfg["prefix"], reply, cfg["jobs"], cfg["hosts"])
        envelopes, t1 = collect(ch, reply, cfg["jobs"], cfg["timeout"])
        s1 = snapshot(workers, ports, cfg["pg_port"])
        perf_stop(prof, cfg)
        hwm = [proc_hwm_kb(w.pid) for w in workers]
        out, _ = feeder.communicate(timeout=60)
        t0, t_fed = (float(v) for v in out.split())
        ch.cancel()
        conn.close()
    finally:
        stop_workers(workers)
    time.sleep(0.3)  # the backends flush their statistics as they exit
    x1 = xact_commit(base_dsn, db)
    n = len(envelopes)
    d = max(n, 1)
    p50, p99, agent_ms = overheads(envelopes)
    if not keep_db:
        psql(base_dsn, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    return {
        "jobs": n, "ok": sum(1 for e in envelopes.values() if e["status"] == "success"),
        "jobs_per_s": n / (t1 - t0),
        "feed_s": t_fed - t0, "secs": t1 - t0,
        "overhead_p50_ms": p50, "overhead_p99_ms": p99, "agent_ms_per_job": agent_ms,
        "cpu_ms_per_job": (s1["cpu"] - s0["cpu"]) * 1000 / d,
        "sys_ms_per_job": (s1["sys"] - s0["sys"]) * 1000 / d,  # of cpu_ms_per_job, in the kernel
        "agent_cpu_ms_per_job": agent_cpu(s0, s1) * 1000 / d,
        "pg_cpu_ms_per_job": services_delta(s0["svc"], s1["svc"], "pg") * 1000 / d,
        "rmq_cpu_ms_per_job": services_delta(s0["svc"], s1["svc"], "rmq") * 1000 / d,
        "pg_tx_per_job": (x1 - x0) / d,  # whole worker lifetime on its own database
        "worker_tx_per_job": (s1["wtx"] - s0["wtx"]) / d,  # the workers' counter, this window
        "pg_rt_per_job": segments_delta(s0["segs"], s1["segs"]) / d,
        "amqp_ops_per_job": (s1["amqp"] - s0["amqp"]) / d,
        "peak_rss_mb": max(hwm) / 1024,
    }
