"""The goals' measurements, in interleaved rounds.

This VM's speed drifts by 10-25% over minutes, more than some of the differences the goals
ask about. So the figures each goal compares are taken side by side, in rounds: every round
measures the bare engine's best schedule, sentence-transformers and the four servers at
concurrency 64 (started once, idle in between), one after the other; then, text by text in
turn, one sequence on the bare engine, on the default server with the asyncio stub and with
the blocking stub (concurrency 1). A goal's ratio is taken within each round; the report
gives every round's ratio and their median. Round 1's server runs also fill the server table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import engine as eng
from bench.baseline import sentence_transformers_rate
from bench.server_load import Server, run_interleaved, run_load

DEFAULT = "batching on (tokens, defaults)"
BLOCKING = "batching on (tokens, defaults), blocking client"
BATCHING_OFF = "batching off (max batch 1)"
COUNT_BASED = "count-based, arrival order, 32"
INT8 = "int8, batching on"
# label: (server flags, model)
SERVERS: dict[str, tuple[list[str], str]] = {
    DEFAULT: ([], "minilm"),
    BATCHING_OFF: (["--max-batch-size", "1"], "minilm"),
    COUNT_BASED: (["--batching", "count", "--max-batch-size", "32"], "minilm"),
    INT8: ([], "minilm-int8"),
}


def goal_rounds(
    results: dict[str, Any],
    models: Path,
    rows: list[np.ndarray],
    texts: list[str],
    threads: int,
    rounds: int,
    log: Callable[[str], None],
) -> None:
    fp32 = eng.OrtEncoder(models / "minilm" / "model.onnx", threads)
    budget = results["bare"]["sorted_best"]["budget"]
    best_schedule = eng.sorted_budget_batches(rows[:768], budget)
    measured: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        servers = {
            label: stack.enter_context(Server(models, flags))
            for label, (flags, _) in SERVERS.items()
        }
        for index in range(rounds):
            r: dict[str, Any] = {
                "bare_best": eng.schedule_rate(fp32, best_schedule),
                "sentence_transformers": sentence_transformers_rate(models, texts, threads),
                "concurrency_64": {},
            }
            for label, server in servers.items():
                result = run_load(server, SERVERS[label][1], texts[:512], 64)
                r["concurrency_64"][label] = asdict(result)
            aio, blocking, bare_p50 = run_interleaved(
                servers[DEFAULT], "minilm", texts[:300], lambda i: fp32.run_padded([rows[i]])
            )
            r["bare_single_p50_ms"] = bare_p50
            r["concurrency_1"], r["concurrency_1_blocking"] = asdict(aio), asdict(blocking)
            log(f"goal round {index + 1}: {_summary(r)}")
            measured.append(r)
    results["goal_rounds"] = {"budget": budget, "rounds": measured}
    first = measured[0]
    for label, (flags, model) in SERVERS.items():
        run = first["concurrency_64"][label]
        results["server"].append({"config": label, "flags": flags, "model": model, **run})
    for label, key in ((DEFAULT, "concurrency_1"), (BLOCKING, "concurrency_1_blocking")):
        results["server"].append({"config": label, "flags": [], "model": "minilm", **first[key]})


def _summary(r: dict[str, Any]) -> str:
    c64 = ", ".join(f"{k} {v['throughput']:.1f}/s" for k, v in r["concurrency_64"].items())
    return (
        f"bare best {r['bare_best']:.1f}/s, single p50 {r['bare_single_p50_ms']:.2f} ms, "
        f"sentence-transformers {r['sentence_transformers']:.1f}/s; c=64: {c64}; c=1 p50 "
        f"{r['concurrency_1']['p50_ms']:.2f} ms (blocking "
        f"{r['concurrency_1_blocking']['p50_ms']:.2f} ms)"
    )


def goal_values(r: dict[str, Any]) -> dict[str, float]:
    """One round's figure for each goal (see bench/report.py for the targets)."""
    c64 = {k: v["throughput"] for k, v in r["concurrency_64"].items()}
    on = c64[DEFAULT]
    return {
        "server_vs_bare_best": on / r["bare_best"],
        "vs_count_based": on / c64[COUNT_BASED],
        "vs_batching_off": on / c64[BATCHING_OFF],
        "fp32_vs_sentence_transformers": on / r["sentence_transformers"],
        "int8_vs_sentence_transformers": c64[INT8] / r["sentence_transformers"],
        "c1_overhead_ms": r["concurrency_1"]["p50_ms"] - r["bare_single_p50_ms"],
        "c1_blocking_overhead_ms": r["concurrency_1_blocking"]["p50_ms"] - r["bare_single_p50_ms"],
    }
