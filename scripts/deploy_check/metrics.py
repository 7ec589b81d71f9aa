"""Metric names in the alerts, the prometheus-adapter rules and the Grafana dashboard.

Every name must be a series the server exports: the families come from a real registry
(`service.metrics.Metrics().registry`), so a metric added or renamed there is seen here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from service.metrics import Metrics

from .common import Finding, Project, rel

REQUIRED_ALERTS = {
    "AttnserveHighP99Latency": "attnserve_request_duration_seconds_bucket",
    "AttnserveQueueSaturated": "attnserve_queue_duration_seconds_bucket",
    "AttnserveHighErrorRate": "attnserve_requests_total",
    "AttnserveModelNotReady": "attnserve_model_ready",
}

# prometheus_client's family type -> the class that declares it (named in messages) and the
# suffixes of the series the text format exposes for it. A family has no samples until a
# label set is used, so the series are derived from the type rather than collected.
SERIES_SUFFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "counter": ("Counter", ("_total", "_created")),
    "gauge": ("Gauge", ("",)),
    "histogram": ("Histogram", ("_bucket", "_sum", "_count", "_created")),
    "summary": ("Summary", ("", "_sum", "_count", "_created")),
    "info": ("Info", ("_info",)),
    "stateset": ("Enum", ("",)),
}


def exported_series(
    registry: CollectorRegistry | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(series name -> family, family -> type) for every metric in the server's registry."""
    registry = Metrics().registry if registry is None else registry
    series: dict[str, str] = {}
    families: dict[str, str] = {}
    for family in registry.collect():
        # a type not listed (a custom collector's): its name is its one series
        kind, suffixes = SERIES_SUFFIXES.get(family.type, (family.type, ("",)))
        # prometheus_client drops a counter's _total from the family: name it as declared
        name = f"{family.name}_total" if family.type == "counter" else family.name
        families[name] = kind
        for suffix in suffixes:
            series[f"{family.name}{suffix}"] = name
    return series, families


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
# Alerts (PrometheusRule), prometheus-adapter rules, the Grafana dashboard


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


# Rule groups promtool has already seen: the overlays share theirs, one run is enough.
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
    """Findings, and the custom metric names the rules expose (what an HPA may ask for)."""
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
