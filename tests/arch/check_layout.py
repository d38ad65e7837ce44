#!/usr/bin/env python3
"""Checks the source layout the README's architecture section promises.

  - no import circles: among the object files of each library and program,
    "A uses a function or variable that B defines" forms no cycle;
  - the libraries depend on each other only downwards (core <- infra <- edges
    <- programs), and core links no I/O library (no PQ*, amqp_*, MHD_*,
    sodium_* symbols);
  - no source file in common/ or worker/ is over the line limit.

Usage: check_layout.py BUILD_DIR [SOURCE_DIR]. Prints each violation; exit 1 if any."""
import os
import re
import subprocess
import sys

LINE_LIMIT = 500


def objects(build):
    """{target: [object paths]} from CMake's TARGET.dir folders."""
    out = {}
    for root, _dirs, files in os.walk(build):
        m = re.search(r"CMakeFiles/([^/]+)\.dir", root)
        if not m:
            continue
        for f in files:
            if f.endswith(".c.o"):
                out.setdefault(m.group(1), []).append(os.path.join(root, f))
    return out


def symbols(obj):
    """(defined, undefined) global symbol names of one object file."""
    text = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper():
            defined.add(name)
    return defined, undefined


def short(obj):
    m = re.search(r"\.dir/(.*)\.c\.o$", obj)
    return m.group(1) + ".c" if m else obj


def cycles(nodes, edges):
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    build = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    problems = []
    targets = objects(build)
    for target, objs in sorted(targets.items()):
        if target.startswith(("unit_", "it_", "fuzz_", "agent_")):
            continue
        syms = {o: symbols(o) for o in objs}
        owner = {}
        for o, (d, _u) in syms.items():
            for s in d:
                owner[s] = o
        edges = {o: {owner[s] for s in u if s in owner and owner[s] != o} for o, (_d, u) in syms.items()}
        for comp in cycles(list(syms), edges):
            problems.append(f"{target}: import circle between " + ", ".join(short(o) for o in comp))
        if target == "hvd_core":
            for o, (_d, u) in syms.items():
                bad = sorted(s for s in u if re.match(r"(PQ|amqp_|MHD_|sodium_|crypto_|pthread_)", s))
                if bad:
                    problems.append(f"hvd_core: {short(o)} uses I/O symbols {', '.join(bad[:5])}")
    for top in ("common", "worker"):
        for root, _dirs, files in os.walk(os.path.join(src, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    p = os.path.join(root, f)
                    with open(p, encoding="utf-8") as fh:
                        n = sum(1 for _ in fh)
                    if n > LINE_LIMIT:
                        problems.append(f"{os.path.relpath(p, src)}: {n} lines (limit {LINE_LIMIT})")
    for p in problems:
        print(p)
    print(f"layout: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
