# deploy/lib/common.sh: paths, messages and port settings shared by dev.sh and its libraries.
# Source it (bash); it sets no shell options so it can be sourced by test scripts too.

[ -n "${HVD_LIB_COMMON_LOADED:-}" ] && return 0
HVD_LIB_COMMON_LOADED=1

HVD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
HVD_DEV_SH="$HVD_ROOT/deploy/dev.sh"
HVD_STATE="$HVD_ROOT/.state"
HVD_LOG_DIR="$HVD_STATE/logs"
HVD_TEST_OUT_DIR="${HVD_TEST_OUT_DIR:-$HVD_STATE/test-out}"
HVD_PORTS_FILE="$HVD_STATE/ports.env"
HVD_ENV_FILE="$HVD_STATE/env"
export HVD_ROOT HVD_DEV_SH HVD_TEST_OUT_DIR

hvd_info() { printf '[dev] %s\n' "$*" >&2; }
hvd_warn() { printf '[dev] warning: %s\n' "$*" >&2; }
hvd_err()  { printf '[dev] error: %s\n' "$*" >&2; }
hvd_die()  { hvd_err "$@"; exit 1; }

hvd_is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a project script: directly when executable (its #! line), else with bash.
hvd_run_script() {
    local script="$1"; shift
    if [ -x "$script" ]; then "$script" "$@"; else bash "$script" "$@"; fi
}

# True when something listens on TCP port $1 (any address).
hvd_port_busy() {
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# True when any TCP socket (a listener, or a client's connection whose local
# port it is) uses port $1: a listener could not bind it then.
hvd_port_used() {
    [ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
}

# Port settings. Precedence: HVD_DEV_*_PORT given in the environment by the
# user, then the values recorded by the last `up` in .state/ports.env, then the
# defaults. `up` records what it used, so `down`, `svc` and `status` (also when
# a test calls them) find the same instance without repeating the environment.
# The values are not exported: child processes read the same file.
HVD_ENV_PG_PORT="${HVD_DEV_PG_PORT:-}"
HVD_ENV_AMQP_PORT="${HVD_DEV_AMQP_PORT:-}"
HVD_ENV_DIST_PORT="${HVD_DEV_DIST_PORT:-}"
HVD_ENV_EPMD_PORT="${HVD_DEV_EPMD_PORT:-}"

hvd_load_ports() {
    unset HVD_DEV_PG_PORT HVD_DEV_AMQP_PORT HVD_DEV_DIST_PORT HVD_DEV_EPMD_PORT
    HVD_DEV_PORTS_CHOSEN=
    [ -n "$HVD_ENV_PG_PORT$HVD_ENV_AMQP_PORT$HVD_ENV_DIST_PORT$HVD_ENV_EPMD_PORT" ] && HVD_DEV_PORTS_CHOSEN=env
    if [ -f "$HVD_PORTS_FILE" ]; then
        # shellcheck disable=SC1090
        . "$HVD_PORTS_FILE"
        HVD_DEV_PORTS_CHOSEN="${HVD_DEV_PORTS_CHOSEN:-file}"
    fi
    HVD_DEV_PG_PORT="${HVD_ENV_PG_PORT:-${HVD_DEV_PG_PORT:-55432}}"
    HVD_DEV_AMQP_PORT="${HVD_ENV_AMQP_PORT:-${HVD_DEV_AMQP_PORT:-56720}}"
    HVD_DEV_DIST_PORT="${HVD_ENV_DIST_PORT:-${HVD_DEV_DIST_PORT:-56721}}"
    HVD_DEV_EPMD_PORT="${HVD_ENV_EPMD_PORT:-${HVD_DEV_EPMD_PORT:-54369}}"
    _hvd_ports_changed
}

_hvd_ports_changed() {
    HVD_AMQP_URL_DEV="amqp://guest:guest@127.0.0.1:${HVD_DEV_AMQP_PORT}/%2f"
    HVD_PG_DSN_DEV="postgresql://hvdeploy@127.0.0.1:${HVD_DEV_PG_PORT}/hvdeploy"
}

# Moves all four ports by $1 from their defaults (used by `up` when the
# defaults are taken by another checkout's services and nothing was chosen).
hvd_offset_ports() {
    HVD_DEV_PG_PORT=$((55432 + $1)); HVD_DEV_AMQP_PORT=$((56720 + $1))
    HVD_DEV_DIST_PORT=$((56721 + $1)); HVD_DEV_EPMD_PORT=$((54369 + $1))
    _hvd_ports_changed
}

hvd_save_ports() {
    mkdir -p "$HVD_STATE"
    cat > "$HVD_PORTS_FILE.tmp" <<EOF
# Ports of this checkout's private services (written by deploy/dev.sh up).
HVD_DEV_PG_PORT=$HVD_DEV_PG_PORT
HVD_DEV_AMQP_PORT=$HVD_DEV_AMQP_PORT
HVD_DEV_DIST_PORT=$HVD_DEV_DIST_PORT
HVD_DEV_EPMD_PORT=$HVD_DEV_EPMD_PORT
EOF
    mv -f "$HVD_PORTS_FILE.tmp" "$HVD_PORTS_FILE"
}

# Runs "$@" in a subshell holding this checkout's service lock, so that two
# callers never start or stop the services at the same time.
hvd_locked() {
    mkdir -p "$HVD_STATE"
    (
        flock -w 600 9 || { hvd_err "could not take $HVD_STATE/lock within 600 s"; exit 1; }
        "$@"
    ) 9>"$HVD_STATE/lock"
}

hvd_load_ports
