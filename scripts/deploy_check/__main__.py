"""`make deploy-check`: run every check, print one line per check passed and one per finding;
exit 1 when anything fails."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .common import DOCKER, K8S, Finding, rel
from .docker import check_dockerfile, hadolint
from .metrics import check_adapter, check_alerts, check_dashboard
from .policies import check_policies
from .project import load_project
from .render import (
    RENDERED,
    kubernetes_versions,
    kustomize_command,
    load_crd_schemas,
    render,
    source_index,
    validate_objects,
)
from .sources import check_sources


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def add(self, name: str, findings: list[Finding]) -> None:
        self.findings += findings
        if not findings:
            self.passed.append(name)


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
    # kustomize is the slow part: render every overlay at once
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
    report.add("server source and docs/deploy.md", check_sources())
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
