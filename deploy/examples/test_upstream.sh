#!/usr/bin/env bash
# deploy/examples/test_upstream.sh: runs the Python upstream example against a
# real worker (build/bin, simhost as agent) on the private test services.
#
# Run by `./deploy/dev.sh test` (step "example"), or by hand after
# `./deploy/dev.sh up && ./deploy/dev.sh build`. Isolated from other tests: its
# own HVD_AMQP_PREFIX, its own PostgreSQL database and simhost state, all
# removed at the end (logs stay in $HVD_TEST_OUT_DIR/upstream-example/ when a
# check fails). Ends with "upstream: N passed, M failed"; exits 1 on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
BIN="${HVD_BIN_DIR:-$ROOT/build/bin}"
PY=/usr/bin/python3            # Debian's, with python3-pika, python3-aio-pika and python3-msgpack
# the example uses the client package of this checkout
export PYTHONPATH="$ROOT/clients/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${HVD_AMQP_URL:-}" ] && [ -f "$ROOT/.state/env" ]; then
    # shellcheck disable=SC1091
    . "$ROOT/.state/env"
fi
OUT_BASE="${HVD_TEST_OUT_DIR:-$ROOT/.state/test-out}"

passed=0
failed=0
ok()   { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
finish() {
    printf 'upstream: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
}
die() { fail "$*"; finish || exit 1; }

# ------------------------------------------------------------ prerequisites
[ -n "${HVD_AMQP_URL:-}" ] && [ -n "${HVD_PG_DSN:-}" ] && [ -n "${HVD_SECRET_KEY_FILE:-}" ] ||
    die "HVD_AMQP_URL, HVD_PG_DSN and HVD_SECRET_KEY_FILE are not set (run ./deploy/dev.sh up, then . .state/env)"
for p in hvdeploy-worker hvdeploy-simhost; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing (./deploy/dev.sh build)"
done
"$PY" -c 'import pika, aio_pika, msgpack' 2>/dev/null ||
    die "$PY lacks pika, aio_pika or msgpack (apt-get install python3-pika python3-aio-pika python3-msgpack)"
command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client-15)"

id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
PREFIX="hvdex-$id"
DB="hvdex_$id"
WORK="$OUT_BASE/upstream-example/$id"
case "$WORK$BIN" in
    *' '*) die "paths with spaces cannot go into HVD_AGENT_CMD (split on spaces): $WORK" ;;
esac
mkdir -p "$WORK/sim"
# libpq URI or key=value DSN -> the same server, database $DB
DSN="$("$PY" - "$HVD_PG_DSN" "$DB" <<'EOF'
import re, sys
dsn, db = sys.argv[1], sys.argv[2]
if re.match(r"^postgres(ql)?://", dsn):
    m = re.match(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$", dsn)
    print(m.group(1) + "/" + db + (m.group(3) or ""))
else:
    dsn = re.sub(r"(^|\s)dbname=('[^']*'|\S+)", "", dsn).strip()
    print((dsn + " dbname=" + db).strip())
EOF
)"
# A password the example sends as guest_la_pw: it must show up nowhere.
HVD_EXAMPLE_GUEST_PW="exPW-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export HVD_EXAMPLE_GUEST_PW

# Deletes what this run made on the broker (exchanges and queues with $PREFIX).
broker_cleanup() {
    "$PY" - "$HVD_AMQP_URL" "$PREFIX" <<'EOF' || true
import sys, pika
url, prefix = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
for q in ("jobs", "dead", "results", "replies.example") + tuple("retry.%ds" % s for s in (5, 30, 120, 600)):
    ch = conn.channel()
    try:
        ch.queue_delete(prefix + "." + q)
    except pika.exceptions.ChannelClosed:
        pass
for x in ("jobs", "retry", "dead", "events"):
    ch = conn.channel()
    try:
        ch.exchange_delete(prefix + "." + x)
    except pika.exceptions.ChannelClosed:
        pass
conn.close()
EOF
}

WORKER_PID=
STARTED=
DB_CREATED=
cleanup() {
    set +e
    if [ -n "$WORKER_PID" ] && kill -0 "$WORKER_PID" 2>/dev/null; then
        kill -TERM "$WORKER_PID"
        for _ in $(seq 1 400); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$WORKER_PID" 2>/dev/null
        wait "$WORKER_PID" 2>/dev/null
    fi
    [ -n "$STARTED" ] && broker_cleanup
    [ -n "$DB_CREATED" ] &&
        PGCONNECT_TIMEOUT=10 psql -X -q "$HVD_PG_DSN" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    if [ -n "${WORK:-}" ]; then
        rm -rf "$WORK/sim"
        [ "$failed" -eq 0 ] && rm -rf "$WORK"
        rmdir "$OUT_BASE/upstream-example" 2>/dev/null
    fi
    return 0
}
trap cleanup EXIT

# ------------------------------------------------------------ the worker
PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 "$HVD_PG_DSN" -c "CREATE DATABASE \"$DB\"" >/dev/null ||
    die "cannot create database $DB through HVD_PG_DSN"
DB_CREATED=1
echo "worker: prefix $PREFIX, database $DB, logs in ${WORK#"$ROOT/"}/"
env HVD_PG_DSN="$DSN" \
    HVD_AMQP_PREFIX="$PREFIX" \
    HVD_AGENT_CMD="$BIN/hvdeploy-simhost --state-dir $WORK/sim" \
    HVD_METRICS_ADDR= \
    HVD_WORKER_ID="upstream-example-$id" \
    HVD_CONCURRENCY=4 \
    HVD_LOG_LEVEL=info \
    "$BIN/hvdeploy-worker" </dev/null >"$WORK/worker.out" 2>"$WORK/worker.log" &
WORKER_PID=$!
STARTED=1

# Ready when its job queue exists and has its consumer.
ready=0
for _ in $(seq 1 120); do
    kill -0 "$WORKER_PID" 2>/dev/null || break
    if "$PY" - "$HVD_AMQP_URL" "$PREFIX.jobs" <<'EOF' 2>/dev/null
import sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
try:
    q = conn.channel().queue_declare(sys.argv[2], passive=True)
    sys.exit(0 if q.method.consumer_count > 0 else 1)
finally:
    if conn.is_open:
        conn.close()
EOF
    then ready=1; break; fi
    sleep 0.5
done
if [ "$ready" -eq 1 ]; then
    ok "worker up: $PREFIX.jobs declared and consumed"
else
    tail -n 20 "$WORK/worker.log" | sed 's/^/  worker: /'
    die "worker did not start consuming $PREFIX.jobs within 60 s"
fi

# ------------------------------------------------------------ the example
rc=0
"$PY" "$ROOT/deploy/examples/upstream_client.py" --url "$HVD_AMQP_URL" --prefix "$PREFIX" \
    --host hv01.lab.example --vm-name "ex-$id" --timeout 120 --follow \
    >"$WORK/envelope.json" 2>"$WORK/client.err" || rc=$?
sed 's/^/  client: /' "$WORK/client.err"
if [ "$rc" -eq 0 ]; then ok "upstream_client.py exited 0"
else fail "upstream_client.py exited $rc"; fi

if "$PY" - "$WORK/envelope.json" "ex-$id" 2>&1 <<'EOF'
import json, re, sys
try:
    env = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit("no envelope on stdout: %s" % e)
problems = []
if env.get("status") != "success":
    problems.append("status %r, code %r: %s" % (env.get("status"), env.get("code"), env.get("message")))
if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", str(env.get("job_id"))):
    problems.append("job_id %r is not the uuid4 the client made" % env.get("job_id"))
if env.get("correlation_id") != env.get("job_id"):
    problems.append("correlation_id %r != job_id" % env.get("correlation_id"))
names = [s.get("name") for s in env.get("stages") or []]
if names != ["vm.create", "disk.create", "nic.create", "vm.initialize"]:
    problems.append("stages %r" % names)
elif any(s.get("status") != "succeeded" for s in env["stages"]):
    problems.append("stage statuses %r" % [s.get("status") for s in env["stages"]])
data = env.get("data") or {}
if data.get("vm_name") != sys.argv[2] or not data.get("vm_id"):
    problems.append("data.vm_name/vm_id: %r/%r" % (data.get("vm_name"), data.get("vm_id")))
if problems:
    sys.exit("; ".join(problems))
print("job %s: success, 4 stages, vm_id %s" % (env["job_id"], data["vm_id"]))
EOF
then ok "envelope: status success with the four stages"
else fail "envelope not as expected (see above)"; fi

# The simulated host really made the VM (one effect per stage).
effects="$WORK/sim/hv01.lab.example/effects.jsonl"
n=0
[ -f "$effects" ] && n="$(grep -c '"op"' "$effects")"
if [ "$n" -ge 4 ]; then
    ok "simhost recorded the stages' effects ($n)"
else
    fail "simhost recorded $n effects, expected one per stage (4)"
fi

# ------------------------------------------------------------ drain and secrets
kill -TERM "$WORKER_PID"
wrc=0
for _ in $(seq 1 450); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$WORKER_PID" 2>/dev/null; then
    fail "worker still running 45 s after SIGTERM"
else
    wait "$WORKER_PID" || wrc=$?
    WORKER_PID=
    if [ "$wrc" -eq 0 ]; then ok "worker exited 0 on SIGTERM"
    else fail "worker exited $wrc on SIGTERM"; tail -n 20 "$WORK/worker.log" | sed 's/^/  worker: /'; fi
fi

if grep -rqF -- "$HVD_EXAMPLE_GUEST_PW" "$WORK/worker.log" "$WORK/worker.out" "$WORK/envelope.json" "$WORK/client.err"; then
    fail "the guest password appears in the worker's log or the client's output"
else
    ok "the guest password appears in no log, envelope or output"
fi

finish
