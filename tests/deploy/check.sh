#!/usr/bin/env bash
# tests/deploy/check.sh: checks deploy/ as far as a machine without a
# container engine or a cluster allows: the YAML parses, the Kubernetes
# manifests and the compose file hold what they must, every deployment form's
# settings are accepted by the worker, the systemd units pass
# `systemd-analyze verify`, the Dockerfile lints by reading, the ssh configs
# parse, and deploy/rabbitmq/definitions.json imports into the private test
# broker and agrees with the topology the worker declares.
#
#   tests/deploy/check.sh            (the broker checks need ./deploy/dev.sh up and a build)
# Environment: HVD_BIN_DIR (default build/bin); HVD_AMQP_URL, HVD_PG_DSN and
# HVD_SECRET_KEY_FILE from .state/env when unset.
# Ends with "deploy: N passed, M failed, K skipped"; exits 1 when a check failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
BIN="${HVD_BIN_DIR:-$ROOT/build/bin}"
PY=/usr/bin/python3          # Debian's, with python3-yaml (the pyenv python3 on PATH lacks it)
DEV="$ROOT/deploy/dev.sh"
FILES="$ROOT/tests/deploy/check_files.py"
if [ -z "${HVD_AMQP_URL:-}" ] && [ -f "$ROOT/.state/env" ]; then
    # shellcheck disable=SC1091
    . "$ROOT/.state/env"
fi

passed=0 failed=0 skipped=0
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

# check NAME DESCRIPTION COMMAND...: exit 0 passes, 3 skips, anything else fails.
check() {
    local name="$1" desc="$2" rc=0
    shift 2
    "$@" >"$OUT" 2>&1 || rc=$?
    case "$rc" in
        0) passed=$((passed + 1)); printf 'ok    %-14s %s\n' "$name" "$desc" ;;
        3) skipped=$((skipped + 1)); printf 'skip  %-14s %s: %s\n' "$name" "$desc" "$(tail -n1 "$OUT")" ;;
        *) failed=$((failed + 1)); printf 'FAIL  %-14s %s\n' "$name" "$desc"; sed 's/^/        /' "$OUT" ;;
    esac
}

files() { "$PY" "$FILES" "$1" "$ROOT" "$BIN"; }

# ------------------------------------------------------------------ files
check yaml          "every YAML file under deploy/ parses (all documents, no duplicate keys)" files yaml
check k8s           "k8s manifests: kinds, probes, security, grace, Secret files, PDB, KEDA" files k8s
check kustomize     "kubectl kustomize deploy/k8s renders the 12 objects" files kustomize
check compose       "compose.yaml: services, healthchecks, depends_on conditions, secret, mounts" files compose
check compose-cli   "compose.yaml passes docker compose config" files compose-cli
check settings      "every form's HVD_* settings are known to and accepted by hvdeploy-worker" files settings
check systemd       "systemd units: verify, sandbox directives, security score, command line" files systemd
check dockerfile    "Dockerfile: 2 stages, non-root USER, no remote ADD, packages, libraries" files dockerfile
check dockerignore  ".dockerignore keeps build dirs and state out and the sources in" files dockerignore
check ssh           "ssh configs and the agent commands' ssh options parse (ssh -G)" files ssh
check python        "upstream_client.py compiles and --help runs under /usr/bin/python3" files python
check definitions   "definitions.json holds the contract's topology" files definitions

# Alerting rules: promtool's syntax check, then its unit tests (each alert fires on
# the series that should raise it and stays quiet on a healthy fleet).
alert_rules() {
    command -v promtool >/dev/null || { echo "promtool is not installed (Debian package prometheus: ./deploy/dev.sh deps)"; return 3; }
    promtool check rules "$ROOT/deploy/prometheus/hvdeploy-alerts.yaml" || return 1
    (cd "$ROOT/tests/deploy" && promtool test rules alerts_test.yaml)
}
check alerts        "promtool check rules and test rules on deploy/prometheus/hvdeploy-alerts.yaml" alert_rules
check dashboard     "the Grafana dashboard and the alert rules name only metrics the worker exports" \
    "$PY" "$ROOT/tests/deploy/check_metrics.py" "$ROOT"

# The objects against the Kubernetes and KEDA API schemas (the npm packages
# kubernetes-models and @kubernetes-models/keda, installed once into .state/).
k8s_schema() {
    command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are not installed"; return 3; }
    local dir="$ROOT/.state/k8s-schemas"
    if [ ! -f "$dir/node_modules/kubernetes-models/package.json" ] ||
       [ ! -f "$dir/node_modules/@kubernetes-models/keda/package.json" ]; then
        mkdir -p "$dir"
        [ -f "$dir/package.json" ] || printf '{"name": "hvdeploy-k8s-schemas", "private": true}\n' >"$dir/package.json"
        timeout 300 npm install --prefix "$dir" --no-audit --no-fund --no-save \
            kubernetes-models@5.1.0 @kubernetes-models/keda@2.0.0 >"$dir/install.log" 2>&1 ||
            { echo "could not install the schema packages (${dir#"$ROOT/"}/install.log)"; return 3; }
    fi
    "$PY" "$FILES" k8s-json "$ROOT" | node "$ROOT/tests/deploy/k8s_schema.mjs" "$dir"
}
check k8s-schema    "the 12 objects validate against the Kubernetes and KEDA API schemas" k8s_schema

shell_syntax() {
    local f rc=0
    for f in "$ROOT/deploy/examples/test_upstream.sh" "$ROOT/tests/deploy/check.sh"; do
        bash -n "$f" || rc=1
    done
    if command -v shellcheck >/dev/null; then
        shellcheck -x -S warning "$ROOT/deploy/examples/test_upstream.sh" "$ROOT/tests/deploy/check.sh" || rc=1
    fi
    return "$rc"
}
check shell         "the scripts parse (bash -n; shellcheck when installed)" shell_syntax

# ------------------------------------------------------------------ broker
broker_up() {
    [ -x "$DEV" ] || { echo "deploy/dev.sh is missing"; return 3; }
    "$DEV" svc rmq-pid >/dev/null 2>&1 || { echo "the private RabbitMQ is not running (./deploy/dev.sh up)"; return 3; }
}

# Imports definitions.json as it is into the test broker's default vhost
# (the hvdeploy.* objects the worker's default prefix uses there too).
import_definitions() {
    broker_up || return $?
    "$DEV" svc rmqctl import_definitions "$ROOT/deploy/rabbitmq/definitions.json" || return 1
    # the import runs asynchronously on the node: wait for its queues
    local types
    for _ in $(seq 1 30); do
        types="$("$DEV" svc rmqctl list_queues -q --no-table-headers -p / name type 2>&1)" || { echo "$types"; return 1; }
        compare_types "$types" >/dev/null && break
        sleep 1
    done
    compare_types "$types"
}
compare_types() {
    "$PY" - "$ROOT/deploy/rabbitmq/definitions.json" "$1" <<'EOF'
import json, sys
defs = json.load(open(sys.argv[1]))
have = dict(l.split()[:2] for l in sys.argv[2].splitlines() if len(l.split()) >= 2)
bad = 0
for q in defs["queues"]:
    want = q.get("arguments", {}).get("x-queue-type", "classic")
    if have.get(q["name"]) != want:
        print("queue %s: %s on the broker, %s in definitions.json" % (q["name"], have.get(q["name"]), want))
        bad = 1
if have.get("hvdeploy.jobs") != "quorum":
    print("hvdeploy.jobs is not a quorum queue")
    bad = 1
sys.exit(bad)
EOF
}
check import        "definitions.json imports into the test broker; hvdeploy.jobs is quorum" import_definitions

# The cluster file imports too (RabbitMQ 3.10 accepts its policies), into a vhost
# of its own, and its policies apply to every hvdeploy queue.
import_cluster_definitions() {
    broker_up || return $?
    local vh tmp rc=0 applied
    vh="hvdeploy-cluster-check-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    tmp="$(mktemp)"
    "$PY" - "$ROOT/deploy/rabbitmq/definitions-cluster.json" "$vh" "$tmp" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
d["vhosts"] = [{"name": sys.argv[2]}]
for section in ("queues", "exchanges", "bindings", "policies"):
    for o in d.get(section, []):
        o["vhost"] = sys.argv[2]
json.dump(d, open(sys.argv[3], "w"))
EOF2
    "$DEV" svc rmqctl add_vhost "$vh" >/dev/null || { rm -f "$tmp"; return 1; }
    if "$DEV" svc rmqctl import_definitions "$tmp"; then
        for _ in $(seq 1 30); do
            applied="$("$DEV" svc rmqctl list_queues -q --no-table-headers -p "$vh" name policy 2>/dev/null)"
            [ "$(grep -c 'hvdeploy-' <<<"$applied")" -ge 7 ] && break
            sleep 1
        done
        if [ "$(grep -c 'hvdeploy-' <<<"$applied")" -lt 7 ]; then
            echo "the policies do not apply to every queue:"; echo "$applied"; rc=1
        fi
    else
        echo "import of definitions-cluster.json failed"; rc=1
    fi
    "$DEV" svc rmqctl delete_vhost "$vh" >/dev/null 2>&1
    rm -f "$tmp"
    return "$rc"
}
check import-cluster "definitions-cluster.json imports (policies included) and its policies cover every queue" \
    import_cluster_definitions

# Loads definitions.json into a fresh vhost, starts a worker there (its own
# database), and compares: the worker declares its topology on top of the
# imported one without a conflict (it then consumes hvdeploy.jobs), and
# afterwards the vhost holds exactly the objects of definitions.json.
WORKER_PID='' VH='' DB=''
cleanup_topology() {
    if [ -n "$WORKER_PID" ]; then
        kill -TERM "$WORKER_PID" 2>/dev/null
        for _ in $(seq 1 400); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$WORKER_PID" 2>/dev/null
        wait "$WORKER_PID" 2>/dev/null
        WORKER_PID=
    fi
    [ -n "$VH" ] && "$DEV" svc rmqctl delete_vhost "$VH" >/dev/null 2>&1
    [ -n "$DB" ] && PGCONNECT_TIMEOUT=10 psql -X -q "$HVD_PG_DSN" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    VH='' DB=''
    return 0
}

worker_topology() {
    broker_up || return $?
    [ -x "$BIN/hvdeploy-worker" ] || { echo "$BIN/hvdeploy-worker is not built"; return 3; }
    [ -n "${HVD_AMQP_URL:-}" ] && [ -n "${HVD_PG_DSN:-}" ] && [ -n "${HVD_SECRET_KEY_FILE:-}" ] ||
        { echo "no .state/env (./deploy/dev.sh up)"; return 3; }
    command -v psql >/dev/null || { echo "psql is not installed"; return 3; }
    local id tmp url dsn user rc=0
    id="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    VH="hvdeploy-check-$id" DB="hvdeploy_check_$id"
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "cleanup_topology; rm -rf '$tmp' '$OUT'" EXIT
    read -r url dsn user < <("$PY" - "$HVD_AMQP_URL" "$HVD_PG_DSN" "$VH" "$DB" "$ROOT/deploy/rabbitmq/definitions.json" "$tmp/defs.json" <<'EOF'
import json, re, sys, urllib.parse
amqp, dsn, vh, db, src, dst = sys.argv[1:]
m = re.match(r"^(amqps?://([^/?]*))(/[^?]*)?(\?.*)?$", amqp)
url = m.group(1) + "/" + urllib.parse.quote(vh, safe="") + (m.group(4) or "")
auth = m.group(2)
user = urllib.parse.unquote(auth.split("@")[0].split(":")[0]) if "@" in auth else "guest"
m2 = re.match(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$", dsn)
dsn = m2.group(1) + "/" + db + (m2.group(3) or "") if m2 else dsn + " dbname=" + db
defs = json.load(open(src))
defs["vhosts"] = [{"name": vh}]
for section in ("queues", "exchanges", "bindings", "policies", "parameters", "permissions"):
    for o in defs.get(section, []):
        o["vhost"] = vh
json.dump(defs, open(dst, "w"))
print(url, dsn.replace(" ", "%20"), user)
EOF
)
    dsn="${dsn//%20/ }"
    "$DEV" svc rmqctl add_vhost "$VH" >/dev/null || return 1
    "$DEV" svc rmqctl set_permissions -p "$VH" "$user" '.*' '.*' '.*' >/dev/null || return 1
    "$DEV" svc rmqctl import_definitions "$tmp/defs.json" || { echo "import into vhost $VH failed"; return 1; }
    local want have=0
    want="$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["queues"]))' "$tmp/defs.json")"
    for _ in $(seq 1 30); do     # the import runs asynchronously on the node
        have="$("$DEV" svc rmqctl list_queues -q --no-table-headers -p "$VH" name 2>/dev/null | grep -c .)"
        [ "$have" -ge "$want" ] && break
        sleep 1
    done
    [ "$have" -ge "$want" ] || { echo "the import into $VH made $have of $want queues within 30 s"; return 1; }
    PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 "$HVD_PG_DSN" -c "CREATE DATABASE \"$DB\"" || return 1
    mkdir -p "$tmp/sim"
    env HVD_AMQP_URL="$url" HVD_PG_DSN="$dsn" HVD_AMQP_PREFIX=hvdeploy HVD_METRICS_ADDR= \
        HVD_AGENT_CMD="$BIN/hvdeploy-simhost --state-dir $tmp/sim" HVD_WORKER_ID="deploy-check-$id" \
        "$BIN/hvdeploy-worker" </dev/null >/dev/null 2>"$tmp/worker.log" &
    WORKER_PID=$!
    local ready=0
    for _ in $(seq 1 60); do
        kill -0 "$WORKER_PID" 2>/dev/null || break
        if "$PY" - "$url" <<'EOF' 2>/dev/null
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
try:
    sys.exit(0 if c.channel().queue_declare("hvdeploy.jobs", passive=True).method.consumer_count else 1)
finally:
    if c.is_open:
        c.close()
EOF
        then ready=1; break; fi
        sleep 0.5
    done
    if [ "$ready" -ne 1 ]; then
        echo "the worker did not come to consume hvdeploy.jobs over the imported topology within 30 s; its log:"
        tail -n 15 "$tmp/worker.log"
        return 1
    fi
    {
        echo "## queues"; "$DEV" svc rmqctl list_queues -q --no-table-headers -p "$VH" name type
        echo "## exchanges"; "$DEV" svc rmqctl list_exchanges -q --no-table-headers -p "$VH" name type
        echo "## bindings"; "$DEV" svc rmqctl list_bindings -q --no-table-headers -p "$VH" source_name destination_name routing_key
    } >"$tmp/broker.txt" 2>&1 || { cat "$tmp/broker.txt"; return 1; }
    "$PY" - "$tmp/defs.json" "$tmp/broker.txt" <<'EOF' || rc=1
import json, sys
defs = json.load(open(sys.argv[1]))
sect, have = None, {"queues": set(), "exchanges": set(), "bindings": set()}
for line in open(sys.argv[2]):
    line = line.rstrip("\n")
    if line.startswith("## "):
        sect = line[3:]
        continue
    f = line.split("\t")
    if sect == "queues" and len(f) >= 2 and not f[0].startswith("amq.gen-"):
        have["queues"].add((f[0], f[1]))
    elif sect == "exchanges" and len(f) >= 2 and f[0] and not f[0].startswith("amq."):
        have["exchanges"].add((f[0], f[1]))
    elif sect == "bindings" and len(f) >= 3 and f[0]:          # not the default exchange's
        have["bindings"].add((f[0], f[1], f[2]))
want = {
    "queues": {(q["name"], q.get("arguments", {}).get("x-queue-type", "classic")) for q in defs["queues"]},
    "exchanges": {(x["name"], x["type"]) for x in defs["exchanges"]},
    "bindings": {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]},
}
bad = 0
for k in want:
    for o in sorted(have[k] - want[k]):
        print("the worker declares %s %s, which definitions.json lacks" % (k[:-1], o)); bad = 1
    for o in sorted(want[k] - have[k]):
        print("definitions.json has %s %s, which the worker did not declare" % (k[:-1], o)); bad = 1
sys.exit(bad)
EOF
    cleanup_topology
    rm -rf "$tmp"
    trap 'rm -f "$OUT"' EXIT
    return "$rc"
}
check topology      "a worker declares exactly definitions.json's topology over it, without conflict" worker_topology

printf 'deploy: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
