"""Sentence vectors from an encoder model: tokenize, batch through the scheduler, pool.

Embed, Summarize and Answer on an encoder all start here, so the three tasks share one
path to the engine and one set of limits.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from service.batching.scheduler import Scheduler
from service.errors import InvalidArgument
from service.metrics import Metrics
from service.tasks.tokenizer import TextTokenizer


@dataclass(frozen=True, slots=True)
class Vectors:
    values: np.ndarray  # float32 [N, D]
    truncated: list[int]  # indices of texts cut to the model's window


@dataclass(frozen=True, slots=True)
class Limits:
    max_text_chars: int
    max_texts: int


def _has_visible_character(text: str) -> bool:
    # Zero-width and other format/control characters (categories Cf, Cc) carry no content.
    return any(not c.isspace() and unicodedata.category(c) not in {"Cf", "Cc"} for c in text)


def check_text(text: str, what: str, limits: Limits) -> None:
    """INVALID_ARGUMENT for an empty, blank or over-long text; `what` names it."""
    if not _has_visible_character(text):
        raise InvalidArgument(f"{what} is empty (or only whitespace and invisible characters)")
    if len(text) > limits.max_text_chars:
        raise InvalidArgument(
            f"{what} has {len(text)} characters; the limit is {limits.max_text_chars}"
        )


def check_texts(texts: list[str], what: str, limits: Limits) -> None:
    """INVALID_ARGUMENT for no texts, too many, or any bad one; `what` names the field."""
    if not texts:
        raise InvalidArgument(f"{what} is empty: send at least one text")
    if len(texts) > limits.max_texts:
        raise InvalidArgument(f"{what} has {len(texts)} texts; the limit is {limits.max_texts}")
    for i, text in enumerate(texts):
        check_text(text, f"{what}[{i}]", limits)


class SentenceEncoder:
    def __init__(
        self,
        model: str,
        tokenizer: TextTokenizer,
        scheduler: Scheduler,
        pooling: str,
        limits: Limits,
        metrics: Metrics,
    ) -> None:
        if pooling not in {"mean", "cls", "max"}:
            raise ValueError(f"unknown pooling {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.pooling = pooling
        self.limits = limits
        self._metrics = metrics

    def check_text(self, text: str, what: str) -> None:
        """INVALID_ARGUMENT for an empty, blank or over-long text; `what` names it."""
        check_text(text, what, self.limits)

    async def encode(
        self, texts: list[str], task: str, normalize: bool, deadline: float | None
    ) -> Vectors:
        encoded = self.tokenizer.encode(texts)
        truncated = [i for i, e in enumerate(encoded) if e.truncated]
        outputs = await self.scheduler.submit([e.ids for e in encoded], deadline=deadline)
        # Counted once computed: refused or dropped requests are not input the model saw.
        self._metrics.input_tokens.labels(self.model, task).inc(sum(len(e.ids) for e in encoded))
        if truncated:
            self._metrics.truncated_rows.labels(self.model, task).inc(len(truncated))
        vectors = np.stack([self._pool(states[0]) for states in outputs]).astype(np.float32)
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return Vectors(vectors, truncated)

    def _pool(self, states: np.ndarray) -> np.ndarray:
        # states: [tokens, hidden] for one row, padding already cut away
        if self.pooling == "mean":
            return states.mean(axis=0)
        if self.pooling == "cls":
            return states[0]
        return states.max(axis=0)
