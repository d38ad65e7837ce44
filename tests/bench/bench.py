#!/usr/bin/python3
"""The hvdeploy benchmark, against the ideal pipeline in the same run.

For each configuration (agent mode, HVD_CONCURRENCY, workers) it runs R
rounds, each an ideal-pipeline round (rmqbench pipeline of ../shared/bench/,
its own database `bench`, quorum queues bench.pipe.in/out) followed by an
hvdeploy round on the same broker and database server: K workers on a fresh
database, N jobs published by a concurrent feeder (one confirm each), every
envelope awaited. Per row it reports the medians over the rounds of:
  - jobs/s (first publish to last envelope) and the ratio to the ideal
    pipeline's jobs/s in the round just before (median of the ratios),
  - the workers' CPU ms/job (utime+stime from /proc; agents excluded, and
    reported apart),
  - PostgreSQL transactions/job (pg_stat_database.xact_commit of the round's
    database over the workers' whole life, read after they exited),
  - PostgreSQL round trips/job (data segments the workers sent to
    PostgreSQL's port, from `ss -ti`; see probes.py),
  - broker operations/job, the worker's overhead per job (envelope time minus
    the time in agent calls), peak RSS per worker (VmHWM).
Agent modes: null-session (simhost --null --session), null-call (simhost
--null, a process per call), simhost (default flavour with state, profile from
agent.hello), simhost-50ms (50 ms per call, one host per job in flight).
The growth row repeats null-session at 64 x 2 workers on a database that
already holds --growth-jobs finished jobs. Results: .state/bench/results.md
(and results.json). --quick: few jobs, one round, four rows, < 3 min.
The run stops by itself: rows that would not fit in --budget are skipped.
"""
import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse

import growth
import report
from hvd_round import fresh_db, make_template, one_round
from ideal import Ideal
from probes import psql

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HVD_BIN_DIR", os.path.join(ROOT, "build", "bin"))
STATE = os.path.join(ROOT, ".state", "bench")
T_START = time.time()
SEED_RATE = 1700  # finished jobs (4 stages, 15 events each) seeded per second: 10^6 took 581 s here


def log(msg):
    print("[bench %4.0fs] %s" % (time.time() - T_START, msg), flush=True)


def rows_of(args):
    """(agent, concurrency, workers, tag) in the order they are run."""
    if args.quick:
        return [("null-session", 64, 2, ""), ("null-call", 64, 2, ""), ("simhost", 64, 2, ""),
                ("null-session", 64, 2, "growth")]
    rows = [("null-session", 64, 2, ""), ("null-session", 64, 2, "growth")]
    for agent in ("null-session", "null-call", "simhost"):
        for workers in (2, 1):
            for conc in (8, 64, 512):
                if (agent, conc, workers) != ("null-session", 64, 2):
                    rows.append((agent, conc, workers, ""))
    rows.append(("simhost-50ms", 512, 1, ""))
    return rows


def config(args, agent, conc, workers, tag):
    hosts = conc if agent == "simhost-50ms" else args.hosts  # one host per job in flight
    return {"agent": agent, "concurrency": conc, "workers": workers, "tag": tag,
            "jobs": args.jobs if agent != "simhost-50ms" else max(args.jobs, 2 * conc),
            "hosts": hosts, "host_concurrency": args.host_concurrency if agent != "simhost-50ms" else 1,
            "prefix": "hvdbench%d" % os.getpid(), "bindir": BIN, "state": STATE,
            "pg_port": urllib.parse.urlparse(os.environ["HVD_PG_DSN"]).port or 5432,
            "timeout": args.timeout, "perf": args.perf, "template": "hvd_bench_tpl_%d" % os.getpid()}


def run_row(args, ideal, cfg, growth_db):
    rounds = []
    for r in range(args.rounds):
        i = ideal.round(args.ideal_jobs)
        db = growth_db if cfg["tag"] == "growth" else "hvd_bench_%d" % os.getpid()
        h = one_round(cfg, db, keep_db=cfg["tag"] == "growth")
        h["ratio"] = h["jobs_per_s"] / i["jobs_per_s"]
        h["ideal"] = i
        rounds.append(h)
        log("  round %d: ideal %.0f jobs/s, hvdeploy %.0f jobs/s (%d/%d ok), ratio %.2f, cpu %.2f ms/job, "
            "tx %.1f, rt %.1f, rss %.1f MB" % (r + 1, i["jobs_per_s"], h["jobs_per_s"], h["ok"], h["jobs"],
                                               h["ratio"], h["cpu_ms_per_job"], h["pg_tx_per_job"],
                                               h["pg_rt_per_job"], h["peak_rss_mb"]))
    med = {k: statistics.median(x[k] for x in rounds) for k in rounds[0] if k != "ideal"}
    med["ideal"] = {k: statistics.median(x["ideal"][k] for x in rounds) for k in rounds[0]["ideal"]}
    med["ok"] = min(x["ok"] for x in rounds)
    med["jobs"] = min(x["jobs"] for x in rounds)
    med.update(agent=cfg["agent"], concurrency=cfg["concurrency"], workers=cfg["workers"], tag=cfg["tag"],
               rounds=len(rounds), per_round=[{k: v for k, v in x.items() if k != "ideal"} for x in rounds])
    return med


def ensure_growth(args, ideal):
    db = "hvd_bench_growth_%d" % args.growth_jobs
    base = os.environ["HVD_PG_DSN"]
    if growth.seeded(base, db, args.growth_jobs):
        log("growth: reusing %s" % db)
        return db
    need = args.growth_jobs / SEED_RATE
    left = args.budget - (time.time() - T_START)
    if need > left / 2:
        log("growth: %s is not seeded and seeding takes ~%.0f s, more than the budget leaves: skipped "
            "(seed it once with --only null-session:64:2:growth --budget %d)" % (db, need, need * 2 + 300))
        return None
    log("growth: seeding %s with %d finished jobs (~%.0f s)" % (db, args.growth_jobs, need))
    warm = dict(config(args, "null-session", 64, 1, "growth"), jobs=200)

    def warm_up(d):
        fresh_db(base, d, warm["template"])
        one_round(warm, d, keep_db=True)

    growth.seed(base, db, args.growth_jobs, warm_up, log)
    return db


def cleanup_queues(prefix):
    dev = os.environ.get("HVD_DEV_SH")
    if not dev:
        return
    out = subprocess.run([dev, "svc", "rmqctl", "list_queues", "-q", "name"], capture_output=True, text=True).stdout
    for q in out.split():
        if q.startswith(prefix + "."):
            subprocess.run([dev, "svc", "rmqctl", "delete_queue", q], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 jobs, 1 round, 4 rows (< 3 min)")
    ap.add_argument("--jobs", type=int, help="jobs per hvdeploy round (default 600; quick 300)")
    ap.add_argument("--ideal-jobs", type=int, help="jobs per ideal round (default 600; quick 300)")
    ap.add_argument("--rounds", type=int, help="rounds per row (default 3; quick 1)")
    ap.add_argument("--hosts", type=int, default=64, help="distinct target hosts the jobs spread over")
    ap.add_argument("--host-concurrency", type=int, default=64, help="HVD_HOST_CONCURRENCY (64: no host limit)")
    ap.add_argument("--growth-jobs", type=int, help="finished jobs already there in the growth row (10^6; quick 2*10^4)")
    ap.add_argument("--only", help="comma-separated rows agent:concurrency:workers[:growth] instead of the list")
    ap.add_argument("--budget", type=int, help="seconds the run may take (default 1260; quick 170)")
    ap.add_argument("--perf", action="store_true", help="perf record the workers; .state/bench/perf-*.txt")
    ap.add_argument("--timeout", type=int, default=300, help="seconds an hvdeploy round may take")
    args = ap.parse_args()
    q = args.quick
    args.jobs = args.jobs or (300 if q else 600)
    args.ideal_jobs = args.ideal_jobs or (300 if q else 600)
    args.rounds = args.rounds or (1 if q else 3)
    args.growth_jobs = args.growth_jobs or (20000 if q else 1000000)
    args.budget = args.budget or (170 if q else 1260)
    os.makedirs(STATE, exist_ok=True)
    lock = open(os.path.join(STATE, "lock"), "w")
    try:  # one run at a time: the ideal pipeline's database and queues are shared
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit("bench: another run of this checkout's benchmark is going on")
    if args.only:
        todo = [tuple(r.split(":")) for r in args.only.split(",")]
        todo = [(t[0], int(t[1]), int(t[2]), t[3] if len(t) > 3 else "") for t in todo]
    else:
        todo = rows_of(args)
    ideal = Ideal(ROOT)
    make_template(os.environ["HVD_PG_DSN"], "hvd_bench_tpl_%d" % os.getpid(), BIN)
    done, skipped, spent = [], [], []
    try:
        for agent, conc, workers, tag in todo:
            cfg = config(args, agent, conc, workers, tag)
            guess = statistics.mean(spent) if spent else 0
            if time.time() - T_START + guess > args.budget:
                skipped.append(cfg)
                log("skipped %s c=%d w=%d %s: over the time budget" % (agent, conc, workers, tag))
                continue
            gdb = ensure_growth(args, ideal) if tag == "growth" else None
            if tag == "growth" and not gdb:
                skipped.append(cfg)
                continue
            cfg["timeout"] = int(max(30, min(args.timeout, args.budget - (time.time() - T_START))))
            t0 = time.time()
            log("row %s c=%d w=%d %s" % (agent, conc, workers, tag))
            done.append(run_row(args, ideal, cfg, gdb))
            spent.append(time.time() - t0)
    finally:
        ideal.close()
        cleanup_queues("hvdbench%d" % os.getpid())
        for db in ("hvd_bench_%d" % os.getpid(), "hvd_bench_tpl_%d" % os.getpid()):
            psql(os.environ["HVD_PG_DSN"], "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    text = report.render(args, done, skipped, time.time() - T_START)
    print()
    print(text)
    with open(os.path.join(STATE, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(STATE, "results.json"), "w") as f:
        json.dump({"args": vars(args), "rows": done, "skipped": skipped}, f, indent=1)
    bad = [r for r in done if r["ok"] != r["jobs"] or r["jobs"] < args.jobs]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
