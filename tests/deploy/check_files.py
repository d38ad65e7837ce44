#!/usr/bin/python3
"""Static checks of deploy/ for tests/deploy/check.sh: one subcommand per
check, silent and exit 0 when it holds, one line per problem and exit 1 when
not, exit 3 (with the reason) when it cannot run here (a skip).

    check_files.py CHECK ROOT [BIN_DIR]
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:     # reported by the 'yaml' check
    yaml = None

SKIP = 3
problems = []


def problem(msg, *args):
    problems.append(msg % args if args else msg)


# ---------------------------------------------------------------- helpers

if yaml is not None:
    class UniqueKeyLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (PyYAML
        silently keeps the last one, hiding typos in manifests)."""

    def _construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key %r" % (key,), key_node.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


def k8s_docs(root):
    kdir = os.path.join(root, "deploy", "k8s")
    kust = load_all(os.path.join(kdir, "kustomization.yaml"))[0]
    docs = []
    for res in kust.get("resources", []):
        for d in load_all(os.path.join(kdir, res)):
            d["_file"] = res
            docs.append(d)
    return kust, docs


def one(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        problem("k8s: expected one %s%s, found %d", kind,
                " named " + name if name else "", len(found))
        return {}
    return found[0]


def worker_known_vars(bin_dir):
    """HVD_* variables the worker documents in --help (its config table)."""
    out = subprocess.run([os.path.join(bin_dir, "hvdeploy-worker"), "--help"],
                         capture_output=True, text=True, env={}, check=False).stdout
    known = set(re.findall(r"\b(HVD_[A-Z0-9_]+)\b", out))
    # read by the store with getenv, not a worker setting
    known.add("HVD_MIGRATIONS_DIR")
    return known


def parse_env_file(path):
    """KEY=VALUE lines as systemd's EnvironmentFile= and docker --env-file
    read them: '#' comments, the value to the end of the line."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if "=" not in s:
                problem("%s:%d: not KEY=VALUE: %s", path, n, s)
                continue
            k, v = s.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def unit_settings(path):
    """[Section] Key=Value pairs of a systemd unit (repeated keys kept in order)."""
    sec, out = None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                sec = s[1:-1]
                continue
            k, _, v = s.partition("=")
            out.append((sec, k.strip(), v.strip()))
    return out


def print_config(bin_dir, env, args=()):
    """Runs hvdeploy-worker --print-config with exactly env; returns
    (exit status, {var: value}, stderr)."""
    r = subprocess.run([os.path.join(bin_dir, "hvdeploy-worker"), *args, "--print-config"],
                       capture_output=True, text=True, env=env, check=False)
    vals = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    return r.returncode, vals, r.stderr.strip()


def with_dummy_files(env, tmp):
    """Points the credential and key files of env at dummy files in tmp,
    so --print-config can read them (it reads the *_FILE settings)."""
    env = dict(env)
    dummies = {"HVD_AMQP_URL_FILE": "amqp://u:pw@broker:5672/%2f\n",
               "HVD_PG_DSN_FILE": "postgresql://u:pw@db/hvdeploy\n"}
    for var, content in dummies.items():
        if env.get(var):
            p = os.path.join(tmp, var.lower())
            with open(p, "w") as f:
                f.write(content)
            env[var] = p
    return env


# ---------------------------------------------------------------- checks

def check_yaml(root, _bin):
    """Every YAML file under deploy/ parses (all documents, no duplicate keys)."""
    if yaml is None:
        problem("python3-yaml is not installed for %s", sys.executable)
        return
    files = []
    for d, _, names in os.walk(os.path.join(root, "deploy")):
        files += [os.path.join(d, n) for n in names if n.endswith((".yaml", ".yml"))]
    if not files:
        problem("no YAML files under deploy/")
    for p in sorted(files):
        try:
            if not load_all(p):
                problem("%s: no document", os.path.relpath(p, root))
        except yaml.YAMLError as e:
            problem("%s: %s", os.path.relpath(p, root), str(e).replace("\n", " "))
    # the embedded JSON too
    for p in ("deploy/rabbitmq/definitions.json", "deploy/rabbitmq/definitions-cluster.json",
              "deploy/compose/rabbitmq-users.json", "deploy/grafana/hvdeploy-dashboard.json"):
        try:
            with open(os.path.join(root, p)) as f:
                json.load(f)
        except (OSError, ValueError) as e:
            problem("%s: %s", p, e)


def check_k8s(root, _bin):
    """The manifests: kinds, cross references, security and probes."""
    kust, docs = k8s_docs(root)
    kdir = os.path.join(root, "deploy", "k8s")
    listed = set(kust.get("resources", []))
    present = {n for n in os.listdir(kdir) if n.endswith(".yaml") and n != "kustomization.yaml"}
    for n in sorted(present - listed):
        problem("k8s: %s is not in kustomization.yaml resources", n)
    for d in docs:
        if "namespace" in d.get("metadata", {}):
            problem("k8s: %s/%s sets a namespace (the manifests are namespace-less)",
                    d["kind"], d["metadata"]["name"])
    # the dashboard (web.yaml) is checked on its own; the rest is the worker fleet
    web = [d for d in docs if d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") == "web"]
    docs = [d for d in docs if d not in web]
    check_k8s_web(web)
    kinds = sorted(d.get("kind") for d in docs)
    want = sorted(["ConfigMap", "Secret", "Secret", "Deployment", "Service",
                   "PodDisruptionBudget", "Job", "ScaledObject", "TriggerAuthentication",
                   "TriggerAuthentication"])
    if kinds != want:
        problem("k8s: kinds %s, expected %s", kinds, want)

    cm = one(docs, "ConfigMap")
    dep = one(docs, "Deployment")
    job = one(docs, "Job")
    pdb = one(docs, "PodDisruptionBudget")
    svc = one(docs, "Service")
    so = one(docs, "ScaledObject")
    ta = one(docs, "TriggerAuthentication", "hvdeploy-rabbitmq")
    ta_pg = one(docs, "TriggerAuthentication", "hvdeploy-postgres")
    secret = one(docs, "Secret", "hvdeploy-secrets")
    if not (cm and dep and job and pdb and svc and so and ta and ta_pg and secret):
        return
    data = cm.get("data", {})
    for var in ("HVD_AMQP_URL", "HVD_PG_DSN"):
        if var in data:
            problem("k8s: ConfigMap holds %s: credentials belong in the Secret (%s_FILE)", var, var)
    for var in ("HVD_AMQP_URL_FILE", "HVD_PG_DSN_FILE", "HVD_SECRET_KEY_FILE", "HVD_AGENT_CMD"):
        if not data.get(var):
            problem("k8s: ConfigMap lacks %s", var)
    if data.get("HVD_METRICS_ADDR") != "0.0.0.0:9464":
        problem("k8s: HVD_METRICS_ADDR is %r, the probes need 0.0.0.0:9464", data.get("HVD_METRICS_ADDR"))

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if spec.get("replicas") != 2:
        problem("k8s: Deployment replicas %r, expected 2", spec.get("replicas"))
    if spec["selector"]["matchLabels"].items() - labels.items():
        problem("k8s: Deployment selector does not match its pod labels")
    grace = int(data.get("HVD_SHUTDOWN_GRACE", "30"))
    if pod.get("terminationGracePeriodSeconds") != grace + 10:
        problem("k8s: terminationGracePeriodSeconds %r, expected HVD_SHUTDOWN_GRACE + 10 = %d",
                pod.get("terminationGracePeriodSeconds"), grace + 10)
    # a scale-down never cuts a stage: the drain outlasts the longest stage's time limit
    limits = [int(v) for _, v in (kv.split("=") for kv in data.get("HVD_AGENT_TIMEOUTS", "").split(",") if kv)]
    longest = max(limits or [1800]) + int(data.get("HVD_AGENT_KILL_GRACE", "2"))
    if grace < longest:
        problem("k8s: HVD_SHUTDOWN_GRACE %d is shorter than the longest stage (%d s with the kill grace): "
                "a scale-down would cut it", grace, longest)
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        problem("k8s: the pod does not run as a non-root user")
    (c,) = pod["containers"]
    csc = c.get("securityContext", {})
    if csc.get("readOnlyRootFilesystem") is not True:
        problem("k8s: readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem("k8s: allowPrivilegeEscalation is not false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        problem("k8s: capabilities are not all dropped")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        if "memory" not in res.get(part, {}):
            problem("k8s: no memory %s", part)
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    # liveness on /livez: a worker draining after SIGTERM is alive, not ready
    for probe, path in (("readinessProbe", "/healthz"), ("livenessProbe", "/livez")):
        hg = c.get(probe, {}).get("httpGet", {})
        port = ports.get(hg.get("port"), hg.get("port"))
        if hg.get("path") != path or port != 9464:
            problem("k8s: %s is not GET %s on 9464 (%r on %r)", probe, path, hg.get("path"), port)
    if not any(e.get("configMapRef", {}).get("name") == cm["metadata"]["name"]
               for e in c.get("envFrom", [])):
        problem("k8s: the container does not take its environment from ConfigMap %s",
                cm["metadata"]["name"])
    # every *_FILE the ConfigMap names is a file of a mounted Secret volume
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    skeys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for var in ("HVD_AMQP_URL_FILE", "HVD_PG_DSN_FILE", "HVD_SECRET_KEY_FILE"):
        path = data.get(var, "")
        d, base = os.path.split(path)
        m = mounts.get(d)
        v = vols.get(m["name"]) if m else None
        sec = (v or {}).get("secret", {})
        items = {i["path"]: i["key"] for i in sec.get("items", [])} or {k: k for k in skeys}
        if sec.get("secretName") != secret["metadata"]["name"] or base not in items:
            problem("k8s: %s=%s is not a file of the mounted Secret %s", var, path,
                    secret["metadata"]["name"])
        elif items[base] not in skeys:
            problem("k8s: %s comes from key %r, which the Secret lacks", var, items[base])
        elif not m.get("readOnly"):
            problem("k8s: the Secret mount %s is not readOnly", d)
    # migration job
    jc = job["spec"]["template"]["spec"]["containers"][0]
    cmdline = (jc.get("command") or []) + (jc.get("args") or [])
    if not cmdline or not cmdline[0].endswith("hvdeployctl") or "migrate" not in cmdline[1:]:
        problem("k8s: the Job does not run hvdeployctl migrate (%r)", cmdline)
    if job["spec"]["template"]["spec"].get("securityContext", {}).get("runAsNonRoot") is not True:
        problem("k8s: the migration Job does not run as non-root")
    # PDB and Service select the worker pods
    if pdb["spec"].get("minAvailable") != 1:
        problem("k8s: PodDisruptionBudget minAvailable %r, expected 1", pdb["spec"].get("minAvailable"))
    for what, sel in (("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]),
                      ("Service", svc["spec"]["selector"])):
        if sel.items() - labels.items():
            problem("k8s: the %s selector %r does not select the worker pods", what, sel)
    if not any(p.get("port") == 9464 for p in svc["spec"]["ports"]):
        problem("k8s: the Service does not expose 9464")
    # KEDA
    ref = so["spec"]["scaleTargetRef"]
    if ref.get("name") != dep["metadata"]["name"] or ref.get("kind", "Deployment") != "Deployment":
        problem("k8s: the ScaledObject targets %r, not the Deployment", ref)
    trig = so["spec"].get("triggers", [])
    prefix = data.get("HVD_AMQP_PREFIX", "hvdeploy")
    by_type = {t.get("type"): t for t in trig}
    if len(trig) != 2 or set(by_type) != {"rabbitmq", "postgresql"}:
        problem("k8s: expected a rabbitmq and a postgresql trigger, got %r", [t.get("type") for t in trig])
    else:
        md = by_type["rabbitmq"].get("metadata", {})
        if md.get("queueName") != prefix + ".jobs" or md.get("mode") != "QueueLength":
            problem("k8s: trigger queue %r mode %r, expected %s.jobs QueueLength",
                    md.get("queueName"), md.get("mode"), prefix)
        if by_type["rabbitmq"].get("authenticationRef", {}).get("name") != ta["metadata"]["name"]:
            problem("k8s: the rabbitmq trigger does not use TriggerAuthentication %s", ta["metadata"]["name"])
        # claimed jobs leave the queue: the live ones are counted in PostgreSQL
        q = by_type["postgresql"].get("metadata", {}).get("query", "")
        if "hvdeploy.jobs" not in q or not all(st in q for st in ("'queued'", "'running'", "'retrying'")):
            problem("k8s: the postgresql trigger does not count the live jobs (queued, running, retrying): %r", q)
        if by_type["postgresql"].get("authenticationRef", {}).get("name") != ta_pg["metadata"]["name"]:
            problem("k8s: the postgresql trigger does not use TriggerAuthentication %s", ta_pg["metadata"]["name"])
        if not any(r.get("parameter") == "connection" and r.get("key") in skeys
                   for r in ta_pg["spec"].get("secretTargetRef", [])):
            problem("k8s: TriggerAuthentication %s does not take 'connection' from the Secret", ta_pg["metadata"]["name"])
    if (so["spec"].get("minReplicaCount") or 0) < 1:
        problem("k8s: minReplicaCount below 1 leaves the PodDisruptionBudget nothing to keep")
    refs = ta["spec"].get("secretTargetRef", [])
    if not any(r.get("parameter") == "host" and r.get("name") == secret["metadata"]["name"]
               and r.get("key") in skeys for r in refs):
        problem("k8s: the TriggerAuthentication does not take 'host' from the Secret's broker URL")


def check_k8s_web(web):
    """web.yaml: a Deployment of hvdeploy-web and its Service, probes on /healthz."""
    kinds = sorted(d.get("kind") for d in web)
    if kinds != ["Deployment", "Service"]:
        problem("k8s: the dashboard's kinds %s, expected a Deployment and a Service", kinds)
        return
    dep = one(web, "Deployment")
    svc = one(web, "Service")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    if not (c.get("command") or [""])[0].endswith("hvdeploy-web"):
        problem("k8s: the dashboard runs %r", c.get("command"))
    if "--allow-actions" in (c.get("args") or []):
        problem("k8s: the dashboard's actions are on by default")
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problem("k8s: the dashboard does not run as non-root")
    if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
        problem("k8s: the dashboard's root filesystem is writable")
    for probe in ("readinessProbe", "livenessProbe"):
        if c.get(probe, {}).get("httpGet", {}).get("path") != "/healthz":
            problem("k8s: the dashboard's %s is not GET /healthz", probe)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if svc["spec"]["selector"].items() - labels.items():
        problem("k8s: the dashboard's Service does not select its pods")


def check_kustomize(root, _bin):
    """kubectl kustomize renders the directory (when kubectl is here)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("kubectl is not installed")
        sys.exit(SKIP)
    r = subprocess.run([kubectl, "kustomize", os.path.join(root, "deploy", "k8s")],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        problem("kubectl kustomize: %s", r.stderr.strip())
        return
    kinds = [d.get("kind") for d in yaml.safe_load_all(r.stdout) if d]
    if len(kinds) != 12:
        problem("kubectl kustomize rendered %d objects: %s", len(kinds), kinds)


def check_compose(root, _bin):
    """deploy/compose.yaml: services, healthchecks, dependencies, secret, mounts."""
    ddir = os.path.join(root, "deploy")
    (c,) = load_all(os.path.join(ddir, "compose.yaml"))
    s = c.get("services", {})
    if sorted(s) != ["migrate", "postgres", "rabbitmq", "web", "worker"]:
        problem("compose: services %s", sorted(s))
    web = s.get("web", {})
    if (web.get("entrypoint") or [""])[0] != "/usr/local/bin/hvdeploy-web" or "--allow-actions" in (
            web.get("command") or []):
        problem("compose: the web service is not a read-only hvdeploy-web")
    if any(not str(p).startswith("127.0.0.1:") for p in web.get("ports", [])):
        problem("compose: the dashboard is published beyond loopback")
        return
    if not str(s["rabbitmq"].get("image", "")).startswith("rabbitmq:3.10"):
        problem("compose: rabbitmq image %r is not 3.10", s["rabbitmq"].get("image"))
    if not str(s["postgres"].get("image", "")).startswith("postgres:15"):
        problem("compose: postgres image %r is not 15", s["postgres"].get("image"))
    if s["postgres"].get("environment", {}).get("POSTGRES_DB") != "hvdeploy":
        problem("compose: POSTGRES_DB is not hvdeploy")
    for name in ("rabbitmq", "postgres", "worker"):
        hc = s[name].get("healthcheck", {})
        if not hc.get("test") or hc.get("disable"):
            problem("compose: %s has no healthcheck", name)
    mig = (s["migrate"].get("entrypoint") or []) + (s["migrate"].get("command") or [])
    if not mig or not mig[0].endswith("hvdeployctl") or "migrate" not in mig:
        problem("compose: migrate runs %r, not hvdeployctl migrate", mig)
    want_deps = {"worker": {"rabbitmq": "service_healthy", "postgres": "service_healthy",
                            "migrate": "service_completed_successfully"},
                 "migrate": {"postgres": "service_healthy"}}
    for svc, deps in want_deps.items():
        got = s[svc].get("depends_on", {})
        for dep, cond in deps.items():
            if not isinstance(got, dict) or got.get(dep, {}).get("condition") != cond:
                problem("compose: %s does not depend on %s with condition %s", svc, dep, cond)
    w = s["worker"]
    env = w.get("environment", {})
    if (w.get("deploy", {}).get("replicas") or w.get("scale")) != 2:
        problem("compose: not two workers")
    if "hvdeploy-simhost --state-dir /var/lib/hvdeploy-sim" not in env.get("HVD_AGENT_CMD", ""):
        problem("compose: HVD_AGENT_CMD %r is not the simhost", env.get("HVD_AGENT_CMD"))
    if env.get("HVD_SECRET_KEY_FILE") != "/run/secrets/hvdeploy_key" or "hvdeploy_key" not in [
            x if isinstance(x, str) else x.get("source") for x in w.get("secrets", [])]:
        problem("compose: the worker does not read the compose secret hvdeploy_key")
    if "hvdeploy_key" not in c.get("secrets", {}):
        problem("compose: no top-level secret hvdeploy_key")
    grace = int(env.get("HVD_SHUTDOWN_GRACE", "30"))
    if w.get("stop_grace_period") != "%ds" % (grace + 10):
        problem("compose: stop_grace_period %r, expected %ds", w.get("stop_grace_period"), grace + 10)
    for svc in ("worker", "migrate"):
        b = s[svc].get("build", {})
        if not os.path.isfile(os.path.join(ddir, b.get("context", "."), b.get("dockerfile", "Dockerfile"))):
            problem("compose: %s builds from a Dockerfile that does not exist", svc)
    # bind mounts exist; the broker loads the definitions directory it mounts
    defs_dir, conf = None, None
    for v in s["rabbitmq"].get("volumes", []):
        src, _, rest = str(v).partition(":")
        dst = rest.split(":")[0]
        if src.startswith("."):
            if not os.path.isfile(os.path.join(ddir, src)):
                problem("compose: mounted file %s does not exist", src)
            if dst.endswith(".json"):
                defs_dir = os.path.dirname(dst)
            if dst.startswith("/etc/rabbitmq/conf.d/"):
                conf = os.path.join(ddir, src)
    if conf:
        with open(conf) as f:
            m = re.search(r"^\s*load_definitions\s*=\s*(\S+)", f.read(), re.M)
        if not m or m.group(1).rstrip("/") != defs_dir:
            problem("compose: rabbitmq.conf load_definitions %r, but the definitions are mounted in %r",
                    m and m.group(1), defs_dir)
    else:
        problem("compose: no rabbitmq.conf mounted into /etc/rabbitmq/conf.d/")
    # the demo user can reach what the worker and the example use
    with open(os.path.join(ddir, "compose", "rabbitmq-users.json")) as f:
        users = json.load(f)
    m = re.match(r"amqps?://([^:@/]+):([^@/]*)@", env.get("HVD_AMQP_URL", ""))
    u = [x for x in users.get("users", []) if m and x["name"] == m.group(1)]
    if not u or u[0].get("password") != m.group(2):
        problem("compose: the worker's broker user is not the one rabbitmq-users.json creates")
    else:
        perms = [p for p in users.get("permissions", []) if p["user"] == u[0]["name"]]
        prefix = env.get("HVD_AMQP_PREFIX", "hvdeploy")
        names = {"configure": [prefix + ".jobs", prefix + ".retry.5s", "amq.gen-x1"],
                 "write": [prefix + ".jobs", prefix + ".events", "amq.default", "amq.gen-x1"],
                 "read": [prefix + ".jobs", prefix + ".dead", "amq.gen-x1"]}
        for what, want in names.items():
            for n in want:
                if not perms or not re.search(perms[0][what], n):
                    problem("compose: user %s may not %s %s", u[0]["name"], what, n)


def check_compose_cli(root, _bin):
    """`docker compose config` (or docker-compose v1) accepts the file, when either is here."""
    path = os.path.join(root, "deploy", "compose.yaml")
    cmd = None
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        cmd = ["docker", "compose", "-f", path, "config", "-q"]
    elif shutil.which("docker-compose"):
        # v1 does not know the top-level 'name'; check a copy without it
        with open(path) as f:
            text = re.sub(r"^name:.*$", "", f.read(), flags=re.M)
        tmp = os.path.join(os.path.dirname(path), ".compose-check.yaml")
        with open(tmp, "w") as f:
            f.write(text)
        try:
            r = subprocess.run(["docker-compose", "-f", tmp, "config", "-q"], capture_output=True,
                               text=True, check=False)
        finally:
            os.unlink(tmp)
        if r.returncode != 0:
            problem("docker-compose config: %s", (r.stderr or r.stdout).strip())
        return
    if not cmd:
        print("neither `docker compose` nor docker-compose is installed")
        sys.exit(SKIP)
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        problem("docker compose config: %s", (r.stderr or r.stdout).strip())


def check_settings(root, bin_dir):
    """The HVD_* settings of every deployment form are known to the worker and
    accepted by it (hvdeploy-worker --print-config)."""
    if not os.access(os.path.join(bin_dir, "hvdeploy-worker"), os.X_OK):
        print("%s/hvdeploy-worker is not built" % bin_dir)
        sys.exit(SKIP)
    known = worker_known_vars(bin_dir)
    _, docs = k8s_docs(root)
    cm = [d for d in docs if d.get("kind") == "ConfigMap"][0]["data"]
    (c,) = load_all(os.path.join(root, "deploy", "compose.yaml"))
    compose_env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
                   for k, v in c["services"]["worker"]["environment"].items()}
    sets = {
        "k8s ConfigMap": cm,
        "compose worker": compose_env,
        # the unit hands the key in (check_systemd runs the real combination)
        "systemd worker.env": dict(parse_env_file(os.path.join(root, "deploy", "systemd", "worker.env")),
                                   HVD_SECRET_KEY_FILE="/nonexistent/key"),
        "agent worker-ssh.env": dict(parse_env_file(os.path.join(root, "deploy", "agent", "worker-ssh.env")),
                                     HVD_SECRET_KEY_FILE="/nonexistent/key"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for what, env in sets.items():
            for k in sorted(env):
                if k.startswith("HVD_") and k not in known:
                    problem("%s: %s is not a setting of hvdeploy-worker", what, k)
            rc, vals, err = print_config(bin_dir, with_dummy_files(env, tmp))
            if rc != 0:
                problem("%s: hvdeploy-worker rejects the settings: %s", what, err)
                continue
            # what the worker made of each value (durations become seconds,
            # passwords are masked, *_FILE paths were replaced above)
            for k, v in env.items():
                if k not in vals or k.endswith("_FILE") or "***" in vals[k] or re.fullmatch(r"\d+[smhd]", v):
                    continue
                if vals[k] != v:
                    problem("%s: %s=%r came out as %r", what, k, v, vals[k])


def check_systemd(root, bin_dir):
    """Both units pass systemd-analyze verify (with ExecStart pointed at the
    build), carry the sandbox, score OK in `systemd-analyze security`, and
    their command line and worker.env are accepted by the worker."""
    sa = shutil.which("systemd-analyze")
    worker = os.path.join(bin_dir, "hvdeploy-worker")
    if not sa:
        print("systemd-analyze is not installed (Debian package systemd)")
        sys.exit(SKIP)
    if not os.access(worker, os.X_OK):
        print("%s is not built" % worker)
        sys.exit(SKIP)
    sdir = os.path.join(root, "deploy", "systemd")
    required = {
        "Type": "simple", "EnvironmentFile": "/etc/hvdeploy/worker.env", "DynamicUser": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
        "KillSignal": "SIGTERM", "TimeoutStopSec": "45", "Restart": "on-failure",
        "Environment": "HVD_SECRET_KEY_FILE=%d/hvdeploy.key",
    }
    wenv = parse_env_file(os.path.join(sdir, "worker.env"))
    grace = int(wenv.get("HVD_SHUTDOWN_GRACE", "30"))
    with tempfile.TemporaryDirectory() as tmp:
        for unit, instance in (("hvdeploy-worker.service", None), ("hvdeploy-worker@.service", "9465")):
            src = os.path.join(sdir, unit)
            settings = unit_settings(src)
            have = {}
            for sec, k, v in settings:
                have.setdefault(k, []).append(v)
            for k, v in required.items():
                if v not in have.get(k, []):
                    problem("%s: lacks %s=%s", unit, k, v)
            if not any(v.startswith("hvdeploy.key:") for v in have.get("LoadCredential", [])):
                problem("%s: the key is not a LoadCredential=", unit)
            if int(have.get("TimeoutStopSec", ["0"])[0]) < grace + 10:
                problem("%s: TimeoutStopSec below HVD_SHUTDOWN_GRACE + 10", unit)
            (execstart,) = have.get("ExecStart", [""])
            argv = shlex.split(execstart)
            if argv[0] != "/usr/local/bin/hvdeploy-worker":
                problem("%s: ExecStart runs %s", unit, argv[0])
            # verify a copy whose ExecStart is the built binary
            with open(src) as f:
                text = f.read().replace("/usr/local/bin/hvdeploy-worker", worker)
            with open(os.path.join(tmp, unit), "w") as f:
                f.write(text)
            name = unit.replace("@.", "@%s." % instance) if instance else unit
            r = subprocess.run([sa, "verify", "--man=no", os.path.join(tmp, name)],
                               capture_output=True, text=True, check=False, cwd=tmp)
            out = (r.stdout + r.stderr).strip()
            if r.returncode != 0 or out:
                problem("%s: systemd-analyze verify: %s", unit, out or "exit %d" % r.returncode)
            r = subprocess.run([sa, "security", "--offline=yes", os.path.join(tmp, name)],
                               capture_output=True, text=True, check=False, cwd=tmp)
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
            if not m:
                problem("%s: systemd-analyze security gave no score: %s", unit, (r.stdout + r.stderr)[-300:])
            elif float(m.group(1)) > 2.0:
                problem("%s: exposure %s is above 2.0", unit, m.group(1))
            # the command line as systemd would run it, with worker.env and Environment=
            env = {}
            for v in have.get("Environment", []):
                for word in shlex.split(v):
                    k, _, val = word.partition("=")
                    env[k] = val
            env.update(wenv)
            creds = os.path.join(tmp, "credentials")
            os.makedirs(creds, exist_ok=True)
            subst = {"%d": creds, "%i": instance or "", "%H": socket.gethostname(), "%%": "%"}
            args = [re.sub(r"%[diH%]", lambda mm: subst[mm.group(0)], a) for a in argv[1:]]
            env = {k: re.sub(r"%[diH%]", lambda mm: subst[mm.group(0)], v) for k, v in env.items()}
            rc, vals, err = print_config(bin_dir, env, args)
            if rc != 0:
                problem("%s: the worker rejects its command line and worker.env: %s", unit, err)
            else:
                if vals.get("HVD_SECRET_KEY_FILE") != os.path.join(creds, "hvdeploy.key"):
                    problem("%s: the key file is %r, not the credential", unit, vals.get("HVD_SECRET_KEY_FILE"))
                if instance and vals.get("HVD_METRICS_ADDR") != "127.0.0.1:" + instance:
                    problem("%s: instance %s listens on %r", unit, instance, vals.get("HVD_METRICS_ADDR"))
        # the ssh drop-in of deploy/agent/ on top of the plain unit
        dropdir = os.path.join(tmp, "hvdeploy-worker.service.d")
        os.makedirs(dropdir)
        shutil.copy(os.path.join(root, "deploy", "agent", "hvdeploy-worker-ssh.conf"),
                    os.path.join(dropdir, "ssh.conf"))
        r = subprocess.run([sa, "verify", "--man=no", os.path.join(tmp, "hvdeploy-worker.service")],
                           capture_output=True, text=True, check=False, cwd=tmp)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            problem("hvdeploy-worker-ssh.conf drop-in: systemd-analyze verify: %s", out)


def dockerfile_stages(text):
    """[(from line, [instructions])] of a Dockerfile, continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        word = s.split(None, 1)[0].upper()
        if word == "FROM":
            stages.append((s, []))
        elif stages:
            stages[-1][1].append(s)
    return stages


def check_dockerfile(root, bin_dir):
    """Lints deploy/Dockerfile by reading it (no container engine here)."""
    with open(os.path.join(root, "deploy", "Dockerfile")) as f:
        text = f.read()
    stages = dockerfile_stages(text)
    if len(stages) != 2:
        problem("Dockerfile: %d FROM lines, expected 2 (build and runtime)", len(stages))
        return
    (bfrom, build), (rfrom, run) = stages
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    expand = lambda s: re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)
    if not re.match(r"FROM debian:12 AS build$", expand(bfrom), re.I):
        problem("Dockerfile: build stage is %r, expected debian:12 AS build", expand(bfrom))
    if not re.match(r"FROM debian:12-slim( AS \w+)?$", expand(rfrom), re.I):
        problem("Dockerfile: runtime stage is %r, expected debian:12-slim", expand(rfrom))
    for ins in build + run:
        if re.match(r"ADD\s+.*https?://", ins, re.I):
            problem("Dockerfile: ADD of a remote URL: %s", ins)
        if re.search(r"\b(curl|wget)\b[^|]*\|\s*(ba)?sh", ins):
            problem("Dockerfile: pipes a download into a shell: %s", ins)
        if re.match(r"RUN .*apt-get install", ins) and "rm -rf /var/lib/apt/lists" not in ins:
            problem("Dockerfile: an apt-get install leaves the package lists behind")
        if re.match(r"RUN .*apt-get install", ins) and "--no-install-recommends" not in ins:
            problem("Dockerfile: apt-get install without --no-install-recommends")
    users = [i.split(None, 1)[1] for i in run if i.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem("Dockerfile: the runtime stage does not end as a non-root USER")
    elif users[-1].split(":")[0] not in ("10001", "hvdeploy"):
        problem("Dockerfile: USER %s is not hvdeploy (uid 10001)", users[-1])
    if not re.search(r"useradd [^\n]*--uid 10001[^\n]*hvdeploy", text):
        problem("Dockerfile: no user hvdeploy with uid 10001")
    ep = [i for i in run if i.upper().startswith("ENTRYPOINT ")]
    try:
        ep_argv = json.loads(ep[-1].split(None, 1)[1]) if ep else []
    except ValueError:
        ep_argv = []
        problem("Dockerfile: ENTRYPOINT is not in exec (JSON) form")
    if not ep_argv or not ep_argv[-1].endswith("/hvdeploy-worker"):
        problem("Dockerfile: ENTRYPOINT %r does not run hvdeploy-worker", ep_argv)
    if not any(re.match(r"STOPSIGNAL SIGTERM$", i) for i in run):
        problem("Dockerfile: no STOPSIGNAL SIGTERM")
    hc = [i for i in run if i.upper().startswith("HEALTHCHECK ")]
    if hc:
        m = re.search(r"\bCMD (\[.*\])$", hc[-1])
        try:
            json.loads(m.group(1))
        except (AttributeError, ValueError):
            problem("Dockerfile: HEALTHCHECK CMD is not a JSON array")
    if not any(re.match(r"COPY --from=build \S*build/bin/? /usr/local/bin/", i) for i in run):
        problem("Dockerfile: the programs are not copied from the build stage to /usr/local/bin")
    if not any(re.match(r"COPY --from=build \S*migrations/? /usr/share/hvdeploy/migrations/?$", i) for i in run):
        problem("Dockerfile: migrations/ is not copied to /usr/share/hvdeploy/migrations")
    if not re.search(r"HVD_MIGRATIONS_DIR=/usr/share/hvdeploy/migrations\b", text):
        problem("Dockerfile: HVD_MIGRATIONS_DIR is not /usr/share/hvdeploy/migrations")
    # packages: every -dev package CMakeLists requires is in the build stage,
    # the runtime libraries in the runtime stage
    build_pkgs = set(" ".join(i for i in build if "apt-get install" in i).split())
    run_pkgs = set(" ".join(i for i in run if "apt-get install" in i).split())
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        cm = f.read()
    for pkg in re.findall(r"^\s*hvd_require\(\s*\w+\s+\S+\s+(\S+?)\s*\)", cm, re.M):
        if pkg not in build_pkgs:
            problem("Dockerfile: the build stage lacks %s (CMakeLists.txt requires it)", pkg)
    for pkg in ("librabbitmq4", "libmsgpackc2", "libpq5", "libjansson4", "libsodium23",
                "libmicrohttpd12", "openssh-client"):
        if pkg not in run_pkgs:
            problem("Dockerfile: the runtime stage lacks %s", pkg)
    for pkg in run_pkgs:
        if pkg.endswith("-dev"):
            problem("Dockerfile: the runtime stage installs %s", pkg)
    check_runtime_libs(bin_dir, run_pkgs)


def check_runtime_libs(bin_dir, run_pkgs):
    """Every shared library the built programs load belongs to a package
    that the runtime stage installs, directly or as a dependency (from this
    machine's dpkg database, which holds the same Debian 12 packages)."""
    progs = [os.path.join(bin_dir, p) for p in ("hvdeploy-worker", "hvdeployctl", "hvdeploy-simhost")]
    if not all(os.access(p, os.X_OK) for p in progs) or not shutil.which("dpkg"):
        return
    deps = {}
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
        for para in f.read().split("\n\n"):
            m = re.search(r"^Package: (\S+)", para, re.M)
            if not m:
                continue
            d = []
            for field in ("Depends", "Pre-Depends"):
                fm = re.search(r"^%s: (.*)$" % field, para, re.M)
                if fm:
                    d += [re.split(r"[\s(:]", alt.strip())[0]
                          for group in fm.group(1).split(",") for alt in group.split("|")]
            deps.setdefault(m.group(1), []).extend(d)
    closure, todo = set(), list(run_pkgs)
    while todo:
        p = todo.pop()
        if p in closure:
            continue
        closure.add(p)
        todo += deps.get(p, [])
    closure |= {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}   # in debian:12-slim already
    libs = set()
    for p in progs:
        out = subprocess.run(["ldd", p], capture_output=True, text=True, check=False).stdout
        libs |= set(re.findall(r"=> (/\S+)", out))
    for lib in sorted(libs):
        real = os.path.realpath(lib)
        owner = None
        for cand in (lib, real, "/usr" + lib if not lib.startswith("/usr") else lib[4:],
                     "/usr" + real if not real.startswith("/usr") else real[4:]):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True, check=False)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        if owner is None:
            problem("Dockerfile: %s (loaded by the programs) belongs to no Debian package", lib)
        elif owner not in closure:
            problem("Dockerfile: the runtime stage lacks %s (package %s)", lib, owner)


def check_dockerignore(root, _bin):
    """.dockerignore keeps build dirs and state out, and the sources in."""
    with open(os.path.join(root, ".dockerignore")) as f:
        pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]

    def matches(path, p):
        if p.startswith("**/"):
            return any(fnmatch.fnmatch(part, p[3:]) for part in path.split("/"))
        return fnmatch.fnmatch(path, p)

    def ignored(path):
        """Docker's rules, roughly: the last matching pattern wins, and a
        pattern that matches a directory takes everything under it."""
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        res = False
        for p in pats:
            neg = p.startswith("!")
            p = p.lstrip("!").strip("/")
            if any(matches(pre, p) for pre in prefixes):
                res = not neg
        return res

    for keep in ("CMakeLists.txt", "common/buf.c", "ctl/main.c", "worker/main.c", "simhost/main.c",
                 "migrations/0001_initial.sql", "deploy/worker.env.example", "deploy/Dockerfile"):
        if ignored(keep):
            problem(".dockerignore excludes %s, which the image build needs", keep)
    for drop in (".git", "build", "build-asan", ".state", "deploy/compose/secret.key"):
        if not ignored(drop):
            problem(".dockerignore lets %s into the build context", drop)


def check_ssh(root, _bin):
    """The ssh client configs and the agent commands' ssh options parse (ssh -G, no connection)."""
    ssh = shutil.which("ssh")
    if not ssh:
        print("ssh is not installed (openssh-client)")
        sys.exit(SKIP)
    adir = os.path.join(root, "deploy", "agent")
    env = dict(os.environ, CREDENTIALS_DIRECTORY="/run/credentials/hvdeploy-worker.service")
    for cfg in ("ssh_config", "ssh_config.systemd"):
        r = subprocess.run([ssh, "-G", "-F", os.path.join(adir, cfg), "hv01.lab.example"],
                           capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            problem("%s: ssh -G: %s", cfg, r.stderr.strip())
            continue
        got = dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l)
        for k, v in (("batchmode", "yes"), ("stricthostkeychecking", "true"),
                     ("userknownhostsfile", "/etc/hvdeploy/ssh/known_hosts"), ("requesttty", "false")):
            if got.get(k) != v:
                problem("%s: %s is %r, expected %r", cfg, k, got.get(k), v)
    # the agent commands: ssh's options up to {host}, with -F at the repo's config
    _, docs = k8s_docs(root)
    cmds = {"k8s ConfigMap": [d for d in docs if d.get("kind") == "ConfigMap"][0]["data"]["HVD_AGENT_CMD"],
            "agent/worker-ssh.env": parse_env_file(os.path.join(adir, "worker-ssh.env"))["HVD_AGENT_CMD"]}
    with open(os.path.join(root, "deploy", "systemd", "worker.env")) as f:
        m = re.search(r"^#\s*HVD_AGENT_CMD=(ssh .*)$", f.read(), re.M)
    if m:
        cmds["systemd worker.env (commented)"] = m.group(1)
    with open(os.path.join(adir, "ssh-agent-cmd.md")) as f:
        m = re.search(r"^HVD_AGENT_CMD=(ssh .*)$", f.read(), re.M)
    if m:
        cmds["ssh-agent-cmd.md"] = m.group(1)
    # The worker splits HVD_AGENT_CMD as a POSIX shell would split words (quotes,
    # no expansion: shlex); ssh joins the words after the host with spaces, and
    # the host's shell must see the shim's path (it has a space) in double quotes.
    want_remote = 'pwsh -NoProfile -NonInteractive -File "C:/Program Files/Aether-V/hvdeploy-agent.ps1"'
    for what, cmd in cmds.items():
        words = shlex.split(cmd)
        if "{host}" not in words:
            problem("%s: HVD_AGENT_CMD has no {host} word", what)
            continue
        i = words.index("{host}")
        if " ".join(words[i + 1:]) != want_remote:
            problem("%s: the remote command is %r", what, " ".join(words[i + 1:]))
        opts = [os.path.join(adir, "ssh_config") if w == "/etc/hvdeploy/ssh/config" else w
                for w in words[1:i]]
        for o in ("-T", "BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=15"):
            if o not in opts:
                problem("%s: HVD_AGENT_CMD lacks %s", what, o)
        r = subprocess.run([ssh, "-G", *opts, "hv01.lab.example"], capture_output=True, text=True,
                           env=env, check=False)
        if r.returncode != 0:
            problem("%s: ssh rejects the options: %s", what, r.stderr.strip())


def check_python(root, _bin):
    """The example compiles, and its --help runs under Debian's python3."""
    p = os.path.join(root, "deploy", "examples", "upstream_client.py")
    with open(p) as f:
        first = f.readline()
    if first.strip() != "#!/usr/bin/python3":
        problem("upstream_client.py: shebang %r is not Debian's /usr/bin/python3", first.strip())
    try:
        compile(open(p).read(), p, "exec")
    except SyntaxError as e:
        problem("upstream_client.py: %s", e)
        return
    r = subprocess.run(["/usr/bin/python3", p, "--help"], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        problem("upstream_client.py --help: %s", r.stderr.strip()[-300:])
    else:
        for opt in ("--url", "--prefix", "--host", "--vm-name", "--timeout"):
            if opt not in r.stdout:
                problem("upstream_client.py --help does not list %s", opt)


def check_definitions(root, _bin):
    """deploy/rabbitmq/definitions.json holds the §2 topology (contract.md)."""
    with open(os.path.join(root, "deploy", "rabbitmq", "definitions.json")) as f:
        d = json.load(f)
    q = {x["name"]: x for x in d.get("queues", [])}
    x = {e["name"]: e for e in d.get("exchanges", [])}
    want_x = {"hvdeploy.jobs": "direct", "hvdeploy.retry": "direct", "hvdeploy.dead": "fanout",
              "hvdeploy.events": "topic"}
    for name, typ in want_x.items():
        if x.get(name, {}).get("type") != typ or not x.get(name, {}).get("durable"):
            problem("definitions: exchange %s is not a durable %s exchange", name, typ)
    jobs = q.get("hvdeploy.jobs", {}).get("arguments", {})
    for k, v in (("x-queue-type", "quorum"), ("x-dead-letter-exchange", "hvdeploy.dead"),
                 ("x-delivery-limit", 5), ("x-dead-letter-strategy", "at-least-once"),
                 ("x-overflow", "reject-publish")):
        if jobs.get(k) != v:
            problem("definitions: queue hvdeploy.jobs %s=%r, expected %r", k, jobs.get(k), v)
    if q.get("hvdeploy.results", {}).get("arguments", {}).get("x-queue-type") != "quorum":
        problem("definitions: hvdeploy.results is not a quorum queue")
    if "hvdeploy.dead" not in q:
        problem("definitions: no queue hvdeploy.dead")
    for n in (5, 30, 120, 600):
        a = q.get("hvdeploy.retry.%ds" % n, {}).get("arguments", {})
        if a.get("x-message-ttl") != n * 1000 or a.get("x-dead-letter-exchange") != "hvdeploy.jobs":
            problem("definitions: hvdeploy.retry.%ds does not wait %d ms and return to hvdeploy.jobs", n, n * 1000)
    if not any(b["source"] == "hvdeploy.jobs" and b["destination"] == "hvdeploy.jobs"
               and b["routing_key"] == "managed_deployment" for b in d.get("bindings", [])):
        problem("definitions: hvdeploy.jobs is not bound with key managed_deployment")
    # replicated: every queue is quorum (issue 13)
    for name, queue in sorted(q.items()):
        if queue.get("arguments", {}).get("x-queue-type") != "quorum":
            problem("definitions: queue %s is not a quorum queue", name)
    # the cluster file: the same objects, plus policies matching every queue
    with open(os.path.join(root, "deploy", "rabbitmq", "definitions-cluster.json")) as f:
        c = json.load(f)
    for section in ("exchanges", "queues", "bindings"):
        if c.get(section) != d.get(section):
            problem("definitions-cluster.json: its %s differ from definitions.json's", section)
    pols = c.get("policies", [])
    for name in q:
        hits = [p for p in pols if p.get("apply-to") in ("queues", "all") and re.search(p["pattern"], name)]
        if not hits:
            problem("definitions-cluster.json: no policy applies to queue %s", name)


def dump_k8s_json(root, _bin):
    """Not a check: prints the manifests' objects as a JSON array (for k8s_schema.mjs)."""
    _, docs = k8s_docs(root)
    for d in docs:
        d.pop("_file", None)
    json.dump(docs, sys.stdout)
    sys.stdout.write("\n")


CHECKS = {
    "k8s-json": dump_k8s_json,
    "yaml": check_yaml, "k8s": check_k8s, "kustomize": check_kustomize,
    "compose": check_compose, "compose-cli": check_compose_cli, "settings": check_settings,
    "systemd": check_systemd, "dockerfile": check_dockerfile, "dockerignore": check_dockerignore,
    "ssh": check_ssh, "python": check_python, "definitions": check_definitions,
}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in CHECKS:
        sys.exit("usage: check_files.py {%s} ROOT [BIN_DIR]" % ",".join(CHECKS))
    root = os.path.abspath(sys.argv[2])
    bin_dir = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "build", "bin"))
    if yaml is None and sys.argv[1] != "yaml":
        print("python3-yaml is not installed for %s" % sys.executable)
        sys.exit(SKIP)
    try:
        CHECKS[sys.argv[1]](root, bin_dir)
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        problem("%s: %s: %s", sys.argv[1], type(e).__name__, e)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
