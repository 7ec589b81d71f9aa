"""Bare-engine measurements: PyTorch eager vs onnxruntime fp32/int8, the CPU's GEMM rate,
and schedules (one at a time, arrival-order batches, length-sorted under a token budget)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

# The server's own session options: the bare references are the same engine.
from service.runtime.engine import session_options

MIN_SECONDS = 1.5


def rate(run: Callable[[], object], items: int, min_seconds: float = MIN_SECONDS) -> float:
    """Items per second of `run` (which processes `items`), after one warm-up call."""
    run()
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_seconds or done == 0:
        run()
        done += items
    return done / elapsed


def gemm_gflops(threads: int) -> float:
    """This CPU's fp32 GEMM rate through onnxruntime's MatMul (the kernels the model uses)."""
    from onnx import TensorProto, helper

    n = 1024
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    session = ort.InferenceSession(
        model.SerializeToString(),
        session_options(threads),
        providers=["CPUExecutionProvider"],
    )
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    per_second = rate(lambda: session.run(None, {"a": a, "b": a}), 1)
    return per_second * 2 * n**3 / 1e9


def encoder_flops_per_token(hidden: int, layers: int, length: int) -> float:
    """Multiply-adds x2 of a BERT layer stack per token: projections, FFN, attention."""
    projections = 4 * hidden * hidden  # Q, K, V, output
    ffn = 2 * hidden * 4 * hidden
    attention = 2 * length * hidden  # QK^T and AV
    return 2.0 * layers * (projections + ffn + attention)


class OrtEncoder:
    def __init__(self, path: Path, threads: int) -> None:
        self.session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.names = [i.name for i in self.session.get_inputs()]

    def run_padded(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        length = max(len(r) for r in rows)
        ids = np.zeros((len(rows), length), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return list(self.session.run(None, {n: feeds[n] for n in self.names}))


def fixed_batch(batch: int, length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + length)
    return [rng.integers(1000, 20000, size=length, dtype=np.int64) for _ in range(batch)]


def arrival_batches(rows: Sequence[np.ndarray], size: int) -> list[list[np.ndarray]]:
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]


def sorted_index_batches(rows: Sequence[np.ndarray], budget: int) -> list[list[int]]:
    """Indices of the rows, length-sorted and cut greedily so that rows x longest stays
    within `budget`."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: len(rows[i])):
        if current and (len(current) + 1) * len(rows[i]) > budget:
            batches.append(current)
            current = []
        current.append(i)
    return [*batches, current] if current else batches


def sorted_budget_batches(rows: Sequence[np.ndarray], budget: int) -> list[list[np.ndarray]]:
    """The rows themselves in `sorted_index_batches` order."""
    return [[rows[i] for i in batch] for batch in sorted_index_batches(rows, budget)]


def padding_ratio(batches: Sequence[Sequence[np.ndarray]]) -> float:
    real = sum(len(r) for b in batches for r in b)
    padded = sum(len(b) * max(len(r) for r in b) for b in batches)
    return 1.0 - real / padded


def schedule_rate(encoder: OrtEncoder, batches: Sequence[Sequence[np.ndarray]]) -> float:
    """Rows per second of one timed pass over the schedule (after two warm-up batches)."""
    for b in batches[:2]:
        encoder.run_padded(b)
    started = time.perf_counter()
    for b in batches:
        encoder.run_padded(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def single_p50_ms(encoder: OrtEncoder, rows: Sequence[np.ndarray]) -> float:
    """Latency of one sequence alone, per text: the floor for the server at concurrency 1."""
    latencies = []
    for r in rows[:300]:
        started = time.perf_counter()
        encoder.run_padded([r])
        latencies.append(time.perf_counter() - started)
    return float(np.percentile(latencies, 50) * 1000)
