"""How fast one request can generate in fp32 on this machine, whatever the engine.

A decoder step at batch 1 reads every weight of its matrix products once and does two
floating-point operations per weight read: it is bound by how fast memory streams, not by
the arithmetic. So one request's tokens/s is at most the machine's read bandwidth through a
batch-1 matrix product over the fp32 weight bytes one step reads. Both are measured here, in
the same run as the figures they bound:

- bandwidth: onnxruntime MatMul at batch 1 over a chain of weights 10x the last-level cache
  (so none stays cached), on the bench's threads; median of the runs;
- bytes: the fp32 initializers feeding the step graph's MatMul and Gemm nodes, the LM head
  included (a tied one through its Transpose; the embedding lookup reads one row).

A model whose weights are not much larger than the cache (t5-small's 150 MB beside a 32 MB
L3) can step a little faster than this bound, from what stays cached between steps.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from service.runtime.engine import session_options

MATRIX_OPS = {"MatMul", "Gemm", "FusedMatMul"}
CHAIN = (768, 3072, 40)  # K, N, matrices: 377 MB of fp32 weights
RUNS = 15


def matmul_bandwidth(threads: int) -> float:
    """Bytes per second streamed through a chain of batch-1 MatMuls."""
    k, n, count = CHAIN
    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "x"
    for i in range(count):
        weight = (rng.standard_normal((k, n), dtype=np.float32) * 0.01).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"y{i}"]))
        # The next product's input: the first k outputs (a data dependency, so no overlap).
        nodes.append(helper.make_node("Slice", [f"y{i}", "zero", "k", "axis"], [f"x{i}"]))
        previous = f"x{i}"
    weights += [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([k], np.int64), "k"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    session = ort.InferenceSession(
        model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
    )
    feed = {"x": np.ones((1, k), np.float32)}
    for _ in range(3):
        session.run(None, feed)
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - started)
    return k * n * 4 * count / statistics.median(seconds)


def step_weight_bytes(graph: Path) -> int:
    """fp32 bytes of the weights the step graph's matrix products read."""
    model = onnx.load(str(graph))
    initializers = {init.name: init for init in model.graph.initializer}
    # A tied LM head reads the embedding table through a Transpose (or an Identity).
    through = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type in ("Transpose", "Identity") and node.input[0] in initializers
    }
    read: set[str] = set()
    for node in model.graph.node:
        if node.op_type in MATRIX_OPS:
            names = (through.get(name, name) for name in node.input)
            read.update(name for name in names if name in initializers)
    return sum(
        int(np.prod(initializers[name].dims)) * 4
        for name in read
        if initializers[name].data_type == TensorProto.FLOAT
    )
