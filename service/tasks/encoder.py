"""Sentence vectors from an encoder model: tokenize, batch through the scheduler, pool.

Embed, Summarize and Answer on an encoder all start here, so the three tasks share one
path to the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.batching.scheduler import Scheduler
from service.metrics import Metrics
from service.tasks.pipelines import Vectors
from service.tasks.tokenizer import TextTokenizer


class SentenceEncoder:
    def __init__(
        self,
        model: str,
        tokenizer: TextTokenizer,
        scheduler: Scheduler,
        pooling: str,
        metrics: Metrics,
    ) -> None:
        if pooling not in {"mean", "cls", "max"}:
            raise ValueError(f"unknown pooling {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.pooling = pooling
        self._metrics = metrics
        self._counters: dict[str, Any] = {}

    async def encode(
        self, texts: Sequence[str], task: str, normalize: bool, deadline: float | None
    ) -> Vectors:
        encoded = self.tokenizer.encode(list(texts))
        truncated = [i for i, e in enumerate(encoded) if e.truncated]
        outputs = await self.scheduler.submit([e.ids for e in encoded], deadline=deadline)
        # Counted once computed: refused or dropped requests are not input the model saw.
        tokens = sum(len(e.ids) for e in encoded)
        self._input_tokens(task).inc(tokens)
        if truncated:
            self._metrics.truncated_rows.labels(self.model, task).inc(len(truncated))
        pooled = np.stack([self._pool(states[0]) for states in outputs])
        vectors = pooled.astype(np.float32, copy=False)
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return Vectors(vectors, truncated, tokens)

    def _input_tokens(self, task: str) -> Any:
        # Looked up once per task, not per request (labels() takes a lock and a tuple).
        counter = self._counters.get(task)
        if counter is None:
            counter = self._counters[task] = self._metrics.input_tokens.labels(self.model, task)
        return counter

    def _pool(self, states: np.ndarray) -> np.ndarray:
        # states: [tokens, hidden] for one row, padding already cut away
        if self.pooling == "mean":  # ndarray.mean's Python wrapper costs more than the sum
            return np.add.reduce(states, axis=0) / len(states)
        if self.pooling == "cls":
            return states[0]
        return states.max(axis=0)
