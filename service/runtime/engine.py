"""onnxruntime sessions for one model: provider choice with fallback, threads, warm-up.

The engine is synchronous; the scheduler calls it from worker threads (onnxruntime
releases the GIL while it computes), one batch per session at a time.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeAlias

import numpy as np
import onnxruntime as ort

from service.runtime import openvino_session
from service.runtime.engine_cpu import EngineCpu
from service.runtime.machine import ORT_PROVIDERS, SHORT_NAMES, available_providers
from service.runtime.openvino_session import OpenVINOSession, Tensor
from service.runtime.precision import GPU_PROVIDERS, Route
from service.runtime.split import split_run

log = logging.getLogger(__name__)


# An onnxruntime session, or OpenVINO's in the same shape (openvino_session.py).
Session: TypeAlias = ort.InferenceSession | OpenVINOSession


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
        route: Route,
        threads: int,
        sessions: Callable[[str], int],
    ) -> None:
        """`sessions` gives the number of sessions for the provider that will run them.
        EngineError when the graph does not load, or when its sessions run on none of the
        route's `fast_on` providers (a silent fallback that auto moves on from)."""
        available = available_providers()
        wanted = [p for p in route.providers if p in available]
        if not wanted:
            raise EngineError(
                f"none of the providers {list(route.providers)} is available "
                f"(this machine has {sorted(available)})"
            )
        count = sessions(wanted[0])
        share = max(1, threads // count)
        self.cpu = EngineCpu()

        # OpenVINO computes on one pool of threads for the whole process (oneTBB's), not on
        # threads of its own per session: they are counted by run (engine_cpu.py).
        shared = openvino_session.THREADS if wanted[0] == "openvino" else None

        def load(session_threads: int) -> Session:
            return self.cpu.starting_threads(lambda: open_session(session_threads), shared)

        def open_session(session_threads: int) -> Session:
            try:
                if wanted[0] == "openvino":  # OpenVINO's own runtime, not an ORT provider
                    return OpenVINOSession(path, route.precision, session_threads)
                providers = [
                    (ORT_PROVIDERS[p], dict(route.options.get(p, {})))
                    for p in wanted
                    if p != "openvino"
                ]
                return ort.InferenceSession(
                    str(path), sess_options=session_options(session_threads), providers=providers
                )
            except Exception as exc:  # onnxruntime and OpenVINO raise their own untyped errors
                raise EngineError(f"cannot load {path.name} on {wanted[0]}: {exc}") from exc

        first = load(share)
        # What really runs: onnxruntime-gpu silently drops CUDA when its libraries are
        # missing (OpenVINO's bf16 that compiled f32 is refused by OpenVINOSession itself).
        self.providers = [SHORT_NAMES.get(p, p) for p in first.get_providers()]
        self.provider = self.providers[0]
        if route.fast_on and self.provider not in route.fast_on:
            raise EngineError(
                f"{route.precision} on {', '.join(route.fast_on)} did not load here: the "
                f"session fell back to {self.provider}"
            )
        self.precision = route.precision
        self._sessions = [first, *(load(share) for _ in range(count - 1))]
        self._solo = load(threads) if share < threads else None
        # On a GPU, inputs go to the device once per batch and the outputs stay there until
        # the run ends (IO binding): no host copies between the graph's nodes.
        self._device = "cuda" if self.provider in GPU_PROVIDERS else ""
        skipped = [p for p in route.providers if p not in self.providers]
        shape = f"{count} session(s) x {share} thread(s)"
        if self._solo is not None:
            shape += f", {threads} threads for a batch alone"
        log.info(
            "model %s runs %s on %s (%s)%s",
            name,
            route.precision,
            ORT_PROVIDERS.get(self.provider, self.provider),
            shape,
            f"; not available here: {', '.join(skipped)}" if skipped else "",
        )
        self.input_names = [i.name for i in first.get_inputs()]
        self.output_names = [o.name for o in first.get_outputs()]
        self._short: tuple[Engine, int] | None = None
        self._free: queue.SimpleQueue[Session] = queue.SimpleQueue()
        for session in self._sessions:
            self._free.put(session)

    @property
    def concurrency(self) -> int:
        return len(self._sessions)

    @property
    def has_solo(self) -> bool:
        return self._solo is not None

    def vocab_rows(self) -> int | None:
        """Rows of the graph's word-embedding table where its runtime reads them from the graph
        (OpenVINO, whose Gather does not raise for an id past the table); None on onnxruntime,
        whose Gather raises, so that a run on the last id of a vocabulary shows whether it fits."""
        first = self._sessions[0]
        return first.vocab_rows() if isinstance(first, OpenVINOSession) else None

    def outputs(self) -> list[ort.NodeArg | Tensor]:
        return list(self._sessions[0].get_outputs())

    def send_short_rows(self, to: Engine, up_to: int) -> None:
        """From now on rows of at most `up_to` tokens run on `to` instead (split.py)."""
        self._short = (to, up_to)

    def run(self, feeds: Mapping[str, np.ndarray], solo: bool = False) -> list[np.ndarray]:
        """Run one batch (blocks; call from a worker thread): on the solo session when
        `solo` and there is one, else on a free session of the pool."""
        if self._short is None:
            return self._run_here(feeds, solo)
        other, up_to = self._short
        return split_run(
            feeds,
            up_to,
            lambda rows: other.run(rows, solo),
            lambda rows: self._run_here(rows, solo),
        )

    def run_into(
        self, feeds: Mapping[str, np.ndarray], into: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run one batch with the outputs named in `into` written into those arrays (an input's
        own array for an in-place update); returns every output, in graph order."""
        session = self._free.get()
        try:
            if not isinstance(session, ort.InferenceSession):
                raise EngineError(f"{session.get_providers()[0]} cannot write outputs in place")
            return self.cpu.running(lambda: run_in_place(session, feeds, into, self.output_names))
        finally:
            self._free.put(session)

    def _run_here(self, feeds: Mapping[str, np.ndarray], solo: bool) -> list[np.ndarray]:
        if solo and self._solo is not None:
            return self._run(self._solo, feeds)
        session = self._free.get()
        try:
            return self._run(session, feeds)
        finally:
            self._free.put(session)

    def _run(self, session: Session, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        def run() -> list[np.ndarray]:
            if not isinstance(session, ort.InferenceSession) or not self._device:
                return list(session.run(self.output_names, dict(feeds)))
            return run_bound(session, feeds, self.output_names, self._device)

        return self.cpu.running(run)


def run_in_place(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    into: Mapping[str, np.ndarray],
    output_names: list[str],
) -> list[np.ndarray]:
    """One run through IO binding on host memory: inputs and the outputs in `into` are bound
    to the numpy arrays themselves (C-contiguous, so onnxruntime shares their memory), so an
    output bound to its input's array is updated in place (TensorScatter does no copy when
    the two buffers are one). On a GPU provider onnxruntime copies them across both ways."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, _shared(array))
    for name in output_names:
        if name in into:
            binding.bind_ortvalue_output(name, _shared(into[name]))
        else:
            binding.bind_output(name)
    session.run_with_iobinding(binding)
    return [
        into[name] if name in into else value.numpy()
        for name, value in zip(output_names, binding.get_outputs(), strict=True)
    ]


def _shared(array: np.ndarray) -> ort.OrtValue:
    if not array.flags.c_contiguous:
        raise ValueError("an array bound in place must be C-contiguous")
    return ort.OrtValue.ortvalue_from_numpy(array)


def run_bound(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    output_names: list[str],
    device: str,
) -> list[np.ndarray]:
    """One run through IO binding: each input copied to `device` once, the outputs left
    there by the graph and copied back once at the end."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    for name in output_names:
        binding.bind_output(name, device)
    session.run_with_iobinding(binding)
    return list(binding.copy_outputs_to_cpu())
