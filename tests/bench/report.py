"""The benchmark's Markdown report: the box, the table of rows, the ideal
pipeline's own figures, the growth comparison and issue 11's targets."""
import os
import statistics
import subprocess
import sys
import time

from probes import psql


def _sh(cmd):
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.strip()


def box():
    cpu = _sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    dsn = os.environ["HVD_PG_DSN"]
    sc = psql(dsn, "SHOW synchronous_commit")
    pgv = psql(dsn, "SHOW server_version")
    load = open("/proc/loadavg").read().split()[:3]
    return ("%s, nproc %d, %d MB RAM; PostgreSQL %s (synchronous_commit %s) and RabbitMQ on the same box; "
            "load average at the end %s (the box was shared with other sessions' builds and tests)"
            % (cpu, os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20, pgv, sc,
               " ".join(load)))


def _name(r):
    return "%s%s" % (r["agent"], " growth" if r["tag"] == "growth" else "")


def table(rows):
    out = ["| agent | HVD_CONCURRENCY | workers | jobs/s | ideal jobs/s | ratio to ideal | worker CPU ms/job "
           "| PG tx/job | PG round trips/job | peak RSS/worker MB | ok |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %d | %d | %.0f | %.0f | %.0f %% | %.2f | %.1f | %.1f | %.1f | %d/%d |" % (
            _name(r), r["concurrency"], r["workers"], r["jobs_per_s"], r["ideal"]["jobs_per_s"], 100 * r["ratio"],
            r["cpu_ms_per_job"], r["pg_tx_per_job"], r["pg_rt_per_job"], r["peak_rss_mb"], r["ok"], r["jobs"]))
    return out


def breakdown(rows):
    out = ["Where the box's time goes, CPU ms per job (medians; the ideal pipeline's own in the round before), "
           "and the worker's overhead (envelope time minus time in agent calls):", "",
           "| agent | HVD_CONCURRENCY | workers | worker | of it kernel | agents | PostgreSQL | RabbitMQ "
           "| ideal: client / PostgreSQL / RabbitMQ | worker's own tx/job | broker ops/job | overhead p50 / p99 ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i = r["ideal"]
        out.append("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f / %.2f / %.2f | %.1f | %.1f | %.0f / %.0f |" % (
            _name(r), r["concurrency"], r["workers"], r["cpu_ms_per_job"], r.get("sys_ms_per_job", 0),
            r["agent_cpu_ms_per_job"], r.get("pg_cpu_ms_per_job", 0), r.get("rmq_cpu_ms_per_job", 0),
            i["cpu_ms_per_job"], i.get("pg_cpu_ms_per_job", 0), i.get("rmq_cpu_ms_per_job", 0),
            r.get("worker_tx_per_job", 0), r["amqp_ops_per_job"], r["overhead_p50_ms"], r["overhead_p99_ms"]))
    return out


def ideal_line(rows):
    ids = [x for r in rows for x in [r["ideal"]]]
    if not ids:
        return []
    m = {k: statistics.median(i[k] for i in ids) for k in ids[0]}
    lo = min(i["jobs_per_s"] for i in ids)
    hi = max(i["jobs_per_s"] for i in ids)
    return ["The ideal pipeline itself (medians of the rows' medians): %.0f jobs/s (rows' medians %.0f-%.0f), "
            "%.2f ms client CPU/job, %.1f transactions/job, %.1f round trips/job (measured the same way; 18 by "
            "construction), %.1f MB peak RSS." % (m["jobs_per_s"], lo, hi, m["cpu_ms_per_job"], m["pg_tx_per_job"],
                                                 m["pg_rt_per_job"], m["peak_rss_mb"])]


def find(rows, agent, conc, workers, tag=""):
    for r in rows:
        if (r["agent"], r["concurrency"], r["workers"], r["tag"]) == (agent, conc, workers, tag):
            return r
    return None


def _mark(ok):
    return "met" if ok else "**missed**"


def targets(rows):
    out = []
    r = find(rows, "null-session", 64, 2) or find(rows, "null-session", 512, 2)
    if r:
        best = max((x for x in rows if x["agent"] == "null-session" and x["workers"] == 2 and not x["tag"]),
                   key=lambda x: x["ratio"])
        out.append("- null session, 2 workers >= 90 %% of ideal: %.0f %% at 64, best %.0f %% at %d: %s" % (
            100 * r["ratio"], 100 * best["ratio"], best["concurrency"], _mark(best["ratio"] >= 0.9)))
    main = [x for x in rows if x["agent"].startswith("null") and not x["tag"]]
    if main:
        cpu = [x["cpu_ms_per_job"] for x in main]
        tx = [x["pg_tx_per_job"] for x in main]
        rt = [x["pg_rt_per_job"] for x in main]
        out.append("- worker CPU <= 1 ms/job (null agents): %.2f-%.2f ms: %s" % (min(cpu), max(cpu),
                                                                                  _mark(max(cpu) <= 1)))
        wtx = [x.get("worker_tx_per_job", 0) for x in main]
        out.append("- <= 7 PostgreSQL transactions/job: %.1f-%.1f by pg_stat_database over the workers' whole life "
                   "(with their start, stop and background work); %.1f-%.1f by the workers' own counter over the "
                   "job window: %s" % (min(tx), max(tx), min(wtx), max(wtx), _mark(max(tx) <= 7)))
        out.append("- <= 10 PostgreSQL round trips/job: %.1f-%.1f: %s" % (min(rt), max(rt), _mark(max(rt) <= 10)))
    for conc, cap in ((64, 16), (512, 64)):
        rss = [x["peak_rss_mb"] for x in rows if x["concurrency"] == conc and not x["tag"]
               and x["agent"] != "simhost-50ms"]
        if rss:
            out.append("- peak RSS <= %d MB per worker at %d in flight: %.1f-%.1f MB: %s" % (
                cap, conc, min(rss), max(rss), _mark(max(rss) <= cap)))
    r = find(rows, "simhost-50ms", 512, 1)
    if r:
        want = 512 / (4 * 0.05)
        out.append("- simhost at 50 ms, 512 hosts, 1 worker at 512 >= 90 %% of %.0f jobs/s: %.0f (%.0f %%): %s" % (
            want, r["jobs_per_s"], 100 * r["jobs_per_s"] / want, _mark(r["jobs_per_s"] >= 0.9 * want)))
    g, e = find(rows, "null-session", 64, 2, "growth"), find(rows, "null-session", 64, 2)
    if g and e:
        d = g["ratio"] / e["ratio"] - 1
        dj = g["jobs_per_s"] / e["jobs_per_s"] - 1
        out.append("- growth within 10 %%: with the finished jobs already there, %.0f jobs/s (%.0f %% of ideal) "
                   "against %.0f (%.0f %%) on empty tables: %+.0f %% by jobs/s, %+.0f %% by the ratio to ideal: %s" % (
                       g["jobs_per_s"], 100 * g["ratio"], e["jobs_per_s"], 100 * e["ratio"], 100 * dj, 100 * d,
                       _mark(min(d, dj) >= -0.10)))
    return out


def render(args, rows, skipped, elapsed):
    cmd = "./deploy/dev.sh bench " + " ".join(sys.argv[1:])
    lines = [
        "# hvdeploy benchmark against the ideal pipeline",
        "",
        "%s UTC; `%s`; %.0f s; %d jobs per hvdeploy round, %d per ideal round, %d round(s) per row (medians; "
        "rounds interleaved ideal, hvdeploy, ideal, ...); jobs over %d hosts, HVD_HOST_CONCURRENCY %d; "
        "growth row on %d finished jobs." % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), cmd.strip(), elapsed,
                                             args.jobs, args.ideal_jobs, args.rounds, args.hosts,
                                             args.host_concurrency, args.growth_jobs),
        "",
        "Box: " + box() + ".",
        "",
    ]
    lines += table(rows)
    lines += [""] + ideal_line(rows)
    if rows:
        lines += [""] + breakdown(rows)
    if skipped:
        lines += ["", "Not run (time budget): " + ", ".join("%s %d x %d" % (c["agent"], c["concurrency"],
                                                                          c["workers"]) for c in skipped) + "."]
    t = targets(rows)
    if t:
        lines += ["", "Issue 11's targets:"] + t
    return "\n".join(lines)
