#!/usr/bin/python3
"""The hvdeploy benchmark: N full four-stage jobs through K workers.

For each configuration (agent, HVD_CONCURRENCY) it runs R rounds; each round
gets a fresh database and AMQP prefix, starts K workers, publishes N jobs as
upstream would (msgpack, persistent, publisher confirms), waits for every
envelope and measures:
  - jobs per second (first publish to last envelope),
  - the worker's overhead per job: envelope time (created_at -> finished_at)
    minus the time spent in agent calls (the stages' own durations), p50/p99,
  - the workers' CPU time per job (utime+stime from /proc, agents excluded),
  - PostgreSQL transactions per job (pg_stat_database.xact_commit delta),
  - broker operations per job (the workers' hvdeploy_amqp_operations_total),
  - peak RSS per worker (VmHWM).
It prints a Markdown table of the medians over the rounds (and writes it to
.state/bench/results.md) plus a breakdown of where the time per job goes.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

import msgpack
import pika

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HVD_BIN_DIR", os.path.join(ROOT, "build", "bin"))
STATE = os.path.join(ROOT, ".state", "bench")


def psql(dsn, sql):
    out = subprocess.run(["psql", "-qAtX", dsn, "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def job_body(i, host):
    return {
        "job_id": str(uuid.uuid4()),
        "job_type": "managed_deployment",
        "request": {
            "target_host": host,
            "vm_spec": {"vm_name": "bench-%06d" % i, "gb_ram": 4, "cpu_cores": 2},
            "disk_spec": {"image_name": "Ubuntu 22.04"},
            "nic_spec": {"network": "Production"},
            "guest_config": {"guest_la_uid": "admin", "guest_la_pw": "S3cret!pw-TEST"},
        },
    }


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, not children


def proc_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def metric_sum(port, name):
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ts(s):
    # 2026-11-25T20:04:36.123Z -> epoch seconds
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + float("0." + s[20:23])


def one_round(args, agent, concurrency, rnd):
    base_dsn = os.environ["HVD_PG_DSN"]
    db = "hvd_bench_%d_%d" % (os.getpid(), rnd)
    psql(base_dsn, "DROP DATABASE IF EXISTS %s" % db)
    psql(base_dsn, "CREATE DATABASE %s" % db)
    dsn = base_dsn.rsplit("/", 1)[0] + "/" + db
    prefix = "bench%d%d" % (os.getpid(), rnd)
    sim_dir = os.path.join(STATE, "sim-%d" % rnd)
    subprocess.run(["rm", "-rf", sim_dir])
    os.makedirs(sim_dir, exist_ok=True)
    agent_cmd = os.path.join(BIN, "hvdeploy-simhost") + (" --null" if agent == "null" else " --state-dir " + sim_dir)
    env = dict(os.environ, HVD_PG_DSN=dsn, HVD_AMQP_PREFIX=prefix, HVD_AGENT_CMD=agent_cmd,
               HVD_CONCURRENCY=str(concurrency), HVD_HOST_CONCURRENCY=str(args.host_concurrency),
               HVD_LOG_LEVEL="warn")
    workers = []
    ports = []
    for k in range(args.workers):
        port = 19500 + k
        ports.append(port)
        log = open(os.path.join(STATE, "worker-%d.log" % k), "w")
        workers.append(subprocess.Popen([os.path.join(BIN, "hvdeploy-worker")], stderr=log,
                                        env=dict(env, HVD_WORKER_ID="bench-%d" % k,
                                                 HVD_METRICS_ADDR="127.0.0.1:%d" % port)))
    try:
        for _ in range(100):
            try:
                if all(urllib.request.urlopen("http://127.0.0.1:%d/healthz" % p, timeout=1).status == 200
                       for p in ports):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["HVD_AMQP_URL"]))
        ch = conn.channel()
        reply = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        cpu0 = [proc_cpu_s(w.pid) for w in workers]
        amqp0 = sum(metric_sum(p, "hvdeploy_amqp_operations_total") for p in ports)
        xact0 = int(psql(dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))
        hosts = ["hv%02d.bench.example" % (h + 1) for h in range(args.hosts)]
        t0 = time.time()
        for i in range(args.jobs):
            b = job_body(i, hosts[i % len(hosts)])
            ch.basic_publish(prefix + ".jobs", "managed_deployment", msgpack.packb(b),
                             pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                                  message_id=b["job_id"], correlation_id=b["job_id"],
                                                  reply_to=reply))
        envelopes = {}
        deadline = time.time() + args.timeout
        for method, props, body in ch.consume(reply, inactivity_timeout=1, auto_ack=True):
            if method is not None:
                e = msgpack.unpackb(body, raw=False)
                envelopes[e["job_id"]] = e
            if len(envelopes) >= args.jobs or time.time() > deadline:
                break
        t1 = time.time()
        ch.cancel()
        conn.close()
        xact1 = int(psql(dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))
        amqp1 = sum(metric_sum(p, "hvdeploy_amqp_operations_total") for p in ports)
        cpu1 = [proc_cpu_s(w.pid) for w in workers]
        hwm = [proc_hwm_kb(w.pid) for w in workers]
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
    n = len(envelopes)
    ok = sum(1 for e in envelopes.values() if e["status"] == "success")
    overhead, agent_ms = [], []
    for e in envelopes.values():
        total = ts(e["finished_at"]) - ts(e["created_at"])
        in_agent = sum(ts(s["finished_at"]) - ts(s["started_at"]) for s in e["stages"] if s["started_at"])
        overhead.append((total - in_agent) * 1000)
        agent_ms.append(in_agent * 1000)
    overhead.sort()
    psql(base_dsn, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    return {
        "jobs": n, "ok": ok,
        "jobs_per_s": n / (t1 - t0),
        "overhead_p50_ms": overhead[len(overhead) // 2] if overhead else 0,
        "overhead_p99_ms": overhead[min(len(overhead) - 1, int(len(overhead) * 0.99))] if overhead else 0,
        "agent_ms_per_job": statistics.mean(agent_ms) if agent_ms else 0,
        "cpu_ms_per_job": (sum(cpu1) - sum(cpu0)) * 1000 / max(n, 1),
        "pg_tx_per_job": (xact1 - xact0) / max(n, 1),
        "amqp_ops_per_job": (amqp1 - amqp0) / max(n, 1),
        "peak_rss_mb": max(hwm) / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=64, help="distinct target hosts the jobs spread over")
    ap.add_argument("--host-concurrency", type=int, default=1)
    ap.add_argument("--concurrency", default="8,64")
    ap.add_argument("--agents", default="null,simhost")
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    os.makedirs(STATE, exist_ok=True)
    rows = []
    for agent in args.agents.split(","):
        for conc in [int(c) for c in args.concurrency.split(",")]:
            runs = [one_round(args, agent, conc, r) for r in range(args.rounds)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["agent"], med["concurrency"] = agent, conc
            rows.append(med)
            print("%-8s c=%-3d %s" % (agent, conc, json.dumps({k: round(v, 3) for k, v in med.items()
                                                                  if isinstance(v, float)})), flush=True)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    lines = [
        "Machine: %s, %d cores; %d jobs x %d rounds (median), %d workers, jobs spread over %d hosts, "
        "synchronous_commit on, broker and database on the same box." % (cpu, os.cpu_count(), args.jobs,
                                                                       args.rounds, args.workers, args.hosts),
        "",
        "| agent | HVD_CONCURRENCY | jobs/s | overhead p50 (ms) | overhead p99 (ms) | agent time/job (ms) "
        "| worker CPU/job (ms) | PG tx/job | broker ops/job | peak RSS/worker (MB) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %d | %.0f | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f | %.1f | %d/%d |" % (
            r["agent"], r["concurrency"], r["jobs_per_s"], r["overhead_p50_ms"], r["overhead_p99_ms"],
            r["agent_ms_per_job"], r["cpu_ms_per_job"], r["pg_tx_per_job"], r["amqp_ops_per_job"],
            r["peak_rss_mb"], r["ok"], r["jobs"]))
    out = "\n".join(lines)
    print()
    print(out)
    with open(os.path.join(STATE, "results.md"), "w") as f:
        f.write(out + "\n")
    bad = [r for r in rows if r["ok"] != r["jobs"] or r["jobs"] < args.jobs]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
