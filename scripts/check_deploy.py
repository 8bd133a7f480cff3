"""The checks of scripts/check-deploy that no packaged tool does.

  check_deploy.py podmonitor RENDERED...
      Validates every PodMonitor (a CRD: kubernetes-validate has no schema
      for it) against the pydantic models that cloudcoil generates from
      prometheus-operator's CRD schemas, and refuses fields the models do
      not know (pydantic would drop them silently).
  check_deploy.py overlay RENDERED
      Cross-checks one rendered overlay: the run config in its ConfigMap
      against the manifests (run_id and labels, learner ranks, addresses
      and ports, certificate and model paths, GPUs).
  check_deploy.py relabel RENDERED PROMETHEUS_YML
      The PodMonitor's relabelings equal the bpo rules of the plain
      Prometheus scrape config.
  check_deploy.py dashboard DASHBOARD_JSON RENDERED RULES_OUT LAUNCH_CC...
      Every target label the dashboard reads (run_id, process, ...) is set
      both by `bpo local` (the labels of its prometheus-targets.json, read
      from the launch/ sources that write it) and by the Kubernetes
      relabelling; writes the dashboard's queries as a rules file for
      `promtool check rules`.

Prints one line per finding; exits 1 when there is any error.
"""

import json
import re
import sys

import yaml

errors = []


def error(message):
    errors.append(message)
    print(f"ERROR {message}")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def strip_nulls(value):
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def diff(given, kept, path=""):
    """Paths of `given` that `kept` lacks or changed."""
    if isinstance(given, dict) and isinstance(kept, dict):
        out = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}.{key}: unknown field")
            else:
                out += diff(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [d for i, (g, k) in enumerate(zip(given, kept)) for d in diff(g, k, f"{path}[{i}]")]
    return [] if given == kept else [f"{path}: {given!r} read as {kept!r}"]


def check_podmonitors(paths):
    from cloudcoil.models.prometheus_operator.v1 import PodMonitor
    import pydantic

    for path in paths:
        monitors = [d for d in load_all(path) if d.get("kind") == "PodMonitor"]
        if not monitors:
            error(f"{path}: no PodMonitor to check")
        for doc in monitors:
            name = f"{path}: podmonitor/{doc['metadata']['name']}"
            try:
                model = PodMonitor.model_validate(doc)
            except pydantic.ValidationError as e:
                error(f"{name}: {e}")
                continue
            kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
            problems = diff(strip_nulls(doc), strip_nulls(kept))
            for p in problems:
                error(f"{name}: {p}")
            if not problems:
                print(f"INFO {name} passed (prometheus-operator v0.80.1 PodMonitor model, "
                      "unknown fields refused)")


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return out


def flags(container):
    """--flag=value arguments of a container."""
    out = {}
    for arg in container.get("args", []):
        m = re.match(r"--([a-z_]+)=(.*)", arg)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def ports(container):
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def endpoint_port(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


def workloads(kinds):
    for kind in ("StatefulSet", "Job", "Deployment"):
        for name, doc in kinds.get(kind, {}).items():
            yield f"{kind.lower()}/{name}", doc["spec"]["template"]


def check_overlay(path):
    docs = load_all(path)
    kinds = by_kind(docs)
    maps = [d for d in kinds.get("ConfigMap", {}).values() if "run.yaml" in d.get("data", {})]
    if len(maps) != 1:
        error(f"{path}: expected one ConfigMap with run.yaml, found {len(maps)}")
        return
    config = yaml.safe_load(maps[0]["data"]["run.yaml"])
    namespace = maps[0]["metadata"].get("namespace", "default")
    run_id = config["run_id"]
    where = f"{path} (run {run_id}, namespace {namespace})"
    checked = 0

    def expect(ok, message):
        nonlocal checked
        checked += 1
        if not ok:
            error(f"{where}: {message}")

    # Labels: the dashboard's run_id comes from app.kubernetes.io/instance.
    for name, template in workloads(kinds):
        labels = template["metadata"].get("labels", {})
        expect(labels.get("app.kubernetes.io/instance") == run_id,
               f"{name}: pod label app.kubernetes.io/instance should be run_id '{run_id}'")
        expect(labels.get("app.kubernetes.io/name") == "bpo", f"{name}: no app.kubernetes.io/name=bpo")
        for key in ("app.kubernetes.io/component", "role"):
            expect(key in labels, f"{name}: no pod label {key}")

    endpoints = config.get("endpoints", {})
    security = config.get("security", {})
    learner_cfg = config.get("learner", {})
    model = config.get("model", {})
    world = learner_cfg.get("world_size", 1)

    # The learner Job: one completion index per rank; rank 0's name.
    job = kinds.get("Job", {}).get("bpo-learner")
    expect(job is not None, "no Job bpo-learner")
    if job is None:
        return
    spec = job["spec"]
    expect(spec.get("completionMode") == "Indexed", "bpo-learner is not an Indexed Job")
    expect(spec.get("completions") == world and spec.get("parallelism") == world,
           f"bpo-learner completions/parallelism {spec.get('completions')}/"
           f"{spec.get('parallelism')} != learner.world_size {world}")
    pod = spec["template"]["spec"]
    learner = pod["containers"][0]
    lf, lp = flags(learner), ports(learner)
    subdomain = pod.get("subdomain")
    expect(subdomain in kinds.get("Service", {}) and
           kinds["Service"][subdomain]["spec"].get("clusterIP") == "None",
           f"learner subdomain '{subdomain}' is not a headless Service")
    rank0 = f"bpo-learner-0.{subdomain}.{namespace}.svc.cluster.local"
    expect(endpoints.get("snapshots") == f"{rank0}:{lp.get('snapshots')}",
           f"endpoints.snapshots '{endpoints.get('snapshots')}' is not learner rank 0's "
           f"'{rank0}:{lp.get('snapshots')}'")
    expect(lf.get("rank") == "$(JOB_COMPLETION_INDEX)", "learner --rank is not the completion index")
    expect(lf.get("name") == "learner-$(JOB_COMPLETION_INDEX)",
           "learner --name is not learner-<rank> (the ranks share a certificate)")
    for name, template in workloads(kinds):
        if name.startswith("deployment/") and "human" not in name:
            expect(flags(template["spec"]["containers"][0]).get("name") == "$(POD_NAME)",
                   f"{name}: --name is not the pod's name (the replicas share a certificate)")
    rendezvous = lf.get("rendezvous", "").replace("$(POD_NAMESPACE)", namespace)
    expect(rendezvous == f"tcp:{rank0}:{lp.get('rendezvous')}",
           f"learner --rendezvous '{rendezvous}' is not rank 0's port 'rendezvous'")
    if world > 1:
        expect(learner_cfg.get("backend") == "nccl",
               "ranks in several pods need learner.backend nccl (Gloo listens on 127.0.0.1)")

    # The coordinator: Service, --listen and endpoints.coordinator agree.
    coordinator = kinds["StatefulSet"]["bpo-coordinator"]["spec"]["template"]["spec"]["containers"][0]
    cp = ports(coordinator)
    service = kinds["Service"]["bpo-coordinator"]
    grpc = [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
    expect(endpoints.get("coordinator") == f"bpo-coordinator:{grpc[0] if grpc else '?'}",
           f"endpoints.coordinator '{endpoints.get('coordinator')}' is not Service bpo-coordinator's grpc port")
    expect(endpoint_port(flags(coordinator)["listen"]) == cp["grpc"], "coordinator --listen is not port grpc")

    # Every process: metrics port = the annotation Prometheus reads; the
    # certificate files lie in its Secret's mount; the model and prompt
    # files lie in the image or on a mounted volume; GPUs for cuda.
    image_data = "/usr/local/share/bpo/"
    files = [model.get("policy"), model.get("reward_model"), config.get("data", {}).get("prompts")]
    for name, template in workloads(kinds):
        c = template["spec"]["containers"][0]
        f, p = flags(c), ports(c)
        annotations = template["metadata"].get("annotations", {})
        address = f.get("metrics_address") or f.get("http")
        expect(address is not None, f"{name}: no --metrics_address or --http")
        if address:
            port = endpoint_port(address)
            expect(str(port) == annotations.get("prometheus.io/port"),
                   f"{name}: prometheus.io/port {annotations.get('prometheus.io/port')} != {port}")
            expect(port in p.values(), f"{name}: port {port} is not a container port")
        expect(annotations.get("prometheus.io/scheme") == "https", f"{name}: /metrics is HTTPS")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        tls = mounts.get("/etc/bpo/tls")
        expect(tls is not None and "secret" in volumes.get(tls, {}), f"{name}: no Secret at /etc/bpo/tls")
        for key in ("ca", "cert", "key"):
            expect(str(security.get(key, "")).startswith("/etc/bpo/tls/"),
                   f"security.{key} is not under /etc/bpo/tls")
        expect(f.get("config") == "/etc/bpo/config/run.yaml" and "/etc/bpo/config" in mounts,
               f"{name}: --config is not the mounted ConfigMap")
        for file in filter(None, files):
            expect(file.startswith(image_data) or any(file.startswith(m + "/") for m in mounts),
                   f"{name}: {file} is neither in the image ({image_data}) nor on a mounted volume")
        gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        uses_gpu = str(model.get("device", "cpu")).startswith("cuda")
        if uses_gpu and not name.endswith(("bpo-coordinator", "bpo-human")):
            expect(gpus == 1, f"{name}: model.device {model.get('device')} but nvidia.com/gpu {gpus}")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            expect(env.get("BPO_CUDA_DEVICE") == "0", f"{name}: BPO_CUDA_DEVICE is not 0")
        if not uses_gpu:
            expect(gpus is None, f"{name}: asks for a GPU on a CPU run")

    output_dir = config.get("output_dir", "")
    for name, mount in (("statefulset/bpo-coordinator", coordinator), ("job/bpo-learner", learner)):
        paths = [m["mountPath"] for m in mount["volumeMounts"]]
        expect(any(output_dir.startswith(p + "/") for p in paths),
               f"{name}: output_dir {output_dir} is not on a volume")
    if not errors:
        print(f"INFO {where}: {checked} cross-checks of the run config and the manifests passed")


def snake(rule):
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {names.get(k, k): v for k, v in rule.items()}


BPO_TARGET_LABELS = ("run_id", "role", "rank", "process")


def bpo_rules(rules):
    return [r for r in rules if r.get("target_label") in BPO_TARGET_LABELS]


def podmonitor_labels(path):
    monitors = [d for d in load_all(path) if d.get("kind") == "PodMonitor"]
    out = []
    for m in monitors:
        for endpoint in m["spec"]["podMetricsEndpoints"]:
            out.append([snake(r) for r in endpoint.get("relabelings", [])])
    return out


def check_relabel(rendered, prometheus_yml):
    endpoints = podmonitor_labels(rendered)
    with open(prometheus_yml) as f:
        scrape = yaml.safe_load(f)["scrape_configs"]
    plain = [bpo_rules(s.get("relabel_configs", [])) for s in scrape]
    for i, rules in enumerate(endpoints):
        mine = bpo_rules(rules)
        if not mine:
            error(f"{rendered}: PodMonitor endpoint {i} sets none of {BPO_TARGET_LABELS}")
        for j, other in enumerate(plain):
            if mine != other:
                error(f"{rendered}: PodMonitor endpoint {i}'s bpo relabelings differ from "
                      f"{prometheus_yml} scrape config {j}'s")
    if not errors:
        print(f"INFO {rendered} and {prometheus_yml}: the same {len(bpo_rules(endpoints[0]))} "
              f"rules set {', '.join(BPO_TARGET_LABELS)}")


# Labels Prometheus or a discovery sets on a target (as opposed to labels a
# bpo metric carries itself, like state, queue, method, kind).
TARGET_LABELS = {"run_id", "process", "role", "rank", "job", "instance", "namespace", "pod",
                 "container", "endpoint", "service", "node"}


def dashboard_labels(dashboard):
    exprs, used = [], set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            exprs.append((panel["title"], expr))
            used |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"", expr))
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                used |= {g.strip() for g in group.split(",") if g.strip()}
            used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
    for var in dashboard.get("templating", {}).get("list", []):
        m = re.match(r"label_values\((\w+),\s*(\w+)\)", var.get("query", "") or "")
        if m:
            used.add(m.group(2))
            exprs.append((f"variable {var['name']}", m.group(1)))
    return exprs, used


def launch_labels(sources):
    """Labels the file_sd targets of `bpo local` carry, from its C++ sources:
    {"labels", {{"run_id", ...}, {"process", ...}}} or labels["run_id"] = ...."""
    found = set()
    for path in sources:
        with open(path) as f:
            source = f.read()
        for m in re.finditer(r'\{"labels",\s*\{((?:\{"\w+",[^}]*\},?\s*)+)\}\}', source):
            found |= set(re.findall(r'\{"(\w+)",', m.group(1)))
        found |= set(re.findall(r'\blabels\["(\w+)"\]\s*=', source))
    return found


def check_dashboard(dashboard_json, rendered, rules_out, *sources):
    with open(dashboard_json) as f:
        exprs, used = dashboard_labels(json.load(f))
    local = launch_labels(sources)
    if "run_id" not in local:
        error(f"{' '.join(sources)}: cannot find the labels bpo local writes to "
              "prometheus-targets.json")
        return
    local |= {"job", "instance"}
    k8s = {"job", "instance", "namespace", "pod", "container", "endpoint"}
    for rules in podmonitor_labels(rendered):
        k8s |= {r["target_label"] for r in rules if "target_label" in r}
    for label in sorted(used & TARGET_LABELS):
        for who, labels in (("bpo local", local), ("Kubernetes (PodMonitor)", k8s)):
            if label not in labels:
                error(f"{dashboard_json}: reads target label '{label}', which {who} does not set")
    rules = {"groups": [{"name": "bpo-dashboard", "rules": [
        {"record": f"bpo:dashboard:{i}", "expr": expr.replace("$run_id", ".+")}
        for i, (_, expr) in enumerate(exprs)]}]}
    with open(rules_out, "w") as f:
        yaml.safe_dump(rules, f)
    print(f"INFO {dashboard_json}: {len(exprs)} queries read target labels "
          f"{sorted(used & TARGET_LABELS)}; bpo local sets {sorted(local)}, "
          f"Kubernetes {sorted(k8s & TARGET_LABELS)}; metric labels {sorted(used - TARGET_LABELS)}")


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "podmonitor":
        check_podmonitors(args)
    elif command == "overlay":
        check_overlay(*args)
    elif command == "relabel":
        check_relabel(*args)
    elif command == "dashboard":
        check_dashboard(*args)
    else:
        raise SystemExit(f"check_deploy.py: unknown command {command}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
