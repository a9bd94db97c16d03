"""Checks on rendered Kubernetes manifests that a schema cannot make.

    python3 check_manifests.py RENDERED.yaml [--secret-from-overlay]

The schemas (kubernetes-validate) say that each object is well formed; this says that the
objects fit together and keep the promises docs/deploy.md makes:

- every ConfigMap and Secret a pod uses is rendered (with --secret-from-overlay, the Secret
  `ferrostack`, which only an overlay provides, may be missing);
- the Service, the PodDisruptionBudget and the HorizontalPodAutoscaler find the Deployment;
- at least two replicas; probes on /readyz (readiness) and /v1/health (liveness, startup);
- non-root, RuntimeDefault seccomp, read-only root filesystem, no privilege escalation, all
  capabilities dropped, no service-account token, for every pod;
- a rolling update that never lowers capacity, OTLP pointed at a collector;
- a migration Job running `ferrostack migrate`;
- the termination grace period is longer than the whole shutdown that the run config in the
  ConfigMap allows (preStop + requests + upstream relays + write-queue drain + telemetry flush).

Exits 1 with one line per broken promise. Needs PyYAML only.
"""

import sys

import yaml

problems = []


def problem(what):
    problems.append(what)


def pod_specs(objects):
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o, o["spec"]["template"]["spec"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def shutdown_budget(config, pre_stop):
    """Seconds the shutdown may take, by the order in docs/operations.md."""
    server = config.get("server") or {}
    shutdown = server.get("shutdown_timeout_seconds", 30)
    stores = (config.get("storage") or {}).get("stores") or {}
    drain = sum((stores.get(s) or {}).get("drain_timeout_seconds", 30) for s in ("inference", "responses") if stores.get(s))
    export_ms = (config.get("telemetry") or {}).get("export_timeout_ms", 10000)
    # Requests in flight, then upstream relays (same bound), the drains, the telemetry flush.
    return pre_stop + 2 * shutdown + drain + export_ms / 1000


def main(path, secret_from_overlay):
    with open(path, encoding="utf-8") as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    named = {(o["kind"], o["metadata"]["name"]) for o in objects}
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)

    def exists(kind, name):
        if (kind, name) in named:
            return True
        return kind == "Secret" and name == "ferrostack" and secret_from_overlay

    for owner, spec in pod_specs(objects):
        who = f"{owner['kind']}/{owner['metadata']['name']}"
        if spec.get("automountServiceAccountToken") is not False:
            problem(f"{who}: automountServiceAccountToken must be false")
        pod_sc = spec.get("securityContext") or {}
        if not pod_sc.get("runAsNonRoot"):
            problem(f"{who}: pod securityContext.runAsNonRoot must be true")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problem(f"{who}: pod securityContext.seccompProfile must be RuntimeDefault")
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext") or {}
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                problem(f"{who}/{c['name']}: needs readOnlyRootFilesystem and no privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problem(f"{who}/{c['name']}: must drop ALL capabilities")
            for source in c.get("envFrom", []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if key in source and not exists(kind, source[key]["name"]):
                        problem(f"{who}/{c['name']}: envFrom {kind} {source[key]['name']} is not rendered")
        for v in spec.get("volumes", []):
            for key, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
                if key in v and not exists(kind, v[key][field]):
                    problem(f"{who}: volume {v['name']} needs {kind} {v[key][field]}, which is not rendered")

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    server = deployments.get("ferrostack")
    if server is None:
        problem("no Deployment ferrostack")
        return
    spec = server["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if not matches(spec["selector"]["matchLabels"], labels):
        problem("Deployment ferrostack: its selector does not match its pod labels")
    if spec.get("replicas", 1) < 2:
        problem("Deployment ferrostack: fewer than 2 replicas")
    if ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable") != 0:
        problem("Deployment ferrostack: a rollout must not lower capacity (rollingUpdate.maxUnavailable: 0)")
    container = next(c for c in pod["containers"] if c["name"] == "ferrostack")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/v1/health"), ("startupProbe", "/v1/health")):
        got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
        if got != path:
            problem(f"Deployment ferrostack: {probe} must GET {path}, has {got}")
    if not (container.get("resources") or {}).get("requests"):
        problem("Deployment ferrostack: no resource requests (the HPA scales on them)")
    otlp = next((e.get("value") for e in container.get("env", []) if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"), None)
    if not otlp:
        problem("Deployment ferrostack: OTEL_EXPORTER_OTLP_ENDPOINT does not point at a collector")

    for svc in by_kind.get("Service", []):
        if svc["metadata"]["name"] == "ferrostack" and not matches(svc["spec"]["selector"], labels):
            problem("Service ferrostack: selector does not match the Deployment's pods")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"]["selector"]["matchLabels"], labels):
            problem(f"PodDisruptionBudget {pdb['metadata']['name']}: selector does not match the Deployment's pods")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if not hpas:
        problem("no HorizontalPodAutoscaler")
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or target["name"] not in deployments:
            problem(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: target {target['name']} is not rendered")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problem(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: minReplicas below 2")
    if not by_kind.get("PodDisruptionBudget"):
        problem("no PodDisruptionBudget")

    jobs = [j for j in by_kind.get("Job", []) if j["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate"]]
    if not jobs:
        problem("no Job running `ferrostack migrate`")

    # The run config the pods mount, and the grace period it needs.
    config_volume = next((v for v in pod.get("volumes", []) if v["name"] == "config"), None)
    config_maps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    config_map = config_maps.get(((config_volume or {}).get("configMap") or {}).get("name"))
    if config_map is None:
        problem("Deployment ferrostack: no `config` volume from a rendered ConfigMap")
        return
    run_config = yaml.safe_load(next(iter(config_map["data"].values())))
    pre_stop = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command", [])
    pre_stop_seconds = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    budget = shutdown_budget(run_config, pre_stop_seconds)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= budget:
        problem(f"Deployment ferrostack: terminationGracePeriodSeconds {grace} is not above the shutdown budget {budget:g} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], "--secret-from-overlay" in args)
    for p in problems:
        print(f"ERROR {args[0]}: {p}")
    sys.exit(1 if problems else 0)
