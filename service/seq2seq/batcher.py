"""Continuous batching for one seq2seq model: a worker thread that runs decoder steps back to
back while any sequence is generating, where a finished sequence leaves the batch and a
waiting request joins it at the next step.

Requests talk to it through ``generate`` only. The event loop owns admission, deadlines and
delivery (the job list); the worker thread owns the batch (`DecoderBatch`) and the line of
jobs handed to it, and after each step posts the step's report to the loop. The worker never
waits for the loop between steps: a lone request's tokens come one step time apart, not one
step plus two thread hand-offs.
Admission is bounded by sequences (a beam search counts num_beams): past
``max_sequences`` waiting or generating, a request gets QueueFull at once. A request whose
deadline passes, or whose caller cancels, leaves the line or the batch at the next step
and is counted in attnserve_dropped_rows_total with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from service.batching.lifecycle import Lifecycle
from service.errors import LargerThanQueue, QueueFull, Unavailable
from service.metrics import Metrics
from service.seq2seq.batch import Job, RowBatch, StepReport
from service.seq2seq.search import Search

log = logging.getLogger(__name__)


class ContinuousBatcher:
    def __init__(
        self,
        model: str,
        new_batch: Callable[[], RowBatch],  # DecoderBatch, or a causal LM's CausalBatch
        max_rows: int,
        max_sequences: int,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.max_rows = max_rows  # decoder rows in one step
        self.max_sequences = max_sequences  # rows waiting or generating
        self._new_batch = new_batch
        self._metrics = metrics
        self._clock = clock
        # Every admitted job, in arrival order (event loop): waiting until the worker joins it
        # to the batch, then there until it finishes or leaves.
        self._jobs: list[Job] = []
        # Jobs handed to the worker and not joined yet, FIFO; guarded by _signal.
        self._line: deque[Job] = deque()
        self._signal = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifecycle = Lifecycle(self._leave, clock, "the request's deadline passed")

    async def generate(
        self,
        source: np.ndarray,
        search: Search,
        deadline: float | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Generate for one source (a causal LM's prompt); returns the token ids after the
        decoder start token (the prompt).

        ``on_token`` (greedy) is called on the event loop with each token as it is chosen.
        Raises QueueFull, LargerThanQueue, DeadlineExpired, Unavailable; cancellation drops
        the request.
        """
        self._lifecycle.check_open()
        self._admit(search.rows)
        loop = asyncio.get_running_loop()
        job = Job(source, search, deadline, self._clock(), loop.create_future(), on_token)
        self._jobs.append(job)
        self._publish_depth()
        self._start(loop)
        with self._signal:
            self._line.append(job)
            self._signal.notify()
        return await self._lifecycle.wait(job, job.done, deadline)

    def _admit(self, rows: int) -> None:
        """Refuse at once a request past ``max_sequences`` waiting or generating."""
        if rows > self.max_sequences:
            raise LargerThanQueue(
                f"this request needs {rows} sequences (one per beam), more than model "
                f"{self.model} holds at once ({self.max_sequences}, --max-sequences): no "
                "retry can succeed; ask for fewer beams, or raise --max-sequences"
            )
        admitted = sum(job.rows for job in self._jobs)
        if admitted + rows > self.max_sequences:
            raise QueueFull(
                f"model {self.model} is generating or holding {admitted} sequences "
                f"(limit {self.max_sequences}); retry later"
            )

    async def close(self) -> None:
        """Refuse new work; wait for waiting and running sequences to finish."""
        await self._lifecycle.close(lambda: bool(self._jobs))
        with self._signal:
            self._stopping = True
            self._signal.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- event loop -----------------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._loop = loop
            self._thread = threading.Thread(
                target=self._work, name=f"seq2seq-{self.model}", daemon=True
            )
            self._thread.start()

    def _leave(self, job: Job, reason: str) -> None:
        if job.leaving:
            return
        with self._signal:  # the worker joins jobs under it: joined or not, not in between
            job.leaving = reason
            joined = job.joined
        if job not in self._jobs:
            return  # already finished
        if not joined:
            self._jobs.remove(job)  # the worker skips it in its line
            self._publish_depth()
        # A joined job stays listed until the step that takes it out of the batch reports.
        self._metrics.dropped_rows.labels(self.model, reason).inc(job.rows)

    def _publish_depth(self) -> None:
        waiting = sum(job.rows for job in self._jobs if not job.joined)
        self._metrics.queue_depth.labels(self.model).set(waiting)

    def _after_step(self, report: StepReport, joining: list[Job], leaving: list[Job]) -> None:
        """A step's report, on the event loop: metrics, tokens, finished and left jobs."""
        if joining:
            now = self._clock()
            waited = self._metrics.queue_duration.labels(self.model)
            for job in joining:
                waited.observe(now - job.enqueued)
        gone = {id(job) for job in (*leaving, *report.finished)}
        self._jobs = [job for job in self._jobs if id(job) not in gone]
        if joining:
            self._publish_depth()
        self._record(report)
        for job, token in report.tokens:
            if job.on_token is not None and not job.leaving:
                job.on_token(token)
        for job in report.finished:
            if not job.done.done():
                job.done.set_result(job.search.result())

    def _record(self, report: StepReport) -> None:
        m, model = self._metrics, self.model
        if report.encoded:
            m.encoder_batch_size.labels(model).observe(report.encoded)
        for reason, size in report.copied.items():
            m.kv_cache_copied_bytes.labels(model, reason).inc(size)
        m.active_sequences.labels(model).set(report.rows - sum(j.rows for j in report.finished))
        if report.rows:
            m.batch_size.labels(model).observe(report.rows)
            m.batch_tokens.labels(model).observe(report.rows * report.capacity)
            m.inference_duration.labels(model).observe(report.decoder_seconds)
            m.generated_tokens.labels(model).inc(report.stepped)
        if report.drafted:
            m.draft_tokens.labels(model, "accepted").inc(report.accepted)
            m.draft_tokens.labels(model, "rejected").inc(report.drafted - report.accepted)

    def _fail_all(self, error: Exception) -> None:
        for job in self._jobs:
            if not job.done.done():
                job.done.set_exception(error)
        self._jobs = []
        self._publish_depth()

    # -- worker thread --------------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed under a server that is going away
            log.warning("model %s: a decoder step's result had no event loop left", self.model)

    def _work(self) -> None:
        batch = self._new_batch()
        while True:
            with self._signal:
                while not self._line and not batch.jobs and not self._stopping:
                    self._signal.wait()
                if self._stopping and not self._line and not batch.jobs:
                    return
                joining = self._take_joining(batch)
            leaving = [job for job in batch.jobs if job.leaving]
            try:
                report = batch.step(joining, leaving)
            except Exception as exc:
                log.exception("model %s: decoder step failed", self.model)
                batch = self._new_batch()
                with self._signal:
                    self._line.clear()
                self._post(self._fail_all, Unavailable(f"model {self.model} failed to run: {exc}"))
                continue
            self._post(self._after_step, report, joining, leaving)

    def _take_joining(self, batch: RowBatch) -> list[Job]:
        """Jobs from the line that fit beside the batch (called holding _signal)."""
        rows = sum(job.rows for job in batch.jobs if not job.leaving)
        joining = []
        while self._line:
            job = self._line[0]
            if job.leaving:  # dropped while it waited
                self._line.popleft()
                continue
            if rows + job.rows > self.max_rows:
                break  # the line is FIFO: nobody overtakes a job that does not fit yet
            self._line.popleft()
            job.joined = True
            joining.append(job)
            rows += job.rows
        return joining
