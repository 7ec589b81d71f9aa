"""Per-model counters for the V2 ModelStatistics RPC (Triton's "statistics" extension).

Prometheus holds the server's real metrics; these exist because load tools such as
perf_analyzer read success counts and cumulative durations through the protocol itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class Counters:
    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    inference_count: int = 0  # items (first-dimension rows) of successful requests
    execution_count: int = 0  # successful requests
    last_inference_ms: int = 0  # wall clock, milliseconds since the epoch


class Statistics:
    def __init__(self) -> None:
        self._by_model: dict[str, Counters] = {}

    def record(self, model: str, ok: bool, duration_ns: int, items: int) -> None:
        counters = self._by_model.setdefault(model, Counters())
        if ok:
            counters.success_count += 1
            counters.success_ns += duration_ns
            counters.inference_count += items
            counters.execution_count += 1
        else:
            counters.fail_count += 1
            counters.fail_ns += duration_ns
        counters.last_inference_ms = time.time_ns() // 1_000_000

    def get(self, model: str) -> Counters:
        return self._by_model.get(model) or Counters()

    def names(self) -> list[str]:
        return list(self._by_model)
