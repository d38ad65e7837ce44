"""Measuring helpers of the benchmark: psql, /proc (CPU, peak RSS, children),
the workers' /metrics, and PostgreSQL round trips counted by the kernel.

Round trips: the worker's store counts them but does not export them, so the
benchmark counts what a round trip is on the wire: libpq sets TCP_NODELAY and
flushes once per request (a statement, or a whole pipeline), and the server
answers before the next flush, so the data segments a process sent on its
sockets to PostgreSQL's port (`ss -ti`: data_segs_out) are its round trips.
The ideal pipeline (18 PQexecPrepared per job) calibrates it.
"""
import os
import re
import subprocess
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def psql(dsn, sql):
    out = subprocess.run(["psql", "-qAtX", dsn, "-c", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("psql %s: %s: %s" % (dsn.rsplit("/", 1)[-1], sql[:60], out.stderr.strip()))
    return out.stdout.strip()


def db_dsn(base_dsn, db):
    return base_dsn.rsplit("/", 1)[0] + "/" + db


def xact_commit(base_dsn, db):
    """Committed transactions of database db (read from another database, so
    the reading itself is not counted)."""
    v = psql(base_dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = '%s'" % db)
    return int(v or 0)


def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_cpu_s(pid):
    """utime + stime of pid (all its threads, not its children)."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / TICKS


def proc_cpu_split_s(pid):
    """(utime, stime) of pid: user space and the kernel on its behalf."""
    f = _stat(pid)
    return int(f[11]) / TICKS, int(f[12]) / TICKS


def reaped_children_cpu_s(pid):
    """cutime + cstime: the children pid has waited for (per-call agents)."""
    f = _stat(pid)
    return (int(f[13]) + int(f[14])) / TICKS


def _schedstat_s(pid):
    """CPU time of pid's live threads in ns precision (a session's few ms
    would round to 0 ticks in /proc/PID/stat)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def live_children_cpu(pids):
    """{child pid: CPU seconds} of the running children of pids (sessions)."""
    want = set(pids)
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = _stat(int(name))
        except OSError:
            continue
        if int(f[1]) in want:
            try:
                out[int(name)] = _schedstat_s(int(name))
            except OSError:
                pass
    return out


def proc_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def metrics_text(port):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError:
        return ""


def metric_sum(port, name, text=None):
    text = metrics_text(port) if text is None else text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_healthy(ports, procs, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited at start (see .state/bench/worker-*.log)")
        try:
            if all(urllib.request.urlopen("http://127.0.0.1:%d/healthz" % p, timeout=1).status == 200
                   for p in ports):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("workers not healthy after %d s" % timeout)


_USER = re.compile(r"pid=(\d+)")
_SEGS = re.compile(r"\bdata_segs_out:(\d+)")


def pg_segments(pg_port, pids):
    """{local port: data segments sent} of pids' TCP sockets to pg_port."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", "dport", "= :%d" % pg_port],
                         capture_output=True, text=True).stdout
    want = set(pids)
    res = {}
    owner = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            cols = line.split()
            owner = None
            m = _USER.search(line)
            if m and int(m.group(1)) in want and len(cols) >= 4:
                owner = cols[2].rsplit(":", 1)[1]  # local address:port
            continue
        if owner is not None:
            m = _SEGS.search(line)
            res[owner] = int(m.group(1)) if m else 0
            owner = None
    return res


def segments_delta(before, after):
    return sum(v - before.get(k, 0) for k, v in after.items())


def service_pids():
    """(postmaster, beam) pids of this checkout's services, from deploy/dev.sh."""
    dev = os.environ.get("HVD_DEV_SH")
    if not dev:
        return None, None
    out = []
    for verb in ("pg-pid", "rmq-pid"):
        r = subprocess.run([dev, "svc", verb], capture_output=True, text=True)
        out.append(int(r.stdout.split()[0]) if r.returncode == 0 and r.stdout.split() else None)
    return tuple(out)


def services_cpu(pids):
    """{(kind, pid): CPU s} of the PostgreSQL backends (the postmaster's
    children, kind "pg") and the broker ("rmq"); see services_delta."""
    pg, rmq = pids
    res = {}
    try:
        if pg:
            res.update((("pg", k), v) for k, v in live_children_cpu([pg]).items())
        if rmq:
            res[("rmq", rmq)] = proc_cpu_s(rmq)
    except OSError:
        pass
    return res


def services_delta(before, after, kind):
    """CPU s of kind between two readings (processes that started in between
    count from 0; those that ended are lost, so sample often if they do)."""
    return sum(v - before.get(k, 0) for k, v in after.items() if k[0] == kind)
