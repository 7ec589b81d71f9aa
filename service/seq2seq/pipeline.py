"""Abstractive Summarize on a seq2seq model: validate, tokenize, generate, detokenize.

Request options are 0 for "the model's default" (its generation_config, recorded in
model.yaml at export); absurd values are INVALID_ARGUMENT. Streaming yields text as greedy
search chooses tokens; beam search only knows its best sequence at the end, so it streams
that as one piece.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import numpy as np

from service.errors import InvalidArgument
from service.metrics import Metrics
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.search import Beam, Greedy, SearchSettings
from service.seq2seq.spec import Seq2SeqSpec
from service.tasks.pipelines import SUMMARIZE, Summary, SummaryQuery
from service.tasks.tokenizer import TextTokenizer

MAX_BEAMS = 16
MAX_NO_REPEAT_NGRAM = 64
MAX_LENGTH_PENALTY = 100.0
_REPLACEMENT = "\ufffd"  # what a partial UTF-8 sequence decodes to: wait for the rest


class Seq2SeqSummarizer:
    def __init__(
        self,
        model: str,
        tokenizer: TextTokenizer,
        spec: Seq2SeqSpec,
        batcher: ContinuousBatcher,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.batcher = batcher
        self._metrics = metrics

    def settings(self, query: SummaryQuery) -> SearchSettings:
        d, spec = self.spec.defaults, self.spec
        max_new = query.max_new_tokens or d.max_new_tokens
        limit = spec.max_decoder_length - 1
        if not 1 <= max_new <= limit:
            raise InvalidArgument(f"max_new_tokens must be between 1 and {limit}; got {max_new}")
        beams = query.num_beams or d.num_beams
        most_beams = min(MAX_BEAMS, self.batcher.max_rows)
        if not 1 <= beams <= most_beams:
            raise InvalidArgument(f"num_beams must be between 1 and {most_beams}; got {beams}")
        penalty = query.length_penalty or d.length_penalty
        if not math.isfinite(penalty) or abs(penalty) > MAX_LENGTH_PENALTY:
            raise InvalidArgument(
                f"length_penalty must be a number within ±{MAX_LENGTH_PENALTY:g}; got {penalty}"
            )
        ngram = query.no_repeat_ngram_size or d.no_repeat_ngram_size
        if not 0 <= ngram <= MAX_NO_REPEAT_NGRAM:
            raise InvalidArgument(
                f"no_repeat_ngram_size must be at most {MAX_NO_REPEAT_NGRAM}; got {ngram}"
            )
        return SearchSettings(
            decoder_start_token_id=spec.decoder_start_token_id,
            eos_token_ids=spec.eos_token_ids,
            max_new_tokens=max_new,
            num_beams=beams,
            length_penalty=penalty,
            early_stopping=d.early_stopping,
            no_repeat_ngram_size=ngram,
            min_length=d.min_length,
            forced_bos_token_id=d.forced_bos_token_id,
            forced_eos_token_id=d.forced_eos_token_id,
        )

    def _prepare(self, query: SummaryQuery) -> tuple[SearchSettings, np.ndarray]:
        settings = self.settings(query)
        encoded = self.tokenizer.encode([query.text])[0]
        self._metrics.input_tokens.labels(self.model, SUMMARIZE.name).inc(len(encoded.ids))
        if encoded.truncated:
            self._metrics.truncated_rows.labels(self.model, SUMMARIZE.name).inc()
        return settings, encoded.ids

    async def summarize(self, query: SummaryQuery, deadline: float | None) -> Summary:
        settings, source = self._prepare(query)
        # The generated ids after the decoder start token, EOS included.
        ids = await self.batcher.generate(source, _search(settings), deadline)
        return Summary(self.tokenizer.decode(ids), token_ids=ids)

    async def stream(self, query: SummaryQuery, deadline: float | None) -> AsyncIterator[str]:
        """Pieces of the summary text, in order; joined they equal `summarize`'s text."""
        settings, source = self._prepare(query)
        if settings.num_beams > 1:
            ids = await self.batcher.generate(source, Beam(settings), deadline)
            yield self.tokenizer.decode(ids)
            return
        tokens: asyncio.Queue[int | None] = asyncio.Queue()

        async def generate() -> list[int]:
            try:
                return await self.batcher.generate(
                    source, Greedy(settings), deadline, tokens.put_nowait
                )
            finally:
                tokens.put_nowait(None)

        generation = asyncio.ensure_future(generate())
        try:
            chosen: list[int] = []
            sent = ""
            while (token := await tokens.get()) is not None:
                chosen.append(token)
                text_so_far = self.tokenizer.decode(chosen)
                # Hold back text that may still change: a partial character.
                stable = text_so_far.startswith(sent) and not text_so_far.endswith(_REPLACEMENT)
                if stable and len(text_so_far) > len(sent):
                    yield text_so_far[len(sent) :]
                    sent = text_so_far
            final = self.tokenizer.decode(await generation)
            if final.startswith(sent) and len(final) > len(sent):
                yield final[len(sent) :]
        finally:
            if not generation.done():
                generation.cancel()


def _search(settings: SearchSettings) -> Greedy | Beam:
    return Beam(settings) if settings.num_beams > 1 else Greedy(settings)
