# deploy/lib/services.sh: the private PostgreSQL 15 and RabbitMQ of one checkout (state in .state/).
#
# Sourceable by test scripts:   . deploy/lib/services.sh
#   hvd_pg_start  hvd_pg_stop  hvd_pg_crash  hvd_pg_pid  hvd_pg_running
#   hvd_rmq_start hvd_rmq_stop hvd_rmq_kill  hvd_rmq_pid hvd_rmq_running
#   hvd_rmq_pause hvd_rmq_resume hvd_rmq_ctl ARGS...  hvd_psql ARGS...
#   hvd_up  hvd_down  hvd_status  hvd_reset
# and, from cluster.sh, a RabbitMQ cluster and a PostgreSQL primary + standby (hvd_rmqc_*, hvd_pgha_*).
# Every function returns non-zero on failure and prints its messages on stderr;
# the *_pid functions print only the pid on stdout.

[ -n "${HVD_LIB_SERVICES_LOADED:-}" ] && return 0
HVD_LIB_SERVICES_LOADED=1
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HVD_PG_BIN="${HVD_PG_BIN:-/usr/lib/postgresql/15/bin}"
HVD_PG_OS_USER="${HVD_PG_OS_USER:-postgres}"   # PostgreSQL refuses to run as root
# .state/pg, or where it links to (see _hvd_pg_prepare_dirs): the cluster's
# owner must be given paths it can walk.
_hvd_pg_paths() {
    HVD_PG_DIR="$HVD_STATE/pg"
    [ -L "$HVD_PG_DIR" ] && HVD_PG_DIR="$(readlink -f "$HVD_PG_DIR")"
    HVD_PG_DATA="$HVD_PG_DIR/data"
}
_hvd_pg_paths
HVD_PG_LOG="$HVD_LOG_DIR/postgresql.log"
HVD_RMQ_BIN="${HVD_RMQ_BIN:-/usr/lib/rabbitmq/bin}"  # not /usr/sbin: that wrapper su's to rabbitmq
HVD_RMQ_DIR="$HVD_STATE/rabbitmq"
HVD_RMQ_NODE="hvdeploy-dev@localhost"
HVD_RMQ_PID_FILE="$HVD_RMQ_DIR/rabbitmq.pid"
HVD_SERVICE_TIMEOUT="${HVD_SERVICE_TIMEOUT:-90}"      # seconds to wait for a start or stop

# ---------------------------------------------------------------- PostgreSQL

# Runs a PostgreSQL server binary as the OS user that owns the cluster, in a
# session of its own so that a test runner killing its process group on a
# timeout does not take the database with it.
_hvd_pg_as_owner() {
    (
        cd / || exit 1   # the owner may not be allowed into the caller's directory
        if hvd_is_root; then
            exec runuser -u "$HVD_PG_OS_USER" -- setsid "$@"
        else
            exec setsid "$@"
        fi
    )
}

# The socket directory lives in .state/pg/run unless that path is too long for
# a unix socket (108 bytes with ".s.PGSQL.NNNNN"); then under /tmp.
_hvd_pg_sockdir() {
    local d="$HVD_PG_DIR/run"
    if [ "${#d}" -gt 90 ]; then
        d="/tmp/hvdeploy-pg-$(printf '%s' "$HVD_ROOT" | cksum | cut -d' ' -f1)"
    fi
    printf '%s\n' "$d"
}

# Makes .state/pg reachable by the cluster's owner. When the checkout lies
# under a directory that user cannot enter (e.g. /root), the cluster goes to
# /var/tmp and .state/pg becomes a link to it.
_hvd_pg_prepare_dirs() {
    mkdir -p "$HVD_STATE" "$HVD_LOG_DIR"
    if hvd_is_root; then
        id -u "$HVD_PG_OS_USER" >/dev/null 2>&1 ||
            { hvd_err "OS user '$HVD_PG_OS_USER' is missing (it comes with postgresql-15: ./deploy/dev.sh deps)"; return 1; }
        mkdir -p "$HVD_PG_DIR"
        chown "$HVD_PG_OS_USER:" "$HVD_PG_DIR"
        chmod 700 "$HVD_PG_DIR"
        if ! runuser -u "$HVD_PG_OS_USER" -- test -w "$HVD_PG_DIR/"; then
            local alt
            alt="/var/tmp/hvdeploy-pg-$(printf '%s' "$HVD_ROOT" | cksum | cut -d' ' -f1)"
            hvd_warn "$HVD_PG_OS_USER cannot reach $HVD_PG_DIR; keeping the cluster in $alt"
            rmdir "$HVD_PG_DIR" 2>/dev/null || true
            mkdir -p "$alt"; chown "$HVD_PG_OS_USER:" "$alt"; chmod 700 "$alt"
            ln -sfn "$alt" "$HVD_PG_DIR"
            _hvd_pg_paths
        fi
        touch "$HVD_PG_LOG"; chown "$HVD_PG_OS_USER:" "$HVD_PG_LOG"
        if ! runuser -u "$HVD_PG_OS_USER" -- test -w "$HVD_PG_LOG"; then
            HVD_PG_LOG="$HVD_PG_DIR/postgresql.log"
        fi
    else
        mkdir -p "$HVD_PG_DIR"; chmod 700 "$HVD_PG_DIR"
    fi
    local sock; sock="$(_hvd_pg_sockdir)"
    mkdir -p "$sock"
    hvd_is_root && chown "$HVD_PG_OS_USER:" "$sock"
    return 0
}

_hvd_pg_init() {
    [ -f "$HVD_PG_DATA/PG_VERSION" ] && return 0
    [ -x "$HVD_PG_BIN/initdb" ] || { hvd_err "$HVD_PG_BIN/initdb not found (postgresql-15: ./deploy/dev.sh deps)"; return 1; }
    hvd_info "initdb $HVD_PG_DATA"
    _hvd_pg_as_owner "$HVD_PG_BIN/initdb" -D "$HVD_PG_DATA" -U hvdeploy -A trust \
        -E UTF8 --locale=C.UTF-8 >"$HVD_LOG_DIR/initdb.log" 2>&1 ||
        { hvd_err "initdb failed; see $HVD_LOG_DIR/initdb.log"; return 1; }
    printf "include_if_exists = 'hvdeploy.conf'\n" >>"$HVD_PG_DATA/postgresql.conf"
}

# Rewritten at every start so that a changed port takes effect.
_hvd_pg_write_conf() {
    local sock; sock="$(_hvd_pg_sockdir)"
    cat >"$HVD_PG_DATA/hvdeploy.conf" <<EOF
# Written by deploy/lib/services.sh at every start; edits are lost.
port = $HVD_DEV_PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
fsync = on
synchronous_commit = on
max_connections = 200
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    hvd_is_root && chown "$HVD_PG_OS_USER:" "$HVD_PG_DATA/hvdeploy.conf"
    return 0
}

# Prints the postmaster's pid when it runs; returns 1 otherwise.
hvd_pg_pid() {
    local pid
    [ -r "$HVD_PG_DATA/postmaster.pid" ] || return 1
    pid="$(head -n1 "$HVD_PG_DATA/postmaster.pid" 2>/dev/null)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

hvd_pg_running() { hvd_pg_pid >/dev/null; }

hvd_pg_ready() {
    "$HVD_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$HVD_DEV_PG_PORT" -d postgres -U hvdeploy
}

# psql as the hvdeploy superuser over TCP; extra arguments go to psql.
# Connects to database hvdeploy unless -d is given.
hvd_psql() {
    PGCONNECT_TIMEOUT=10 psql -X -h 127.0.0.1 -p "$HVD_DEV_PG_PORT" -U hvdeploy -d hvdeploy "$@"
}

hvd_pg_start() {
    if hvd_pg_running; then
        hvd_pg_ready && return 0
    else
        _hvd_pg_prepare_dirs || return 1
        _hvd_pg_init || return 1
        if hvd_port_busy "$HVD_DEV_PG_PORT"; then
            hvd_err "TCP port $HVD_DEV_PG_PORT is taken by another process; stop it or set HVD_DEV_PG_PORT"
            return 1
        fi
        _hvd_pg_write_conf
        hvd_info "starting PostgreSQL on 127.0.0.1:$HVD_DEV_PG_PORT (log $HVD_PG_LOG)"
        _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$HVD_PG_DATA" -l "$HVD_PG_LOG" \
            -w -t "$HVD_SERVICE_TIMEOUT" start >/dev/null 9>&- ||
            { hvd_err "PostgreSQL did not start; last log lines:"; tail -n 15 "$HVD_PG_LOG" >&2; return 1; }
    fi
    local i
    for ((i = 0; i < HVD_SERVICE_TIMEOUT * 4; i++)); do
        hvd_pg_ready && break
        sleep 0.25
    done
    hvd_pg_ready || { hvd_err "PostgreSQL is not accepting connections on $HVD_DEV_PG_PORT"; return 1; }
    if [ "$(hvd_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'hvdeploy'")" != 1 ]; then
        hvd_psql -d postgres -qc 'CREATE DATABASE hvdeploy' || return 1
    fi
}

# Clean stop (pg_ctl stop -m fast): sessions are ended, a checkpoint is written.
hvd_pg_stop() {
    hvd_pg_running || return 0
    hvd_info "stopping PostgreSQL"
    _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$HVD_PG_DATA" -m fast -w -t "$HVD_SERVICE_TIMEOUT" stop >/dev/null
}

# Crash-like stop (pg_ctl stop -m immediate): no checkpoint, recovery at next start.
hvd_pg_crash() {
    hvd_pg_running || return 0
    hvd_info "stopping PostgreSQL immediately (crash recovery at next start)"
    _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$HVD_PG_DATA" -m immediate -w -t "$HVD_SERVICE_TIMEOUT" stop >/dev/null
}

# ------------------------------------------------------------------ RabbitMQ

# Exports the environment of this checkout's node: private epmd port, state,
# logs, config and Erlang cookie under .state/rabbitmq, the Erlang distribution
# bound to loopback. Only called in subshells.
_hvd_rmq_export() {
    export HOME="$HVD_RMQ_DIR/home" LC_ALL=C.UTF-8 \
        RABBITMQ_NODENAME="$HVD_RMQ_NODE" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$HVD_DEV_AMQP_PORT" \
        RABBITMQ_DIST_PORT="$HVD_DEV_DIST_PORT" \
        ERL_EPMD_PORT="$HVD_DEV_EPMD_PORT" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_CONF_ENV_FILE="$HVD_RMQ_DIR/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$HVD_RMQ_DIR/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$HVD_RMQ_DIR/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$HVD_RMQ_DIR/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$HVD_RMQ_DIR/mnesia" \
        RABBITMQ_LOG_BASE="$HVD_LOG_DIR/rabbitmq" \
        RABBITMQ_PID_FILE="$HVD_RMQ_PID_FILE" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# Runs a RabbitMQ script with that environment.
_hvd_rmq_env() {
    (_hvd_rmq_export; exec "$@")
}

# rabbitmqctl against this checkout's node, e.g. hvd_rmq_ctl list_queues name messages
hvd_rmq_ctl() {
    _hvd_rmq_env "$HVD_RMQ_BIN/rabbitmqctl" -n "$HVD_RMQ_NODE" "$@"
}

# Prints the pid of the broker's Erlang VM (beam.smp) when it runs.
hvd_rmq_pid() {
    local pid
    [ -r "$HVD_RMQ_PID_FILE" ] || return 1
    pid="$(tr -dc '0-9' <"$HVD_RMQ_PID_FILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

hvd_rmq_running() { hvd_rmq_pid >/dev/null; }

_hvd_rmq_prepare() {
    local tpl="$HVD_ROOT/deploy/rabbitmq/rabbitmq.conf"
    local timeout="${HVD_RMQ_CONSUMER_TIMEOUT:-1800000}"
    case "$timeout" in ''|*[!0-9]*) hvd_err "HVD_RMQ_CONSUMER_TIMEOUT must be milliseconds, got '$timeout'"; return 1;; esac
    mkdir -p "$HVD_RMQ_DIR/home" "$HVD_RMQ_DIR/mnesia" "$HVD_LOG_DIR/rabbitmq"
    chmod 700 "$HVD_RMQ_DIR/home"
    if [ ! -s "$HVD_RMQ_DIR/home/.erlang.cookie" ]; then
        (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HVD_RMQ_DIR/home/.erlang.cookie")
    fi
    chmod 400 "$HVD_RMQ_DIR/home/.erlang.cookie"
    sed -e "s|@AMQP_PORT@|$HVD_DEV_AMQP_PORT|g" -e "s|@CONSUMER_TIMEOUT@|$timeout|g" \
        -e "s|@LOG_DIR@|$HVD_LOG_DIR/rabbitmq|g" "$tpl" >"$HVD_RMQ_DIR/rabbitmq.conf" || return 1
    : >"$HVD_RMQ_DIR/rabbitmq-env.conf"
    printf '[].\n' >"$HVD_RMQ_DIR/enabled_plugins"
    printf '[].\n' >"$HVD_RMQ_DIR/advanced.config"
}

# Starts the broker (rendering the config; HVD_RMQ_CONSUMER_TIMEOUT in ms, default
# 1800000) and waits until it accepts AMQP connections.
hvd_rmq_start() {
    local launcher=
    if ! hvd_rmq_running; then
        [ -x "$HVD_RMQ_BIN/rabbitmq-server" ] ||
            { hvd_err "$HVD_RMQ_BIN/rabbitmq-server not found (rabbitmq-server: ./deploy/dev.sh deps)"; return 1; }
        _hvd_rmq_prepare || return 1
        local p
        for p in "$HVD_DEV_AMQP_PORT" "$HVD_DEV_DIST_PORT"; do
            if hvd_port_busy "$p"; then
                hvd_err "TCP port $p is taken by another process; stop it or set HVD_DEV_AMQP_PORT/HVD_DEV_DIST_PORT"
                return 1
            fi
        done
        rm -f "$HVD_RMQ_PID_FILE"
        hvd_info "starting RabbitMQ $HVD_RMQ_NODE on 127.0.0.1:$HVD_DEV_AMQP_PORT (logs $HVD_LOG_DIR/rabbitmq)"
        # setsid: a session of its own, out of reach of the caller's process group.
        # 9>&-: the server must not inherit the service lock (hvd_locked).
        (_hvd_rmq_export; exec setsid "$HVD_RMQ_BIN/rabbitmq-server") \
            >>"$HVD_LOG_DIR/rabbitmq/startup.log" 2>&1 </dev/null 9>&- &
        launcher=$!
        disown "$launcher" 2>/dev/null || true
    fi
    # await_startup fails at once while the node is not registered with epmd
    # yet, so it is retried until the node is up, the launcher died, or time is out.
    local deadline=$((SECONDS + HVD_SERVICE_TIMEOUT))
    until hvd_rmq_ctl await_startup --timeout 30 >/dev/null 2>"$HVD_LOG_DIR/rabbitmq/await.log"; do
        if [ "$SECONDS" -ge "$deadline" ] || { [ -n "$launcher" ] && ! kill -0 "$launcher" 2>/dev/null; }; then
            hvd_err "RabbitMQ did not start; see $HVD_LOG_DIR/rabbitmq/. Last lines:"
            tail -n 15 "$HVD_LOG_DIR/rabbitmq/startup.log" "$HVD_LOG_DIR/rabbitmq/await.log" >&2
            return 1
        fi
        sleep 1
    done
    local i
    for ((i = 0; i < 40; i++)); do
        hvd_port_busy "$HVD_DEV_AMQP_PORT" && return 0
        sleep 0.25
    done
    hvd_err "RabbitMQ runs but does not listen on $HVD_DEV_AMQP_PORT"
    return 1
}

_hvd_wait_gone() {  # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# Clean stop (rabbitmqctl stop); a broker that does not stop in time is killed.
hvd_rmq_stop() {
    local pid
    pid="$(hvd_rmq_pid)" || return 0
    hvd_info "stopping RabbitMQ"
    kill -CONT "$pid" 2>/dev/null || true   # a paused broker cannot stop itself
    hvd_rmq_ctl stop >/dev/null 2>&1 || true
    if ! _hvd_wait_gone "$pid" "$HVD_SERVICE_TIMEOUT"; then
        hvd_warn "RabbitMQ did not stop within ${HVD_SERVICE_TIMEOUT}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        _hvd_wait_gone "$pid" 10 || return 1
    fi
    rm -f "$HVD_RMQ_PID_FILE"
}

# Crash: SIGKILL to the Erlang VM, no clean shutdown.
hvd_rmq_kill() {
    local pid
    pid="$(hvd_rmq_pid)" || return 0
    hvd_info "killing RabbitMQ (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    _hvd_wait_gone "$pid" 10 || return 1
    rm -f "$HVD_RMQ_PID_FILE"
}

# Freezes / thaws the broker (SIGSTOP / SIGCONT): its sockets stay open and silent.
hvd_rmq_pause()  { local pid; pid="$(hvd_rmq_pid)" || { hvd_err "RabbitMQ is not running"; return 1; }; kill -STOP "$pid"; }
hvd_rmq_resume() { local pid; pid="$(hvd_rmq_pid)" || { hvd_err "RabbitMQ is not running"; return 1; }; kill -CONT "$pid"; }

# Changes consumer_timeout (ms) of the running broker; channels opened afterwards use it.
hvd_rmq_set_consumer_timeout() {
    case "${1:-}" in ''|*[!0-9]*) hvd_err "consumer timeout must be milliseconds"; return 1;; esac
    hvd_rmq_ctl eval "application:set_env(rabbit, consumer_timeout, $1)." >/dev/null
}

_hvd_epmd_kill() {
    ERL_EPMD_PORT="$HVD_DEV_EPMD_PORT" epmd -kill >/dev/null 2>&1 || true
}

# -------------------------------------------------------------- up and down

_hvd_write_env() {
    local key="$HVD_STATE/secret.key"
    if [ ! -s "$key" ]; then
        (umask 077; head -c 32 /dev/urandom | base64 >"$key")
    fi
    chmod 600 "$key"
    cat >"$HVD_ENV_FILE.tmp" <<EOF
# Environment of this checkout's private services: . .state/env
export HVD_AMQP_URL='$HVD_AMQP_URL_DEV'
export HVD_PG_DSN='$HVD_PG_DSN_DEV'
export HVD_SECRET_KEY_FILE='$key'
export HVD_DEV_SH='$HVD_DEV_SH'
EOF
    mv -f "$HVD_ENV_FILE.tmp" "$HVD_ENV_FILE"
}

# When nothing chose the ports and the defaults are taken by someone else (for
# instance another checkout's services), moves to the first free set.
_hvd_choose_ports() {
    [ -z "$HVD_DEV_PORTS_CHOSEN" ] || return 0
    local off p busy
    for off in 0 100 200 300 400 500 600 700 800 900; do
        hvd_offset_ports "$off"
        busy=
        for p in "$HVD_DEV_PG_PORT" "$HVD_DEV_AMQP_PORT" "$HVD_DEV_DIST_PORT" "$HVD_DEV_EPMD_PORT"; do
            hvd_port_busy "$p" && busy=1
        done
        if [ -z "$busy" ]; then
            [ "$off" -eq 0 ] || hvd_warn "default ports are taken; this checkout uses ports moved by +$off"
            return 0
        fi
    done
    hvd_offset_ports 0
    hvd_err "no free set of ports found; set HVD_DEV_PG_PORT, HVD_DEV_AMQP_PORT, HVD_DEV_DIST_PORT, HVD_DEV_EPMD_PORT"
    return 1
}

# Starts both services (idempotent) and writes .state/env.
hvd_up() {
    mkdir -p "$HVD_STATE" "$HVD_LOG_DIR" "$HVD_TEST_OUT_DIR"
    if ! hvd_pg_running && ! hvd_rmq_running; then
        _hvd_choose_ports || return 1
    fi
    hvd_save_ports
    hvd_pg_start || return 1
    hvd_rmq_start || return 1
    _hvd_write_env
    cat >&2 <<EOF
[dev] services are up (state in $HVD_STATE)
  HVD_AMQP_URL=$HVD_AMQP_URL_DEV
  HVD_PG_DSN=$HVD_PG_DSN_DEV
  HVD_SECRET_KEY_FILE=$HVD_STATE/secret.key
  load them with:  . $HVD_ENV_FILE
EOF
}

hvd_down() {
    local rc=0
    hvd_rmqc_down; hvd_pgha_down   # the chaos scenarios' clusters (cluster.sh), when they run
    hvd_rmq_stop || rc=1
    _hvd_epmd_kill
    hvd_pg_stop || rc=1
    [ "$rc" -eq 0 ] && hvd_info "services are down (state kept in $HVD_STATE)"
    return "$rc"
}

# Stops the services and deletes their state (databases, queues, logs, key).
hvd_reset() {
    hvd_down || return 1
    hvd_pgha_reset
    [ -L "$HVD_STATE/pg" ] && rm -rf "$(readlink -f "$HVD_STATE/pg")"
    rm -rf "$HVD_STATE"
    hvd_info "removed $HVD_STATE"
}

hvd_status() {
    local pid rc=0
    if pid="$(hvd_pg_pid)"; then
        if hvd_pg_ready; then
            printf 'postgresql  running  pid %s  %s\n' "$pid" "$HVD_PG_DSN_DEV"
        else
            printf 'postgresql  starting or stuck  pid %s  port %s\n' "$pid" "$HVD_DEV_PG_PORT"; rc=1
        fi
    else
        printf 'postgresql  stopped\n'; rc=1
    fi
    if pid="$(hvd_rmq_pid)"; then
        if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = T ]; then
            printf 'rabbitmq    paused (SIGSTOP)  pid %s\n' "$pid"; rc=1
        else
            printf 'rabbitmq    running  pid %s  %s\n' "$pid" "$HVD_AMQP_URL_DEV"
        fi
    else
        printf 'rabbitmq    stopped\n'; rc=1
    fi
    return "$rc"
}

# shellcheck source=cluster.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
