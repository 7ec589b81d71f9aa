"""Load scenarios against a real server: capacity, overload, drain under load.

Shared by tests/test_reliability.py (which asserts on them) and tests/reliability_report.py
(which writes docs/reliability.md with the figures they measure).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import psutil

from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.loadtest.report import Summary, summarize
from service.loadtest.runner import closed_loop, open_loop
from service.loadtest.senders import GrpcSender
from service.loadtest.workload import Workload
from tests.server_process import ServerProcess


def rss_mb(server: ServerProcess) -> float:
    return float(psutil.Process(server.process.pid).memory_info().rss / 2**20)


async def capacity(server: ServerProcess, task: str = "embed", requests: int = 160) -> Summary:
    """Closed loop, 16 clients: the rate the server sustains."""
    async with grpc.aio.insecure_channel(server.target) as channel:
        outcomes, seconds = await closed_loop(
            GrpcSender(channel, task, ()).send, Workload(task).requests(requests), 16
        )
    return summarize("capacity", outcomes, seconds, len(outcomes) / seconds)


@dataclass(frozen=True)
class Overload:
    capacity: Summary
    overload: Summary
    recovery: Summary
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float


async def overload(server: ServerProcess, factor: float = 3.0, seconds: float = 8.0) -> Overload:
    """Open loop at `factor` x capacity for `seconds`, then a light load to see recovery."""
    rss_before = rss_mb(server)
    sustained = await capacity(server)
    rate = factor * sustained.throughput
    peak = rss_before
    async with grpc.aio.insecure_channel(server.target) as channel:
        requests = Workload("embed", seed=1).requests(int(rate * seconds) + 1)
        load = asyncio.create_task(
            open_loop(GrpcSender(channel, "embed", ()).send, requests, rate, seconds, 30.0)
        )
        while not load.done():
            peak = max(peak, rss_mb(server))
            await asyncio.sleep(0.2)
        outcomes, wall = load.result()
        over = summarize(f"{factor:g}x capacity", outcomes, wall, len(outcomes) / seconds)
        light = Workload("embed", seed=2).requests(40)
        started = time.perf_counter()
        after, _ = await closed_loop(GrpcSender(channel, "embed", ()).send, light, 2)
        recovery = summarize("right after", after, time.perf_counter() - started, 0.0)
    return Overload(sustained, over, recovery, rss_before, peak, rss_mb(server))


@dataclass(frozen=True)
class Drain:
    accepted: int  # answered OK
    refused: int  # UNAVAILABLE before being accepted (shutting down, or port closed)
    lost: int  # anything else: accepted work that did not complete
    codes: dict[str, int]
    details: dict[str, str]  # one message per code other than OK
    exit_code: int | None
    exit_seconds: float


def _refusal(err: grpc.aio.AioRpcError) -> bool:
    details = (err.details() or "").lower()
    return err.code() == grpc.StatusCode.UNAVAILABLE and (
        "shutting down" in details or "connect" in details
    )


async def drain_under_load(
    server: ServerProcess, rate: float, seconds: float = 4.0, signal_at: float = 0.75
) -> Drain:
    """Steady load at `rate` for `seconds`, SIGTERM at `signal_at` of the way through;
    every request must end OK or refused, and the server must report nothing unfinished."""
    results: list[str] = []
    details: dict[str, str] = {}
    requests = Workload("embed", seed=3).requests(int(rate * seconds) + 1)

    async def one(stub: pb_grpc.TextInferenceStub, request: object) -> None:
        try:
            await stub.Embed(request, timeout=60)
            results.append("OK")
        except grpc.aio.AioRpcError as err:
            code = "REFUSED" if _refusal(err) else err.code().name
            results.append(code)
            details.setdefault(code, err.details() or "")

    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.TextInferenceStub(channel)
        tasks = []
        started = time.perf_counter()
        stopped_at = None
        for i, request in enumerate(requests):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if stopped_at is None and time.perf_counter() - started >= seconds * signal_at:
                server.process.send_signal(signal.SIGTERM)
                stopped_at = time.perf_counter()
            tasks.append(asyncio.create_task(one(stub, request)))
        await asyncio.gather(*tasks)
    exit_code = await asyncio.to_thread(server.process.wait, 60)
    exit_seconds = time.perf_counter() - (stopped_at or started)
    codes = Counter(results)
    unfinished = re.search(r"drained: (\d+) accepted request\(s\) left unfinished", server.log())
    server_lost = int(unfinished.group(1)) if unfinished else -1  # -1: never said
    return Drain(
        accepted=codes["OK"],
        refused=codes["REFUSED"],
        lost=sum(v for k, v in codes.items() if k not in {"OK", "REFUSED"}) + abs(server_lost),
        codes=dict(codes),
        details=details,
        exit_code=exit_code,
        exit_seconds=exit_seconds,
    )
