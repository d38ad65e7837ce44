#!/usr/bin/env bash
# deploy/demo.sh: the README's main command (run it as ./deploy/dev.sh demo,
# which installs, builds and starts the private RabbitMQ and PostgreSQL).
# Starts two workers with the simulated Hyper-V host as their agent, submits
# sample deployments and shows their progress and envelopes, then the jobs
# table, and stops the workers it started.
set -euo pipefail
: "${HVD_ROOT:?run me as ./deploy/dev.sh demo}"
BIN="${HVD_BIN_DIR:-$HVD_ROOT/build/bin}"
DEMO="$HVD_ROOT/.state/demo"
JOBS="$HVD_ROOT/deploy/demo"
CTL="$BIN/hvdeployctl"

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }

rm -rf "$DEMO"
mkdir -p "$DEMO/sim"

# A database of its own, fresh each run, next to the one `up` created.
BASE_DSN="$HVD_PG_DSN"
DEMO_DSN="${BASE_DSN%/*}/hvdeploy_demo"
psql -q "$BASE_DSN" -c "DROP DATABASE IF EXISTS hvdeploy_demo WITH (FORCE)" -c "CREATE DATABASE hvdeploy_demo" >/dev/null

export HVD_PG_DSN="$DEMO_DSN"
export HVD_AMQP_PREFIX=hvdeploy-demo
export HVD_AGENT_CMD="$HVD_ROOT/deploy/demo-agent.sh {host}"
# The agent gets an explicit environment (never the worker's credentials): pass what demo-agent.sh reads.
export HVD_AGENT_ENV_PASS=HVD_DEMO_SIM,HVD_BIN_DIR
export HVD_DEMO_SIM="$DEMO/sim" HVD_BIN_DIR="$BIN"
export HVD_RETRY_DELAYS=2,5 HVD_SWEEP_INTERVAL=2 HVD_LEASE_TTL=10 HVD_LOG_LEVEL=info

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

bold "migrating the demo database"
"$CTL" migrate

bold "starting two workers (logs: .state/demo/worker-*.log; metrics: 127.0.0.1:9464 and :9465)"
for i in 1 2; do
    HVD_WORKER_ID="demo-worker-$i" HVD_METRICS_ADDR="127.0.0.1:$((9463 + i))" \
        "$BIN/hvdeploy-worker" 2>"$DEMO/worker-$i.log" &
    PIDS+=($!)
done
for _ in $(seq 1 50); do
    curl -fs http://127.0.0.1:9464/healthz >/dev/null 2>&1 && curl -fs http://127.0.0.1:9465/healthz >/dev/null 2>&1 && break
    sleep 0.2
done
say "workers ready"

submit() { # FILE [extra submit flags]: prints progress and the envelope; never stops the demo
    local file="$1"; shift
    "$CTL" submit "$file" "$@" || true
}

bold "1. a full Windows deployment: VM, disk cloned from a golden image, NIC, guest config with domain join"
submit "$JOBS/1-windows.json" --follow

bold "2. a Linux deployment with a static IP"
submit "$JOBS/2-linux-static-ip.json" --follow

bold "3. a job that fails validation: every error is listed with its location"
submit "$JOBS/3-invalid.json"

bold "4. two jobs for the same VM name on one host: the second is refused while the first runs"
submit "$JOBS/4-sql.json" > "$DEMO/sql-a.out" 2>&1 &
A=$!
sleep 0.3
submit "$JOBS/4-sql.json" > "$DEMO/sql-b.out" 2>&1 &
B=$!
wait "$A" "$B" || true
say "-- first:"; cat "$DEMO/sql-a.out"
say "-- second:"; cat "$DEMO/sql-b.out"

bold "5. a job that fails on the host (unknown network): what it made is kept, status partial"
submit "$JOBS/5-unknown-network.json" --follow

bold "6. a NIC stage that hits a transient fault on hv03: retried after a backoff, then succeeds"
submit "$JOBS/6-flaky-nic.json" --follow

bold "7. the same failure with options.on_failure=rollback: the VM is deleted, status error"
submit "$JOBS/7-rollback.json" --follow

bold "the job's history in PostgreSQL (hvdeployctl status)"
"$CTL" status d0000000-0000-4000-8000-000000000003 || true

bold "the jobs table (hvdeployctl list)"
"$CTL" list --limit 20 || true

bold "what the simulated hosts hold now (effects applied, once each)"
for h in "$DEMO"/sim/*/; do
    [ -f "$h/effects.jsonl" ] && say "$(basename "$h"): $(wc -l < "$h/effects.jsonl") effects"
done

bold "done: the demo's workers are stopped (the services too, unless they were running before: ./deploy/dev.sh up keeps them)"
