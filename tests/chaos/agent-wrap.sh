#!/bin/bash
# Chaos-suite agent wrapper: runs the simhost with its crash fault set to
# "before" or "after" the effect (half the calls each, so CHAOS_CRASH_P of
# every call crashes, split evenly), and appends the simhost's stderr (its
# "injected crash/hang" lines) to the fault log given as the first argument.
# usage: agent-wrap.sh FAULT_LOG SIMHOST ARGS...
log="$1"
shift
p="${CHAOS_CRASH_P:-0.10}"
if (( RANDOM % 2 )); then
    export HVD_SIM_CRASH="*=${p}:before"
else
    export HVD_SIM_CRASH="*=${p}:after"
fi
exec "$@" 2>>"$log"
