"""The ideal pipeline of ../shared/bench/ (rmqbench pipeline) as one round of
the benchmark: its own database `bench` and quorum queues bench.pipe.in/out on
the same services as hvdeploy's rounds. See /work/shared/bench/README.md."""
import os
import shutil
import subprocess
import threading
import time
import urllib.parse

from probes import (db_dsn, pg_segments, psql, segments_delta, service_pids, services_cpu, services_delta,
                    xact_commit)

SHARED = os.environ.get("HVD_IDEAL_SRC", "/work/shared/bench")
DB = "bench"


def _need_build(src, dst):
    exe = os.path.join(dst, "rmqbench")
    if not os.path.exists(exe):
        return True
    return os.path.getmtime(os.path.join(src, "rmqbench.c")) > os.path.getmtime(exe)


class Ideal:
    def __init__(self, root):
        self.dir = os.path.join(root, ".state", "ideal")
        if _need_build(SHARED, self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.copytree(SHARED, self.dir)
            subprocess.run(["make", "-s", "-C", self.dir], check=True, stdout=subprocess.DEVNULL)
        self.exe = os.path.join(self.dir, "rmqbench")
        self.base_dsn = os.environ["HVD_PG_DSN"]
        u = urllib.parse.urlparse(os.environ["HVD_AMQP_URL"])
        self.rmq = ["host=%s" % (u.hostname or "127.0.0.1"), "port=%d" % (u.port or 5672)]
        if u.username:
            self.rmq += ["user=%s" % urllib.parse.unquote(u.username),
                         "pass=%s" % urllib.parse.unquote(u.password or "")]
        p = urllib.parse.urlparse(self.base_dsn)
        self.pg_port = p.port or 5432
        self.pg = "host=%s port=%d user=%s dbname=%s" % (p.hostname or "127.0.0.1", self.pg_port,
                                                         urllib.parse.unquote(p.username or ""), DB)
        self.dsn = db_dsn(self.base_dsn, DB)
        self.services = service_pids()
        self._setup()

    def _b(self, *args):
        return subprocess.run([self.exe] + list(args), check=True, capture_output=True, text=True).stdout

    def _setup(self):
        psql(self.base_dsn, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
        psql(self.base_dsn, "CREATE DATABASE %s" % DB)
        subprocess.run(["psql", "-qX", self.dsn, "-f", os.path.join(self.dir, "schema.sql")], check=True,
                       capture_output=True)
        for q in ("bench.pipe.in", "bench.pipe.out"):
            self._b("declare", *self.rmq, "q=" + q, "type=quorum")

    def _clean(self):
        psql(self.dsn, "TRUNCATE job_events")
        psql(self.dsn, "DELETE FROM jobs WHERE id > 100000")
        for q in ("bench.pipe.in", "bench.pipe.out"):
            self._b("purge", *self.rmq, "q=" + q)

    def round(self, n, consumers=8):
        """One run of n jobs: jobs/s, client CPU ms/job, transactions and round
        trips per job, peak RSS."""
        self._clean()
        jobbase = (time.time_ns() // 1000000 - 1700000000000) * 10000
        x0 = xact_commit(self.base_dsn, DB)
        cmd = [self.exe, "pipeline", *self.rmq, "q=bench.pipe.in", "q2=bench.pipe.out", "n=%d" % n,
               "consumers=%d" % consumers, "prefetch=1", "size=1024", "feed=1", "pg=" + self.pg,
               "jobbase=%d" % jobbase]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        segs = {}
        svc0 = services_cpu(self.services)
        svc = dict(svc0)
        stop = threading.Event()

        def sample():  # sockets and backends end with the run: keep the last reading of each
            while not stop.is_set():
                segs.update(pg_segments(self.pg_port, [p.pid]))
                svc.update(services_cpu(self.services))
                stop.wait(0.2)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        t.join()
        out, err = p.stdout.read(), p.stderr.read()
        if p.returncode != 0 or "rate=" not in out:
            raise RuntimeError("rmqbench failed (%d): %s %s" % (p.returncode, out, err))
        time.sleep(0.2)  # the backends flush their statistics as they exit
        x1 = xact_commit(self.base_dsn, DB)
        kv = dict(f.split("=", 1) for f in out.split() if "=" in f)
        return {
            "jobs": n, "ok": n,
            "jobs_per_s": float(kv["rate"]),
            "cpu_ms_per_job": (ru.ru_utime + ru.ru_stime) * 1000 / n,
            "pg_tx_per_job": (x1 - x0) / n,
            "pg_rt_per_job": segments_delta({}, segs) / n,
            "pg_cpu_ms_per_job": services_delta(svc0, svc, "pg") * 1000 / n,
            "rmq_cpu_ms_per_job": services_delta(svc0, svc, "rmq") * 1000 / n,
            "peak_rss_mb": ru.ru_maxrss / 1024,
        }

    def close(self):
        psql(self.base_dsn, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
        for q in ("bench.pipe.in", "bench.pipe.out"):
            try:
                self._b("delete", *self.rmq, "q=" + q)
            except subprocess.CalledProcessError:
                pass
