# deploy/lib/test.sh: `dev.sh test`, every test step of the project with one tally at the end.

[ -n "${HVD_LIB_TEST_LOADED:-}" ] && return 0
HVD_LIB_TEST_LOADED=1
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=deps.sh
. "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
# shellcheck source=build.sh
. "$(dirname "${BASH_SOURCE[0]}")/build.sh"
# shellcheck source=services.sh
. "$(dirname "${BASH_SOURCE[0]}")/services.sh"

HVD_T_PASSED=0
HVD_T_FAILED=0
HVD_T_ROWS=()          # one summary row per step
HVD_T_FAILED_STEPS=()

_hvd_t_row() {  # step result seconds detail
    HVD_T_ROWS+=("$(printf '  %-16s %-8s %5ss  %s' "$1" "$2" "$3" "$4")")
    [ "$2" = FAILED ] && HVD_T_FAILED_STEPS+=("$1")
    return 0
}

# Runs "$@" (a command or a function of these libraries) as step $1, its
# output on the console and in .state/logs/test-<step>.log; returns its status.
# It runs in a fresh bash with errexit: a subshell would inherit the caller's
# "errexit ignored" state when the step is called inside a condition.
_hvd_t_exec() {
    local step="$1"; shift
    local log="$HVD_LOG_DIR/test-$step.log"
    printf '\n==== [%s] %s\n' "$step" "$*"
    bash -c 'set -euo pipefail; . "$1"; shift; "$@"' hvd-step "${BASH_SOURCE[0]}" "$@" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

# A step that counts as one test: passed when the command exits 0.
hvd_t_step() {
    local step="$1" t0=$SECONDS
    if _hvd_t_exec "$@"; then
        HVD_T_PASSED=$((HVD_T_PASSED + 1)); _hvd_t_row "$step" ok $((SECONDS - t0)) ""
        return 0
    fi
    HVD_T_FAILED=$((HVD_T_FAILED + 1)); _hvd_t_row "$step" FAILED $((SECONDS - t0)) "see .state/logs/test-$step.log"
    return 1
}

hvd_t_skip() {  # step reason
    printf '\n==== [%s] skipped: %s\n' "$1" "$2"
    _hvd_t_row "$1" skipped 0 "$2"
}

# ctest in build dir $2 with label $3 as step $1: every test binary counts.
hvd_t_ctest() {
    local step="$1" dir="$2" label="$3" t0=$SECONDS rc line passed failed total
    shift 3
    rc=0
    _hvd_t_exec "$step" ctest --test-dir "$dir" -L "$label" --output-on-failure "$@" || rc=$?
    line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$HVD_LOG_DIR/test-$step.log" | tail -n1)"
    if [ -n "$line" ]; then
        failed="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
        total="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")"
        passed=$((total - failed))
    elif grep -q 'No tests were found' "$HVD_LOG_DIR/test-$step.log"; then
        passed=0; failed=0
    else
        passed=0; failed=1
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    HVD_T_PASSED=$((HVD_T_PASSED + passed)); HVD_T_FAILED=$((HVD_T_FAILED + failed))
    if [ "$failed" -eq 0 ]; then
        _hvd_t_row "$step" ok $((SECONDS - t0)) "$passed test binaries passed"
    else
        _hvd_t_row "$step" FAILED $((SECONDS - t0)) "$passed passed, $failed failed; see .state/logs/test-$step.log"
    fi
}

# Fails when a test secret (tests/data/secrets.txt, one a line) appears in a
# test log, a test output, ctest's logs or a dump of the databases. Names the
# file, never the secret.
hvd_t_secret_scan() {
    local list="$HVD_ROOT/tests/data/secrets.txt" patterns found=0 f
    [ -s "$list" ] || { echo "no $list: nothing to look for"; return 1; }
    patterns="$(mktemp)"
    grep -v '^[[:space:]]*$' "$list" >"$patterns"
    if hvd_pg_running; then
        "$HVD_PG_BIN/pg_dumpall" -h 127.0.0.1 -p "$HVD_DEV_PG_PORT" -U hvdeploy \
            >"$HVD_TEST_OUT_DIR/pg_dumpall.sql" 2>/dev/null ||
            echo "warning: pg_dumpall failed; the databases are not scanned"
    fi
    local places=("$HVD_LOG_DIR" "$HVD_TEST_OUT_DIR")
    # the server log is kept with the cluster when its owner cannot write .state/logs
    [ -f "$HVD_PG_DIR/postgresql.log" ] && places+=("$HVD_PG_DIR/postgresql.log")
    for f in build build-asan build-fuzz; do
        [ -d "$HVD_ROOT/$f/Testing/Temporary" ] && places+=("$HVD_ROOT/$f/Testing/Temporary")
    done
    echo "looking for $(wc -l <"$patterns") test secrets in: ${places[*]#"$HVD_ROOT/"}"
    while IFS= read -r f; do
        [ "$f" = "$HVD_LOG_DIR/test-secrets.log" ] && continue
        echo "SECRET FOUND in ${f#"$HVD_ROOT/"}"
        found=1
    done < <(grep -rlaF -f "$patterns" "${places[@]}" 2>/dev/null)
    rm -f "$patterns"
    [ "$found" -eq 0 ] && echo "no test secret found"
    return "$found"
}

# Loads .state/env (the services' URLs and key) into the environment.
_hvd_t_load_env() {
    # shellcheck disable=SC1090
    . "$HVD_ENV_FILE"
    export HVD_AMQP_URL HVD_PG_DSN HVD_SECRET_KEY_FILE HVD_DEV_SH HVD_TEST_OUT_DIR
}

# The whole suite. Services started here are stopped at the end; services that
# were already running are left running.
hvd_test() {
    local t_start=$SECONDS started_services= built=0 built_asan=0 built_fuzz=0 up_ok=0
    mkdir -p "$HVD_LOG_DIR" "$HVD_TEST_OUT_DIR"
    rm -f "$HVD_LOG_DIR"/test-*.log
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    export HVD_DEV_SH

    # A failed build still runs the tests of what did build (make -k): ctest
    # reports the test binaries that are missing as failed.
    hvd_t_step deps hvd_deps || { hvd_t_summary $((SECONDS - t_start)); return 1; }
    hvd_t_step build hvd_build || true
    [ -f "$HVD_ROOT/build/CTestTestfile.cmake" ] && built=1
    hvd_t_step build-asan hvd_build_asan || true
    [ -f "$HVD_ROOT/build-asan/CTestTestfile.cmake" ] && built_asan=1
    hvd_t_step build-fuzz hvd_build_fuzz && built_fuzz=1

    # The layout the README promises (tests/arch/check_layout.py): no import
    # circles, core links no I/O library, no file in common/ or worker/ over 500 lines.
    if [ "$built" -eq 1 ]; then
        hvd_t_step layout python3 "$HVD_ROOT/tests/arch/check_layout.py" "$HVD_ROOT/build" "$HVD_ROOT" || true
    else hvd_t_skip layout "build/ is not configured"; fi
    if [ "$built" -eq 1 ]; then hvd_t_ctest unit "$HVD_ROOT/build" unit -j 2
    else hvd_t_skip unit "build/ is not configured"; fi
    if [ "$built_asan" -eq 1 ]; then
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
            hvd_t_ctest unit-asan "$HVD_ROOT/build-asan" unit -j 2
    else hvd_t_skip unit-asan "build-asan/ is not configured"; fi
    if [ ! -f "$HVD_ROOT/tests/fuzz/run.sh" ]; then hvd_t_skip fuzz "tests/fuzz/run.sh not there yet"
    elif [ "$built_fuzz" -eq 1 ]; then
        hvd_t_step fuzz hvd_run_script "$HVD_ROOT/tests/fuzz/run.sh" "$HVD_ROOT/build-fuzz" 20 || true
    else hvd_t_skip fuzz "build-fuzz failed"; fi

    # The PowerShell host shim: a syntax check (no PowerShell here), npm parser into .state/.
    hvd_t_step shim hvd_run_script "$HVD_ROOT/tests/shim/check.sh" || true

    if hvd_pg_running && hvd_rmq_running; then
        echo "[test] services already running: they stay up afterwards"
    else
        started_services=1
        trap 'hvd_locked hvd_down || true' EXIT
    fi
    hvd_t_step services hvd_locked hvd_up && up_ok=1
    hvd_load_ports   # hvd_up ran in a subshell and may have moved the ports
    if [ "$up_ok" -eq 1 ]; then
        _hvd_t_load_env
        if [ "$built" -eq 1 ]; then hvd_t_ctest integration "$HVD_ROOT/build" integration
        else hvd_t_skip integration "build/ is not configured"; fi
        # The worker, CLI and simhost themselves under ASan+UBSan, end to end.
        if [ "$built_asan" -eq 1 ]; then
            ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
                hvd_t_ctest integration-asan "$HVD_ROOT/build-asan" integration -R "pipeline|lifecycle|observability|breaker|ctl_|hardening|fleet|realhost"
        else hvd_t_skip integration-asan "build-asan/ is not configured"; fi
        if [ ! -f "$HVD_ROOT/tests/chaos/run.sh" ]; then hvd_t_skip chaos "tests/chaos/run.sh not there yet"
        elif [ "$built" -eq 1 ]; then hvd_t_step chaos hvd_run_script "$HVD_ROOT/tests/chaos/run.sh" --short || true
        else hvd_t_skip chaos "build/ is not configured"; fi
        if [ ! -f "$HVD_ROOT/deploy/examples/test_upstream.sh" ]; then
            hvd_t_skip example "deploy/examples/test_upstream.sh not there yet"
        elif [ "$built" -eq 1 ]; then
            hvd_t_step example hvd_run_script "$HVD_ROOT/deploy/examples/test_upstream.sh" || true
        else hvd_t_skip example "build/ is not configured"; fi
        if [ "$built" -eq 1 ]; then hvd_t_step web hvd_run_script "$HVD_ROOT/tests/web/run.sh" || true
        else hvd_t_skip web "build/ is not configured"; fi
        if [ "$built" -eq 1 ]; then hvd_t_step python-client hvd_run_script "$HVD_ROOT/clients/python/tests/run.sh" || true
        else hvd_t_skip python-client "build/ is not configured"; fi
        if [ "$built" -eq 1 ]; then hvd_t_step deploy hvd_run_script "$HVD_ROOT/tests/deploy/check.sh" || true
        else hvd_t_skip deploy "build/ is not configured"; fi
    else
        hvd_t_skip integration "services did not start"
        hvd_t_skip integration-asan "services did not start"
        hvd_t_skip chaos "services did not start"
        hvd_t_skip example "services did not start"
        hvd_t_skip web "services did not start"
        hvd_t_skip python-client "services did not start"
        hvd_t_skip deploy "services did not start"
    fi
    hvd_t_step secrets hvd_t_secret_scan || true

    if [ -n "$started_services" ]; then
        hvd_locked hvd_down || true
        trap - EXIT
    fi
    hvd_t_summary $((SECONDS - t_start))
    [ "$HVD_T_FAILED" -eq 0 ]
}

hvd_t_summary() {
    printf '\n==== summary (%ss, logs in .state/logs/test-<step>.log)\n' "$1"
    printf '%s\n' "${HVD_T_ROWS[@]}"
    [ "${#HVD_T_FAILED_STEPS[@]}" -eq 0 ] || printf 'failed steps: %s\n' "${HVD_T_FAILED_STEPS[*]}"
    printf '%d passed, %d failed\n' "$HVD_T_PASSED" "$HVD_T_FAILED"
}
