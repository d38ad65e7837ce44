"""Chaos-suite plumbing: a fleet of 3 workers on a fresh database and a private
AMQP prefix, an upstream-like job submitter, the services' fault switches
(deploy/dev.sh svc), and the end-of-scenario checks (terminal rows, envelopes,
effects.jsonl, VMs on the simulated hosts)."""

import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import msgpack
import pika

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:  # pragma: no cover - run.sh checks this before we start
    psycopg2 = None

TERMINAL = ("succeeded", "failed", "cancelled")
HOSTS = ("hv01.lab.example", "hv02.lab.example", "hv03.lab.example", "hv04.lab.example")
SAMPLES = ("full-windows.json", "linux-static-ip.json", "minimal.json")


def now():
    return time.monotonic()


def log(msg):
    print(msg, flush=True)


class Ctx:
    """What every scenario shares: paths, service URLs, mode."""

    def __init__(self, root, bin_dir, mode, keep, seed):
        self.root = root
        self.bin_dir = bin_dir
        self.mode = mode                    # "short" or "long"
        self.keep = keep
        self.seed = seed
        self.rng = random.Random(seed)
        # how the workers call hvdeploy-flavour agents: "session" (they say so
        # in agent.hello) or "per-call" (HVD_AGENT_PROFILE without session)
        self.agent_mode = "session"
        self.pid = os.getpid()
        self.dev_sh = os.environ.get("HVD_DEV_SH") or os.path.join(root, "deploy", "dev.sh")
        self.amqp_url = os.environ["HVD_AMQP_URL"]
        self.pg_dsn = os.environ["HVD_PG_DSN"]
        self.key_file = os.environ["HVD_SECRET_KEY_FILE"]
        self.state = os.path.join(root, ".state")
        self.log_root = os.path.join(self.state, "logs", "chaos")
        self.run_root = os.path.join(self.state, "chaos")
        self.samples = {}
        for name in SAMPLES:
            with open(os.path.join(root, "tests", "data", "jobs", name), encoding="utf-8") as f:
                self.samples[name] = json.load(f)

    @property
    def short(self):
        return self.mode == "short"

    def svc(self, *args, timeout=900):
        """./deploy/dev.sh svc ARGS...; returns (rc, output)."""
        p = subprocess.run([self.dev_sh, "svc", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, text=True)
        return p.returncode, p.stdout


# ---------------------------------------------------------------- PostgreSQL

def dsn_with_db(dsn, dbname):
    d = psycopg2.extensions.parse_dsn(dsn)
    d["dbname"] = dbname
    return psycopg2.extensions.make_dsn(**d)


class Db:
    """A reconnecting autocommit connection (PostgreSQL may be restarted under us)."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.conn = None

    def query(self, sql, args=None, retry_s=60):
        deadline = now() + retry_s
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg2.connect(self.dsn, connect_timeout=3)
                    self.conn.autocommit = True
                with self.conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall() if cur.description else []
            except psycopg2.OperationalError:
                self.close()
                if now() > deadline:
                    raise
                time.sleep(0.5)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


def admin_exec(ctx, sql):
    conn = psycopg2.connect(ctx.pg_dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


# ---------------------------------------------------------------- AMQP

def amqp_connect(ctx, attempts=1):
    """A connection to ctx.amqp_url: one URL, or a cluster's nodes separated by
    spaces (as HVD_AMQP_URL takes them), tried in turn."""
    nodes = []
    for url in ctx.amqp_url.split():
        params = pika.URLParameters(url)
        params.connection_attempts = attempts
        params.retry_delay = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 30
        params.heartbeat = 30
        nodes.append(params)
    return pika.BlockingConnection(nodes if len(nodes) > 1 else nodes[0])


def amqp_retry(ctx, fn, retry_s=120):
    """Runs fn(channel) on a fresh connection, retrying while the broker is away."""
    deadline = now() + retry_s
    while True:
        conn = None
        try:
            conn = amqp_connect(ctx)
            return fn(conn.channel())
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError,
                pika.exceptions.ConnectionClosed, ConnectionError, OSError):
            if now() > deadline:
                raise
            time.sleep(1)
        finally:
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass


def queue_exists(ctx, name):
    def probe(ch):
        try:
            ch.queue_declare(queue=name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False
    return amqp_retry(ctx, probe)


def drain(ctx, queue):
    """Takes every message of a queue: list of (properties, body)."""
    def get_all(ch):
        out = []
        while True:
            method, props, body = ch.basic_get(queue=queue, auto_ack=False)
            if method is None:
                break
            out.append((props, body))
        # ack everything only once we hold it all
        if out:
            ch.basic_ack(delivery_tag=0, multiple=True)
        return out
    try:
        return amqp_retry(ctx, get_all)
    except pika.exceptions.ChannelClosedByBroker:
        return []


def decode_body(props, body):
    ct = (props.content_type or "").lower()
    try:
        if "json" in ct:
            return json.loads(body.decode("utf-8"))
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return None


class Submitter(threading.Thread):
    """Publishes bodies as upstream does: persistent, mandatory, publisher
    confirms, message_id = correlation_id = job id, reply_to our results queue.
    A publish that was not confirmed (broker away) is sent again after a
    reconnect; those job ids are in `resent` (their envelope may come twice:
    the worker republishes a finished job's envelope when upstream resends)."""

    def __init__(self, ctx, exchange, routing_key, reply_to, messages, rate=None, give_up_s=240):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.exchange = exchange
        self.routing_key = routing_key
        self.reply_to = reply_to
        self.messages = messages        # list of dicts: id, body, content_type, message_id, correlation_id, headers
        self.rate = rate                # messages per second, None = as fast as confirms allow
        self.give_up_s = give_up_s
        self.confirmed = []
        self.resent = set()
        self.unroutable = []
        self.failed = []
        self.reconnects = 0
        self.done = threading.Event()

    def _connect(self):
        conn = amqp_connect(self.ctx)
        ch = conn.channel()
        ch.confirm_delivery()
        return conn, ch

    def run(self):
        conn = ch = None
        t0 = now()
        try:
            for n, m in enumerate(self.messages):
                if self.rate:
                    wait = t0 + n / self.rate - now()
                    if wait > 0:
                        time.sleep(wait)
                deadline = now() + self.give_up_s
                tries = 0
                while True:
                    try:
                        if conn is None or not conn.is_open:
                            conn, ch = self._connect()
                        props = pika.BasicProperties(
                            content_type=m.get("content_type", "application/msgpack"),
                            delivery_mode=2,
                            message_id=m.get("message_id"),
                            correlation_id=m.get("correlation_id"),
                            reply_to=self.reply_to,
                            headers=m.get("headers"))
                        if tries:
                            self.resent.add(m["id"])
                        tries += 1
                        ch.basic_publish(exchange=self.exchange, routing_key=self.routing_key, body=m["body"],
                                         properties=props, mandatory=True)
                        self.confirmed.append(m["id"])
                        break
                    except pika.exceptions.UnroutableError:
                        self.unroutable.append(m["id"])
                        break
                    except Exception as e:  # broker away: reconnect and send again
                        self.reconnects += 1
                        try:
                            if conn is not None and conn.is_open:
                                conn.close()
                        except Exception:
                            pass
                        conn = ch = None
                        if now() > deadline:
                            self.failed.append((m["id"], repr(e)))
                            break
                        time.sleep(0.5)
        finally:
            try:
                if conn is not None and conn.is_open:
                    conn.close()
            except Exception:
                pass
            self.done.set()


# ---------------------------------------------------------------- the fleet

class Worker:
    def __init__(self, slot):
        self.slot = slot
        self.incarnation = 0
        self.proc = None
        self.worker_id = None
        self.log_path = None
        self.logs = []          # every incarnation's log file


class Fleet:
    """3 workers (by default) on a fresh database chaos_<name>_<pid>, AMQP
    prefix chaos-<name>-<pid>, simhost state under .state/chaos/<name>-<pid>/sim,
    logs under .state/logs/chaos/<name>/."""

    def __init__(self, ctx, name, n_workers=3, env=None, agent_wrap=False, results_args=None, flavor="hvdeploy"):
        self.ctx = ctx
        self.flavor = flavor                # the simhost's --flavor
        self.per_call = ctx.agent_mode == "per-call" and flavor == "hvdeploy"
        if self.per_call:
            name += "-pc"
        self.name = name
        self.prefix = "chaos-%s-%d" % (name, ctx.pid)
        self.db_name = "chaos_%s_%d" % (name.replace("-", "_"), ctx.pid)
        self.dsn = dsn_with_db(ctx.pg_dsn, self.db_name)
        self.run_dir = os.path.join(ctx.run_root, "%s-%d" % (name, ctx.pid))
        self.sim_dir = os.path.join(self.run_dir, "sim")
        self.log_dir = os.path.join(ctx.log_root, name)
        self.fault_log = os.path.join(self.run_dir, "agent-faults.log")
        self.results_queue = self.prefix + ".upstream-results"
        self.jobs_exchange = self.prefix + ".jobs"
        self.dead_queue = self.prefix + ".dead"
        self.env_extra = dict(env or {})
        self.agent_wrap = agent_wrap
        self.workers = [Worker(i + 1) for i in range(n_workers)]
        self.db = Db(self.dsn)
        self.db_created = False
        self.retry_delays = self.env_extra.get("HVD_RETRY_DELAYS", "1,2")
        self.results_args = results_args    # e.g. a quorum reply queue on a broker cluster

    # -- setup / teardown
    def setup(self):
        shutil.rmtree(self.log_dir, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.makedirs(self.sim_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        admin_exec(self.ctx, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db_name)
        admin_exec(self.ctx, 'CREATE DATABASE "%s"' % self.db_name)
        self.db_created = True
        amqp_retry(self.ctx, lambda ch: ch.queue_declare(queue=self.results_queue, durable=True,
                                                         arguments=self.results_args))

    def agent_cmd(self):
        sim = os.path.join(self.ctx.bin_dir, "hvdeploy-simhost")
        if self.flavor != "hvdeploy":
            sim += " --flavor " + self.flavor
        if self.agent_wrap:
            wrap = os.path.join(self.ctx.root, "tests", "chaos", "agent-wrap.sh")
            return "%s %s %s --state-dir %s" % (wrap, self.fault_log, sim, self.sim_dir)
        return "%s --state-dir %s" % (sim, self.sim_dir)

    def worker_env(self, w):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("HVD_SIM_") or k.startswith("HVD_") and k not in (
                    "HVD_AMQP_URL", "HVD_PG_DSN", "HVD_SECRET_KEY_FILE"):
                del env[k]
        env.update({
            "HVD_AMQP_URL": self.ctx.amqp_url,
            "HVD_PG_DSN": self.dsn,
            "HVD_SECRET_KEY_FILE": self.ctx.key_file,
            "HVD_AGENT_CMD": self.agent_cmd(),
            "HVD_AMQP_PREFIX": self.prefix,
            "HVD_LEASE_TTL": "5",
            "HVD_SWEEP_INTERVAL": "1",
            "HVD_RETRY_DELAYS": "1,2",
            "HVD_METRICS_ADDR": "",
            "HVD_SHUTDOWN_GRACE": "3",
            "HVD_HEARTBEAT": "10",
            "HVD_WORKER_ID": w.worker_id,
            "HVD_SIM_LATENCY_MS": "*=50-200",
            "HVD_AGENT_ENV_PASS": "CHAOS_CRASH_P",  # agent-wrap.sh reads it; the agent's env is explicit
        })
        if self.per_call:
            env["HVD_AGENT_PROFILE"] = "idempotency,probe"  # the shim's guarantees, without its session loop
        env.update(self.env_extra)
        return env

    def start_worker(self, w):
        w.incarnation += 1
        w.worker_id = "%s-w%d.%d" % (self.name, w.slot, w.incarnation)
        w.log_path = os.path.join(self.log_dir, "w%d.%d.log" % (w.slot, w.incarnation))
        w.logs.append(w.log_path)
        with open(w.log_path, "ab") as f:
            w.proc = subprocess.Popen([os.path.join(self.ctx.bin_dir, "hvdeploy-worker")],
                                      env=self.worker_env(w), stdin=subprocess.DEVNULL,
                                      stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        return w

    def start(self, timeout=60):
        for w in self.workers:
            self.start_worker(w)
        self.wait_started(self.workers, timeout)

    def wait_started(self, workers, timeout=60):
        deadline = now() + timeout
        for w in workers:
            while not self.log_has(w.log_path, "worker started"):
                if w.proc.poll() is not None:
                    raise RuntimeError("worker %s exited with %s at start; see %s" %
                                       (w.worker_id, w.proc.returncode, w.log_path))
                if now() > deadline:
                    raise RuntimeError("worker %s did not start within %d s; see %s" %
                                       (w.worker_id, timeout, w.log_path))
                time.sleep(0.2)

    @staticmethod
    def log_has(path, text):
        try:
            with open(path, "rb") as f:
                return text.encode() in f.read()
        except FileNotFoundError:
            return False

    def grep_logs(self, text, workers=None):
        """(log path, line) of every worker log line containing text."""
        hits = []
        for w in (workers or self.workers):
            for path in w.logs:
                try:
                    with open(path, "r", encoding="utf-8", errors="replace") as f:
                        for line in f:
                            if text in line:
                                hits.append((path, line.rstrip("\n")))
                except FileNotFoundError:
                    pass
        return hits

    def by_worker_id(self, worker_id):
        for w in self.workers:
            if w.worker_id == worker_id:
                return w
        return None

    def signal(self, w, sig):
        if w.proc and w.proc.poll() is None:
            os.kill(w.proc.pid, sig)

    def kill9(self, w):
        self.signal(w, signal.SIGKILL)
        w.proc.wait()

    def alive(self):
        return [w for w in self.workers if w.proc and w.proc.poll() is None]

    def stop(self):
        for w in self.workers:
            if w.proc and w.proc.poll() is None:
                try:
                    os.kill(w.proc.pid, signal.SIGCONT)
                    os.kill(w.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = now() + 10
        for w in self.workers:
            if w.proc is None:
                continue
            while w.proc.poll() is None and now() < deadline:
                time.sleep(0.1)
            if w.proc.poll() is None:
                os.kill(w.proc.pid, signal.SIGKILL)
                w.proc.wait()
        self.kill_strays()

    def kill_strays(self):
        """Agent processes of this run (by their --state-dir) left by killed workers."""
        me = self.sim_dir.encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if me in cmd and b"hvdeploy-simhost" in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self, passed):
        self.db.close()
        if self.ctx.keep:
            return
        if self.db_created:
            try:
                admin_exec(self.ctx, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db_name)
            except Exception as e:
                log("  warning: cannot drop database %s: %s" % (self.db_name, e))
        queues = [self.results_queue, self.prefix + ".jobs", self.dead_queue, self.prefix + ".results"]
        queues += ["%s.retry.%ss" % (self.prefix, d.strip()) for d in self.retry_delays.split(",") if d.strip()]
        exchanges = [self.prefix + s for s in (".jobs", ".retry", ".dead", ".events")]

        def delete(ch):
            for q in queues:
                ch.queue_delete(queue=q)
            for x in exchanges:
                ch.exchange_delete(exchange=x)
        try:
            amqp_retry(self.ctx, delete, retry_s=20)
        except Exception as e:
            log("  warning: cannot delete the AMQP objects of %s: %s" % (self.prefix, e))
        if passed:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- jobs
    def make_job(self, n, sample=None, host=None, mutate=None):
        ctx = self.ctx
        sample = sample or SAMPLES[n % len(SAMPLES)]
        body = json.loads(json.dumps(ctx.samples[sample]))
        job_id = str(uuid.uuid4())
        body["job_id"] = job_id
        body["request"]["target_host"] = host or HOSTS[n % len(HOSTS)]
        body["request"]["vm_spec"]["vm_name"] = "%s-%04d-%s" % (self.name, n, job_id[:6])
        if mutate:
            mutate(body)
        return {"id": job_id, "body": msgpack.packb(body, use_bin_type=True), "content_type": "application/msgpack",
                "message_id": job_id, "correlation_id": job_id, "json": body}

    def submitter(self, messages, rate=None):
        return Submitter(self.ctx, self.jobs_exchange, "managed_deployment", self.results_queue, messages, rate)

    def job_states(self, ids):
        rows = self.db.query("SELECT job_id::text, status, envelope_sent_at IS NOT NULL FROM hvdeploy.jobs"
                             " WHERE job_id = ANY(%s::uuid[])", (list(ids),))
        return {r[0]: (r[1], r[2]) for r in rows}

    def wait_terminal(self, ids, timeout, also=None):
        """Waits until every job is terminal with its envelope confirmed.
        also(): called every poll (fault injection). Returns the states."""
        deadline = now() + timeout
        ids = list(ids)
        while True:
            states = self.job_states(ids)
            done = [i for i in ids if i in states and states[i][0] in TERMINAL and states[i][1]]
            if len(done) == len(ids):
                return states
            if now() > deadline:
                return states
            if also:
                also()
            time.sleep(0.5)

    def describe_job(self, job_id, limit=40):
        """A job's row and events, for failure reports."""
        out = []
        rows = self.db.query("SELECT status, code, attempts, lease_owner, lease_epoch, waiting_reason,"
                             " next_run_at, envelope IS NOT NULL, envelope_sent_at FROM hvdeploy.jobs"
                             " WHERE job_id = %s::uuid", (job_id,))
        out.append("    job %s: %s" % (job_id, rows[0] if rows else "NO ROW"))
        for r in self.db.query("SELECT stage, status, attempts, started_at, finished_at, code, error"
                               " FROM hvdeploy.job_stages WHERE job_id = %s::uuid ORDER BY position", (job_id,)):
            out.append("      stage %s" % (r,))
        for r in self.db.query("SELECT id, at, stage, from_status, to_status, attempt, worker, detail"
                               " FROM hvdeploy.job_events WHERE job_id = %s::uuid ORDER BY id LIMIT %s",
                               (job_id, limit)):
            out.append("      event %s" % (r,))
        return out


# ---------------------------------------------------------------- checks

class Result:
    def __init__(self, name):
        self.name = name
        self.jobs = 0
        self.faults = 0
        self.fault_desc = ""
        self.lost = 0
        self.duplicated = 0
        self.problems = []
        self.notes = []
        self.seconds = 0.0
        self.skipped = None
        self.agent = ""

    def fail(self, msg):
        self.problems.append(msg)

    @property
    def passed(self):
        return not self.problems and self.skipped is None

    def line(self):
        if self.skipped is not None:
            return "[%s] skipped: %s" % (self.name, self.skipped)
        return "[%s] jobs %d, faults injected %d (%s), lost %d, duplicated envelopes: %d -- %s (%.0f s)" % (
            self.name, self.jobs, self.faults, self.fault_desc, self.lost, self.duplicated,
            "PASS" if self.passed else "FAIL", self.seconds)


def collect_envelopes(fleet):
    """Drains our reply queue: {correlation/job id: [(status, bytes, decoded)]}."""
    env = collections.defaultdict(list)
    for props, body in drain(fleet.ctx, fleet.results_queue):
        d = decode_body(props, body)
        key = props.correlation_id or props.message_id or (d.get("job_id") if isinstance(d, dict) else None)
        env[key].append((d.get("status") if isinstance(d, dict) else None, body, d))
    return env


def read_effects(fleet):
    """{idempotency_key: [(host, op, vm_id)]} from every host's effects.jsonl."""
    eff = collections.defaultdict(list)
    bad = []
    if not os.path.isdir(fleet.sim_dir):
        return eff, bad
    for host in os.listdir(fleet.sim_dir):
        path = os.path.join(fleet.sim_dir, host, "effects.jsonl")
        if not os.path.exists(path):
            continue
        with open(path, "r", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    bad.append("%s:%d" % (path, n))
                    continue
                eff[e.get("idempotency_key")].append((host, e.get("op"), e.get("vm_id")))
    return eff, bad


def read_vms(fleet):
    """{vm_id: (host, name)} of every VM on the simulated hosts."""
    vms = {}
    if not os.path.isdir(fleet.sim_dir):
        return vms
    for host in os.listdir(fleet.sim_dir):
        path = os.path.join(fleet.sim_dir, host, "state.json")
        if not os.path.exists(path):
            continue
        with open(path, "r", encoding="utf-8") as f:
            st = json.load(f)
        for vm in st.get("vms", []):
            vms[vm.get("id")] = (host, vm.get("name"))
    return vms


def check_jobs(fleet, res, ids, envelopes, expect_success=True, resent=(), states=None, unknown_vms_ok=False):
    """The checks every scenario ends with (see the module doc). unknown_vms_ok:
    a VM no envelope names may exist when its job ended outcome_unknown (the
    envelope says to check the host for it; a raw agent cannot be asked)."""
    ids = list(ids)
    res.jobs = len(ids)
    states = states if states is not None else fleet.job_states(ids)
    lost = set()
    # 1. every job has exactly one terminal row, and ended exactly once
    for i in ids:
        if i not in states:
            lost.add(i)
            res.fail("job %s: no row in hvdeploy.jobs (lost)" % i)
        elif states[i][0] not in TERMINAL:
            lost.add(i)
            res.fail("job %s: not terminal (status %s) at the end" % (i, states[i][0]))
    ends = dict(fleet.db.query(
        "SELECT job_id::text, count(*) FROM hvdeploy.job_events WHERE job_id = ANY(%s::uuid[])"
        " AND stage IS NULL AND to_status IN ('succeeded','failed','cancelled') GROUP BY job_id", (ids,)))
    for i in ids:
        if i in states and states[i][0] in TERMINAL and ends.get(i, 0) != 1:
            res.fail("job %s: %d terminal job_events rows (want 1)" % (i, ends.get(i, 0)))
    for job_id, stage, n in fleet.db.query(
            "SELECT job_id::text, stage, count(*) FROM hvdeploy.job_events WHERE job_id = ANY(%s::uuid[])"
            " AND stage IS NOT NULL AND to_status = 'succeeded' GROUP BY 1, 2 HAVING count(*) > 1", (ids,)):
        res.fail("job %s: stage %s succeeded %d times in job_events" % (job_id, stage, n))
    # 2. at least one terminal envelope each; duplicates counted (must be identical bytes)
    dup = 0
    dup_resent = 0
    for i in ids:
        got = envelopes.get(i, [])
        if not got:
            lost.add(i)
            res.fail("job %s: no envelope on %s (db status %s)" % (i, fleet.results_queue,
                                                                   states.get(i, ("none",))[0]))
            continue
        if len(got) > 1:
            if i in resent:
                dup_resent += len(got) - 1
            else:
                dup += len(got) - 1
            if len({b for _, b, _ in got}) > 1:
                res.fail("job %s: %d envelopes that differ: %s" % (i, len(got), [s for s, _, _ in got]))
        status = got[0][0]
        db_status = states.get(i, (None,))[0]
        want = {"succeeded": ("success",), "failed": ("error", "partial"),
                "cancelled": ("error", "partial")}.get(db_status, ())
        if status not in want:
            res.fail("job %s: envelope status %s but job row %s" % (i, status, db_status))
        if expect_success and status != "success":
            d = got[0][2] or {}
            res.fail("job %s: ended %s (%s: %s)" % (i, status, d.get("code"), d.get("message")))
    res.duplicated = dup + dup_resent
    if dup_resent:
        res.notes.append("%d duplicate envelope(s) of jobs upstream had to publish twice" % dup_resent)
    res.lost = len(lost)
    for i in sorted(lost)[:5]:
        res.notes.extend(fleet.describe_job(i))
    counts = dict(fleet.db.query(
        "SELECT detail, count(*) FROM hvdeploy.job_events WHERE job_id = ANY(%s::uuid[]) AND stage IS NULL"
        " AND detail IN ('takeover', 'retry', 'circuit_open', 'released') GROUP BY detail", (ids,)))
    res.notes.append("job_events: takeovers %d, retry waits %d, circuit-breaker waits %d, releases %d" % (
        counts.get("takeover", 0), counts.get("retry", 0), counts.get("circuit_open", 0),
        counts.get("released", 0)))
    # 3. effects.jsonl: each (job, stage) effect at most once
    effects, bad = read_effects(fleet)
    for b in bad:
        res.fail("effects.jsonl line is not JSON: %s" % b)
    for key, where in effects.items():
        if len(where) > 1:
            res.fail("effect %s applied %d times: %s" % (key, len(where), where))
    # 4. VMs on the hosts are exactly those of successful or partial jobs
    want_vms = {}
    for i in ids:
        for status, _, d in envelopes.get(i, [])[:1]:
            if status in ("success", "partial") and isinstance(d, dict):
                data = d.get("data") or {}
                if data.get("vm_id"):
                    want_vms[data["vm_id"]] = (data.get("target_host"), data.get("vm_name"), i)
                elif unknown_vms_ok and d.get("code") == "outcome_unknown":
                    pass  # vm.create's answer was lost: what to check is in its message
                else:
                    res.fail("job %s: envelope %s without data.vm_id" % (i, status))
    vms = read_vms(fleet)
    unknown_names = set()
    for i in ids:
        for status, _, d in envelopes.get(i, [])[:1]:
            if isinstance(d, dict) and d.get("code") == "outcome_unknown":
                unknown_names.add(((d.get("data") or {}).get("vm_name")))
    left = 0
    for vm_id, (host, name) in vms.items():
        if vm_id not in want_vms:
            owner = [i for i in ids if name and name.startswith(fleet.name) and name[-6:] == i[:6]]
            if unknown_vms_ok and name in unknown_names:
                left += 1
                continue
            res.fail("VM %s (%s on %s) exists but no success/partial envelope names it (job %s)" %
                     (vm_id, name, host, owner[0] if owner else "?"))
        elif want_vms[vm_id][0] != host:
            res.fail("VM %s is on %s, its envelope says %s" % (vm_id, host, want_vms[vm_id][0]))
    for vm_id, (host, name, i) in want_vms.items():
        if vm_id not in vms:
            res.fail("job %s: envelope names VM %s (%s on %s) that is not on the host" % (i, vm_id, name, host))
    if left:
        res.notes.append("%d VM(s) left by outcome_unknown jobs, as their envelopes say" % left)
    return lost


def check_names_created_once(fleet, res):
    """No VM name in two vm.create effects on one host (effects.jsonl): what
    matters against an agent that ignores idempotency keys."""
    seen = collections.Counter()
    if os.path.isdir(fleet.sim_dir):
        for host in os.listdir(fleet.sim_dir):
            path = os.path.join(fleet.sim_dir, host, "effects.jsonl")
            if not os.path.exists(path):
                continue
            with open(path, "r", encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if e.get("op") == "vm.create":
                        seen[(host, e.get("vm_name"))] += 1
    twice = [(k, n) for k, n in seen.items() if n > 1]
    for (host, name), n in twice[:10]:
        res.fail("VM name %s was created %d times on %s (effects.jsonl)" % (name, n, host))
    res.notes.append("vm.create effects: %d, on %d names; names made twice: %d" %
                     (sum(seen.values()), len(seen), len(twice)))


def check_agent_mode(fleet, res):
    """The workers called hvdeploy-flavour agents the way this pass says:
    sessions (agent.hello's profile hvdeploy, no fallback) or per call."""
    if fleet.flavor != "hvdeploy" or "HVD_AGENT_PROFILE" in fleet.env_extra:
        return
    if fleet.per_call:
        res.notes.append("agent mode: per call (HVD_AGENT_PROFILE=idempotency,probe)")
        return
    profiles = fleet.grep_logs('"msg":"agent profile"')
    full = [l for _, l in profiles if '"profile":"hvdeploy"' in l]
    if not full:
        res.fail("session mode: no worker learnt the hvdeploy profile from agent.hello (%d profile lines)" %
                 len(profiles))
    fallback = fleet.grep_logs("agent session unusable")
    res.notes.append("agent mode: session (%d agent.hello answers with session, %d fallbacks to per call)" %
                     (len(full), len(fallback)))


def check_dead_letters(fleet, res, ids):
    """Job messages that reached <prefix>.dead (e.g. the delivery limit)."""
    dead = drain(fleet.ctx, fleet.dead_queue)
    ids = set(ids)
    mine = [p.message_id for p, _ in dead if p.message_id in ids]
    if mine:
        res.notes.append("%d dead letter(s) for jobs of this run: %s" % (len(mine), mine[:5]))
    return dead


def service_log_offset(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_from(path, offset):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""


def stage_intervals(fleet, ids):
    """[(host, job_id, stage, started, finished)] from job_stages."""
    return fleet.db.query(
        "SELECT j.target_host, s.job_id::text, s.stage, s.started_at, s.finished_at FROM hvdeploy.job_stages s"
        " JOIN hvdeploy.jobs j USING (job_id) WHERE s.job_id = ANY(%s::uuid[]) AND s.started_at IS NOT NULL"
        " ORDER BY s.started_at", (list(ids),))


def count_faults(path):
    c = collections.Counter()
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.search(r"injected (crash before|crash after|hang)", line)
                if m:
                    c[m.group(1)] += 1
    except FileNotFoundError:
        pass
    return c


# ---------------------------------------------------------------- the end of a scenario

def finish_common(fleet, res, ids, sub=None, expect_success=True, timeout=120, states=None):
    """Waits for the end, then the common checks. Returns the envelopes."""
    if sub is not None:
        sub.done.wait(timeout)
        for i, why in sub.failed:
            res.fail("job %s could not be published: %s" % (i, why))
        for i in sub.unroutable:
            res.fail("job %s came back unroutable" % i)
    if states is None:
        states = fleet.wait_terminal(ids, timeout)
    envelopes = collect_envelopes(fleet)
    check_dead_letters(fleet, res, ids)
    check_jobs(fleet, res, ids, envelopes, expect_success=expect_success,
               resent=sub.resent if sub else (), states=fleet.job_states(ids))
    return envelopes


def workers_alive(fleet, res):
    check_agent_mode(fleet, res)
    for w in fleet.workers:
        if w.proc.poll() is not None:
            res.fail("worker %s exited with %s; see %s" % (w.worker_id, w.proc.returncode, w.log_path))
