"""Continuous batching for one seq2seq model: a generation loop on the event loop that runs
decoder steps on a worker thread, where a finished sequence leaves the batch and a waiting
request joins it at the next step.

Requests talk to it through ``generate`` only. The loop owns the job list, waiting and
joined; the worker thread owns the batch (`DecoderBatch`), and each step is told who joins
and who leaves.
Admission is bounded by sequences (a beam search counts num_beams): past
``max_sequences`` waiting or generating, a request gets QueueFull at once. A request whose
deadline passes, or whose caller cancels, leaves the line or the batch at the next step
and is counted in attnserve_dropped_rows_total with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from service.batching.lifecycle import Lifecycle
from service.errors import LargerThanQueue, QueueFull, Unavailable
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
        # Every admitted job, in arrival order: waiting until it joins the batch, then there
        # until it finishes or leaves. Jobs join in that order, so the waiting line is FIFO.
        self._jobs: list[Job] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seq2seq-{model}")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lifecycle = Lifecycle(self._leave, clock, "the request's deadline passed")

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
        self._lifecycle.check_open()
        self._admit(search.rows)
        loop = asyncio.get_running_loop()
        job = Job(source, search, deadline, self._clock(), loop.create_future(), on_token)
        self._jobs.append(job)
        self._publish_depth()
        self._ensure_running()
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

    def _leave(self, job: Job, reason: str) -> None:
        if job.leaving:
            return
        job.leaving = reason
        if job not in self._jobs:
            return  # already finished
        if not job.joined:
            self._jobs.remove(job)
            self._publish_depth()
        # A joined job stays listed until the next step takes it out of the batch.
        self._metrics.dropped_rows.labels(self.model, reason).inc(job.rows)

    def _publish_depth(self) -> None:
        waiting = sum(job.rows for job in self._jobs if not job.joined)
        self._metrics.queue_depth.labels(self.model).set(waiting)

    def _take_joining(self) -> list[Job]:
        rows = sum(job.rows for job in self._jobs if job.joined)
        joining = []
        for job in self._jobs:
            if job.joined:
                continue
            if rows + job.rows > self.max_rows:
                break  # the line is FIFO: nobody overtakes a job that does not fit yet
            job.joined = True
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
            if not self._jobs:
                self._wake.clear()
                await self._wake.wait()
                continue
            joining = self._take_joining()
            # A waiting job that leaves is gone from the list already: these are joined.
            leaving = [job for job in self._jobs if job.leaving]
            if leaving:
                self._jobs = [job for job in self._jobs if not job.leaving]
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
        for reason, size in report.copied.items():
            m.kv_cache_copied_bytes.labels(model, reason).inc(size)
        m.active_sequences.labels(model).set(report.rows - sum(j.rows for j in report.finished))
        if report.rows:
            m.batch_size.labels(model).observe(report.rows)
            m.batch_tokens.labels(model).observe(report.rows * report.capacity)
            m.inference_duration.labels(model).observe(report.decoder_seconds)
            # One token per job in the step: every joined one (one that left during the step
            # is still listed; the next step takes it out).
            m.generated_tokens.labels(model).inc(sum(1 for job in self._jobs if job.joined))

    def _deliver(self, report: StepReport) -> None:
        for job, token in report.tokens:
            if job.on_token is not None and not job.leaving:
                job.on_token(token)
        finished = {id(job) for job in report.finished}
        self._jobs = [job for job in self._jobs if id(job) not in finished]
        for job in report.finished:
            if not job.done.done():
                job.done.set_result(job.search.result())

    def _fail_all(self, error: Exception) -> None:
        for job in self._jobs:
            if not job.done.done():
                job.done.set_exception(error)
        self._jobs = []
        self._publish_depth()
        self._batch = DecoderBatch(self._graphs)
