# deploy/lib/build.sh: the three CMake builds (plain, sanitized, fuzzing), each in its own directory.

[ -n "${HVD_LIB_BUILD_LOADED:-}" ] && return 0
HVD_LIB_BUILD_LOADED=1
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HVD_JOBS="${HVD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

# Native build tool flags: keep going past a failing target (make -k), so that
# one broken file does not hide the state of every other target and test.
_hvd_keep_going() {
    if [ -f "$1/build.ninja" ]; then echo "-k0"; else echo "-k"; fi
}

# _hvd_cmake DIR [cmake -D options...] : configure, then build everything
# (or only the targets in the array HVD_BUILD_TARGETS when it is set).
_hvd_cmake() {
    local dir="$1"; shift
    local targets=() t
    for t in "${HVD_BUILD_TARGETS[@]}"; do targets+=(--target "$t"); done
    cmake -S "$HVD_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" || return 1
    cmake --build "$dir" -j "$HVD_JOBS" "${targets[@]}" -- "$(_hvd_keep_going "$dir")"
}

# build/: RelWithDebInfo, programs in build/bin/. Arguments: only these targets.
hvd_build() {
    local HVD_BUILD_TARGETS=("$@")
    _hvd_cmake "$HVD_ROOT/build" || return 1
    hvd_info "built: $(find "$HVD_ROOT/build/bin" -maxdepth 1 -type f -perm -u+x -printf '%f ' 2>/dev/null)"
}

# build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer (HVD_SANITIZE=ON).
hvd_build_asan() {
    local HVD_BUILD_TARGETS=()
    _hvd_cmake "$HVD_ROOT/build-asan" -DHVD_SANITIZE=ON
}

# build-fuzz/: clang with libFuzzer (HVD_FUZZ=ON); builds only the fuzz_* harnesses.
hvd_build_fuzz() {
    command -v clang >/dev/null || { hvd_err "clang is missing (./deploy/dev.sh deps)"; return 1; }
    local probe
    probe="$(mktemp -d)"
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
    if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
        hvd_err "clang cannot link libFuzzer (libclang-rt-14-dev missing?):"; cat "$probe/err" >&2
        rm -rf "$probe"; return 1
    fi
    rm -rf "$probe"
    local dir="$HVD_ROOT/build-fuzz" targets=() src
    cmake -S "$HVD_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DHVD_FUZZ=ON || return 1
    for src in "$HVD_ROOT"/tests/fuzz/fuzz_*.c; do
        [ -e "$src" ] && targets+=(--target "$(basename "$src" .c)")
    done
    if [ "${#targets[@]}" -eq 0 ]; then
        hvd_info "no tests/fuzz/fuzz_*.c harnesses yet: nothing to build"
        return 0
    fi
    cmake --build "$dir" -j "$HVD_JOBS" "${targets[@]}" -- "$(_hvd_keep_going "$dir")"
}
