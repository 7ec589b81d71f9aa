"""Summarize on a causal LM: the document in the prompt model.yaml records (the model's chat
template rendered at export with one user turn asking for a summary, or "{text}\\n\\nTL;DR:"
for a model without one), then generation as for Generate.

A document too long for the context window beside max_new_tokens is cut at a token
boundary to fit, as a seq2seq model's source is truncated, and counted in
attnserve_truncated_rows_total.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from service.errors import InvalidArgument
from service.metrics import Metrics
from service.model_format import CausalSpec
from service.seq2seq.search import Search
from service.tasks.generate import TextGenerator
from service.tasks.pipelines import SUMMARIZE, Summary, SummaryQuery


class CausalSummarizer:
    def __init__(self, generator: TextGenerator, spec: CausalSpec, metrics: Metrics) -> None:
        self.generator = generator
        self._template = spec.summary_template
        self._special = spec.summary_special_tokens
        self._window = spec.context_window
        self._metrics = metrics

    def _prompt(self, text: str) -> str:
        return self._template.replace("{text}", text)

    def _prepare(self, query: SummaryQuery) -> tuple[np.ndarray, Search]:
        g = self.generator
        want = query.max_new_tokens or g.defaults.max_new_tokens
        ids = g.tokenizer.encode_whole(self._prompt(query.text), self._special)
        if len(ids) + want > self._window:
            ids = self._fit(query.text, self._window - want)
        settings = g.settings(
            ids, query.max_new_tokens, query.num_beams, query.length_penalty,
            query.no_repeat_ngram_size,
        )  # fmt: skip
        self._metrics.input_tokens.labels(g.model, SUMMARIZE.name).inc(len(ids))
        return ids, g.search(settings, ids)

    def _fit(self, text: str, budget: int) -> np.ndarray:
        """The prompt with the document cut so that the whole is at most `budget` tokens."""
        g = self.generator
        (encoding,) = g.tokenizer.encode_with_offsets([text])
        ends = [end for start, end in encoding.offsets if end > start]
        keep = len(ends)
        for _ in range(4):  # pieces tokenize a little differently alone: converge
            fixed = len(g.tokenizer.encode_whole(self._prompt(""), self._special))
            keep = min(keep, budget - fixed)
            if keep < 1:
                raise InvalidArgument(
                    f"model {g.model}'s summary prompt leaves no room in its {self._window}-"
                    "token context window: ask for fewer max_new_tokens"
                )
            ids = g.tokenizer.encode_whole(self._prompt(text[: ends[keep - 1]]), self._special)
            if len(ids) <= budget:
                self._metrics.truncated_rows.labels(g.model, SUMMARIZE.name).inc()
                return ids
            keep -= len(ids) - budget
        raise InvalidArgument("the document could not be cut to fit the context window")

    async def summarize(self, query: SummaryQuery, deadline: float | None) -> Summary:
        ids, search = self._prepare(query)
        done = await self.generator.complete(ids, search, (), deadline)
        return Summary(done.text, token_ids=done.token_ids)

    async def stream(self, query: SummaryQuery, deadline: float | None) -> AsyncIterator[str]:
        ids, search = self._prepare(query)
        async for piece in self.generator.pieces(ids, search, (), deadline):
            if piece.text:
                yield piece.text
