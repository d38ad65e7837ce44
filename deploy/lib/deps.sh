# deploy/lib/deps.sh: installs the Debian 12 packages hvdeploy builds, tests and runs with.

[ -n "${HVD_LIB_DEPS_LOADED:-}" ] && return 0
HVD_LIB_DEPS_LOADED=1
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# libclang-rt-14-dev holds libclang_rt.fuzzer (libFuzzer) for clang 14;
# systemd brings systemd-analyze (the unit check); procps and iproute2 bring
# ps/pgrep and ss, which these scripts use; chromium drives the dashboard's
# browser tests (playwright-core comes from npm into .state/, with nodejs, which
# also runs the shim's syntax check); python3-aio-pika,
# -venv and -setuptools are the Python client's (clients/python).
# ps/pgrep and ss, which these scripts use; prometheus brings promtool (the
# alerting rules' check; its server is not started: policy-rc.d below).
HVD_DEB_PACKAGES=(
    build-essential cmake pkg-config clang libclang-rt-14-dev
    librabbitmq-dev libmsgpack-dev libpq-dev libcriterion-dev libjansson-dev
    libsodium-dev libmicrohttpd-dev
    rabbitmq-server postgresql-15
    python3-pika python3-msgpack python3-yaml python3-psycopg2
    python3-aio-pika python3-venv python3-setuptools
    chromium chromium-driver
    prometheus
    systemd procps iproute2
    nodejs
)

# Prints the packages of HVD_DEB_PACKAGES that are not installed.
hvd_deps_missing() {
    local p st
    for p in "${HVD_DEB_PACKAGES[@]}"; do
        st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
        [ "$st" = "install ok installed" ] || printf '%s\n' "$p"
    done
}

# Installs what is missing (apt-get update only then). Package scripts may not
# start system-wide services: a policy-rc.d denying them is put in place for
# the install when the machine has none.
hvd_deps() {
    local missing
    mapfile -t missing < <(hvd_deps_missing)
    if [ "${#missing[@]}" -eq 0 ]; then
        hvd_info "deps: all ${#HVD_DEB_PACKAGES[@]} packages are installed"
        return 0
    fi
    hvd_info "deps: missing ${missing[*]}"
    if ! hvd_is_root; then
        hvd_err "installing packages needs root: sudo apt-get install ${missing[*]}"
        return 1
    fi
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from hvdeploy deploy/dev.sh deps\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || rc=1
    if [ "$rc" -eq 0 ]; then
        apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" || rc=1
    fi
    [ -n "$own_policy" ] && rm -f "$policy"
    if [ "$rc" -ne 0 ]; then
        hvd_err "apt-get could not install: ${missing[*]}"
        return 1
    fi
    mapfile -t missing < <(hvd_deps_missing)
    if [ "${#missing[@]}" -ne 0 ]; then
        hvd_err "still missing after apt-get: ${missing[*]}"
        return 1
    fi
    hvd_info "deps: installed"
}
