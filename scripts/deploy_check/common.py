"""What every check shares: the repository's paths, a finding, the project's facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = DEPLOY / "schemas"
DOCKER = DEPLOY / "docker"


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


@dataclass(slots=True)
class Project:
    """The project's own sources of truth (project.load_project reads them)."""

    pins: dict[str, str]  # normalised name -> version
    extras: dict[str, list[str]]
    series: dict[str, str]  # every exported series name -> its metric family
    families: dict[str, str]  # family (as declared) -> type
    grpc_port: int
    http_port: int  # -1: no HTTP
    metrics_port: int
    grace_period_s: float
