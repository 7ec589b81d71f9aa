"""The project's facts the checks compare deploy/ with, from the code itself."""

from __future__ import annotations

from .common import ROOT, Project
from .docker import load_pins
from .metrics import exported_series
from .settings import settings_default


def load_project() -> Project:
    pins, extras = load_pins(ROOT / "pyproject.toml")
    series, families = exported_series()
    return Project(
        pins=pins,
        extras=extras,
        series=series,
        families=families,
        grpc_port=int(settings_default("grpc_port")),
        http_port=int(settings_default("http_port")),
        metrics_port=int(settings_default("metrics_port")),
        grace_period_s=float(settings_default("grace_period_s")),
    )
