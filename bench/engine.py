"""Bare-engine measurements: PyTorch eager vs onnxruntime fp32/int8, the CPU's GEMM rate in
each precision, and schedules (one at a time, arrival-order batches, length-sorted under a
token budget)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

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


# 1024^3 GEMM per precision: (op, A's type, B's type, C's type). int8 is dynamic int8's
# kernel (MatMulInteger: activations uint8, weights int8, int32 sums); bf16 is the fp32 graph
# compiled by OpenVINO in bf16, as the bf16 variant runs.
GEMM_N = 1024
GEMM_OPS = {
    "fp32": ("MatMul", "FLOAT", "FLOAT", "FLOAT"),
    "bf16": ("MatMul", "FLOAT", "FLOAT", "FLOAT"),
    "fp16": ("MatMul", "FLOAT16", "FLOAT16", "FLOAT16"),
    "int8": ("MatMulInteger", "UINT8", "INT8", "INT32"),
}


def gemm_graph(precision: str) -> bytes:
    """A one-node ONNX graph c = a @ b in `precision`, serialized."""
    from onnx import TensorProto, helper

    n = GEMM_N
    op, a_type, b_type, c_type = GEMM_OPS[precision]
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", getattr(TensorProto, a_type), [n, n]),
            helper.make_tensor_value_info("b", getattr(TensorProto, b_type), [n, n]),
        ],
        [helper.make_tensor_value_info("c", getattr(TensorProto, c_type), [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    return bytes(model.SerializeToString())


def gemm_session_gflops(session: Any, precision: str) -> float:
    """GFLOP/s of `session` (anything with onnxruntime's `run`) on gemm_graph(precision)."""
    n = GEMM_N
    rng = np.random.default_rng(0)
    if GEMM_OPS[precision][0] == "MatMulInteger":
        a: np.ndarray = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b: np.ndarray = rng.integers(-127, 128, (n, n), dtype=np.int8)
    else:
        dtype = np.float16 if precision == "fp16" else np.float32
        a = b = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    per_second = rate(lambda: session.run(None, {"a": a, "b": b}), 1)
    return per_second * 2 * n**3 / 1e9


def gemm_gflops(threads: int, precision: str = "fp32") -> float:
    """This CPU's GEMM rate in `precision` through onnxruntime's CPU provider (the kernels
    the model uses)."""
    session = ort.InferenceSession(
        gemm_graph(precision), session_options(threads), providers=["CPUExecutionProvider"]
    )
    return gemm_session_gflops(session, precision)


def encoder_flops_per_token(hidden: int, layers: int, length: int) -> float:
    """Multiply-adds x2 of a BERT layer stack per token: projections, FFN, attention."""
    projections = 4 * hidden * hidden  # Q, K, V, output
    ffn = 2 * hidden * 4 * hidden
    attention = 2 * length * hidden  # QK^T and AV
    return 2.0 * layers * (projections + ffn + attention)


class Encoder(Protocol):
    def run_padded(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def padded_feeds(rows: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The graph's inputs for `rows` padded to the longest, as the server feeds them."""
    length = max(len(r) for r in rows)
    ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: feeds[n] for n in names}


class OrtEncoder:
    def __init__(self, path: Path, threads: int) -> None:
        self.session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.names = [i.name for i in self.session.get_inputs()]

    def run_padded(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, padded_feeds(rows, self.names)))


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


def schedule_rate(encoder: Encoder, batches: Sequence[Sequence[np.ndarray]]) -> float:
    """Rows per second of one timed pass over the schedule (after two warm-up batches)."""
    for b in batches[:2]:
        encoder.run_padded(b)
    started = time.perf_counter()
    for b in batches:
        encoder.run_padded(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def interleaved_rates(
    encoders: Mapping[str, Encoder], batches: Sequence[Sequence[np.ndarray]], chunks: int = 8
) -> dict[str, float]:
    """Rows per second of each encoder over the same schedule, side by side: the schedule
    cut into `chunks` runs of consecutive batches, each run on every encoder in turn (the
    order rotating), so that this VM's drift over the minutes falls on all of them alike.
    Each encoder's time is the sum of its own runs, after two warm-up batches."""
    names = list(encoders)
    for name in names:
        for b in batches[:2]:
            encoders[name].run_padded(b)
    seconds = dict.fromkeys(names, 0.0)
    size = -(-len(batches) // chunks)
    for k, start in enumerate(range(0, len(batches), size)):
        part = batches[start : start + size]
        for name in names[k % len(names) :] + names[: k % len(names)]:
            started = time.perf_counter()
            for b in part:
                encoders[name].run_padded(b)
            seconds[name] += time.perf_counter() - started
    rows = sum(len(b) for b in batches)
    return {name: rows / seconds[name] for name in names}


def single_p50_ms(encoder: Encoder, rows: Sequence[np.ndarray]) -> float:
    """Latency of one sequence alone, per text: the floor for the server at concurrency 1."""
    latencies = []
    for r in rows[:300]:
        started = time.perf_counter()
        encoder.run_padded([r])
        latencies.append(time.perf_counter() - started)
    return float(np.percentile(latencies, 50) * 1000)
