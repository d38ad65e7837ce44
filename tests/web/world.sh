# tests/web/world.sh: a private world for the dashboard's browser tests and the
# Python client's tests (sourced): a fresh PostgreSQL database and AMQP prefix
# on the test services, worker processes of this build with agent_talky in
# front of the simhost, and their removal. Needs HVD_AMQP_URL, HVD_PG_DSN and
# HVD_SECRET_KEY_FILE (./deploy/dev.sh up, then . .state/env).
#
#   world_new NAME          sets WORLD_ID, PREFIX, DB, DSN, WORK and creates the database
#   world_worker LOG VAR=.. starts a worker (extra environment as arguments); sets WORKER_PIDS
#   world_wait_ready LOG    waits until that worker consumes
#   world_free              stops every worker, deletes the prefix's queues and the database

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
BIN="${HVD_BIN_DIR:-$ROOT/build/bin}"
AGENTS="${HVD_TEST_AGENT_DIR:-$ROOT/build/test-agents}"
PY=/usr/bin/python3 # Debian's, with python3-pika, python3-aio-pika and python3-msgpack
if [ -z "${HVD_AMQP_URL:-}" ] && [ -f "$ROOT/.state/env" ]; then
    # shellcheck disable=SC1091
    . "$ROOT/.state/env"
    export HVD_AMQP_URL HVD_PG_DSN HVD_SECRET_KEY_FILE
fi
OUT_BASE="${HVD_TEST_OUT_DIR:-$ROOT/.state/test-out}"
WORKER_PIDS=()
WORLD_DB_CREATED=

world_new() {
    WORLD_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    PREFIX="hvd$1-$WORLD_ID"
    DB="hvd$1_$WORLD_ID"
    WORK="$OUT_BASE/$1/$WORLD_ID"
    mkdir -p "$WORK/sim"
    DSN="$("$PY" - "$HVD_PG_DSN" "$DB" <<'PYEOF'
import re, sys
dsn, db = sys.argv[1], sys.argv[2]
if re.match(r"^postgres(ql)?://", dsn):
    m = re.match(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$", dsn)
    print(m.group(1) + "/" + db + (m.group(3) or ""))
else:
    dsn = re.sub(r"(^|\s)dbname=('[^']*'|\S+)", "", dsn).strip()
    print((dsn + " dbname=" + db).strip())
PYEOF
)"
    PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 "$HVD_PG_DSN" -c "CREATE DATABASE \"$DB\"" >/dev/null ||
        return 1
    WORLD_DB_CREATED=1
    export PREFIX DB DSN WORK
}

# world_worker LOG [VAR=value...]: a worker with the talky agent in front of the simhost.
world_worker() {
    local log="$1" a pass=
    shift
    # the talky agent's knobs reach it by name: the agent's environment is explicit
    for a in "$@"; do
        case "$a" in HVD_TEST_*=*) pass="${pass:+$pass,}${a%%=*}" ;; esac
    done
    env HVD_PG_DSN="$DSN" HVD_AMQP_PREFIX="$PREFIX" HVD_AGENT_ENV_PASS="$pass" \
        HVD_AGENT_CMD="$AGENTS/agent_talky $BIN/hvdeploy-simhost --state-dir $WORK/sim" \
        HVD_METRICS_ADDR= HVD_WORKER_ID="w-$WORLD_ID-${#WORKER_PIDS[@]}" HVD_CONCURRENCY=4 \
        HVD_RETRY_DELAYS=1,2 HVD_LOG_LEVEL=info "$@" \
        "$BIN/hvdeploy-worker" </dev/null >"$log" 2>&1 &
    WORKER_PIDS+=("$!")
}

world_wait_ready() {
    local _i
    for _i in $(seq 1 300); do
        grep -q '"msg":"worker started' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    tail -n 20 "$1" >&2
    return 1
}

# Stops one worker by pid (SIGTERM, then SIGKILL after 20 s).
world_stop_pid() {
    local pid="$1" _i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for _i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

world_free() {
    set +e
    local pid
    for pid in "${WORKER_PIDS[@]}"; do world_stop_pid "$pid"; done
    WORKER_PIDS=()
    if [ -n "${PREFIX:-}" ]; then
        "$PY" - "$HVD_AMQP_URL" "$PREFIX" <<'PYEOF' >/dev/null 2>&1
import sys, pika
url, prefix = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
for q in ("jobs", "dead", "results", "retry.1s", "retry.2s", "retry.4s"):
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
PYEOF
    fi
    [ -n "$WORLD_DB_CREATED" ] &&
        PGCONNECT_TIMEOUT=10 psql -X -q "$HVD_PG_DSN" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    WORLD_DB_CREATED=
    rm -rf "${WORK:?}/sim"
    return 0
}
