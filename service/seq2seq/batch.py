"""The decoder batch: which request owns which rows, and one step of the whole batch.

Owned by the batcher's worker thread: the event loop hands it the requests that join and
leave, and gets back what the step produced. Joining requests are encoded together, as one
encoder batch, and take their first decoder step in the same call. A greedy request alone in
the batch takes a speculative round instead of a step (service/seq2seq/speculation.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service.seq2seq.cache import BatchCache
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.search import Advance, Greedy, Search
from service.seq2seq.speculation import Speculator, Verify


@dataclass(eq=False, slots=True)
class Job:
    """One request's generation: its source ids, its search, and where results go."""

    source: np.ndarray  # encoder token ids; a causal LM's prompt
    search: Search
    deadline: float | None
    enqueued: float
    done: asyncio.Future[list[int]]
    on_token: Callable[[int], None] | None = None  # greedy: each token as it is chosen
    leaving: str = ""  # set on the event loop: why it leaves the batch (deadline, cancelled)
    joined: bool = False  # set on the event loop when it is handed to the batch

    @property
    def rows(self) -> int:
        return self.search.rows


@dataclass(slots=True)
class StepReport:
    rows: int  # decoder rows in the step
    capacity: int  # cache slots per row: the step's attention spans rows x capacity
    copied: dict[str, int]  # cache bytes moved in this call, by reason (cache.py)
    encoded: int  # requests encoded (joined) in this call
    decoder_seconds: float
    stepped: int = 0  # tokens the requests took (a step gives each one; a round several)
    drafted: int = 0  # tokens the draft model proposed (speculative rounds)
    accepted: int = 0  # of those, the ones the served graph's search took
    prefilled: int = 0  # prompt tokens written (causal LMs)
    tokens: list[tuple[Job, int]] = field(default_factory=list)  # greedy tokens chosen
    finished: list[Job] = field(default_factory=list)


class RowBatch:
    """Which job owns which cache rows (in job order), and what a call's results do to them;
    DecoderBatch and the causal LMs' CausalBatch say how a call is made."""

    def __init__(self, cache: BatchCache, speculator: Speculator | None = None) -> None:
        self._cache = cache
        self._speculator = speculator
        self.jobs: list[Job] = []  # in row order

    @property
    def rows(self) -> int:
        return self._cache.rows

    def step(self, joining: list[Job], leaving: list[Job]) -> StepReport:
        raise NotImplementedError

    def _leave(self, leaving: list[Job]) -> None:
        if leaving:
            gone = {id(job) for job in leaving}
            self._keep([job for job in self.jobs if id(job) not in gone])

    def _report(self, joined: int) -> StepReport:
        return StepReport(
            rows=self.rows,
            capacity=self._cache.capacity,
            encoded=joined,
            decoder_seconds=0.0,
            copied={},
        )

    def _apply(self, report: StepReport, results: dict[int, Advance]) -> None:
        """After a call: each job in `results` (by id) moves on (its token reported; finished,
        it leaves; beams take the rows they continue); the other jobs keep their rows."""
        index: list[int] = []
        staying: list[Job] = []
        offset = 0
        for job in self.jobs:
            advance = results.get(id(job))
            if advance is None:
                staying.append(job)
                index.extend(range(offset, offset + job.rows))
            else:
                if advance.token is not None:
                    report.tokens.append((job, advance.token))
                if advance.done:
                    report.finished.append(job)
                else:
                    staying.append(job)
                    index.extend(offset + row for row in advance.rows)
            offset += job.rows
        self.jobs = staying
        if index != list(range(offset)):
            self._cache.select(np.array(index, dtype=np.int64))

    def _decode_or_speculate(
        self, report: StepReport, verify: Verify, decode: Callable[[StepReport], None]
    ) -> None:
        """A speculative round when one suits, else `decode` (a plain step of every row),
        timed for the speculator when it is one greedy row's: it weighs rounds by it."""
        if self._speculated(report, verify):
            return
        started = time.perf_counter()
        decode(report)
        alone = len(self.jobs) == 1 and report.stepped == 1
        if self._speculator is not None and alone and type(self.jobs[0].search) is Greedy:
            self._speculator.observe_step(time.perf_counter() - started)

    def _speculated(self, report: StepReport, verify: Verify) -> bool:
        """A speculative round instead of a step when the batch is one greedy request (and a
        draft model is loaded); whether one ran."""
        if self._speculator is None or len(self.jobs) != 1:
            return False
        job = self.jobs[0]
        if not self._speculator.takes(job.search):
            return False
        done = self._speculator.round(job, job.source, job.search, verify, self._cache)
        if done is None:
            return False
        for advance in done.advances:
            report.stepped += 1
            self._apply(report, {id(job): advance})
        report.drafted += done.drafted
        report.accepted += done.accepted
        return True

    def _take_copied(self) -> dict[str, int]:
        copied = dict(self._cache.copied)
        self._cache.copied.clear()
        return copied

    def _keep(self, jobs: list[Job]) -> None:
        offsets, offset = {}, 0
        for job in self.jobs:
            offsets[id(job)] = offset
            offset += job.rows
        index = [offsets[id(job)] + row for job in jobs for row in range(job.rows)]
        self._cache.select(np.array(index, dtype=np.int64))
        self.jobs = jobs


class DecoderBatch(RowBatch):
    def __init__(self, graphs: Seq2SeqGraphs, speculator: Speculator | None = None) -> None:
        super().__init__(graphs.new_cache(), speculator)
        self._graphs = graphs

    def step(self, joining: list[Job], leaving: list[Job]) -> StepReport:
        self._leave(leaving)
        if joining:
            encoded = self._graphs.encode([job.source for job in joining])
            # Beams share their request's encoder output: one copy per row.
            repeats = [job.rows for job in joining]
            cross = [np.repeat(c, repeats, axis=0) for c in encoded.cross]
            self._cache.add(cross, np.repeat(encoded.mask, repeats, axis=0))
            self.jobs.extend(joining)
        report = self._report(len(joining))
        started = time.perf_counter()
        if self.jobs:
            self._decode_or_speculate(report, self._graphs.verify, self._decode)
        report.decoder_seconds = time.perf_counter() - started
        report.capacity = self._cache.capacity
        report.copied = self._take_copied()
        return report

    def _decode(self, report: StepReport) -> None:
        """One step for every row: a token each."""
        report.stepped = len(self.jobs)
        tokens = np.array([t for job in self.jobs for t in job.search.next_tokens()], np.int64)
        logits = self._graphs.step(tokens, self._cache)
        results, offset = {}, 0
        for job in self.jobs:
            results[id(job)] = job.search.advance(logits[offset : offset + job.rows])
            offset += job.rows
        self._apply(report, results)
