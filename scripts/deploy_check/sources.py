"""What deploy/ relies on outside itself: the server's connection ageing, the operator guide,
and that every YAML file under deploy/ parses."""

from __future__ import annotations

import yaml

from .common import DEPLOY, ROOT, Finding, rel

# What docs/deploy.md must explain for the manifests to be usable.
GUIDE_TOPICS = (
    "dns:///",
    "round_robin",
    "headless",
    "init container",
    "no container engine",
    "/v2/health/ready",  # the HTTP probes, the alternative to gRPC ones
)


def check_sources() -> list[Finding]:
    findings = []
    # an option passed to grpc.server(), not a setting: the source is the only place to look
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
        for needle in GUIDE_TOPICS:
            if needle not in text:
                findings.append(Finding("docs/deploy.md", "docs", f"does not mention {needle!r}"))
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            findings.append(Finding(rel(path), "yaml", str(error).replace("\n", " ")))
    return findings
