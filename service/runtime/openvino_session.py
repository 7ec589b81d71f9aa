"""bf16 on CPUs through OpenVINO's own runtime (the `openvino` package, beside onnxruntime).

Why not onnxruntime's OpenVINO provider: `onnxruntime-openvino` replaces onnxruntime and
lags it (1.24.1 against 1.31.1), and its transformer optimizer fuses no attention in
today's exports (0 of 6 layers: the export fails on it), so it cannot also be the build
that exports. The `openvino` package coexists with onnxruntime in one process, reads the
fused graph (com.microsoft Attention, SkipLayerNormalization, ...) itself, and matches
onnxruntime's fp32 within 4e-6 (docs/precision.md).

OpenVINO accepts a bf16 hint on any CPU and quietly compiles f32 where the CPU has no bf16
units; the compiled model's own INFERENCE_PRECISION_HINT says what it really runs, and a
session whose compiled precision is not the one asked for is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.runtime.engine_cpu import SharedThreads

NAME = "OpenVINO"  # what get_providers() reports, as onnxruntime names its providers
HINTS = {"bf16": "bf16", "fp32": "f32"}
# The threads OpenVINO computes on: oneTBB's workers, one pool for the whole process, started
# by the first session that compiles with more than one thread and used by every later one
# (engine_cpu.py counts their time by run). Sessions are created under this name.
THREADS = SharedThreads(b"attn-openvino")


class PrecisionNotCompiled(RuntimeError):
    """OpenVINO compiled the model in another precision than the one asked for."""


# OpenVINO's element types as onnxruntime names them (NodeArg.type), for the graphs served.
ORT_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)",
             "i32": "tensor(int32)"}  # fmt: skip
NUMPY_TYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32}


@dataclass(frozen=True)
class Tensor:
    """A graph input or output as onnxruntime's NodeArg describes it: name, type, and shape
    with a dynamic dimension as a name (None here), as KServe's metadata reads it."""

    name: str
    type: str
    shape: list[int | None]

    @classmethod
    def of(cls, port: Any) -> Tensor:
        dims = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        element = port.get_element_type().to_string()
        return cls(port.any_name, ORT_TYPES.get(element, element), dims)


def available() -> bool:
    """Whether the openvino package is installed (without importing it: that is slow)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


# Nodes that carry input_ids to the embedding's Gather unchanged in value (the ONNX frontend
# converts them to i32 for the Gather it makes of com.microsoft EmbedLayerNormalization).
_PASS_THROUGH = {"Convert", "Reshape", "Squeeze", "Unsqueeze"}


def embedding_rows(model: Any, ids: str = "input_ids") -> int | None:
    """The static row count of the table that the `ids` parameter indexes: the data input of
    every Gather on axis 0 whose indices are `ids` (through _PASS_THROUGH nodes), the smallest
    where there are several; None where there is no such Gather or its rows are dynamic."""
    starts = [p.output(0) for p in model.get_parameters() if ids in p.output(0).get_names()]
    rows: list[int] = []
    seen: set[str] = set()
    while starts:
        port = starts.pop()
        for target in port.get_target_inputs():
            node = target.get_node()
            kind = node.get_type_name()
            if node.get_name() in seen:  # get_name() is unique in a model, friendly names not
                continue
            seen.add(node.get_name())
            if kind in _PASS_THROUGH and target.get_index() == 0:
                starts.append(node.output(0))
            elif kind == "Gather" and target.get_index() == 1:
                table = node.input_value(0).get_partial_shape()
                if table.rank.is_dynamic or _axis(node, table.rank.get_length()) != 0:
                    continue
                if table[0].is_static:
                    rows.append(table[0].get_length())
    return min(rows) if rows else None


def _axis(gather: Any, rank: int) -> int | None:
    """A Gather's axis (a negative one counted from the end of its data's `rank`) where it
    is a constant, else None."""
    axis = gather.input_value(2).get_node()
    if axis.get_type_name() != "Constant" or rank < 1:
        return None
    values = axis.get_data().reshape(-1)
    return int(values[0]) % rank if values.size == 1 else None


class OpenVINOSession:
    """The part of onnxruntime.InferenceSession the engine uses, on OpenVINO's CPU plugin.
    One infer request: the engine runs one batch per session at a time."""

    def __init__(self, path: Path, precision: str, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": threads}
        model = core.read_model(str(path))
        # Read from the graph as the ONNX frontend made it, before the CPU plugin's passes.
        self._vocab_rows = embedding_rows(model)
        compiled = core.compile_model(model, "CPU", config)
        del model  # the compiled model holds its own weights
        # An ov.Type: its to_string() is "bf16" or "f32", the names HINTS uses.
        self.compiled_precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if self.compiled_precision != HINTS[precision]:
            capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            raise PrecisionNotCompiled(
                f"OpenVINO compiled {self.compiled_precision} where {precision} was asked for "
                f"(its CPU capabilities: {capabilities})"
            )
        self._inputs = [Tensor.of(port) for port in compiled.inputs]
        self._outputs = [Tensor.of(port) for port in compiled.outputs]
        self._request = compiled.create_infer_request()
        self._warm_up(compiled.inputs)

    def _warm_up(self, ports: Any) -> None:
        """One small run now, so that the threads the first run needs are started here,
        under the name the session is created with (THREADS), not by whichever thread runs
        it first. Ones (a valid token, attended, segment 1) and 8 for each dynamic dimension."""
        feeds = {}
        for port in ports:
            dims = [d.get_length() if d.is_static else 8 for d in port.get_partial_shape()]
            element = port.get_element_type().to_string()
            if element not in NUMPY_TYPES:
                return  # a graph this server does not send to OpenVINO: its first run starts them
            feeds[port.any_name] = np.ones(dims, NUMPY_TYPES[element])
        self._request.infer(feeds)

    def vocab_rows(self) -> int | None:
        """Rows of the graph's word-embedding table, None where the graph does not say.
        OpenVINO's Gather returns zeros for an index past its table rather than raising as
        onnxruntime's does, so a tokenizer's ids are checked against this number instead."""
        return self._vocab_rows

    def get_inputs(self) -> list[Tensor]:
        return list(self._inputs)

    def get_outputs(self) -> list[Tensor]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [NAME]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        results = self._request.infer(dict(feeds))
        names = output_names or [t.name for t in self._outputs]
        # The request reuses its output buffers on the next run: copy them out.
        return [np.array(results[name], copy=True) for name in names]
