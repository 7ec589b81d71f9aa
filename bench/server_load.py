"""End-to-end load on the real server over gRPC on loopback: closed loop, N clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from harness.server import ROOT, ServerProcess
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc

LOGS = ROOT / "build" / "bench"


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_batch_size: float
    padding_ratio: float
    errors: int
    # The server process's CPU time (all its threads, user + system) per request, and the
    # part of it inside its engines (attnserve_engine_cpu_seconds_total), from the same
    # scrapes: their difference is what the request path around the engine costs.
    cpu_ms_per_request: float
    engine_cpu_ms_per_request: float
    outside_engine_cpu_ms_per_request: float


class Server(ServerProcess):
    """The bench's server: the server's own thread defaults, warnings only, log in build/."""

    def __init__(self, models: Path, flags: list[str]) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        super().__init__(
            models,
            "--log-level", "WARNING", *flags,
            log_path=LOGS / f"server-{len(list(LOGS.iterdir()))}.log",
            intra_op_threads=None,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far, every thread, user and system."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def batch_stats(self) -> dict[str, float]:
        """Batches, rows, computed (padded) tokens, real tokens, the process's CPU seconds
        and its engines' so far, from one scrape of /metrics."""
        text = self.scrape()
        names = {
            "attnserve_batch_size_count": "batches",
            "attnserve_batch_size_sum": "rows",
            "attnserve_batch_tokens_sum": "padded",
            "attnserve_input_tokens_total": "real",
            "process_cpu_seconds_total": "cpu",
            "attnserve_engine_cpu_seconds_total": "engine_cpu",
        }
        values = dict.fromkeys(names.values(), 0.0)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in names:
                    values[names[s.name]] += s.value
        return values


# One request per text for each task the bench drives: (method name, request builder).
QUESTION = "What does it say about the main subject?"
CALLS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "embed": ("Embed", lambda text, model: pb.EmbedRequest(texts=[text], model=model)),
    "answer": (
        "Answer",
        lambda text, model: pb.AnswerRequest(question=QUESTION, context=text, model=model),
    ),
    "summarize": (
        "Summarize",
        lambda text, model: pb.SummarizeRequest(text=text, model=model, max_sentences=2),
    ),
}


async def _closed_loop(
    target: str, model: str, texts: list[str], concurrency: int, task: str = "embed"
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    method, request = CALLS[task]
    async with grpc.aio.insecure_channel(target) as channel:
        call = getattr(pb_grpc.TextInferenceStub(channel), method)
        await call(request(texts[0], model), timeout=30)

        async def client() -> None:
            nonlocal next_index, errors
            while next_index < len(texts):
                text = texts[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    await call(request(text, model), timeout=60)
                    latencies.append(time.perf_counter() - started)
                except grpc.aio.AioRpcError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


def run_interleaved(
    server: Server, model: str, texts: list[str], bare: Callable[[int], object]
) -> tuple[LoadResult, LoadResult, float]:
    """Concurrency 1 three ways, text by text in turn: `bare(i)` (the engine in process), the
    asyncio stub, the blocking stub. Interleaving keeps this VM's drift out of the
    differences. Returns both clients' results and the bare p50 in ms."""
    before = server.batch_stats()
    bare_s: list[float] = []
    aio_s: list[float] = []
    blocking_s: list[float] = []

    async def loop() -> None:
        async with grpc.aio.insecure_channel(server.target) as aio_channel:
            aio_stub = pb_grpc.TextInferenceStub(aio_channel)
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.TextInferenceStub(channel)
                warm = pb.EmbedRequest(texts=["warm up"], model=model)
                await aio_stub.Embed(warm, timeout=30)
                stub.Embed(warm, timeout=30)
                for i, text in enumerate(texts):
                    request = pb.EmbedRequest(texts=[text], model=model)
                    started = time.perf_counter()
                    bare(i)
                    bare_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    await aio_stub.Embed(request, timeout=60)
                    aio_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    stub.Embed(request, timeout=60)
                    blocking_s.append(time.perf_counter() - started)

    asyncio.run(loop())
    # Each client's "seconds" is the sum of its own calls: what one client alone would take.
    # The batch statistics cover both clients' requests (all single rows at concurrency 1).
    n = len(texts)
    aio = _result(server, before, aio_s, 0, sum(aio_s), 1, n, served=2 * n)
    blocking = _result(server, before, blocking_s, 0, sum(blocking_s), 1, n, served=2 * n)
    return aio, blocking, float(np.percentile(bare_s, 50) * 1000)


def run_alone(
    server: Server,
    model: str,
    texts: list[str],
    task: str = "embed",
    bare: Callable[[int], float] | None = None,
) -> tuple[LoadResult, float]:
    """One request at a time from a blocking stub: a lone client, without an event loop of
    its own on the same cores. With `bare`, request i is preceded by `bare(i)` (the same
    work on the bare engine, in seconds), so that the VM's drift stays out of the
    difference; returns the result and bare's p50 in ms (0 without it)."""
    before = server.batch_stats()
    method, request = CALLS[task]
    latencies, bare_s = [], []
    with grpc.insecure_channel(server.target) as channel:
        call = getattr(pb_grpc.TextInferenceStub(channel), method)
        call(request(texts[0], model), timeout=30)
        for i, text in enumerate(texts):
            if bare is not None:
                bare_s.append(bare(i))
            started = time.perf_counter()
            call(request(text, model), timeout=60)
            latencies.append(time.perf_counter() - started)
    result = _result(server, before, latencies, 0, sum(latencies), 1, len(texts), len(texts) + 1)
    return result, float(np.percentile(bare_s, 50) * 1000) if bare_s else 0.0


def run_load(
    server: Server, model: str, texts: list[str], concurrency: int, task: str = "embed"
) -> LoadResult:
    """Closed loop, one request per text of `task` (a CALLS key), `concurrency` clients."""
    before = server.batch_stats()
    latencies, errors, seconds = asyncio.run(
        _closed_loop(server.target, model, texts, concurrency, task)
    )
    return _result(server, before, latencies, errors, seconds, concurrency, len(texts))


def _result(
    server: Server,
    before: dict[str, float],
    latencies: list[float],
    errors: int,
    seconds: float,
    concurrency: int,
    requests: int,
    served: int | None = None,
) -> LoadResult:
    """`served`: the requests the server saw since `before` (default `requests`)."""
    after = server.batch_stats()
    delta = {k: after[k] - before[k] for k in after}
    ms = np.array(latencies) * 1000
    # Over every request the server saw since `before` (both clients when interleaved).
    cpu, engine = (delta[k] * 1000 / (served or requests) for k in ("cpu", "engine_cpu"))
    return LoadResult(
        concurrency=concurrency,
        requests=requests,
        seconds=seconds,
        throughput=len(latencies) / seconds,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_batch_size=delta["rows"] / max(delta["batches"], 1),
        padding_ratio=1.0 - delta["real"] / max(delta["padded"], 1),
        errors=errors,
        cpu_ms_per_request=cpu,
        engine_cpu_ms_per_request=engine,
        outside_engine_cpu_ms_per_request=cpu - engine,
    )
