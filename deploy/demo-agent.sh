#!/bin/sh
# The demo's host agent: the simulated Hyper-V host, 150 ms per operation,
# and on hv03 a NIC stage that fails once with a transient error (seeded, so
# the demo's flaky job fails its first attempt and passes its second).
host="$1"
export HVD_SIM_LATENCY_MS="${HVD_SIM_LATENCY_MS:-*=150}"
case "$host" in
hv03.*) export HVD_SIM_FAIL="nic.create=0.5:TRANSIENT" HVD_SIM_SEED=3 ;;
esac
exec "$HVD_BIN_DIR/hvdeploy-simhost" --state-dir "$HVD_DEMO_SIM" --host "$host"
