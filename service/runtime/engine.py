"""onnxruntime sessions for one model: provider choice with fallback, threads, warm-up.

The engine is synchronous; the scheduler calls it from worker threads (onnxruntime
releases the GIL while it computes), one batch per session at a time.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Mapping, Sequence
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


def session_options(threads: int) -> ort.SessionOptions:
    """Options for one session; the bench builds its bare-engine references with these too."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The exporter already fused the graph; ORT's own passes on top are cheap and safe.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Workers spin between the operators of a run (a sleeping worker's wake-up costs tens of
    # microseconds in a VM, many times per run: a lone request ~0.5 ms faster), and stop
    # spinning when the run ends: left alone they burn a core for ~50 ms after every run,
    # which the gRPC event loop, the other sessions and a pod's CPU quota all pay for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class Engine:
    """onnxruntime sessions over the same ONNX file, as many as batches may run at once.

    With several sessions on a CPU, each gets an equal share of the threads, so that
    batches side by side do not fight over cores; and one more session with all the
    threads (the solo session) runs a batch that has the engine to itself, so that a lone
    request is as fast as the machine allows (measured in docs/benchmarks.md). The
    scheduler decides when a batch runs solo, and runs nothing beside a solo batch.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        providers: Sequence[str],
        threads: int,
        sessions: Callable[[str], int],
    ) -> None:
        """`sessions` gives the number of sessions for the provider that will run them."""
        available = set(ort.get_available_providers())
        wanted = [ORT_PROVIDERS[p] for p in providers]
        usable = [p for p in wanted if p in available]
        if not usable:
            raise EngineError(
                f"none of the providers {list(providers)} is available "
                f"(this onnxruntime has {sorted(available)})"
            )
        count = sessions(SHORT_NAMES[usable[0]])
        share = max(1, threads // count)

        def load(session_threads: int) -> ort.InferenceSession:
            try:
                return ort.InferenceSession(
                    str(path), sess_options=session_options(session_threads), providers=usable
                )
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise EngineError(f"onnxruntime cannot load {path.name}: {exc}") from exc

        self._sessions = [load(share) for _ in range(count)]
        self._solo = load(threads) if share < threads else None
        # What really runs: onnxruntime-gpu silently drops CUDA when its libraries are missing.
        active = self._sessions[0].get_providers()
        self.providers = [SHORT_NAMES.get(p, p) for p in active]
        self.provider = self.providers[0]
        skipped = [SHORT_NAMES[p] for p in wanted if p not in active]
        shape = f"{count} session(s) x {share} thread(s)"
        if self._solo is not None:
            shape += f", {threads} threads for a batch alone"
        log.info(
            "model %s runs on %s (%s)%s",
            name,
            active[0],
            shape,
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

    @property
    def has_solo(self) -> bool:
        return self._solo is not None

    def outputs(self) -> list[ort.NodeArg]:
        return list(self._sessions[0].get_outputs())

    def run(self, feeds: Mapping[str, np.ndarray], solo: bool = False) -> list[np.ndarray]:
        """Run one batch (blocks; call from a worker thread): on the solo session when
        `solo` and there is one, else on a free session of the pool."""
        if solo and self._solo is not None:
            return list(self._solo.run(self.output_names, dict(feeds)))
        session = self._free.get()
        try:
            return list(session.run(self.output_names, dict(feeds)))
        finally:
            self._free.put(session)
