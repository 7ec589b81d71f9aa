"""A causal LM's batch: chunked prefill beside decoding, in one loop.

Each call of the loop (`step`) does, in order:
1. decode: one token for every row whose prompt is all in the cache, as one call of the step
   graph over every row (a row still prefilling gets a placeholder at its next slot, which
   its next chunk overwrites: it is not counted as written);
2. prefill: up to `prefill_tokens` prompt tokens, taken from the prompts waiting in arrival
   order, one row per call (one row of the cache is contiguous, so it binds in place). A
   prompt whose last chunk goes in yields its first token at once; its beams take a copy of
   its row.

So running sequences get a token every call, and a long prompt delays them by at most one
prefill budget per token (the bound docs/generation.md measures), however long it is.

A greedy request alone in the batch, prompt written, decodes speculatively instead
(service/seq2seq/speculation.py): the int8 variant drafts, one call checks, several tokens
per call, the same tokens.
"""

from __future__ import annotations

import time

import numpy as np

from service.causal.graphs import CausalGraphs
from service.seq2seq.batch import Job, RowBatch, StepReport
from service.seq2seq.speculation import Speculator

PREFILL_TOKENS = 128  # prompt tokens per loop call, unless the server is told otherwise


class CausalBatch(RowBatch):
    def __init__(
        self,
        graphs: CausalGraphs,
        prefill_tokens: int = PREFILL_TOKENS,
        speculator: Speculator | None = None,
    ) -> None:
        super().__init__(graphs.new_cache(), speculator)
        self._graphs = graphs
        self._prefill_tokens = prefill_tokens
        self._filled: dict[int, int] = {}  # prompt tokens in the cache, by job id

    def step(self, joining: list[Job], leaving: list[Job]) -> StepReport:
        self._leave(leaving)
        for job in joining:
            self._cache.add_rows(job.rows)
            self.jobs.append(job)
            self._filled[id(job)] = 0
        report = self._report(len(joining))
        started = time.perf_counter()
        if any(self._prompted(job) for job in self.jobs):
            self._decode_or_speculate(report, self._graphs.verify, self._decode)
        self._prefill(report)
        report.decoder_seconds = time.perf_counter() - started
        report.capacity = self._cache.capacity
        report.copied = self._take_copied()
        self._filled = {id(job): self._filled[id(job)] for job in self.jobs}
        return report

    def _prompted(self, job: Job) -> bool:
        return self._filled[id(job)] == len(job.source)

    def _decode(self, report: StepReport) -> None:
        tokens: list[int] = []
        waiting: list[int] = []  # rows still prefilling
        for job in self.jobs:
            if self._prompted(job):
                tokens.extend(job.search.next_tokens())
            else:
                waiting.extend(range(len(tokens), len(tokens) + job.rows))
                tokens.extend([self._graphs.spec.pad_token_id] * job.rows)
        logits = self._graphs.step(np.array(tokens, np.int64)[:, None], self._cache)
        if waiting:
            self._cache.advance(-1, np.array(waiting))  # their placeholder is not a token
        results, offset = {}, 0
        for job in self.jobs:
            if self._prompted(job):
                results[id(job)] = job.search.advance(logits[offset : offset + job.rows])
                report.stepped += 1
            offset += job.rows
        self._apply(report, results)

    def _prefill(self, report: StepReport) -> None:
        budget = self._prefill_tokens
        while budget > 0:
            job = next((j for j in self.jobs if not self._prompted(j)), None)
            if job is None:
                return
            row = self._first_row(job)
            filled = self._filled[id(job)]
            chunk = job.source[filled : filled + budget]
            logits = self._graphs.step(chunk[None, :], self._cache, row)
            budget -= len(chunk)
            report.prefilled += len(chunk)
            self._filled[id(job)] = filled + len(chunk)
            if self._prompted(job):
                if job.rows > 1:  # beams: one prompt, prefilled once
                    self._cache.fork(row, range(row + 1, row + job.rows))
                report.stepped += 1
                advance = job.search.advance(np.repeat(logits, job.rows, axis=0))
                self._apply(report, {id(job): advance})

    def _first_row(self, job: Job) -> int:
        row = 0
        for other in self.jobs:
            if other is job:
                return row
            row += other.rows
        raise ValueError("the job is not in the batch")
