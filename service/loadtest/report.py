"""Figures from a run's outcomes, the saturation point of a sweep, tables and a plot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.loadtest.runner import Outcome

# Answers that mean the server shed load or ran out of time, not that a request was bad.
OVERLOAD_CODES = ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")


@dataclass(frozen=True, slots=True)
class Summary:
    label: str  # "closed xN" (N clients) or "open R/s" (R: the target Poisson rate)
    # Requests sent / sending window. Open loop: the achieved Poisson rate, over the arrival
    # window (--duration, longer if the client fell behind). Closed loop: a request is sent
    # only when one returns, so the window is the whole wall time.
    offered_rate: float
    # Successful requests / wall seconds (the sending window plus the tail spent waiting for
    # requests in flight). Never above offered_rate: successes <= sent, wall >= window.
    throughput: float
    requests: int  # sent
    p50_ms: float  # latency percentiles of successful requests
    p90_ms: float
    p99_ms: float
    max_ms: float
    codes: dict[str, int]
    rejected_p99_ms: float  # how fast RESOURCE_EXHAUSTED answers came back
    target_rate: float | None = None  # open loop: the rate asked for; None: closed loop
    window_s: float = 0.0  # the sending window
    wall_s: float = 0.0  # first send to last answer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    label: str,
    outcomes: Sequence[Outcome],
    seconds: float,
    offered: float | None = None,
    *,
    window: float | None = None,
    target_rate: float | None = None,
) -> Summary:
    """Figures of one run. `seconds`: wall time; `window`: the sending window (default: the
    wall time, as in a closed loop); `offered`: overrides len(outcomes) / window."""
    ok = np.array([o.latency for o in outcomes if o.code == "OK"]) * 1000
    rejected = np.array([o.latency for o in outcomes if o.code == "RESOURCE_EXHAUSTED"]) * 1000
    window = seconds if window is None else window
    seconds = max(seconds, window)  # the wall time covers the sending window by definition
    if offered is None:
        offered = len(outcomes) / window if window else 0.0

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
        target_rate=target_rate,
        window_s=window,
        wall_s=seconds,
    )


@dataclass(frozen=True, slots=True)
class Saturation:
    """Where a sweep stopped keeping up: between `kept_up` and `overloaded`."""

    highest: Summary  # the highest offered rate of the sweep
    kept_up: Summary | None  # the last rate kept up with below `overloaded`
    overloaded: Summary | None  # the first rate not kept up with; None: not reached
    reason: str  # why `overloaded` was not kept up with ("" when not reached)

    @property
    def reached(self) -> bool:
        return self.overloaded is not None

    @property
    def rate(self) -> float | None:
        """The saturation rate as reported (JSON `saturation_rate`, the plot's line): the
        last rate kept up with before the first one that was not; None if not reached or
        if even the lowest rate was too much."""
        return self.kept_up.offered_rate if self.reached and self.kept_up else None

    def sentence(self) -> str:
        if self.overloaded is None:
            top = self.highest.offered_rate
            return f"not reached: kept up with every offered rate up to {top:.1f}/s"
        over = self.overloaded.offered_rate
        if self.kept_up is None:
            return f"below {over:.1f}/s, the lowest rate offered ({self.reason})"
        low = self.kept_up.offered_rate
        return f"between {low:.1f} and {over:.1f} requests/s ({self.reason})"


def _overload(
    p: Summary,
    baseline_p99_ms: float,
    efficiency: float,
    overload_fraction: float,
    latency_factor: float,
    latency_floor_ms: float,
) -> str:
    """Why the server did not keep up with point `p`; "" if it did."""
    if p.throughput < efficiency * p.offered_rate:
        return (
            f"at {p.offered_rate:.1f}/s only {p.throughput:.1f} ok/s, "
            f"under {efficiency:.0%} of the offered rate"
        )
    shed = sum(p.codes.get(c, 0) for c in OVERLOAD_CODES)
    if p.requests and shed > overload_fraction * p.requests:
        codes = ", ".join(f"{c} {p.codes[c]}" for c in OVERLOAD_CODES if p.codes.get(c))
        return f"at {p.offered_rate:.1f}/s {codes} of {p.requests} requests"
    limit = latency_factor * max(baseline_p99_ms, latency_floor_ms)
    if p.p99_ms > limit:
        return (
            f"at {p.offered_rate:.1f}/s p99 {p.p99_ms:.0f} ms, over {latency_factor:g}x "
            f"the lowest rate's p99 ({baseline_p99_ms:.0f} ms, floor {latency_floor_ms:g} ms)"
        )
    return ""


def saturation(
    points: Sequence[Summary],
    efficiency: float = 0.95,
    overload_fraction: float = 0.01,
    latency_factor: float = 5.0,
    latency_floor_ms: float = 10.0,
) -> Saturation | None:
    """Where the open-loop `points` of a sweep stop being kept up with; None if no points.

    The points are taken in order of offered rate. The server kept up with a point unless:
    - throughput (ok/s over the wall time) is under `efficiency` (95%) of the offered rate:
      requests failed, or the server fell behind and finished them after the window (the
      tail of about one latency weighs on this, so runs should last many latencies); or
    - RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED answered more than `overload_fraction` (1%) of
      the requests: the server shed load or missed deadlines; or
    - p99 latency exceeds `latency_factor` (5) times the p99 at the lowest offered rate
      (never taken as under `latency_floor_ms`, 10 ms, so jitter on a fast model is no
      knee): queueing has blown up even though everything was answered.
    The first point not kept up with is `overloaded`; the saturation lies between it and
    the point before it (`kept_up`). Points above the first overloaded one are not looked
    at (a later point that happened to do well is noise, not a second regime).
    """
    ordered = sorted(points, key=lambda p: p.offered_rate)
    if not ordered:
        return None
    baseline = ordered[0].p99_ms
    kept_up: Summary | None = None
    for p in ordered:
        why = _overload(
            p, baseline, efficiency, overload_fraction, latency_factor, latency_floor_ms
        )
        if why:
            return Saturation(ordered[-1], kept_up, p, why)
        kept_up = p
    return Saturation(ordered[-1], kept_up, None, "")


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
    """Latency percentiles against offered load, as a PNG; a dashed line at the saturation
    rate (the last rate kept up with) when the sweep reached saturation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(points, key=lambda p: p.offered_rate)
    rates = [p.offered_rate for p in ordered]
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in (
        ("p50", [p.p50_ms for p in ordered]),
        ("p90", [p.p90_ms for p in ordered]),
        ("p99", [p.p99_ms for p in ordered]),
    ):
        axis.plot(rates, values, marker="o", label=name)
    knee = saturation(ordered)
    if knee is not None and knee.rate is not None:
        axis.axvline(knee.rate, color="grey", linestyle="--", label="saturation")
    axis.set_xlabel("offered load (requests/s, Poisson arrivals)")
    axis.set_ylabel("latency of successful requests (ms)")
    axis.set_yscale("log")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
