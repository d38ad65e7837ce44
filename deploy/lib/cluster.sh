# deploy/lib/cluster.sh: a three-node RabbitMQ cluster and a PostgreSQL primary with a
# synchronous streaming standby, all on this box, for the chaos scenarios of issue 13
# (tests/chaos/cluster.py). Sourced by services.sh; reached as ./deploy/dev.sh cluster VERB.
#
#   hvd_rmqc_up             starts (first time: creates and joins) nodes 1..3; prints nothing
#   hvd_rmqc_urls           the nodes' AMQP URLs, separated by spaces (for HVD_AMQP_URL)
#   hvd_rmqc_kill N         SIGKILL to node N's Erlang VM        hvd_rmqc_start N   starts it again
#   hvd_rmqc_leader QUEUE [VHOST]  the node number leading a quorum queue
#   hvd_rmqc_ctl N ARGS...  rabbitmqctl against node N           hvd_rmqc_down / hvd_rmqc_reset
#   hvd_pgha_up             a fresh primary and a synchronous standby (pg_basebackup)
#   hvd_pgha_dsn [DB]       the multi-host DSN (target_session_attrs=read-write)
#   hvd_pgha_kill_primary   SIGKILL to the primary's postmaster and backends
#   hvd_pgha_promote        pg_ctl promote on the standby        hvd_pgha_down / hvd_pgha_reset
#
# Own ports, beside this checkout's services (moved with them): RabbitMQ nodes on
# HVD_DEV_AMQP_PORT+11..13 (distribution +21..23, an epmd of their own on
# HVD_DEV_EPMD_PORT+1), PostgreSQL primary on HVD_DEV_PG_PORT+10, standby on +11.
# Own Erlang cookie, node names hvdeploy-c1..3@localhost, state under .state/.

[ -n "${HVD_LIB_CLUSTER_LOADED:-}" ] && return 0
HVD_LIB_CLUSTER_LOADED=1

HVD_RMQC_DIR="$HVD_STATE/rmq-cluster"
HVD_RMQC_NODES=3

_hvd_rmqc_port() { echo $((HVD_DEV_AMQP_PORT + 10 + $1)); }
_hvd_rmqc_node() { echo "hvdeploy-c$1@localhost"; }

# The environment of node $1 (in a subshell).
_hvd_rmqc_export() {
    local n="$1" d="$HVD_RMQC_DIR/n$1"
    export HOME="$HVD_RMQC_DIR/home" LC_ALL=C.UTF-8 \
        RABBITMQ_NODENAME="$(_hvd_rmqc_node "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(_hvd_rmqc_port "$n")" \
        RABBITMQ_DIST_PORT=$((HVD_DEV_AMQP_PORT + 20 + n)) \
        ERL_EPMD_PORT=$((HVD_DEV_EPMD_PORT + 1)) \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$HVD_LOG_DIR/rmq-cluster/n$n" \
        RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

hvd_rmqc_ctl() {
    local n="$1"; shift
    (_hvd_rmqc_export "$n"; exec "$HVD_RMQ_BIN/rabbitmqctl" -n "$(_hvd_rmqc_node "$n")" "$@")
}

_hvd_rmqc_pid() {
    local f="$HVD_RMQC_DIR/n$1/rabbitmq.pid" pid
    [ -r "$f" ] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

_hvd_rmqc_prepare() {
    local n="$1" d="$HVD_RMQC_DIR/n$1"
    mkdir -p "$HVD_RMQC_DIR/home" "$d/mnesia" "$HVD_LOG_DIR/rmq-cluster/n$n"
    chmod 700 "$HVD_RMQC_DIR/home"
    if [ ! -s "$HVD_RMQC_DIR/home/.erlang.cookie" ]; then   # the cluster's own cookie, shared by its nodes
        (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HVD_RMQC_DIR/home/.erlang.cookie")
    fi
    chmod 400 "$HVD_RMQC_DIR/home/.erlang.cookie"
    sed -e "s|@AMQP_PORT@|$(_hvd_rmqc_port "$n")|g" -e "s|@CONSUMER_TIMEOUT@|1800000|g" \
        -e "s|@LOG_DIR@|$HVD_LOG_DIR/rmq-cluster/n$n|g" "$HVD_ROOT/deploy/rabbitmq/rabbitmq.conf" >"$d/rabbitmq.conf"
    : >"$d/rabbitmq-env.conf"
    printf '[].\n' >"$d/enabled_plugins"
    printf '[].\n' >"$d/advanced.config"
}

# Starts node $1 and waits until it runs (after a crash it rejoins its cluster by itself).
hvd_rmqc_start() {
    _hvd_rmqc_launch "$1" && _hvd_rmqc_await "$1"
}

# Starts node $1's Erlang VM without waiting for it.
_hvd_rmqc_launch() {
    local n="$1"
    if ! _hvd_rmqc_pid "$n" >/dev/null; then
        _hvd_rmqc_prepare "$n" || return 1
        local p
        for p in "$(_hvd_rmqc_port "$n")" $((HVD_DEV_AMQP_PORT + 20 + n)); do
            hvd_port_busy "$p" && { hvd_err "TCP port $p (RabbitMQ cluster node $n) is taken"; return 1; }
        done
        rm -f "$HVD_RMQC_DIR/n$n/rabbitmq.pid"
        hvd_info "starting RabbitMQ cluster node $(_hvd_rmqc_node "$n") on 127.0.0.1:$(_hvd_rmqc_port "$n")"
        (_hvd_rmqc_export "$n"; exec setsid "$HVD_RMQ_BIN/rabbitmq-server") \
            >>"$HVD_LOG_DIR/rmq-cluster/n$n/startup.log" 2>&1 </dev/null 9>&- &
        disown $! 2>/dev/null || true
    fi
}

# Waits until node $1 runs and listens.
_hvd_rmqc_await() {
    local n="$1" deadline=$((SECONDS + HVD_SERVICE_TIMEOUT))
    until hvd_rmqc_ctl "$n" await_startup --timeout 30 >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && {
            hvd_err "RabbitMQ cluster node $n did not start; see $HVD_LOG_DIR/rmq-cluster/n$n"; return 1; }
        sleep 1
    done
    until hvd_port_busy "$(_hvd_rmqc_port "$n")"; do
        [ "$SECONDS" -ge "$deadline" ] && { hvd_err "node $n does not listen"; return 1; }
        sleep 0.25
    done
}

# Starts the three nodes; on the first start nodes 2 and 3 join node 1. Nodes of a
# cluster that was stopped wait at boot for the one that stopped last: all three
# are launched before any is waited for.
hvd_rmqc_up() {
    local n fresh=()
    for n in 1 2 3; do
        [ -d "$HVD_RMQC_DIR/n$n/mnesia/$(_hvd_rmqc_node "$n")" ] || fresh[n]=1
    done
    if [ -n "${fresh[1]:-}" ]; then     # a new cluster: node 1 first, the others join it
        hvd_rmqc_start 1 || return 1
    else
        for n in 1 2 3; do _hvd_rmqc_launch "$n" || return 1; done
        _hvd_rmqc_await 1 || return 1
    fi
    for n in 2 3; do
        _hvd_rmqc_launch "$n" && _hvd_rmqc_await "$n" || return 1
        if [ -n "${fresh[n]:-}" ] || ! hvd_rmqc_ctl 1 cluster_status 2>/dev/null | grep -q "$(_hvd_rmqc_node "$n")"; then
            hvd_info "node $n joins the cluster of node 1"
            local log="$HVD_LOG_DIR/rmq-cluster/join.log"
            { hvd_rmqc_ctl "$n" stop_app && hvd_rmqc_ctl "$n" reset &&
                hvd_rmqc_ctl "$n" join_cluster "$(_hvd_rmqc_node 1)" && hvd_rmqc_ctl "$n" start_app; } >>"$log" 2>&1 ||
                { hvd_err "node $n could not join the cluster; see $log"; return 1; }
        fi
    done
    local running
    running="$(hvd_rmqc_ctl 1 eval 'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -dc 0-9)"
    [ "$running" = 3 ] || { hvd_err "the cluster runs $running of 3 nodes"; return 1; }
}

hvd_rmqc_urls() {
    local n out=
    for n in $(seq 1 "$HVD_RMQC_NODES"); do out+="${out:+ }amqp://guest:guest@127.0.0.1:$(_hvd_rmqc_port "$n")/%2f"; done
    printf '%s\n' "$out"
}

hvd_rmqc_kill() {
    local pid
    pid="$(_hvd_rmqc_pid "$1")" || { hvd_err "cluster node $1 is not running"; return 1; }
    hvd_info "killing RabbitMQ cluster node $1 (pid $pid)"
    kill -KILL "$pid"
    _hvd_wait_gone "$pid" 10
}

# The number (1..3) of the node that leads quorum queue $1 in vhost $2 (default /).
hvd_rmqc_leader() {
    local n line
    for n in $(seq 1 "$HVD_RMQC_NODES"); do
        _hvd_rmqc_pid "$n" >/dev/null || continue
        line="$(hvd_rmqc_ctl "$n" list_queues -q --no-table-headers -p "${2:-/}" name leader 2>/dev/null |
            awk -v q="$1" '$1 == q {print $2}')"
        [ -n "$line" ] || continue
        printf '%s\n' "$line" | sed -E 's/^hvdeploy-c([0-9]+)@.*/\1/'
        return 0
    done
    return 1
}

# Stops the nodes (SIGTERM: a clean stop, also of a node still booting), all at once.
hvd_rmqc_down() {
    local n pid pids=()
    for n in $(seq 1 "$HVD_RMQC_NODES"); do
        pid="$(_hvd_rmqc_pid "$n")" || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        _hvd_wait_gone "$pid" 60 || kill -KILL "$pid" 2>/dev/null
    done
    ERL_EPMD_PORT=$((HVD_DEV_EPMD_PORT + 1)) epmd -kill >/dev/null 2>&1 || true
}

hvd_rmqc_reset() { hvd_rmqc_down; rm -rf "$HVD_RMQC_DIR" "$HVD_LOG_DIR/rmq-cluster"; }

# ------------------------------------------------------- PostgreSQL primary + standby

_hvd_pgha_dir() { echo "$HVD_PG_DIR-ha"; }
HVD_PGHA_STANDBY_NAME=hvd_standby

_hvd_pgha_pid() {
    local f pid
    f="$(_hvd_pgha_dir)/$1/postmaster.pid"
    [ -r "$f" ] || return 1
    pid="$(head -n1 "$f")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

_hvd_pgha_start() {  # primary|standby port
    local dir; dir="$(_hvd_pgha_dir)/$1"
    _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$dir" -l "$(_hvd_pgha_dir)/$1.log" -w -t "$HVD_SERVICE_TIMEOUT" \
        start >/dev/null 9>&- || { hvd_err "PostgreSQL $1 did not start:"; tail -n 15 "$(_hvd_pgha_dir)/$1.log" >&2; return 1; }
}

_hvd_pgha_psql() {  # port SQL...
    local port="$1"; shift
    PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$port" -U hvdeploy -d postgres -v ON_ERROR_STOP=1 "$@"
}

# A fresh primary on HVD_DEV_PG_PORT+10 and, from pg_basebackup, a standby on +11
# streaming from it synchronously: synchronous_commit = on with
# synchronous_standby_names naming it, so a commit returns once the standby has
# flushed it too.
# The primary's and the standby's ports: HVD_DEV_PG_PORT + 10 and + 11, or the
# next pair that no socket uses (a client's ephemeral port can hold one: the
# dev ports lie in Linux's ephemeral range), as recorded by the last pg-up.
_hvd_pgha_ports() {
    local f; f="$(_hvd_pgha_dir)/ports"
    if [ -r "$f" ]; then cat "$f"; else echo "$((HVD_DEV_PG_PORT + 10)) $((HVD_DEV_PG_PORT + 11))"; fi
}

# Appends the primary's settings for port $1 to its postgresql.conf.
_hvd_pgha_primary_conf() {
    cat >>"$(_hvd_pgha_dir)/primary/postgresql.conf" <<EOF
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = on
synchronous_commit = on
synchronous_standby_names = '$HVD_PGHA_STANDBY_NAME'
wal_level = replica
max_wal_senders = 5
max_connections = 200
timezone = 'UTC'
log_timezone = 'UTC'
EOF
}

hvd_pgha_up() {
    local base pport sport off started=
    base="$(_hvd_pgha_dir)"
    hvd_pgha_down
    rm -rf "$base"
    mkdir -p "$base"
    hvd_is_root && chown "$HVD_PG_OS_USER:" "$base"
    chmod 700 "$base"
    _hvd_pg_as_owner "$HVD_PG_BIN/initdb" -D "$base/primary" -U hvdeploy -A trust -E UTF8 --locale=C.UTF-8 \
        >"$base/initdb.log" 2>&1 || { hvd_err "initdb failed: $base/initdb.log"; return 1; }
    cp "$base/primary/postgresql.conf" "$base/postgresql.conf.initdb"
    for off in 10 20 30 40 50; do
        pport=$((HVD_DEV_PG_PORT + off)) sport=$((HVD_DEV_PG_PORT + off + 1))
        if hvd_port_used "$pport" || hvd_port_used "$sport"; then
            hvd_warn "TCP port $pport or $sport is in use; trying the next pair"
            continue
        fi
        cp "$base/postgresql.conf.initdb" "$base/primary/postgresql.conf"
        _hvd_pgha_primary_conf "$pport"
        hvd_info "starting PostgreSQL primary on 127.0.0.1:$pport"
        if _hvd_pgha_start primary; then
            started=1
            break
        fi
        hvd_warn "the primary did not start on $pport; trying the next pair of ports"
    done
    [ -n "$started" ] || { hvd_err "no free pair of ports for the PostgreSQL primary and standby"; return 1; }
    echo "$pport $sport" >"$base/ports"
    hvd_info "pg_basebackup of the primary into the standby (port $sport)"
    _hvd_pg_as_owner "$HVD_PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U hvdeploy -D "$base/standby" \
        -X stream -R -d "application_name=$HVD_PGHA_STANDBY_NAME" >"$base/basebackup.log" 2>&1 ||
        { hvd_err "pg_basebackup failed: $base/basebackup.log"; return 1; }
    # the standby's own settings; it names no synchronous standby of its own, so that
    # once promoted (and alone) it does not wait for one that is not there
    cat >>"$base/standby/postgresql.conf" <<EOF
port = $sport
synchronous_standby_names = ''
hot_standby = on
EOF
    _hvd_pgha_start standby || return 1
    local i state
    for ((i = 0; i < 120; i++)); do
        state="$(_hvd_pgha_psql "$pport" -tAc "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$HVD_PGHA_STANDBY_NAME'" 2>/dev/null)"
        [ "$state" = sync ] && break
        sleep 0.25
    done
    [ "$state" = sync ] || { hvd_err "the standby is not a synchronous standby (state '$state')"; return 1; }
    _hvd_pgha_psql "$pport" -c "CREATE DATABASE hvdeploy" || return 1
}

hvd_pgha_dsn() {
    local pport sport
    read -r pport sport < <(_hvd_pgha_ports)
    printf 'postgresql://hvdeploy@127.0.0.1:%d,127.0.0.1:%d/%s?target_session_attrs=read-write&connect_timeout=3\n' \
        "$pport" "$sport" "${1:-hvdeploy}"
}

# The primary's machine is gone: SIGKILL to the postmaster and every backend of it.
hvd_pgha_kill_primary() {
    local pid kids
    pid="$(_hvd_pgha_pid primary)" || { hvd_err "the primary is not running"; return 1; }
    kids="$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')"
    hvd_info "killing the PostgreSQL primary (postmaster $pid and its processes)"
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null
    _hvd_wait_gone "$pid" 10
}

hvd_pgha_promote() {
    hvd_info "promoting the standby"
    _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$(_hvd_pgha_dir)/standby" -w -t 60 promote >/dev/null
}

hvd_pgha_down() {
    local which
    for which in primary standby; do
        _hvd_pgha_pid "$which" >/dev/null || continue
        _hvd_pg_as_owner "$HVD_PG_BIN/pg_ctl" -D "$(_hvd_pgha_dir)/$which" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    return 0
}

hvd_pgha_reset() { hvd_pgha_down; rm -rf "$(_hvd_pgha_dir)"; }
