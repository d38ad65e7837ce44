#!/usr/bin/env bash
# tests/bench/run.sh: the benchmark (./deploy/dev.sh bench runs it with the
# private services up). Arguments go to bench.py (--jobs, --rounds, ...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
exec /usr/bin/python3 "$HERE/bench.py" "$@"
