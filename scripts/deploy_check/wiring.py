"""What points at the server's pods: Services, HPA, PodDisruptionBudget, NetworkPolicy and
ServiceMonitor must select those pods and reach their gRPC, HTTP and metrics ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .common import Finding
from .render import SourceIndex, where


@dataclass(frozen=True, slots=True)
class Scope:
    """One rendered overlay and what its objects must point at."""

    overlay: str
    docs: list[dict[str, Any]]
    index: SourceIndex
    pod_labels: list[dict[str, str]]  # the Deployments' pod template labels
    grpc_port: int
    metrics_port: int
    http_port: int | None = None  # None: the server serves no HTTP (or no fixed port)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def label(self, doc: dict[str, Any]) -> str:
        return where(self.overlay, doc, self.index)

    def selects_pods(self, selector: dict[str, Any] | None) -> bool:
        return any(selects(selector, labels) for labels in self.pod_labels)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    return all(labels.get(k) == v for k, v in match.items())


def check_wiring(scope: Scope, adapter_metrics: set[str] | None) -> list[Finding]:
    """adapter_metrics: the custom metrics prometheus-adapter exposes (None: not checked)."""
    return [
        *check_services(scope),
        *check_hpas(scope, adapter_metrics),
        *check_pdbs(scope),
        *check_network_policies(scope),
        *check_service_monitors(scope),
    ]


def check_services(scope: Scope) -> list[Finding]:
    findings = []
    services = scope.of_kind("Service")
    for service in services:
        label = scope.label(service)
        if not scope.selects_pods(service["spec"].get("selector")):
            findings.append(Finding(label, "services", "selector matches no Deployment's pods"))
        findings += check_service_http(scope, label, service)
        for port in service["spec"].get("ports", []):
            if port.get("name") == "grpc" and port.get("targetPort") not in {
                "grpc",
                scope.grpc_port,
            }:
                findings.append(
                    Finding(
                        label,
                        "services",
                        f"port grpc targets {port.get('targetPort')}, not the gRPC port",
                    )
                )
    if scope.of_kind("Deployment") and not any(
        s["spec"].get("clusterIP") == "None" for s in services
    ):
        findings.append(
            Finding(
                scope.overlay,
                "services",
                "no headless Service (clusterIP: None) for client-side dns:/// round robin",
            )
        )
    return findings


def check_service_http(scope: Scope, label: str, service: dict[str, Any]) -> list[Finding]:
    """A Service that carries gRPC carries HTTP too: port http, the server's number."""
    ports = {p.get("name"): p for p in service["spec"].get("ports", []) or []}
    if scope.http_port is None or "grpc" not in ports:
        return []
    http = ports.get("http")
    if http is None:
        return [Finding(label, "services", f"has port grpc but no port http ({scope.http_port})")]
    findings = []
    if http.get("port") != scope.http_port or http.get("targetPort") not in {
        "http",
        scope.http_port,
    }:
        findings.append(
            Finding(
                label,
                "services",
                f"port http is {http.get('port')} -> {http.get('targetPort')}, not "
                f"{scope.http_port} -> http",
            )
        )
    if "appProtocol" in ports["grpc"] and http.get("appProtocol") not in {"http", "https"}:
        findings.append(
            Finding(label, "services", f"port http has appProtocol {http.get('appProtocol')}")
        )
    return findings


def check_hpas(scope: Scope, adapter_metrics: set[str] | None) -> list[Finding]:
    findings = []
    for hpa in scope.of_kind("HorizontalPodAutoscaler"):
        label = scope.label(hpa)
        target = hpa["spec"]["scaleTargetRef"]
        if not any(
            d["metadata"]["name"] == target["name"] and d["kind"] == target["kind"]
            for d in scope.docs
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
    return findings


def check_pdbs(scope: Scope) -> list[Finding]:
    findings = []
    pdbs = scope.of_kind("PodDisruptionBudget")
    if scope.of_kind("Deployment") and not pdbs:
        findings.append(Finding(scope.overlay, "pdb", "no PodDisruptionBudget"))
    for pdb in pdbs:
        if not scope.selects_pods(pdb["spec"].get("selector")):
            findings.append(
                Finding(scope.label(pdb), "pdb", "selector matches no Deployment's pods")
            )
    return findings


def check_network_policies(scope: Scope) -> list[Finding]:
    findings = []
    for policy in scope.of_kind("NetworkPolicy"):
        label = scope.label(policy)
        if not scope.selects_pods(policy["spec"].get("podSelector")):
            findings.append(
                Finding(label, "networkpolicy", "podSelector matches no Deployment's pods")
            )
        allowed = {
            p.get("port")
            for rule in policy["spec"].get("ingress", []) or []
            for p in rule.get("ports", []) or []
        }
        for port, what in ((scope.grpc_port, "gRPC"), (scope.metrics_port, "metrics")):
            # a policy that allows ports by name (grpc, metrics) is not held to the numbers
            if port not in allowed and not ({"grpc", "metrics"} & allowed):
                findings.append(
                    Finding(
                        label, "networkpolicy", f"ingress does not allow the {what} port {port}"
                    )
                )
        if scope.http_port is not None:
            findings += check_policy_http(scope, label, policy)
    return findings


def check_policy_http(scope: Scope, label: str, policy: dict[str, Any]) -> list[Finding]:
    """HTTP clients are gRPC's clients: every rule that admits gRPC admits HTTP."""
    findings = []
    for i, rule in enumerate(policy["spec"].get("ingress", []) or []):
        ports = {p.get("port") for p in rule.get("ports", []) or []}
        if ports & {scope.grpc_port, "grpc"} and not ports & {scope.http_port, "http"}:
            findings.append(
                Finding(
                    label,
                    "networkpolicy",
                    f"ingress[{i}] admits gRPC but not the HTTP port {scope.http_port}",
                )
            )
    return findings


def check_service_monitors(scope: Scope) -> list[Finding]:
    findings = []
    services = scope.of_kind("Service")
    monitors = scope.of_kind("ServiceMonitor")
    for monitor in monitors:
        label = scope.label(monitor)
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
                elif port.get("targetPort") not in {"metrics", scope.metrics_port}:
                    findings.append(
                        Finding(
                            label,
                            "servicemonitor",
                            f"endpoint port {endpoint.get('port')!r} does not reach the metrics "
                            f"port {scope.metrics_port}",
                        )
                    )
    if scope.of_kind("Deployment") and not monitors:
        findings.append(Finding(scope.overlay, "servicemonitor", "no ServiceMonitor"))
    return findings
