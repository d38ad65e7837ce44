"""The chaos scenarios past one machine (issue 13), on clusters started by
deploy/lib/cluster.sh on this box:

  broker-cluster  three RabbitMQ nodes, the workers given all three URLs; the
                  node leading <prefix>.jobs is killed (SIGKILL) mid-run and
                  restarted later;
  pg-failover     a PostgreSQL primary with a synchronous streaming standby;
                  mid-run the primary is killed and the standby promoted.

Both end with the suite's common checks (harness.check_jobs): no job lost, one
terminal state each, no effect applied twice, the VMs of the hosts exactly
those of successful or partial jobs."""

import copy
import subprocess
import time

import harness as H
from harness import log, now


def cluster(ctx, *args, timeout=300):
    """./deploy/dev.sh cluster ARGS...: (rc, stdout); stderr goes to our log."""
    p = subprocess.run([ctx.dev_sh, "cluster", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    if p.returncode != 0:
        log("  cluster %s: rc %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()[-400:]))
    return p.returncode, p.stdout.strip()


def terminal_count(fleet, ids):
    return sum(1 for st, _ in fleet.job_states(ids).values() if st in H.TERMINAL)


def wait_progress(fleet, ids, fraction, timeout):
    """Waits until fraction of the jobs ended (or timeout); returns how many did."""
    deadline = now() + timeout
    done = 0
    while now() < deadline:
        done = terminal_count(fleet, ids)
        if done >= fraction * len(ids):
            break
        time.sleep(0.5)
    return done


def lost_lines(fleet):
    return [line for _, line in fleet.grep_logs("lost its RabbitMQ connection")]


# ---------------------------------------------------------------- RabbitMQ cluster

def s_broker_cluster(ctx, res):
    """three RabbitMQ nodes; the leader of the jobs queue killed mid-run, restarted"""
    rc, _ = cluster(ctx, "rmq-up")
    if rc != 0:
        res.fail("the RabbitMQ cluster did not start (./deploy/dev.sh cluster rmq-up)")
        return
    rc, urls = cluster(ctx, "rmq-urls")
    log("  [broker-cluster] nodes: %s" % urls)
    # the upstream reply queue is replicated too
    fleet, ids, sub = start_fleet(ctx, res, "brokercluster", {"amqp_url": urls},
                                  results_args={"x-queue-type": "quorum"})
    n = len(ids)
    wait_progress(fleet, ids, 0.25, 120)
    rc, leader = cluster(ctx, "rmq-leader", fleet.prefix + ".jobs")
    if rc != 0 or not leader.isdigit():
        res.fail("cannot tell which node leads %s.jobs" % fleet.prefix)
        finish(fleet, res, ids, sub)
        return
    before = len(lost_lines(fleet))
    done = terminal_count(fleet, ids)
    log("  [broker-cluster] %d/%d jobs ended; killing node %s, the leader of %s.jobs" %
        (done, n, leader, fleet.prefix))
    rc, _ = cluster(ctx, "rmq-kill", leader)
    if rc != 0:
        res.fail("could not kill node %s" % leader)
    t_kill = now()
    res.faults = 1
    # the queue elects a new leader among the two left; the workers connected to the
    # dead node reconnect to another one
    new_leader = None
    while now() - t_kill < 60:
        rc, out = cluster(ctx, "rmq-leader", fleet.prefix + ".jobs")
        if rc == 0 and out.isdigit() and out != leader:
            new_leader = out
            break
        time.sleep(0.5)
    elected = now() - t_kill
    if new_leader is None:
        res.fail("no new leader of %s.jobs within 60 s of killing node %s" % (fleet.prefix, leader))
    else:
        res.notes.append("node %s (leader of the jobs queue) killed; node %s leads after %.1f s" %
                         (leader, new_leader, elected))
    # keep it down while jobs go on, then bring it back
    wait_progress(fleet, ids, 0.6, 60)
    time.sleep(max(0.0, t_kill + 10 - now()))
    t_down = now() - t_kill
    rc, _ = cluster(ctx, "rmq-start", leader)
    if rc != 0:
        res.fail("node %s did not start again" % leader)
    else:
        res.faults += 1
        res.notes.append("node %s was down %.0f s, then restarted (it rejoins the cluster)" % (leader, t_down))
    res.fault_desc = "SIGKILL of the jobs queue's leader node, restarted %.0f s later" % t_down
    finish(fleet, res, ids, sub)
    res.notes.append("worker connections lost with the node (each reconnected to another): %d; upstream "
                     "publisher reconnects: %d" % (len(lost_lines(fleet)) - before, sub.reconnects))
    rc, members = cluster(ctx, "rmqctl", "1", "list_queues", "-q", "--no-table-headers", "name", "members")
    mine = [line for line in members.splitlines() if line.startswith(fleet.prefix + ".jobs")]
    if mine:
        res.notes.append("members at the end: %s" % mine[0])


def finish(fleet, res, ids, sub):
    H.finish_common(fleet, res, ids, sub, timeout=240 if fleet.ctx.short else 600)
    H.workers_alive(fleet, res)


def start_fleet(ctx, res, name, override, **kw):
    """3 workers on a copy of ctx with override (amqp_url / pg_dsn) and n jobs
    submitted at the suite's rate: (fleet, ids, submitter)."""
    cctx = copy.copy(ctx)
    for k, v in override.items():
        setattr(cctx, k, v)
    fleet = H.Fleet(cctx, name, env={"HVD_HOST_CONCURRENCY": "2"}, **kw)
    res.fleet = fleet
    fleet.setup()
    fleet.start()
    jobs = [fleet.make_job(i) for i in range(40 if ctx.short else 200)]
    sub = fleet.submitter(jobs, rate=4 if ctx.short else 5)
    sub.start()
    return fleet, [j["id"] for j in jobs], sub


# ---------------------------------------------------------------- PostgreSQL failover

def s_pg_failover(ctx, res):
    """a primary with a synchronous standby; the primary killed mid-run, the standby promoted"""
    rc, _ = cluster(ctx, "pg-up")
    if rc != 0:
        res.fail("the primary and its standby did not start (./deploy/dev.sh cluster pg-up)")
        return
    rc, dsn = cluster(ctx, "pg-dsn", "hvdeploy")
    log("  [pg-failover] DSN %s" % dsn)
    fleet, ids, sub = start_fleet(ctx, res, "pgfailover", {"pg_dsn": dsn})
    n = len(ids)
    wait_progress(fleet, ids, 0.3, 120)
    done = terminal_count(fleet, ids)
    log("  [pg-failover] %d/%d jobs ended; killing the primary" % (done, n))
    rc, _ = cluster(ctx, "pg-kill-primary")
    if rc != 0:
        res.fail("could not kill the primary")
    t_kill = now()
    time.sleep(2.0)   # the fleet sees a dead primary and a read-only standby for a while
    rc, _ = cluster(ctx, "pg-promote")
    if rc != 0:
        res.fail("pg_ctl promote failed")
    promoted = now() - t_kill
    res.faults = 1
    res.fault_desc = "SIGKILL of the primary, standby promoted %.1f s later" % promoted
    # how long until the fleet writes again: the first job that ends after the promotion
    base = terminal_count(fleet, ids)
    t0 = now()
    resumed = None
    while now() - t0 < 120 and base < n:
        if terminal_count(fleet, ids) > base:
            resumed = now() - t_kill
            break
        time.sleep(0.25)
    if resumed is not None:
        res.notes.append("primary killed; standby promoted after %.1f s; jobs ending again %.1f s after the kill"
                         % (promoted, resumed))
    finish(fleet, res, ids, sub)
    lost = len(fleet.grep_logs("database connection lost"))
    ro = len(fleet.grep_logs("no longer the primary"))
    res.notes.append("worker log lines: 'database connection lost' %d, 'no longer the primary' %d" % (lost, ro))


def stop_clusters(ctx):
    """After the scenarios: the clusters are stopped (their state is kept)."""
    cluster(ctx, "rmq-down")
    cluster(ctx, "pg-down")


SCENARIOS = [
    ("broker-cluster", s_broker_cluster),
    ("pg-failover", s_pg_failover),
]
