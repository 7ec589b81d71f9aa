"""Continuous batching for one seq2seq model: a generation loop on the event loop that runs
decoder steps on a worker thread, where a finished sequence leaves the batch and a waiting
request joins it at the next step.

Requests talk to it through ``generate`` only. The loop owns the waiting line; the worker
thread owns the batch (`DecoderBatch`), and each step is told who joins and who leaves.
Admission is bounded by sequences (a beam search counts num_beams): past
``max_sequences`` waiting or generating, a request gets QueueFull at once. A request whose
deadline passes, or whose caller cancels, leaves the line or the batch at the next step
and is counted in attnserve_dropped_rows_total with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from service.batching.scheduler import cancel_reason
from service.errors import DeadlineExpired, LargerThanQueue, QueueFull, Unavailable
from service.metrics import Metrics
from service.seq2seq.batch import DecoderBatch, Job, StepReport
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.search import Beam, Greedy

log = logging.getLogger(__name__)


class ContinuousBatcher:
    def __init__(
        self,
        model: str,
        graphs: Seq2SeqGraphs,
        max_rows: int,
        max_sequences: int,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.max_rows = max_rows  # decoder rows in one step
        self.max_sequences = max_sequences  # rows waiting or generating
        self._graphs = graphs
        self._batch = DecoderBatch(graphs)
        self._metrics = metrics
        self._clock = clock
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []  # in the batch, as the loop last handed them over
        self._admitted = 0  # rows waiting or in the batch
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seq2seq-{model}")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def generate(
        self,
        source: np.ndarray,
        search: Greedy | Beam,
        deadline: float | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Generate for one source; returns the token ids after the decoder start token.

        ``on_token`` (greedy) is called on the event loop with each token as it is chosen.
        Raises QueueFull, LargerThanQueue, DeadlineExpired, Unavailable; cancellation drops
        the request.
        """
        if self._closed:
            raise Unavailable("server is shutting down")
        if search.rows > self.max_sequences:
            raise LargerThanQueue(
                f"this request needs {search.rows} sequences (one per beam), more than model "
                f"{self.model} holds at once ({self.max_sequences}, --max-sequences): no "
                "retry can succeed; ask for fewer beams, or raise --max-sequences"
            )
        if self._admitted + search.rows > self.max_sequences:
            raise QueueFull(
                f"model {self.model} is generating or holding {self._admitted} sequences "
                f"(limit {self.max_sequences}); retry later"
            )
        loop = asyncio.get_running_loop()
        now = self._clock()
        job = Job(source, search, deadline, now, loop.create_future(), on_token)
        self._admitted += job.rows
        self._waiting.append(job)
        self._publish_depth()
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(0.0, deadline - now), self._expire, job)
        self._ensure_running()
        try:
            return await job.done
        except asyncio.CancelledError:
            self._leave(job, cancel_reason(deadline, self._clock()))
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def close(self) -> None:
        """Refuse new work; wait for waiting and running sequences to finish."""
        self._closed = True
        while self._waiting or self._running:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
        self._worker.shutdown(wait=True)

    # -- inside ---------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        assert self._wake is not None
        self._wake.set()

    def _expire(self, job: Job) -> None:
        if not job.done.done():
            self._leave(job, "deadline")
            job.done.set_exception(DeadlineExpired("the request's deadline passed"))

    def _leave(self, job: Job, reason: str) -> None:
        if job.leaving:
            return
        job.leaving = reason
        if job in self._waiting:
            self._waiting.remove(job)
            self._admitted -= job.rows
            self._publish_depth()
        elif job not in self._running:
            return  # already finished
        self._metrics.dropped_rows.labels(self.model, reason).inc(job.rows)

    def _publish_depth(self) -> None:
        self._metrics.queue_depth.labels(self.model).set(sum(j.rows for j in self._waiting))

    def _take_joining(self) -> list[Job]:
        rows = sum(job.rows for job in self._running)
        joining = []
        while self._waiting and rows + self._waiting[0].rows <= self.max_rows:
            job = self._waiting.popleft()
            joining.append(job)
            rows += job.rows
        if joining:
            self._publish_depth()
            now = self._clock()
            waited = self._metrics.queue_duration.labels(self.model)
            for job in joining:
                waited.observe(now - job.enqueued)
        return joining

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
                continue
            joining = self._take_joining()
            leaving = [job for job in self._running if job.leaving]
            self._running = [job for job in self._running if not job.leaving] + joining
            for job in leaving:
                self._admitted -= job.rows
            try:
                report = await loop.run_in_executor(
                    self._worker, self._batch.step, joining, leaving
                )
            except Exception as exc:
                log.exception("model %s: decoder step failed", self.model)
                self._fail_all(Unavailable(f"model {self.model} failed to run: {exc}"))
                continue
            self._record(report)
            self._deliver(report)

    def _record(self, report: StepReport) -> None:
        m, model = self._metrics, self.model
        if report.encoded:
            m.encoder_batch_size.labels(model).observe(report.encoded)
        m.active_sequences.labels(model).set(report.rows - sum(j.rows for j in report.finished))
        if report.rows:
            m.batch_size.labels(model).observe(report.rows)
            m.batch_tokens.labels(model).observe(report.rows * (report.past_length + 1))
            m.inference_duration.labels(model).observe(report.decoder_seconds)
            m.generated_tokens.labels(model).inc(len(self._running))

    def _deliver(self, report: StepReport) -> None:
        for job, token in report.tokens:
            if job.on_token is not None and not job.leaving:
                job.on_token(token)
        finished = {id(job) for job in report.finished}
        for job in report.finished:
            self._admitted -= job.rows
            if not job.done.done():
                job.done.set_result(job.search.result())
        self._running = [job for job in self._running if id(job) not in finished]

    def _fail_all(self, error: Exception) -> None:
        for job in [*self._running, *self._waiting]:
            if not job.done.done():
                job.done.set_exception(error)
        self._running, self._waiting = [], deque()
        self._admitted = 0
        self._publish_depth()
        self._batch = DecoderBatch(self._graphs)
