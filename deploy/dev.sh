#!/usr/bin/env bash
# deploy/dev.sh: the one entry point to install, build, run the private services, test and demo hvdeploy.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/deps.sh
. "$HERE/lib/deps.sh"
# shellcheck source=lib/build.sh
. "$HERE/lib/build.sh"
# shellcheck source=lib/services.sh
. "$HERE/lib/services.sh"
# shellcheck source=lib/test.sh
. "$HERE/lib/test.sh"

HVD_RUN_TARGETS=()   # what run_with_services builds: everything unless set

usage() {
    cat <<'EOF'
usage: ./deploy/dev.sh COMMAND [ARGS...]

  demo        install, build, start the services and run the demo (deploy/demo.sh)
  test        install, build (plain, ASan+UBSan, fuzz), run unit tests in both builds,
              the fuzzers briefly, then the integration, chaos (--short) and upstream
              example tests against the private services; logs in .state/logs/;
              ends with "N passed, M failed" and exits non-zero on any failure
  deps        install missing Debian 12 packages (root; quick when all are there)
  build       CMake build into build/ (RelWithDebInfo); programs in build/bin/
  build-asan  build into build-asan/ with AddressSanitizer + UBSan (HVD_SANITIZE=ON)
  build-fuzz  build the libFuzzer harnesses into build-fuzz/ with clang (HVD_FUZZ=ON)
  up          start the private PostgreSQL 15 and RabbitMQ (state in .state/) and
              write their URLs and the secret key path to .state/env
  down        stop them (state is kept)
  status      show whether they run (exit 1 when one does not)
  reset       stop them and delete all their state (.state/: data, logs, secret key)
  env         print .state/env, e.g.  eval "$(./deploy/dev.sh env)"
  svc VERB    control one service (for tests and chaos runs):
                pg-start pg-stop pg-restart pg-crash pg-pid
                rmq-start rmq-stop rmq-restart rmq-kill rmq-pause rmq-resume rmq-pid
                rmq-consumer-timeout MS   (channels opened afterwards use it)
                rmqctl ARGS...            (rabbitmqctl against the private node)
                psql ARGS...              (psql as hvdeploy to database hvdeploy)
  cluster VERB  the chaos scenarios' clusters on this box (deploy/lib/cluster.sh):
                rmq-up rmq-down rmq-reset rmq-urls rmq-kill N rmq-start N
                rmq-leader QUEUE [VHOST]  rmqctl N ARGS...
                pg-up pg-dsn [DB] pg-kill-primary pg-promote pg-down pg-reset
  bench       install, build, start the services and run tests/bench/run.sh: hvdeploy against
              the ideal pipeline of ../shared/bench/ (--quick: < 3 min; default: <= 25 min)
  perf        the store's latency with an empty schema and with 10^6 finished jobs
              (tests/perf/run.sh [N])
  chaos       install, build, start the services and run tests/chaos/run.sh --long
  help        this text

Services: PostgreSQL on 127.0.0.1:55432 (postgresql://hvdeploy@127.0.0.1:55432/hvdeploy),
RabbitMQ on 127.0.0.1:56720 (amqp://guest:guest@127.0.0.1:56720/%2f), private epmd on 54369.
Environment: HVD_DEV_PG_PORT, HVD_DEV_AMQP_PORT, HVD_DEV_DIST_PORT, HVD_DEV_EPMD_PORT move
the ports (when the defaults are taken `up` moves them by itself, see .state/ports.env);
HVD_RMQ_CONSUMER_TIMEOUT (ms, default 1800000) applies at the broker's next start.
EOF
}

# Runs a script written for the running services (demo, bench, chaos): installs,
# builds, starts the services (and stops them at the end if it started them),
# exports .state/env, HVD_ROOT, HVD_DEV_SH and HVD_BIN_DIR, then the script.
run_with_services() {
    local what="$1" script="$2"; shift 2
    if [ ! -f "$script" ]; then
        hvd_err "'$what' is not available yet: ${script#"$HVD_ROOT/"} does not exist"
        exit 2
    fi
    hvd_deps
    hvd_build "${HVD_RUN_TARGETS[@]}"
    local started=
    if ! { hvd_pg_running && hvd_rmq_running; }; then
        started=1
        trap 'hvd_locked hvd_down || true' EXIT
    fi
    hvd_locked hvd_up
    hvd_load_ports
    _hvd_t_load_env
    export HVD_BIN_DIR="$HVD_ROOT/build/bin"
    local rc=0
    hvd_run_script "$script" "$@" || rc=$?
    if [ -n "$started" ]; then
        hvd_locked hvd_down || true
        trap - EXIT
    fi
    return "$rc"
}

svc() {
    local verb="${1:-}"
    [ $# -gt 0 ] && shift
    case "$verb" in
        pg-start)    hvd_locked hvd_pg_start ;;
        pg-stop)     hvd_locked hvd_pg_stop ;;
        pg-restart)  hvd_locked hvd_pg_stop && hvd_locked hvd_pg_start ;;
        pg-crash)    hvd_locked hvd_pg_crash ;;
        pg-pid)      hvd_pg_pid || { hvd_err "PostgreSQL is not running"; return 1; } ;;
        rmq-start)   hvd_locked hvd_rmq_start ;;
        rmq-stop)    hvd_locked hvd_rmq_stop ;;
        rmq-restart) hvd_locked hvd_rmq_stop && hvd_locked hvd_rmq_start ;;
        rmq-kill)    hvd_locked hvd_rmq_kill ;;
        rmq-pause)   hvd_rmq_pause ;;
        rmq-resume)  hvd_rmq_resume ;;
        rmq-pid)     hvd_rmq_pid || { hvd_err "RabbitMQ is not running"; return 1; } ;;
        rmq-consumer-timeout) hvd_rmq_set_consumer_timeout "${1:-}" ;;
        rmqctl)      hvd_rmq_ctl "$@" ;;
        psql)        hvd_psql "$@" ;;
        *) hvd_err "unknown svc verb '${verb}' (see ./deploy/dev.sh help)"; return 2 ;;
    esac
}

cluster() {
    local verb="${1:-}"
    [ $# -gt 0 ] && shift
    case "$verb" in
        rmq-up)     hvd_rmqc_up ;;
        rmq-down)   hvd_rmqc_down ;;
        rmq-reset)  hvd_rmqc_reset ;;
        rmq-urls)   hvd_rmqc_urls ;;
        rmq-kill)   hvd_rmqc_kill "${1:?node number}" ;;
        rmq-start)  hvd_rmqc_start "${1:?node number}" ;;
        rmq-leader) hvd_rmqc_leader "${1:?queue}" "${2:-/}" ;;
        rmqctl)     hvd_rmqc_ctl "${1:?node number}" "${@:2}" ;;
        pg-up)      hvd_pgha_up ;;
        pg-dsn)     hvd_pgha_dsn "${1:-hvdeploy}" ;;
        pg-kill-primary) hvd_pgha_kill_primary ;;
        pg-promote) hvd_pgha_promote ;;
        pg-down)    hvd_pgha_down ;;
        pg-reset)   hvd_pgha_reset ;;
        *) hvd_err "unknown cluster verb '${verb}' (see ./deploy/dev.sh help)"; return 2 ;;
    esac
}

main() {
    local cmd="${1:-help}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        deps)       hvd_deps ;;
        build)      hvd_build ;;
        build-asan) hvd_build_asan ;;
        build-fuzz) hvd_build_fuzz ;;
        up)         hvd_locked hvd_up ;;
        down)       hvd_locked hvd_down ;;
        status)     hvd_status ;;
        reset)      hvd_locked hvd_reset ;;
        env)        [ -f "$HVD_ENV_FILE" ] || hvd_die "no $HVD_ENV_FILE yet: run ./deploy/dev.sh up"
                    cat "$HVD_ENV_FILE" ;;
        svc)        svc "$@" ;;
        cluster)    cluster "$@" ;;
        test)       cd "$HVD_ROOT" && hvd_test ;;
        demo)       # the demo needs only the three programs
                    HVD_RUN_TARGETS=(hvdeploy-worker hvdeployctl hvdeploy-simhost)
                    run_with_services demo "$HVD_ROOT/deploy/demo.sh" "$@" ;;
        bench)      run_with_services bench "$HVD_ROOT/tests/bench/run.sh" "$@" ;;
        perf)       HVD_RUN_TARGETS=(hvdeployctl hvd_store_latency)
                    run_with_services perf "$HVD_ROOT/tests/perf/run.sh" "$@" ;;
        chaos)      run_with_services chaos "$HVD_ROOT/tests/chaos/run.sh" --long "$@" ;;
        help|-h|--help) usage ;;
        *) hvd_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
    esac
}

main "$@"
