"""Figures from a run's outcomes, the saturation point of a sweep, tables and a plot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.loadtest.runner import Outcome


@dataclass(frozen=True, slots=True)
class Summary:
    label: str
    offered_rate: float  # requests/s sent (open loop) or completed (closed loop)
    throughput: float  # successful requests/s
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    codes: dict[str, int]
    rejected_p99_ms: float  # how fast RESOURCE_EXHAUSTED answers came back

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(label: str, outcomes: Sequence[Outcome], seconds: float, offered: float) -> Summary:
    ok = np.array([o.latency for o in outcomes if o.code == "OK"]) * 1000
    rejected = np.array([o.latency for o in outcomes if o.code == "RESOURCE_EXHAUSTED"]) * 1000

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else 0.0

    return Summary(
        label=label,
        offered_rate=offered,
        throughput=len(ok) / seconds if seconds else 0.0,
        requests=len(outcomes),
        p50_ms=pct(ok, 50),
        p90_ms=pct(ok, 90),
        p99_ms=pct(ok, 99),
        max_ms=float(ok.max()) if len(ok) else 0.0,
        codes=dict(Counter(o.code for o in outcomes)),
        rejected_p99_ms=pct(rejected, 99),
    )


def saturation(points: Sequence[Summary], efficiency: float = 0.95) -> Summary | None:
    """The highest offered rate the server still kept up with (throughput ≥ 95% offered)."""
    kept_up = [p for p in points if p.throughput >= efficiency * p.offered_rate]
    return max(kept_up, key=lambda p: p.offered_rate) if kept_up else None


def table(points: Sequence[Summary]) -> str:
    lines = [
        "| run | offered/s | ok/s | p50 ms | p90 ms | p99 ms | max ms | codes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(p.codes.items()))
        lines.append(
            f"| {p.label} | {p.offered_rate:.1f} | {p.throughput:.1f} | {p.p50_ms:.1f} "
            f"| {p.p90_ms:.1f} | {p.p99_ms:.1f} | {p.max_ms:.1f} | {codes} |"
        )
    return "\n".join(lines)


def plot(points: Sequence[Summary], path: Path, title: str) -> None:
    """Latency percentiles against offered load, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [p.offered_rate for p in points]
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in (
        ("p50", [p.p50_ms for p in points]),
        ("p90", [p.p90_ms for p in points]),
        ("p99", [p.p99_ms for p in points]),
    ):
        axis.plot(rates, values, marker="o", label=name)
    knee = saturation(points)
    if knee is not None:
        axis.axvline(knee.offered_rate, color="grey", linestyle="--", label="saturation")
    axis.set_xlabel("offered load (requests/s, Poisson arrivals)")
    axis.set_ylabel("latency of successful requests (ms)")
    axis.set_yscale("log")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
