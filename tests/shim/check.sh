#!/bin/bash
# tests/shim/check.sh: the syntax check of hvdeploy's PowerShell host shim
# (deploy/agent/hvdeploy-agent.ps1). No PowerShell is packaged for this
# machine, so the script is parsed with tree-sitter's PowerShell grammar
# (npm tree-sitter-powershell, run by web-tree-sitter as WebAssembly: no
# native build, no network once installed) and fails on any ERROR or MISSING
# node. It then proves that the check catches a broken script: each of a few
# deliberately broken copies must fail it. What this does not do: run the
# script (its behaviour is specified and tested by the simhost's hvdeploy
# flavour, simhost/README.md).
# usage: tests/shim/check.sh [FILE.ps1...]   (default: deploy/agent/*.ps1)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${HVD_SHIM_PARSER_DIR:-$root/.state/shim-parser}"
# Pinned: web-tree-sitter 0.26 reads the grammar's ABI; both run on Node.js 20.
packages=(web-tree-sitter@0.26.13 tree-sitter-powershell@0.26.4)

installed() {
    local p name want have
    for p in "${packages[@]}"; do
        name="${p%@*}" want="${p##*@}"
        have="$(node -p "require('$prefix/node_modules/$name/package.json').version" 2>/dev/null || true)"
        [ "$have" = "$want" ] || return 1
    done
}

if ! installed; then
    echo "installing ${packages[*]} into ${prefix#"$root/"} (npm, no install scripts)"
    mkdir -p "$prefix"
    [ -f "$prefix/package.json" ] || printf '{"name":"hvdeploy-shim-parser","private":true}\n' >"$prefix/package.json"
    npm install --prefix "$prefix" --no-audit --no-fund --ignore-scripts --no-save "${packages[@]}" >/dev/null ||
        { echo "npm could not install the parser: the shim was not checked" >&2; exit 1; }
    installed || { echo "the parser's versions are not ${packages[*]}" >&2; exit 1; }
fi

# --liftoff-only: V8 would otherwise spend ~10 s of CPU optimising the 1 MB grammar at exit.
parse() { node --liftoff-only "$root/tests/shim/parse.cjs" "$prefix" "$@"; }

files=("$@")
[ "${#files[@]}" -gt 0 ] || files=("$root"/deploy/agent/*.ps1)
parse "${files[@]}"

# The check must catch a broken script: each broken copy of the shim must fail.
shim="$root/deploy/agent/hvdeploy-agent.ps1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
broken=(
    's/^function Write-Line(\[string\]\$Line) {$/function Write-Line([string]$Line)/'   # a function without its brace
    's/^if (\$Session) {/if ($Session {/'                                                 # an unclosed parenthesis
    's/return @{ status = \$Status;/return @{ status = ;/'                                # a hashtable entry without a value
    's/^        foreach (\$idText in @(\$running.Keys)) {$/        foreach ($idText in @($running.Keys) {/'
)
i=0
for expr in "${broken[@]}"; do
    i=$((i + 1))
    copy="$tmp/broken-$i.ps1"
    sed "$expr" "$shim" >"$copy"
    if cmp -s "$shim" "$copy"; then
        echo "broken copy $i is not broken (sed '$expr' changed nothing): update this check" >&2
        exit 1
    fi
    if parse "$copy" >"$tmp/out-$i" 2>&1; then
        echo "broken copy $i ($expr) parses: the check would not catch it" >&2
        exit 1
    fi
    echo "broken copy $i is caught: $(grep -m1 -E 'ERROR|MISSING' "$tmp/out-$i" | sed "s|$tmp/||")"
done
# A copy cut off in the middle of Start-Session.
cut_at="$(grep -n '^function Start-Session' "$shim" | cut -d: -f1)"
head -n $((cut_at + 12)) "$shim" >"$tmp/truncated.ps1"
if parse "$tmp/truncated.ps1" >"$tmp/out-t" 2>&1; then
    echo "a truncated copy parses: the check would not catch it" >&2
    exit 1
fi
echo "a truncated copy is caught: $(grep -m1 -E 'ERROR|MISSING' "$tmp/out-t" | sed "s|$tmp/||")"
echo "shim syntax check: ${#files[@]} file(s) parse; $((i + 1)) broken copies caught"
