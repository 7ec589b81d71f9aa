"""onnxruntime sessions for one model: provider choice with fallback, threads, warm-up.

The engine is synchronous; the scheduler calls it from worker threads (onnxruntime
releases the GIL while it computes), one batch per session at a time.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

ORT_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
SHORT_NAMES = {full: short for short, full in ORT_PROVIDERS.items()}


class EngineError(RuntimeError):
    """The model cannot be loaded or run; the message says why."""


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The exporter already fused the graph; ORT's own passes on top are cheap and safe.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning workers burn a core while idle, which starves the gRPC event loop on small
    # machines; the cost is a few microseconds of wake-up per batch.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class Engine:
    """One or more onnxruntime sessions over the same ONNX file."""

    def __init__(
        self, name: str, path: Path, providers: Sequence[str], threads: int, sessions: int
    ) -> None:
        available = set(ort.get_available_providers())
        wanted = [ORT_PROVIDERS[p] for p in providers]
        usable = [p for p in wanted if p in available]
        if not usable:
            raise EngineError(
                f"none of the providers {list(providers)} is available "
                f"(this onnxruntime has {sorted(available)})"
            )
        options = _session_options(threads)
        try:
            self._sessions = [
                ort.InferenceSession(str(path), sess_options=options, providers=usable)
                for _ in range(sessions)
            ]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"onnxruntime cannot load {path.name}: {exc}") from exc
        # What really runs: onnxruntime-gpu silently drops CUDA when its libraries are missing.
        active = self._sessions[0].get_providers()
        self.providers = [SHORT_NAMES.get(p, p) for p in active]
        self.provider = self.providers[0]
        skipped = [SHORT_NAMES[p] for p in wanted if p not in active]
        log.info(
            "model %s runs on %s (%d session(s) x %d threads)%s",
            name,
            active[0],
            sessions,
            threads,
            f"; not available here: {', '.join(skipped)}" if skipped else "",
        )
        first = self._sessions[0]
        self.input_names = [i.name for i in first.get_inputs()]
        self.output_names = [o.name for o in first.get_outputs()]
        self._free: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for session in self._sessions:
            self._free.put(session)

    @property
    def concurrency(self) -> int:
        return len(self._sessions)

    def inputs(self) -> list[ort.NodeArg]:
        return list(self._sessions[0].get_inputs())

    def outputs(self) -> list[ort.NodeArg]:
        return list(self._sessions[0].get_outputs())

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch on a free session (blocks; call from a worker thread)."""
        session = self._free.get()
        try:
            return list(session.run(self.output_names, dict(feeds)))
        finally:
            self._free.put(session)
