#!/bin/sh
# Runs every libFuzzer harness of a fuzz build for a while, one at a time.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [FUZZER...]
#
# BUILD_DIR is a build configured with CC=clang -DHVD_FUZZ=ON (harnesses in
# BUILD_DIR/fuzz/). Each fuzzer runs SECONDS (-max_total_time) on a copy of
# its seed corpus tests/fuzz/corpus/<fuzzer>/ in a temp dir, so the seeds in
# the repo stay small. A crash, leak, sanitizer report or timeout is kept in
# BUILD_DIR/fuzz-artifacts/<fuzzer>/ and makes the script exit 1, naming the
# fuzzer. Extra libFuzzer flags can come from HVD_FUZZ_ARGS.
set -u

usage() {
    echo "usage: $0 BUILD_DIR SECONDS [FUZZER...]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
build=$1
secs=$2
shift 2
case $secs in '' | *[!0-9]*) usage ;; esac
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -gt 0 ]; then
    fuzzers="$*"
else
    fuzzers=$(cd "$build/fuzz" 2>/dev/null && ls fuzz_* 2>/dev/null)
fi
[ -n "$fuzzers" ] || { echo "no fuzzers in $build/fuzz (configure with CC=clang -DHVD_FUZZ=ON and build target hvd_fuzzers)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hvd-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=""

for name in $fuzzers; do
    bin="$build/fuzz/$name"
    [ -x "$bin" ] || { echo "$name: no executable $bin" >&2; failed="$failed $name"; continue; }
    corpus="$tmp/$name"
    mkdir -p "$corpus"
    [ -d "$here/corpus/$name" ] && cp "$here/corpus/$name"/* "$corpus"/ 2>/dev/null
    artifacts="$build/fuzz-artifacts/$name"
    mkdir -p "$artifacts"
    log="$tmp/$name.log"
    echo "== $name: ${secs}s, seeds $(ls "$corpus" | wc -l), started $(date -u +%H:%M:%SZ)"
    # -timeout: one input taking 10 s is a bug (quadratic paths); -rss_limit_mb keeps a
    # shared machine safe; -jobs is not used: one process, one core.
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${HVD_FUZZ_ARGS:-} "$corpus" > "$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        echo "!! $name FAILED (exit $rc) after ${took:-?}s; the report:"
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error|deadly signal|Test unit written' "$log" | head -n 60
        echo "   artifacts in $artifacts/:"
        ls -l "$artifacts" 2>/dev/null | sed 's/^/     /'
        failed="$failed $name"
    else
        echo "ok $name: ${took:-$secs}s clean, ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs"
    fi
done

if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all fuzzers ran clean"
