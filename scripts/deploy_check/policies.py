"""Pod and container policies on a rendered overlay: security, resources, the server's
ports, probes and drain, the GPU overlay's GPU; then what points at the pods (wiring)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.config import Settings

from .common import Finding, Project
from .render import SourceIndex, source_index, where
from .settings import container_env, server_settings
from .wiring import Scope, check_wiring

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


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


def check_policies(
    overlay: str,
    docs: list[dict[str, Any]],
    project: Project,
    index: SourceIndex | None = None,
    adapter_metrics: set[str] | None = None,
) -> list[Finding]:
    index = source_index() if index is None else index
    findings: list[Finding] = []
    pods = list(pod_specs(docs))
    settings_by_label: dict[str, Settings] = {}
    for pod in pods:
        label = where(overlay, pod.doc, index)
        findings += check_security(label, pod)
        servers = [c for _k, c in all_containers(pod.spec) if is_server(c)]
        if not servers:
            findings.append(Finding(label, "ports", "no container has a port named grpc (or h2c)"))
        for container in servers:
            found, settings = check_server_container(label, pod, container, docs)
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

    # The other objects must reach the ports the first server uses, else the defaults.
    first = next(iter(settings_by_label.values()), None)
    scope = Scope(
        overlay=overlay,
        docs=docs,
        index=index,
        pod_labels=[p.labels for p in pods if p.doc.get("kind") == "Deployment"],
        grpc_port=first.grpc_port if first is not None else project.grpc_port,
        http_port=http_port(first.http_port if first is not None else project.http_port),
        metrics_port=first.metrics_port if first is not None else project.metrics_port,
    )
    return findings + check_wiring(scope, adapter_metrics)


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


@dataclass(frozen=True, slots=True)
class Server:
    """A server container and the Settings its environment gives it."""

    label: str
    pod: PodSpecRef
    container: dict[str, Any]
    settings: Settings

    @property
    def is_workload(self) -> bool:
        # a ServingRuntime is a template KServe fills in: it has only a readiness probe
        return self.pod.doc.get("kind") in WORKLOAD_KINDS

    def finding(self, rule: str, message: str) -> Finding:
        return Finding(self.label, rule, f"container {self.container['name']}: {message}")


def check_server_container(
    label: str, pod: PodSpecRef, container: dict[str, Any], docs: list[dict[str, Any]]
) -> tuple[list[Finding], Settings | None]:
    """The server container against the Settings its environment gives it."""
    settings, error = server_settings(container_env(container, docs))
    if settings is None:
        return [Finding(label, "settings", f"container {container['name']}: {error}")], None
    server = Server(label, pod, container, settings)
    findings = check_ports(server) + check_probes(server)
    if server.is_workload:
        findings += check_drain(server) + check_model_mount(server)
    return findings, settings


def http_port(setting: int) -> int | None:
    """The HTTP port the objects must reach: None when HTTP is off (-1) or unknown (0)."""
    return setting if setting > 0 else None


# httpGet probes: the alternative to gRPC ones (both open without the bearer token)
HTTP_PROBE_PATHS = {
    "startupProbe": "/v2/health/ready",
    "readinessProbe": "/v2/health/ready",
    "livenessProbe": "/v2/health/live",
}


def check_ports(server: Server) -> list[Finding]:
    findings = []
    settings = server.settings
    ports = {p.get("name"): p.get("containerPort") for p in server.container.get("ports", []) or []}
    grpc_port = ports.get("grpc", ports.get("h2c"))
    if grpc_port != settings.grpc_port:
        findings.append(
            server.finding(
                "ports",
                f"gRPC containerPort {grpc_port} is not the server's gRPC port "
                f"{settings.grpc_port}",
            )
        )
    if settings.http_port == 0:
        findings.append(
            server.finding(
                "ports",
                "ATTNSERVE_HTTP_PORT=0 picks a free port at start, which no Service can "
                "target: set a number, or -1 for no HTTP",
            )
        )
    elif not settings.serves_http and "http" in ports:
        findings.append(
            server.finding(
                "ports", f"declares port http {ports['http']} but ATTNSERVE_HTTP_PORT is -1"
            )
        )
    elif settings.serves_http and ports.get("http") != settings.http_port:
        findings.append(
            server.finding(
                "ports",
                f"HTTP containerPort {ports.get('http')} (port named http) is not the server's "
                f"HTTP port {settings.http_port}",
            )
        )
    if "metrics" in ports and ports["metrics"] != settings.metrics_port:
        findings.append(
            server.finding(
                "ports",
                f"metrics containerPort {ports['metrics']} is not the server's metrics "
                f"port {settings.metrics_port}",
            )
        )
    return findings


def check_probes(server: Server) -> list[Finding]:
    findings = []
    grpc_port = server.settings.grpc_port
    wanted: tuple[str, ...] = ("readinessProbe",)
    if server.is_workload:
        wanted = ("startupProbe", "readinessProbe", "livenessProbe")
    for probe_name in wanted:
        probe = server.container.get(probe_name)
        if not probe:
            findings.append(server.finding("probes", f"no {probe_name}"))
        elif "httpGet" in probe:
            findings += check_http_probe(server, probe_name, probe["httpGet"])
        elif "grpc" not in probe:
            findings.append(
                server.finding(
                    "probes",
                    f"{probe_name} is not a native gRPC probe (nor an httpGet on the http port)",
                )
            )
        elif probe["grpc"].get("port") != grpc_port:
            findings.append(
                server.finding(
                    "probes",
                    f"{probe_name} checks port {probe['grpc'].get('port')}, the server's "
                    f"gRPC port is {grpc_port}",
                )
            )
        elif probe["grpc"].get("service", "") != "":
            findings.append(
                server.finding(
                    "probes",
                    f"{probe_name} checks service {probe['grpc']['service']!r}; the "
                    'server reports on service ""',
                )
            )
    return findings


def check_http_probe(server: Server, probe_name: str, http_get: dict[str, Any]) -> list[Finding]:
    """An httpGet probe: the HTTP port, the health route that probe needs, the scheme TLS sets."""
    settings = server.settings
    port, path = http_get.get("port"), http_get.get("path")
    if not settings.serves_http or port not in {"http", settings.http_port}:
        return [
            server.finding(
                "probes",
                f"{probe_name} is an httpGet on port {port}, not the server's HTTP port "
                f"{settings.http_port} (port http)",
            )
        ]
    findings = []
    if path != HTTP_PROBE_PATHS[probe_name]:
        findings.append(
            server.finding(
                "probes", f"{probe_name} reads {path}, want {HTTP_PROBE_PATHS[probe_name]}"
            )
        )
    scheme = "HTTPS" if settings.tls_cert is not None else "HTTP"
    if http_get.get("scheme", "HTTP") != scheme:
        findings.append(
            server.finding(
                "probes",
                f"{probe_name} uses scheme {http_get.get('scheme', 'HTTP')}; the server speaks "
                f"{scheme} (ATTNSERVE_TLS_CERT {'set' if scheme == 'HTTPS' else 'unset'})",
            )
        )
    return findings


def check_drain(server: Server) -> list[Finding]:
    """The pod must outlive preStop + the server's drain, and liveness must not end it."""
    findings = []
    pre_stop, grace_period_s = prestop_seconds(server.container), server.settings.grace_period_s
    drain = pre_stop + grace_period_s
    grace = server.pod.spec.get("terminationGracePeriodSeconds", 30)
    if grace <= drain:
        findings.append(
            server.finding(
                "grace-period",
                f"terminationGracePeriodSeconds {grace} must exceed preStop "
                f"{pre_stop:g} s + ATTNSERVE_GRACE_PERIOD_S {grace_period_s:g} s = {drain:g} s",
            )
        )
    liveness = server.container.get("livenessProbe") or {}
    window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    if liveness and window < drain:
        findings.append(
            server.finding(
                "grace-period",
                f"livenessProbe fails after {window} s, inside the {drain:g} s drain "
                "(health is NOT_SERVING while draining)",
            )
        )
    return findings


def check_model_mount(server: Server) -> list[Finding]:
    """An init container that fills the model path must share that volume with the server."""
    models = str(server.settings.models)
    models_mounts = [
        m for m in server.container.get("volumeMounts", []) or [] if m.get("mountPath") == models
    ]
    init_mounts = {
        m.get("name")
        for key, c in all_containers(server.pod.spec)
        if key == "initContainers"
        for m in c.get("volumeMounts", []) or []
        if m.get("mountPath") == models
    }
    if init_mounts and not any(m.get("name") in init_mounts for m in models_mounts):
        return [
            server.finding(
                "model-path",
                f"an init container fills {models} but the server does not "
                "mount that volume at ATTNSERVE_MODELS",
            )
        ]
    return []


def check_gpu(
    label: str, pod: PodSpecRef, container: dict[str, Any], settings: Settings | None
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
