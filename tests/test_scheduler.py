"""The scheduler around the queue: dispatch, deadlines, cancellation, the queue bound.

The engine here is a gated stand-in that echoes its input, so each test decides exactly
when a batch finishes; the real engine is exercised end to end in test_server.py.
"""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np
import pytest

from service.batching.scheduler import BatchingConfig, Scheduler
from service.errors import DeadlineExpired, LargerThanQueue, QueueFull, Unavailable
from service.metrics import Metrics


class GatedEngine:
    """Echoes input_ids as float [B, T, 1]; each batch waits until the test opens the gate."""

    def __init__(self, concurrency: int = 1, has_solo: bool = False) -> None:
        self.concurrency = concurrency
        self.has_solo = has_solo
        self.input_names = ["input_ids", "attention_mask"]
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[np.ndarray] = []
        self.solo: list[bool] = []  # per batch: whether it was run on the solo session

    def run(self, feeds: dict[str, np.ndarray], solo: bool = False) -> list[np.ndarray]:
        self.batches.append(feeds["input_ids"])
        self.solo.append(solo)
        assert self.gate.wait(10)
        mask = feeds["attention_mask"]
        assert (mask.sum(axis=1) > 0).all()
        return [feeds["input_ids"].astype(np.float32)[..., None]]


def make(engine: GatedEngine, **overrides: float) -> tuple[Scheduler, Metrics]:
    config = dict(
        max_batch_tokens=256, max_batch_size=16, max_queue_delay=0.002, max_queued_tokens=1000
    )
    config.update(overrides)
    metrics = Metrics()
    scheduler = Scheduler("m", engine, BatchingConfig(**config), 64, metrics)  # type: ignore[arg-type]
    return scheduler, metrics


def rows(*lengths: int, value: int = 5) -> list[np.ndarray]:
    return [np.full(n, value, dtype=np.int64) for n in lengths]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_results_come_back_in_row_order_with_padding_cut() -> None:
    scheduler, _ = make(GatedEngine())
    out = await scheduler.submit([np.arange(1, n + 1, dtype=np.int64) for n in (3, 9, 1)])
    assert [o[0].shape for o in out] == [(3, 1), (9, 1), (1, 1)]
    assert out[1][0][:, 0].tolist() == list(range(1, 10))
    await scheduler.close()


async def test_concurrent_requests_share_a_batch() -> None:
    engine = GatedEngine()
    scheduler, metrics = make(engine)
    engine.gate.clear()
    first = asyncio.create_task(scheduler.submit(rows(4)))
    await asyncio.sleep(0.05)  # the first batch is running and holds the only session
    waiting = [asyncio.create_task(scheduler.submit(rows(4 + i))) for i in range(6)]
    await asyncio.sleep(0.05)
    engine.gate.set()
    await asyncio.gather(first, *waiting)
    assert [b.shape[0] for b in engine.batches] == [1, 6]
    assert sample(metrics, "attnserve_batch_size_count", model="m") == 2
    await scheduler.close()


async def test_a_batch_alone_runs_solo_and_nothing_starts_beside_it() -> None:
    engine = GatedEngine(concurrency=2, has_solo=True)
    scheduler, _ = make(engine, max_batch_tokens=8)
    engine.gate.clear()
    lone = asyncio.create_task(scheduler.submit(rows(4)))
    await asyncio.sleep(0.05)
    assert engine.solo == [True]
    # Two full batches' worth arrives while the solo batch runs: it waits, although a
    # session of the pool is free, then both run side by side on the pool.
    later = [asyncio.create_task(scheduler.submit(rows(8))) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert len(engine.batches) == 1
    engine.gate.set()
    await asyncio.gather(lone, *later)
    assert engine.solo == [True, False, False]
    await scheduler.close()


async def test_a_lone_requests_batches_run_solo_one_after_another() -> None:
    # Rows too different in length for one batch: two batches, both on the solo session,
    # the second started when the first ends (not beside it on the pool).
    engine = GatedEngine(concurrency=2, has_solo=True)
    scheduler, _ = make(engine, padding_slack=0.125)
    engine.gate.clear()
    lone = asyncio.create_task(scheduler.submit(rows(4, 40)))
    await asyncio.sleep(0.05)
    assert engine.solo == [True]
    engine.gate.set()
    await lone
    assert engine.solo == [True, True]
    # Two requests waiting together behind a running batch: theirs share the pool.
    engine.gate.clear()
    running = asyncio.create_task(scheduler.submit(rows(4)))
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(scheduler.submit(rows(n))) for n in (4, 40)]
    await asyncio.sleep(0.05)
    engine.gate.set()
    await asyncio.gather(running, *waiting)
    assert engine.solo == [True, True, True, False, False]
    await scheduler.close()


async def test_queue_bound_refuses_at_once() -> None:
    engine = GatedEngine()
    scheduler, _ = make(engine, max_queued_tokens=100)
    engine.gate.clear()
    running = asyncio.create_task(scheduler.submit(rows(10)))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(scheduler.submit(rows(30, 30, 30)))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull, match="queue is full"):
        await scheduler.submit(rows(20))
    engine.gate.set()
    await asyncio.gather(running, queued)
    await scheduler.close()


async def test_a_request_larger_than_the_whole_queue_is_invalid_not_retryable() -> None:
    engine = GatedEngine()
    scheduler, _ = make(engine, max_queued_tokens=16)
    # Even on an idle queue: no retry could ever succeed, so it is not RESOURCE_EXHAUSTED.
    with pytest.raises(LargerThanQueue) as info:
        await scheduler.submit(rows(10, 10))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "20 tokens" in info.value.message and "--max-queued-tokens" in info.value.message
    assert "retry later" not in info.value.message
    assert len(await scheduler.submit(rows(16))) == 1  # exactly the bound still fits
    await scheduler.close()


async def test_deadline_drops_queued_rows_before_compute() -> None:
    engine = GatedEngine()
    scheduler, metrics = make(engine)
    engine.gate.clear()
    running = asyncio.create_task(scheduler.submit(rows(8)))
    await asyncio.sleep(0.05)
    loop_deadline = scheduler._clock() + 0.05
    with pytest.raises(DeadlineExpired):
        await scheduler.submit(rows(8, 8, 8, value=7), deadline=loop_deadline)
    engine.gate.set()
    await running
    await scheduler.close()
    assert all((b != 7).all() for b in engine.batches)  # never computed
    assert sample(metrics, "attnserve_dropped_rows_total", model="m", reason="deadline") == 3


async def test_cancelled_request_rows_are_dropped() -> None:
    engine = GatedEngine()
    scheduler, metrics = make(engine)
    engine.gate.clear()
    running = asyncio.create_task(scheduler.submit(rows(8)))
    await asyncio.sleep(0.05)
    doomed = asyncio.create_task(scheduler.submit(rows(8, 8, value=9)))
    await asyncio.sleep(0.01)
    doomed.cancel()
    await asyncio.sleep(0.01)
    engine.gate.set()
    await running
    await scheduler.close()
    assert all((b != 9).all() for b in engine.batches)
    assert sample(metrics, "attnserve_dropped_rows_total", model="m", reason="cancelled") == 2
    assert sample(metrics, "attnserve_queue_depth", model="m") == 0


async def test_lone_request_is_not_held_for_the_queue_delay() -> None:
    engine = GatedEngine()
    scheduler, _ = make(engine, max_queue_delay=5.0)
    await asyncio.wait_for(scheduler.submit(rows(5)), timeout=1.0)
    await scheduler.close()


async def test_closed_scheduler_refuses_work() -> None:
    scheduler, _ = make(GatedEngine())
    await scheduler.close()
    with pytest.raises(Unavailable):
        await scheduler.submit(rows(3))


async def test_engine_failure_fails_only_that_batch() -> None:
    class Broken(GatedEngine):
        def run(self, feeds: dict[str, np.ndarray], solo: bool = False) -> list[np.ndarray]:
            if (feeds["input_ids"] == 13).any():
                raise RuntimeError("boom")
            return super().run(feeds, solo)

    scheduler, _ = make(Broken())
    with pytest.raises(Unavailable, match="failed to run"):
        await scheduler.submit(rows(4, value=13))
    assert len(await scheduler.submit(rows(4))) == 1
    await scheduler.close()


async def test_only_batches_near_the_budget_measure_the_engine_rate() -> None:
    # A small batch's rate understates what full batches of queued work achieve: it must not
    # be what admission predicts waits from.
    scheduler, _ = make(GatedEngine(), max_batch_tokens=256)
    await scheduler.submit(rows(20))
    assert scheduler._tokens_per_second == 0.0
    await scheduler.submit(rows(*[16] * 10))  # one batch of 160 tokens: over half of 256
    assert scheduler._tokens_per_second > 0.0
    await scheduler.close()


async def test_overload_is_refused_by_predicted_wait() -> None:
    engine = GatedEngine()
    scheduler, _ = make(engine, max_queue_wait=0.05, max_queued_tokens=100_000)
    scheduler._tokens_per_second = 1000.0  # pin it: 1000 tokens/s, so 50 ms = 50 tokens
    engine.gate.clear()
    running = asyncio.create_task(scheduler.submit(rows(10)))
    await asyncio.sleep(0.05)
    admitted = asyncio.create_task(scheduler.submit(rows(40)))  # 40 queued: ~40 ms
    await asyncio.sleep(0)
    queued_small = asyncio.create_task(scheduler.submit(rows(15)))  # 40 ms ahead: admitted
    await asyncio.sleep(0)
    with pytest.raises(QueueFull, match="overloaded"):
        await scheduler.submit(rows(1))  # 55 ms of work ahead: over the 50 ms limit
    engine.gate.set()
    await asyncio.gather(running, admitted, queued_small)
    await scheduler.close()
