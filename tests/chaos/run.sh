#!/usr/bin/env bash
# tests/chaos/run.sh [--short|--long] [--only a,b] [--skip a,b] [--keep] [--seed N]:
# the chaos suite of issue 5 against the private services of deploy/dev.sh.
# --short (default) is the bounded form run by `./deploy/dev.sh test`;
# --long the full numbers (`./deploy/dev.sh chaos`), which also writes
# .state/chaos-summary.md. Ends with "N passed, M failed" (scenarios) and
# exits non-zero when one failed. Binaries: $HVD_BIN_DIR, else build/bin.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
PY=/usr/bin/python3

if [ -z "${HVD_AMQP_URL:-}" ] || [ -z "${HVD_PG_DSN:-}" ] || [ -z "${HVD_SECRET_KEY_FILE:-}" ]; then
    if [ -f "$ROOT/.state/env" ]; then
        # shellcheck disable=SC1091
        . "$ROOT/.state/env"
    else
        echo "chaos: no HVD_AMQP_URL/HVD_PG_DSN/HVD_SECRET_KEY_FILE and no .state/env: run ./deploy/dev.sh up" >&2
        echo "0 passed, 1 failed"
        exit 2
    fi
fi
export HVD_AMQP_URL HVD_PG_DSN HVD_SECRET_KEY_FILE
export HVD_DEV_SH="${HVD_DEV_SH:-$ROOT/deploy/dev.sh}"
BIN="${HVD_BIN_DIR:-$ROOT/build/bin}"

missing=()
for b in hvdeploy-worker hvdeploy-simhost; do
    [ -x "$BIN/$b" ] || missing+=("$BIN/$b")
done
if ! "$PY" -c 'import pika, msgpack, psycopg2' 2>/dev/null; then
    missing+=("python3-pika python3-msgpack python3-psycopg2 (Debian packages for $PY)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'chaos: missing: %s\n' "${missing[@]}" >&2
    echo "0 passed, 1 failed"
    exit 2
fi

# One chaos run at a time per pair of services: a second run (another checkout,
# another engineer) would stop the broker or the database under this one.
key="$(printf '%s %s' "$HVD_AMQP_URL" "$HVD_PG_DSN" | md5sum | cut -c1-12)"
LOCK="${TMPDIR:-/tmp}/hvdeploy-chaos-$key.lock"
exec 8>>"$LOCK"
if ! flock -n 8; then
    echo "chaos: another chaos run uses these services ($LOCK); waiting for it (up to 30 min)"
    if ! flock -w 1800 8; then
        echo "chaos: gave up waiting for $LOCK" >&2
        echo "0 passed, 1 failed"
        exit 2
    fi
fi

exec "$PY" -u "$HERE/chaos.py" --root "$ROOT" --bin-dir "$BIN" "$@"
