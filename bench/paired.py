"""One request at a time, attnserve against a peer, in alternating rounds.

This machine's memory bandwidth moves by half between minutes (a batch-1 MatMul streamed
38 to 70 GB/s within one bench run, AMD EPYC VM), and one request's generation follows it, so
two systems measured minutes apart are not compared fairly. Here each round runs the
bandwidth probe, attnserve and the peer back to back; the goals take the median over rounds
of the per-round ratio.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench import ceiling

ROUNDS = 3


def paired_rounds(
    ours: Callable[[], float], peer: Callable[[], float], threads: int, rounds: int = ROUNDS
) -> dict[str, Any]:
    """`ours` and `peer` each return tokens/s; the rounds and their medians."""
    runs = []
    for _ in range(rounds):
        bandwidth = ceiling.matmul_bandwidth(threads)
        runs.append({"bandwidth_bytes_per_s": bandwidth, "attnserve": ours(), "peer": peer()})
    return {
        "rounds": runs,
        "ratio_median": statistics.median(r["attnserve"] / r["peer"] for r in runs),
        "attnserve_median": statistics.median(r["attnserve"] for r in runs),
        "peer_median": statistics.median(r["peer"] for r in runs),
        "bandwidth_median": statistics.median(r["bandwidth_bytes_per_s"] for r in runs),
    }
