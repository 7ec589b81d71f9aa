"""docs/benchmarks.md from the figures `make bench` measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT = "batching on (tokens, defaults)"


def _server(runs: list[dict[str, Any]], config: str, c: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["config"] == config and r["concurrency"] == c), None)


def _goal(name: str, value: float, target: float, unit: str = "x") -> str:
    ok = "met" if value >= target else "**not met**"
    return f"| {name} | {value:.2f}{unit} | ≥ {target}{unit} | {ok} |"


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
        f"| fp32 | 18 | {fp32:.1f} | 1.00x | 1 | 1 | 0% |",
    ]
    for name, r in recipes.items():
        if name in {"fp32", "budget", "texts"}:
            continue
        lines.append(
            f"| int8, {name} | {r['fp32_matmuls']} | {r['rate']:.1f} | {r['rate'] / fp32:.2f}x "
            f"| {r['mean_cosine']:.4f} | {r['min_cosine']:.4f} | {r['below_0_99']:.1%} |"
        )
    return [*lines, ""]


def _pair(before: float, after: float | None, digits: int = 2) -> str:
    return (
        f"{before:.{digits}f}" if after is None else f"{before:.{digits}f}, then {after:.{digits}f}"
    )


def _mean(before: float, after: float | None) -> float:
    return before if after is None else (before + after) / 2


def write_report(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    bare = results["bare"]
    runs = results["server"]
    st_runs = results["sentence_transformers"]
    st = _mean(st_runs["rate"], st_runs.get("rate_after"))
    single = _mean(bare["single_p50_ms"], bare.get("single_p50_ms_after"))
    best_budget = bare["sorted_best"]["budget"]
    best_rate, best_after = bare["sorted_best"]["rate"], bare["sorted_best"].get("rate_after")
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
        f"fp32 GEMM rate of this CPU (onnxruntime MatMul 1024³): "
        f"{results['gemm_gflops']:.1f} GFLOP/s.",
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
        "Single sequence alone: p50 "
        f"{_pair(bare['single_p50_ms'], bare.get('single_p50_ms_after'))} ms; the best "
        f"schedule (budget {best_budget}): {_pair(best_rate, best_after, 1)}/s.",
        "`sentence-transformers` `encode(batch_size=32)` in-process (PyTorch): "
        f"{_pair(st_runs['rate'], st_runs.get('rate_after'), 1)}/s.",
        "",
        "Where two figures are given, the second was measured again after the server runs; "
        "the goals below compare with their mean.",
        "",
        *_int8_lines(results.get("int8_recipes")),
        "## 3. Server over gRPC on loopback (Embed, one text per request, closed loop)",
        "",
        "| configuration | model | clients | req/s | p50 ms | p90 ms | p99 ms "
        "| mean batch | padding | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['config']} | {r['model']} | {r['concurrency']} | {r['throughput']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['mean_batch_size']:.1f} | {r['padding_ratio']:.0%} | {r['errors']} |"
        )
    on64 = _server(runs, DEFAULT, 64)
    off64 = _server(runs, "batching off (max batch 1)", 64)
    count64 = _server(runs, "count-based, arrival order, 32", 64)
    int8_64 = _server(runs, "int8, batching on", 64)
    on1 = _server(runs, DEFAULT, 1)
    lines += ["", "## Goals (concurrency 64, mixed lengths)", ""]
    lines += ["| goal | measured | target | |", "|---|---:|---:|---|"]
    if on64:
        best = bare["sorted_best"]
        lines.append(
            _goal(
                f"server / bare engine best (sorted, budget {best['budget']})",
                on64["throughput"] / _mean(best["rate"], best.get("rate_after")) * 100,
                90,
                "%",
            )
        )
        if count64:
            lines.append(
                _goal(
                    "server / count-based batcher", on64["throughput"] / count64["throughput"], 2.5
                )
            )
        if off64:
            lines.append(
                _goal("server / batching off", on64["throughput"] / off64["throughput"], 1.1)
            )
        lines.append(_goal("fp32 server / sentence-transformers", on64["throughput"] / st, 1.5))
    if int8_64:
        lines.append(_goal("int8 server / sentence-transformers", int8_64["throughput"] / st, 2.5))
    blocking = _server(runs, DEFAULT + ", blocking client", 1)
    for name, run in (("asyncio client", on1), ("blocking client", blocking)):
        if run:
            slack = run["p50_ms"] - single
            verdict = "met" if slack <= 3 else "**not met**"
            lines.append(
                f"| p50 at concurrency 1 ({name}) minus bare single latency | {slack:.2f} ms "
                f"| ≤ 3 ms | {verdict} |"
            )
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
