#!/usr/bin/env python3
"""Checks that deploy/grafana/hvdeploy-dashboard.json and
deploy/prometheus/hvdeploy-alerts.yaml name only metrics the worker exports.

The exported names come from the worker's own table: the HVD_M_* names of
common/infra/metrics.h with their types from hvd_metrics_register_worker in
common/infra/metrics*.c (a histogram NAME is scraped as NAME_bucket, NAME_sum
and NAME_count), and the process_* metrics metrics.c renders. Every PromQL
expression of the dashboard (panel targets, template queries) and of the alert
rules is tokenised; what is left once functions, keywords, label matchers,
grouping clauses, ranges, strings and numbers are taken out are metric names,
and each must be one of those.

Usage: check_metrics.py ROOT. Prints each unknown name; exit 1 if any."""
import json
import glob
import os
import re
import sys

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset",
            "bool", "inf", "nan", "le"}


def exported(root):
    """{metric name as scraped} from the worker's metric table."""
    with open(os.path.join(root, "common", "infra", "metrics.h"), encoding="utf-8") as f:
        defines = dict(re.findall(r'#define\s+(HVD_M_\w+)\s+"([a-z_:][a-z0-9_:]*)"', f.read()))
    src = ""
    for name in sorted(glob.glob(os.path.join(root, "common", "infra", "metrics*.c"))):
        with open(name, encoding="utf-8") as f:
            src += f.read()
    names = set()
    for macro, kind in re.findall(r"\{\s*(HVD_M_\w+)\s*,\s*HVD_METRIC_(COUNTER|GAUGE|HISTOGRAM)", src):
        if macro not in defines:
            continue
        name = defines[macro]
        names.add(name)
        if kind == "HISTOGRAM":
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
    names.update(re.findall(r"# TYPE (process_[a-z_]+) ", src))
    return names


def metric_names(expr):
    """The metric names an expression reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)    # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                       # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                      # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+|\$\{[^}]*\}", " ", e)                               # dashboard variables
    names = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or tok.lower() in KEYWORDS:
            continue                                                       # a function or a keyword
        prev = e[:m.start()]
        if re.search(r"[0-9.]$", prev):
            continue                                                       # 1e-9, 5m and the like
        names.append(tok)
    return names


def dashboard_exprs(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(("panel %r" % p.get("title"), t["expr"]))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"\s*label_values\((.*),\s*\w+\)\s*$", q or "")
        if m:
            out.append(("variable %r" % v.get("name"), m.group(1)))
    return out


def rule_exprs(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [("alert %r" % r.get("alert") or r.get("record"), r["expr"])
            for g in doc.get("groups", []) for r in g.get("rules", [])]


def main():
    root = sys.argv[1]
    known = exported(root)
    if len(known) < 20:
        print("could read only %d metric names from common/infra/metrics*.[ch]" % len(known))
        return 1
    bad = 0
    checked = 0
    sources = [("deploy/grafana/hvdeploy-dashboard.json", dashboard_exprs),
               ("deploy/prometheus/hvdeploy-alerts.yaml", rule_exprs)]
    for rel, fn in sources:
        exprs = fn(os.path.join(root, rel))
        if not exprs:
            print("%s: no PromQL expression found" % rel)
            bad = 1
        for where, expr in exprs:
            names = metric_names(expr)
            if not names:
                print("%s, %s: no metric in %r" % (rel, where, expr))
                bad = 1
            for n in names:
                checked += 1
                if n not in known:
                    print("%s, %s: %s is not a metric the worker exports" % (rel, where, n))
                    bad = 1
    print("%d metric references checked against %d exported names" % (checked, len(known)))
    return bad


if __name__ == "__main__":
    sys.exit(main())
