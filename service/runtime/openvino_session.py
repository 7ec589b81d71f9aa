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


class OpenVINOSession:
    """The part of onnxruntime.InferenceSession the engine uses, on OpenVINO's CPU plugin.
    One infer request: the engine runs one batch per session at a time."""

    def __init__(self, path: Path, precision: str, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": threads}
        compiled = core.compile_model(str(path), "CPU", config)
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
