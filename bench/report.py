"""docs/benchmarks.md from the figures `make bench` measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.goals import BLOCKING, SERVERS, goal_values

# (key in bench.goals.goal_values, what it compares, target, unit, higher is better)
GOALS = (
    (
        "server_vs_bare_best",
        "server / bare engine's best schedule (length-sorted, budget {budget})",
        0.9,
        "%",
        True,
    ),
    ("vs_count_based", "server / count-based arrival-order batcher (32)", 2.5, "x", True),
    ("vs_batching_off", "server / batching off (max batch 1)", 1.1, "x", True),
    (
        "fp32_vs_sentence_transformers",
        "fp32 server / sentence-transformers in-process",
        1.5,
        "x",
        True,
    ),
    (
        "int8_vs_sentence_transformers",
        "int8 server / sentence-transformers in-process",
        2.5,
        "x",
        True,
    ),
    (
        "c1_overhead_ms",
        "p50 at concurrency 1 (asyncio client) minus bare single p50",
        3.0,
        " ms",
        False,
    ),
    (
        "c1_blocking_overhead_ms",
        "p50 at concurrency 1 (blocking client) minus bare single p50",
        3.0,
        " ms",
        False,
    ),
)


def _fmt(value: float, unit: str) -> str:
    return f"{value:.0%}" if unit == "%" else f"{value:.2f}{unit}"


def _goal_lines(goals: dict[str, Any] | None) -> list[str]:
    if not goals:
        return []
    per_round = [goal_values(r) for r in goals["rounds"]]
    n = len(per_round)
    lines = [
        "",
        f"## Goals (concurrency 64, mixed lengths; {n} interleaved rounds)",
        "",
        "Each round measures every figure below side by side (`bench/goals.py`): this VM's "
        "speed drifts by 10-25% over minutes, so a ratio is only taken within a round. "
        "The verdict is on the median.",
        "",
        "| goal | " + " | ".join(f"round {i + 1}" for i in range(n)) + " | median | target | |",
        "|---|" + "---:|" * (n + 2) + "---|",
    ]
    for key, name, target, unit, higher in GOALS:
        values = [v[key] for v in per_round]
        median = float(np.median(values))
        met = median >= target if higher else median <= target
        bound = "≥" if higher else "≤"
        lines.append(
            f"| {name.format(budget=goals['budget'])} | "
            + " | ".join(_fmt(v, unit) for v in values)
            + f" | {_fmt(median, unit)} | {bound} {_fmt(target, unit)} | "
            + ("met" if met else "**not met**")
            + " |"
        )
    lines += ["", "| per round | " + " | ".join(f"round {i + 1}" for i in range(n)) + " |"]
    lines.append("|---|" + "---:|" * n)
    rows = (
        ("bare engine, best schedule (seq/s)", lambda r: f"{r['bare_best']:.1f}"),
        ("bare engine, single p50 (ms)", lambda r: f"{r['bare_single_p50_ms']:.2f}"),
        ("sentence-transformers (seq/s)", lambda r: f"{r['sentence_transformers']:.1f}"),
    )
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in goals["rounds"]) + " |")
    for config in goals["rounds"][0]["concurrency_64"]:
        lines.append(
            f"| server c=64: {config} (req/s) | "
            + " | ".join(
                f"{r['concurrency_64'][config]['throughput']:.1f}" for r in goals["rounds"]
            )
            + " |"
        )
    for label, key in (("asyncio", "concurrency_1"), ("blocking", "concurrency_1_blocking")):
        lines.append(
            f"| server c=1 p50, {label} client (ms) | "
            + " | ".join(f"{r[key]['p50_ms']:.2f}" for r in goals["rounds"])
            + " |"
        )
    return lines


def _int8_lines(recipes: dict[str, Any] | None) -> list[str]:
    if not recipes:
        return []
    fp32 = recipes["fp32"]["rate"]
    lines = [
        "### The int8 recipe: speed against parity",
        "",
        f"Length-sorted batches under the CPU token budget ({recipes['budget']}), as the server "
        f"runs them; cosine of each text's embedding in those batches against the fp32 "
        f"graph's, over {recipes['texts']} texts (the corpus and the export's parity "
        "sentences, whose shortest are the weakest: `bench/int8.py`).",
        "",
        "| graph | fp32 MatMuls | sequences/s | vs fp32 | mean cosine | min cosine "
        "| texts < 0.99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| fp32 | {recipes['fp32']['fp32_matmuls']} | {fp32:.1f} | 1.00x | 1 | 1 | 0% |",
    ]
    for name, r in recipes.items():
        if name in {"fp32", "budget", "texts"}:
            continue
        lines.append(
            f"| int8, {name} | {r['fp32_matmuls']} | {r['rate']:.1f} | {r['rate'] / fp32:.2f}x "
            f"| {r['mean_cosine']:.4f} | {r['min_cosine']:.4f} | {r['below_0_99']:.1%} |"
        )
    return [*lines, ""]


def write_report(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    bare = results["bare"]
    runs = results["server"]
    st_runs = results["sentence_transformers"]
    corpus = results["corpus"]
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m bench`); the raw figures are in",
        "`docs/benchmarks.json`. All runs on this machine, in one process, on the same inputs:",
        f"{results['machine']['cores']} cores ({results['machine']['cpu']}), CPU execution "
        f"provider, 2 intra-op threads. Took {results['seconds']:.0f} s.",
        "",
        f"Corpus: `service/loadtest/corpus.txt`, {corpus['texts']} English texts, mean "
        f"{corpus['mean_tokens']:.0f} tokens (p10 {corpus['p10_tokens']:.0f}, p90 "
        f"{corpus['p90_tokens']:.0f}).",
        "",
        "## 1. Engine: sequences/s at length 128",
        "",
        f"fp32 GEMM rate of this CPU (MatMul 1024³): onnxruntime "
        f"{results['gemm_gflops']:.1f} GFLOP/s, PyTorch "
        f"{results['torch_gemm_gflops']:.1f} GFLOP/s.",
        "",
        "| batch | PyTorch eager | ORT fp32 fused | ORT int8 | fp32 share of GEMM rate |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results["engine"]:
        lines.append(
            f"| {r['batch']} | {r['pytorch']:.1f} | {r['ort_fp32']:.1f} | {r['ort_int8']:.1f} "
            f"| {r['fp32_gemm_share']:.0%} |"
        )
    lines += [
        "",
        "## 2. Bare engine on the corpus (references)",
        "",
        "| schedule | sequences/s | padding |",
        "|---|---:|---:|",
        f"| one at a time | {bare['one_at_a_time']['rate']:.1f} | 0% |",
        f"| arrival order, batches of 32 | {bare['arrival_32']['rate']:.1f} | "
        f"{bare['arrival_32']['padding']:.0%} |",
    ]
    for budget, r in bare["sorted_budget_sweep"].items():
        lines.append(
            f"| length-sorted, token budget {budget} | {r['rate']:.1f} | {r['padding']:.0%} |"
        )
    lines += [
        "",
        f"Single sequence alone: p50 {bare['single_p50_ms']:.2f} ms.",
        "`sentence-transformers` `encode(batch_size=32)` in-process (PyTorch): "
        f"{st_runs['rate']:.1f}/s.",
        "",
        *_int8_lines(results.get("int8_recipes")),
        "## 3. Server over gRPC on loopback (Embed, one text per request, closed loop)",
        "",
        "| configuration | model | clients | req/s | p50 ms | p90 ms | p99 ms "
        "| mean batch | padding | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # The goals' configurations first (their concurrency-64 runs come from round 1).
    configs = list(dict.fromkeys([*SERVERS, BLOCKING, *(r["config"] for r in runs)]))
    for r in sorted(runs, key=lambda r: (configs.index(r["config"]), r["concurrency"])):
        lines.append(
            f"| {r['config']} | {r['model']} | {r['concurrency']} | {r['throughput']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['mean_batch_size']:.1f} | {r['padding_ratio']:.0%} | {r['errors']} |"
        )
    lines += _goal_lines(results.get("goal_rounds"))
    s2s = results.get("seq2seq")
    if s2s:
        lines += [
            "",
            "## 4. Seq2seq generation (continuous batching)",
            "",
            f"{s2s['model']}, {s2s['new_tokens']} new tokens per request, greedy, "
            f"{s2s['threads']} threads, in process (no gRPC).",
            "",
            "| case | generated tokens/s |",
            "|---|---:|",
            f"| one request | {s2s['single_tokens_per_s']:.0f} |",
            f"| 16 concurrent, continuous batching | {s2s['concurrent_16_tokens_per_s']:.0f} |",
            f"| the same 16, one at a time | {s2s['sequential_16_tokens_per_s']:.0f} |",
            "",
            f"Continuous batching: {s2s['batching_speedup']:.1f}x one at a time.",
        ]
    lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
