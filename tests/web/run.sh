#!/usr/bin/env bash
# tests/web/run.sh: the dashboard's browser tests. Starts a worker (agent_talky
# in front of the simhost: slow, chatty stages whose lines carry <script>) on a
# private database and prefix, two dashboards (one with actions and a
# password, one read-only with tight connection limits), installs
# playwright-core into .state/web-node (never committed) and runs
# tests/web/web.test.mjs with node's test runner against Debian's headless
# Chromium. Screenshots: .state/logs/web-*.png. Run by `./deploy/dev.sh test`
# (step "web"), or by hand after `./deploy/dev.sh up && ./deploy/dev.sh build`.
set -euo pipefail
# shellcheck source=world.sh
. "$(dirname "${BASH_SOURCE[0]}")/world.sh"

PLAYWRIGHT_VERSION=1.57.0
NODE_DIR="$ROOT/.state/web-node"
LOGS="$ROOT/.state/logs"
mkdir -p "$LOGS"

for p in hvdeploy-worker hvdeploy-simhost hvdeploy-web hvdeployctl; do
    [ -x "$BIN/$p" ] || { echo "web: $BIN/$p is missing (./deploy/dev.sh build)"; exit 1; }
done
[ -x /usr/bin/chromium ] || { echo "web: /usr/bin/chromium is missing (apt-get install chromium chromium-driver)"; exit 1; }
command -v node >/dev/null || { echo "web: node is missing (apt-get install nodejs npm)"; exit 1; }
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] ||
    ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
    echo "web: installing playwright-core@$PLAYWRIGHT_VERSION into ${NODE_DIR#"$ROOT/"}"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-save --loglevel=error \
        "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

WEB_PIDS=()
cleanup() {
    set +e
    local p
    for p in "${WEB_PIDS[@]}"; do world_stop_pid "$p"; done
    world_free
}
trap cleanup EXIT
world_new web || { echo "web: cannot create a database through HVD_PG_DSN"; exit 1; }
echo "web: prefix $PREFIX, database $DB, logs in ${WORK#"$ROOT/"}/"

# Every vm.create prints 25 lines over 10 s (with markup in them); nic.create
# keeps failing transiently on hv-dead.lab (three attempts, then a dead letter).
world_worker "$WORK/worker.log" HVD_TEST_LINES=25 HVD_TEST_LINE_MS=400 HVD_TEST_ONLY_OP=vm.create \
    HVD_TEST_STDERR_EVERY=5 'HVD_TEST_LINE_TEXT=<script>alert("line")</script>' \
    HVD_TEST_FAIL_OP=nic.create HVD_TEST_FAIL_HOST=hv-dead.lab HVD_TEST_FAIL_CODE=TRANSIENT \
    HVD_MAX_ATTEMPTS=3 HVD_RETRY_DELAYS=1,4 HVD_HOST_CONCURRENCY=1
world_wait_ready "$WORK/worker.log" || { echo "web: the worker did not start"; exit 1; }

PASSWORD="web-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$PASSWORD" | "$BIN/hvdeploy-web" --hash-password >"$WORK/password"

# start_web VAR LOG ARGS...: starts a dashboard, sets VAR to its base URL once it listens
start_web() {
    local var="$1" log="$2" _i port
    shift 2
    env HVD_PG_DSN="$DSN" HVD_AMQP_PREFIX="$PREFIX" HVD_HOST_CONCURRENCY=1 \
        "$BIN/hvdeploy-web" --listen 127.0.0.1:0 "$@" </dev/null >"$log" 2>&1 &
    WEB_PIDS+=("$!")
    for _i in $(seq 1 100); do
        port="$(sed -n 's/.*"msg":"web started".*"port":"\([0-9]*\)".*/\1/p' "$log" | head -n1)"
        if [ -n "$port" ]; then
            printf -v "$var" 'http://127.0.0.1:%s' "$port"
            return 0
        fi
        sleep 0.1
    done
    cat "$log" >&2
    return 1
}
start_web WEB_URL "$WORK/web.log" --allow-actions --password-file "$WORK/password" ||
    { echo "web: the dashboard did not start"; exit 1; }
start_web WEB_RO_URL "$WORK/web-ro.log" --per-ip 6 --max-connections 8 --request-timeout 3 ||
    { echo "web: the read-only dashboard did not start"; exit 1; }
echo "web: dashboards at $WEB_URL (actions) and $WEB_RO_URL (read-only)"

rc=0
env WEB_URL="$WEB_URL" WEB_RO_URL="$WEB_RO_URL" WEB_PASSWORD="$PASSWORD" WEB_LOGS="$LOGS" \
    HVDEPLOYCTL="$BIN/hvdeployctl" JOBS_DIR="$ROOT/tests/data/jobs" \
    HVD_PG_DSN="$DSN" HVD_AMQP_PREFIX="$PREFIX" \
    PLAYWRIGHT="$NODE_DIR/node_modules/playwright-core/index.mjs" \
    node --test --test-concurrency=1 "$ROOT/tests/web/web.test.mjs" || rc=$?
if grep -qF -- "$PASSWORD" "$WORK"/*.log; then
    echo "web: the dashboard's password appears in a log"
    rc=1
fi
ls "$LOGS"/web-*.png 2>/dev/null | sed "s|^$ROOT/|web: screenshot |"
[ "$rc" -eq 0 ] || tail -n 30 "$WORK/web.log" "$WORK/worker.log" | sed 's/^/  /'
exit "$rc"
