#!/usr/bin/env bash
# clients/python/tests/run.sh: installs hvdeploy_client with pip into a venv
# under .state/ (Debian's aio-pika and msgpack through --system-site-packages,
# no download) and runs its tests against the real broker and a real worker
# (tests/web/world.sh: a private database and prefix). Ends with
# "python-client: N passed, M failed".
set -euo pipefail
# shellcheck source=../../../tests/web/world.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../tests/web/world.sh"
VENV="$ROOT/.state/pyclient-venv"

"$PY" -c 'import aio_pika, msgpack, pika' 2>/dev/null ||
    { echo "python-client: $PY lacks aio_pika, msgpack or pika (apt-get install python3-aio-pika python3-msgpack python3-pika)"; exit 1; }
[ -x "$VENV/bin/pip" ] || "$PY" -m venv --system-site-packages "$VENV"
# offline: the build backend (setuptools) and the dependencies are Debian's; built
# from a copy, since setuptools writes build/ and *.egg-info beside the sources
PKG="$(mktemp -d)"
cp -r "$ROOT/clients/python/." "$PKG/"
rm -rf "$PKG/build" "$PKG"/*.egg-info
"$VENV/bin/pip" install --quiet --no-build-isolation --no-index --force-reinstall --no-deps "$PKG"
rm -rf "$PKG"
"$VENV/bin/python" -c 'import hvdeploy_client, sys; print("python-client: hvdeploy_client", hvdeploy_client.__version__, "from", hvdeploy_client.__file__)'

trap world_free EXIT
world_new py || { echo "python-client: cannot create a database through HVD_PG_DSN"; exit 1; }
world_worker "$WORK/worker.log" HVD_TEST_LINES=6 HVD_TEST_LINE_MS=500 HVD_TEST_ONLY_OP=vm.create HVD_HOST_CONCURRENCY=8
world_wait_ready "$WORK/worker.log" || { echo "python-client: the worker did not start"; exit 1; }
PY_TEST_SECRET="pyPW-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
rc=0
# run from the tests' directory: the package comes from the venv, not the source tree
(cd "$ROOT/clients/python/tests" &&
    env HVD_AMQP_PREFIX="$PREFIX" HVD_PG_DSN="$DSN" HVDEPLOYCTL="$BIN/hvdeployctl" PY_TEST_SECRET="$PY_TEST_SECRET" \
        "$VENV/bin/python" -m unittest -v test_client 2>&1) | tee "$WORK/tests.log" || rc=$?
ran="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$WORK/tests.log" | tail -n1)"
failed=0
for kind in failures errors; do
    n="$(sed -n "s/^FAILED (.*$kind=\([0-9]*\).*/\1/p" "$WORK/tests.log" | tail -n1)"
    failed=$((failed + ${n:-0}))
done
passed=$(( ${ran:-0} - failed ))
if grep -qF -- "$PY_TEST_SECRET" "$WORK/worker.log" "$WORK/tests.log"; then
    echo "python-client: the test password appears in a log"
    failed=$((failed + 1))
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "python-client: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
