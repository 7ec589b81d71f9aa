"""One scheduler per model: admits requests' rows, cuts batches, runs them on the engine.

The queue's state is owned by the event loop; the rest of the server talks to it through
``submit`` only. Batches run on worker threads (onnxruntime releases the GIL), at most one
per session, plus one prepared ahead when the queue already holds a full batch, so the
engine never waits for Python between batches under load.

Dispatch rule: with an idle engine a batch starts at once (a lone request is not held);
while a batch runs, the next one starts when a session frees, when the queue fills the
token budget, or when its oldest row has waited ``max_queue_delay``. A batch cut on an idle
engine, with nothing left in the queue but the rest of its own request, runs solo, on the
engine's solo session (all the threads), and nothing starts beside it: on a small CPU a
batch beside it would only fight it for the same cores. So a lone request's batches run one
after another on all the threads, which beats side by side on a share each: Answer's
batches of one request took 16.0 ms that way against 18.6 ms on two one-thread sessions
(AMD EPYC, 2 cores; docs/request-path.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from service.batching.lifecycle import Lifecycle
from service.batching.queue import Batch, Entry, Row, RowQueue
from service.errors import LargerThanQueue, QueueFull, Unavailable
from service.metrics import Metrics

log = logging.getLogger(__name__)


class BatchEngine(Protocol):
    input_names: list[str]

    @property
    def concurrency(self) -> int: ...

    @property
    def has_solo(self) -> bool:
        """Whether a solo batch can run faster on a session of its own (all the threads)."""
        ...

    def run(self, feeds: dict[str, np.ndarray], solo: bool = False) -> list[np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    max_batch_tokens: int
    max_batch_size: int
    max_queue_delay: float  # seconds
    max_queued_tokens: int
    max_queue_wait: float = 1.0  # seconds of queued work past which requests are refused
    padding_slack: float = 1.0  # padding a row may add, as a share of the padded length
    policy: str = "tokens"  # "tokens": length-grouped under a token budget; "count": FIFO


def pad_batch(batch: Batch, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Feeds for a batch: rows padded with zeros to the batch's longest row."""
    shape = (len(batch.rows), batch.padded_length)
    ids = np.zeros(shape, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.int64)
    types = np.zeros(shape, dtype=np.int64)
    for i, row in enumerate(batch.rows):
        ids[i, : row.length] = row.ids
        mask[i, : row.length] = 1
        if row.type_ids is not None:
            types[i, : row.length] = row.type_ids
    by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: by_name[name] for name in input_names}


def split_outputs(outputs: Sequence[np.ndarray], batch: Batch) -> list[tuple[np.ndarray, ...]]:
    """Per-row views of the batch's outputs; sequence axes are cut to each row's length."""
    per_row = []
    for i, row in enumerate(batch.rows):
        parts = []
        for out in outputs:
            if out.ndim >= 2 and out.shape[1] == batch.padded_length:
                parts.append(out[i, : row.length])
            else:
                parts.append(out[i])
        per_row.append(tuple(parts))
    return per_row


class Scheduler:
    def __init__(
        self,
        model: str,
        engine: BatchEngine,
        config: BatchingConfig,
        max_length: int,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.config = config
        self._engine = engine
        self._queue = RowQueue(max_length)
        self._metrics = metrics
        # This model's series, looked up once: a labels() call per use was a tenth of the
        # loop thread's CPU per request (scripts/handler_cpu.py, docs/request-path.md).
        self._depth = metrics.queue_depth.labels(model)
        self._queued_tokens = metrics.queued_tokens.labels(model)
        self._batch_size = metrics.batch_size.labels(model)
        self._batch_tokens = metrics.batch_tokens.labels(model)
        self._batch_padding = metrics.batch_padding.labels(model)
        self._waited = metrics.queue_duration.labels(model)
        self._inference = metrics.inference_duration.labels(model)
        self._clock = clock
        self._dispatched = 0  # batches handed to workers and not yet finished
        self._solo = False  # the running batch has the engine to itself
        self._workers = ThreadPoolExecutor(
            max_workers=engine.concurrency + 1, thread_name_prefix=f"engine-{model}"
        )
        self._timer_pending = False  # a look at the queue is scheduled (queue delay)
        self._lifecycle = Lifecycle(
            self._abandon, clock, "the request's deadline passed while it was queued"
        )
        # Engine throughput in real tokens per second, a moving average over batches of at
        # least half the token budget (0 until one ran: nothing is refused by prediction).
        self._tokens_per_second = 0.0

    # -- the one way in -------------------------------------------------------------------

    async def submit(
        self,
        rows: Sequence[np.ndarray],
        type_ids: Sequence[np.ndarray | None] | None = None,
        deadline: float | None = None,
    ) -> list[tuple[np.ndarray, ...]]:
        """Queue a request's rows and wait for their outputs, in row order.

        ``deadline`` is on this scheduler's clock. Raises QueueFull at once when the rows
        do not fit the queue bound now, LargerThanQueue when they never could,
        DeadlineExpired if the deadline passes before the rows are computed, Unavailable
        once the scheduler is closed. If the caller is cancelled, its queued rows are dropped.
        """
        self._lifecycle.check_open()
        if not rows:
            return []
        self._admit(sum(len(r) for r in rows))
        entry = Entry(enqueued=self._clock(), deadline=deadline)
        types = type_ids or [None] * len(rows)
        entry.rows = [
            Row(entry, i, ids, t) for i, (ids, t) in enumerate(zip(rows, types, strict=True))
        ]
        entry.results = [None] * len(rows)
        entry.unfinished = len(rows)
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        entry.waiter = done
        self._queue.add(entry)
        self._publish_depth()
        self._pump()
        return await self._lifecycle.wait(entry, done, deadline)

    def _admit(self, tokens: int) -> None:
        """Refuse at once what would wait too long or overflow the queue (RESOURCE_EXHAUSTED).

        The wait is predicted from the work already queued and the engine's measured rate,
        so under overload excess requests fail in microseconds instead of timing out, and
        the requests that are admitted keep a bounded latency. An idle queue admits any
        request, however large: it waits for nothing.
        """
        queued = self._queue.tokens
        if tokens > self.config.max_queued_tokens:
            raise LargerThanQueue(
                f"this request is {tokens} tokens, more than model {self.model}'s whole queue "
                f"holds ({self.config.max_queued_tokens} tokens, --max-queued-tokens): no "
                "retry can succeed; send fewer or shorter texts, or raise --max-queued-tokens"
            )
        if queued + tokens > self.config.max_queued_tokens:
            raise QueueFull(
                f"model {self.model} queue is full ({queued} tokens queued, "
                f"limit {self.config.max_queued_tokens}); retry later"
            )
        if queued and self._tokens_per_second:
            wait = queued / self._tokens_per_second
            if wait > self.config.max_queue_wait:
                raise QueueFull(
                    f"model {self.model} is overloaded: about {wait * 1000:.0f} ms of work "
                    f"is queued (limit {self.config.max_queue_wait * 1000:.0f} ms); retry later"
                )

    async def close(self) -> None:
        """Refuse new work; wait for queued and running batches to finish."""
        await self._lifecycle.close(lambda: bool(len(self._queue) or self._dispatched))
        self._workers.shutdown(wait=True)

    # -- inside ---------------------------------------------------------------------------

    def _abandon(self, entry: Entry, reason: str) -> None:
        dropped = self._queue.drop(entry)
        if dropped:
            self._metrics.dropped_rows.labels(self.model, reason).inc(dropped)
            self._publish_depth()

    def _publish_depth(self) -> None:
        self._depth.set(len(self._queue))
        self._queued_tokens.set(self._queue.tokens)

    def _ready_to_dispatch(self, now: float) -> tuple[bool, float | None]:
        """Whether to cut a batch now; if not, when to look again."""
        if self._solo:
            return False, None  # it finishes within one batch's time; then pump again
        sessions = self._engine.concurrency
        full = self._queue.tokens >= self.config.max_batch_tokens
        if self._dispatched >= sessions:
            # Every session busy: prepare one batch ahead, but only a full one.
            return full and self._dispatched == sessions, None
        if self._dispatched == 0 or full:
            return True, None
        oldest = self._queue.oldest_enqueued()
        if oldest is None:
            return False, None
        due = oldest + self.config.max_queue_delay
        return now >= due, due

    def _pump(self) -> None:
        """Cut and start every batch the dispatch rule allows now (on the event loop).

        Called when rows arrive, when a batch finishes, and when a queue delay runs out;
        batches go straight to a worker thread, with no task in between.
        """
        loop = asyncio.get_running_loop()
        while len(self._queue):
            now = self._clock()
            go, due = self._ready_to_dispatch(now)
            if not go:
                if due is not None and not self._timer_pending:
                    self._timer_pending = True
                    loop.call_later(max(0.0, due - now), self._on_timer)
                return
            batch = self._next_batch()
            if batch is None:
                return
            self._solo = (
                self._engine.has_solo
                and not self._dispatched
                and self._queue.only_from(batch.rows[0].entry)
            )
            self._dispatched += 1
            self._publish_depth()
            self._record_batch(batch, now)
            running = loop.run_in_executor(self._workers, self._run_batch, batch, self._solo)
            running.add_done_callback(functools.partial(self._finish, batch))

    def _on_timer(self) -> None:
        self._timer_pending = False
        self._pump()

    def _next_batch(self) -> Batch | None:
        if self.config.policy == "count":
            return self._queue.next_batch_in_arrival_order(self.config.max_batch_size)
        return self._queue.next_batch(
            self.config.max_batch_tokens, self.config.max_batch_size, self.config.padding_slack
        )

    def _record_batch(self, batch: Batch, now: float) -> None:
        self._batch_size.observe(len(batch.rows))
        self._batch_tokens.observe(batch.tokens)
        self._batch_padding.observe(batch.padding_ratio)
        for row in batch.rows:
            self._waited.observe(now - row.entry.enqueued)

    def _observe_rate(self, tokens: int, seconds: float, solo: bool) -> None:
        # Queued work runs in full batches, and a small batch's fixed costs make its rate a
        # fraction of theirs: after light traffic, a burst was refused on a wait predicted
        # two or three times too long. So only batches near the budget are measured.
        if tokens < self.config.max_batch_tokens // 2:
            return
        # A solo batch had the whole engine; the pool's sessions each have a share of it.
        rate = tokens * (1 if solo else self._engine.concurrency) / max(seconds, 1e-6)
        previous = self._tokens_per_second
        self._tokens_per_second = rate if not previous else 0.9 * previous + 0.1 * rate

    def _run_batch(self, batch: Batch, solo: bool) -> tuple[list[tuple[np.ndarray, ...]], float]:
        feeds = pad_batch(batch, self._engine.input_names)
        started = time.perf_counter()
        outputs = self._engine.run(feeds, solo)
        return split_outputs(outputs, batch), time.perf_counter() - started

    def _finish(
        self, batch: Batch, done: asyncio.Future[tuple[list[tuple[np.ndarray, ...]], float]]
    ) -> None:
        self._dispatched -= 1
        # Nothing runs beside a solo batch, so the flag still describes the one finishing.
        solo, self._solo = self._solo, False
        error = done.exception() if not done.cancelled() else RuntimeError("cancelled")
        if error is not None:
            log.error("model %s: batch of %d rows failed: %s", self.model, len(batch.rows), error)
            for row in batch.rows:
                _fail(row.entry, Unavailable(f"model {self.model} failed to run: {error}"))
        else:
            per_row, seconds = done.result()
            self._inference.observe(seconds)
            self._observe_rate(batch.real_tokens, seconds, solo)
            for row, outputs in zip(batch.rows, per_row, strict=True):
                _deliver(row, outputs)
        self._pump()


def _deliver(row: Row, outputs: tuple[np.ndarray, ...]) -> None:
    entry = row.entry
    entry.results[row.index] = outputs
    entry.unfinished -= 1
    if entry.unfinished == 0 and not entry.waiter.done():
        entry.waiter.set_result(entry.results)


def _fail(entry: Entry, error: Exception) -> None:
    if not entry.waiter.done():
        entry.waiter.set_exception(error)
