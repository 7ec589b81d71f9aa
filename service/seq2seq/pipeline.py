"""Abstractive Summarize on a seq2seq model: the text (truncated to the encoder's window,
and counted) as the source, then the model's generation, as Generate runs it
(service/tasks/generate.py: options, searches, streaming).

Request options are 0 for "the model's default" (its generation_config, recorded in
model.yaml at export); absurd values are INVALID_ARGUMENT. Streaming yields text as greedy
search chooses tokens; beam search only knows its best sequence at the end, so it streams
that as one piece.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from service.metrics import Metrics
from service.seq2seq.search import Search
from service.tasks.generate import TextGenerator
from service.tasks.pipelines import SUMMARIZE, Summary, SummaryQuery


class Seq2SeqSummarizer:
    def __init__(self, generator: TextGenerator, metrics: Metrics) -> None:
        self.generator = generator
        self._metrics = metrics

    def _prepare(self, query: SummaryQuery) -> tuple[np.ndarray, Search]:
        g = self.generator
        encoded = g.tokenizer.encode([query.text])[0]
        settings = g.settings(
            encoded.ids, query.max_new_tokens, query.num_beams, query.length_penalty,
            query.no_repeat_ngram_size,
        )  # fmt: skip
        self._metrics.input_tokens.labels(g.model, SUMMARIZE.name).inc(len(encoded.ids))
        if encoded.truncated:
            self._metrics.truncated_rows.labels(g.model, SUMMARIZE.name).inc()
        return encoded.ids, g.search(settings, encoded.ids)

    async def summarize(self, query: SummaryQuery, deadline: float | None) -> Summary:
        source, search = self._prepare(query)
        # The generated ids after the decoder start token, EOS included.
        done = await self.generator.complete(source, search, (), deadline)
        return Summary(done.text, token_ids=done.token_ids)

    async def stream(self, query: SummaryQuery, deadline: float | None) -> AsyncIterator[str]:
        """Pieces of the summary text, in order; joined they equal `summarize`'s text."""
        source, search = self._prepare(query)
        async for piece in self.generator.pieces(source, search, (), deadline):
            if piece.text:
                yield piece.text
