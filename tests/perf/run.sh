#!/usr/bin/env bash
# tests/perf/run.sh [N]: the store's latency with an empty schema and with N finished
# jobs (default 10^6, with 4 stages and 11 events each) in the tables, side by side:
# claim, slot, finish, sweep, list, status, the fleet view and a prune batch
# (build/perf/hvd_store_latency), plus hvdeployctl list/status end to end.
# ./deploy/dev.sh perf runs it against the private PostgreSQL. The filled database
# (perf_<N>) is kept for the next run: filling 10^6 jobs takes about 2 minutes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
N="${1:-1000000}"
ROUNDS="${HVD_PERF_ROUNDS:-200}"
BIN="${HVD_BIN_DIR:-$ROOT/build/bin}"
LAT="$ROOT/build/perf/hvd_store_latency"
[ -n "${HVD_PG_DSN:-}" ] || { [ -f "$ROOT/.state/env" ] && . "$ROOT/.state/env"; }
[ -n "${HVD_PG_DSN:-}" ] || { echo "perf: no HVD_PG_DSN (./deploy/dev.sh up)" >&2; exit 2; }
[ -x "$LAT" ] || { echo "perf: $LAT is not built (cmake --build build --target hvd_store_latency)" >&2; exit 2; }

# $HVD_PG_DSN with another database
dsn_for() {
    /usr/bin/python3 -c 'import sys, psycopg2.extensions as e
d = e.parse_dsn(sys.argv[1]); d["dbname"] = sys.argv[2]; print(e.make_dsn(**d))' "$HVD_PG_DSN" "$1"
}
q() { PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 "$@"; }

EMPTY="$(dsn_for perf_empty)" FULL="$(dsn_for "perf_$N")" ADMIN="$(dsn_for postgres)"
q "$ADMIN" -c "DROP DATABASE IF EXISTS perf_empty" -c "CREATE DATABASE perf_empty"
HVD_PG_DSN="$EMPTY" "$BIN/hvdeployctl" migrate >/dev/null
have="$(q "$ADMIN" -tAc "SELECT 1 FROM pg_database WHERE datname = 'perf_$N'")"
count=0
[ "$have" = 1 ] && count="$(q "$FULL" -tAc "SELECT count(*) FROM hvdeploy.jobs" 2>/dev/null || echo 0)"
if [ "$count" -lt $((N * 99 / 100)) ]; then
    echo "perf: filling perf_$N with $N finished jobs (tests/perf/fill_finished.sql)..."
    q "$ADMIN" -c "DROP DATABASE IF EXISTS perf_$N" -c "CREATE DATABASE perf_$N"
    HVD_PG_DSN="$FULL" "$BIN/hvdeployctl" migrate >/dev/null
    t0=$SECONDS
    q "$FULL" -v n="$N" -v days=60 -f "$HERE/fill_finished.sql" >/dev/null
    echo "perf: filled in $((SECONDS - t0)) s"
else
    HVD_PG_DSN="$FULL" "$BIN/hvdeployctl" migrate >/dev/null
fi
q "$FULL" -tAc "SELECT 'perf_$N: ' || count(*) || ' jobs, ' || pg_size_pretty(pg_database_size(current_database()))
                 FROM hvdeploy.jobs"

# hvdeployctl list / status, end to end (process start, connect, query, print): median of 20
ctl_ms() {  # dsn args...
    local dsn="$1"; shift
    /usr/bin/python3 - "$dsn" "$BIN/hvdeployctl" "$@" <<'EOF'
import os, subprocess, sys, time
env = dict(os.environ, HVD_PG_DSN=sys.argv[1])
t = []
for _ in range(20):
    t0 = time.monotonic()
    subprocess.run(sys.argv[2:], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    t.append((time.monotonic() - t0) * 1000)
t.sort()
print("%.1f" % t[len(t) // 2])
EOF
}

out_e="$(mktemp)" out_f="$(mktemp)"
trap 'rm -f "$out_e" "$out_f"' EXIT
"$LAT" "$EMPTY" "$ROUNDS" >"$out_e"
"$LAT" "$FULL" "$ROUNDS" >"$out_f"
id_f="$(q "$FULL" -tAc "SELECT job_id FROM hvdeploy.jobs TABLESAMPLE SYSTEM (1) LIMIT 1")"
{
    echo "hvdeployctl list	$(ctl_ms "$EMPTY" list)	$(ctl_ms "$FULL" list)"
    echo "hvdeployctl list --status failed	$(ctl_ms "$EMPTY" list --status failed)	$(ctl_ms "$FULL" list --status failed)"
    echo "hvdeployctl status ID	$(ctl_ms "$EMPTY" status 00000000-0000-4000-8000-000000000001)	$(ctl_ms "$FULL" status "$id_f")"
} >"$out_e.ctl"
/usr/bin/python3 - "$out_e" "$out_f" "$out_e.ctl" "$N" <<'EOF'
import sys
def rows(path):
    out = {}
    for line in open(path).read().splitlines()[1:]:
        name, p50, p95, mx, n = line.rsplit(None, 4)
        out[name.strip()] = (p50, p95)
    return out
e, f = rows(sys.argv[1]), rows(sys.argv[2])
print()
print("| call | empty p50 (ms) | empty p95 (ms) | %s finished jobs p50 (ms) | p95 (ms) |" % format(int(sys.argv[4]), ","))
print("|---|---:|---:|---:|---:|")
for name in e:
    print("| %s | %s | %s | %s | %s |" % (name, e[name][0], e[name][1], f.get(name, ("-", "-"))[0], f.get(name, ("-", "-"))[1]))
for line in open(sys.argv[3]):
    name, a, b = line.rstrip("\n").split("\t")
    print("| %s (whole command, median of 20) | %s | | %s | |" % (name, a, b))
EOF
rm -f "$out_e.ctl"
