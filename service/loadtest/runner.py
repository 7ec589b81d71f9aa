"""Closed-loop and open-loop load (over gRPC or HTTP: senders.py), recording every
request's fate.

Closed loop: N clients, each sends its next request when the last one returns (measures
capacity, hides queueing). Open loop: requests arrive as a Poisson process at a target rate
whatever the server does, so queueing and overload show up honestly.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: float  # seconds since the run started
    latency: float  # seconds
    code: str  # gRPC status code name


Progress = Callable[[int], None]
# Sends one request with a timeout; the gRPC status code name of its answer (senders.py).
Send = Callable[[Any, float], Awaitable[str]]


async def _one(send: Send, request: Any, started: float, timeout: float) -> Outcome:
    sent = time.perf_counter()
    code = await send(request, timeout)
    return Outcome(sent - started, time.perf_counter() - sent, code)


def _until(requests: Sequence[Any], end: float) -> Iterator[Any]:
    """`requests` over and over until the clock passes `end` (checked before each send)."""
    for index in itertools.count():
        if time.perf_counter() >= end:
            return
        yield requests[index % len(requests)]


async def closed_loop(
    send: Send,
    requests: Sequence[Any],
    concurrency: int,
    timeout: float = 60.0,
    progress: Progress | None = None,
    duration: float | None = None,
) -> tuple[list[Outcome], float]:
    """`concurrency` clients, each sending its next request when the last one returns.

    duration None: every request is sent exactly once. Otherwise the clients cycle through
    `requests` until `duration` seconds have passed, then stop sending and let the requests in
    flight finish. Returns the outcomes and the wall seconds (tail included)."""
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    if duration is None:
        pending: Iterator[Any] = iter(requests)
    elif requests:
        pending = _until(requests, started + duration)
    else:
        pending = iter(())
    # One iterator shared by every client: each takes the next request when it is free.

    async def client() -> None:
        for request in pending:
            outcomes.append(await _one(send, request, started, timeout))
            if progress:
                progress(1)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


async def open_loop(
    send: Send,
    requests: Sequence[Any],
    rate: float,
    duration: float,
    timeout: float = 60.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[list[Outcome], float]:
    """Poisson arrivals at `rate`/s for `duration` s; waits for every request to finish.

    Returns the outcomes and the wall seconds: never less than `duration` (the arrival window
    is observed to its end even when the last arrival came early), plus the tail spent waiting
    for requests still in flight."""
    rng = random.Random(seed)
    tasks: list[asyncio.Task[Outcome]] = []
    started = time.perf_counter()
    next_at = rng.expovariate(rate)  # a Poisson process has no arrival pinned at t = 0
    index = 0
    while next_at < duration:
        delay = started + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = requests[index % len(requests)]
        index += 1
        task_ = asyncio.create_task(_one(send, request, started, timeout))
        if progress:
            task_.add_done_callback(lambda _: progress(1))
        tasks.append(task_)
        next_at += rng.expovariate(rate)
    outcomes = list(await asyncio.gather(*tasks))
    await asyncio.sleep(max(0.0, started + duration - time.perf_counter()))
    return outcomes, time.perf_counter() - started


def sending_window(outcomes: Sequence[Outcome], duration: float) -> float:
    """The span over which an open loop sent its requests: the arrival window, or longer
    when this client fell behind the schedule and sent its last request after the end."""
    return max([duration, *(o.sent for o in outcomes)])
