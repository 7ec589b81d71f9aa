"""Generate on a causal LM (the prompt is the start of the sequence) or a seq2seq model (the
prompt is the source text): validate, tokenize, search, detokenize, stop strings.

The prompt is tokenized as transformers' `tokenizer(prompt)` does (tokenizer.json with its
own special tokens), never truncated: one longer than the context window is
INVALID_ARGUMENT. Greedy and beam search follow generate(); sampling (temperature > 0) draws
from the model's logits after temperature, the model's top_k and top_p, with its own
generator per request, seeded by `seed` (0: a fresh one), so a seed gives the same text for
the same logits. A stop string ends greedy or sampled generation as soon as the text holds
it; the text is cut before it (as OpenAI's `stop`), the ids keep the token that completed
it. Beam search knows its text only at the end: it is cut there.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncIterator, Callable

import numpy as np

from service.errors import InvalidArgument
from service.metrics import Metrics
from service.model_format import Generation
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.search import (
    EOS,
    LENGTH,
    STOP,
    Beam,
    Greedy,
    Sample,
    Sampling,
    Search,
    SearchSettings,
)
from service.tasks.pipelines import GENERATE, Generated, GeneratedPiece, GenerateQuery
from service.tasks.tokenizer import TextTokenizer

MAX_BEAMS = 16
MAX_NO_REPEAT_NGRAM = 64
MAX_LENGTH_PENALTY = 100.0
MAX_TEMPERATURE = 100.0
MAX_STOPS, MAX_STOP_CHARS = 16, 256
_REPLACEMENT = "\ufffd"  # what a partial UTF-8 sequence decodes to: wait for the rest


class TextGenerator:
    def __init__(
        self,
        model: str,
        tokenizer: TextTokenizer,
        defaults: Generation,
        batcher: ContinuousBatcher,
        metrics: Metrics,
        *,
        window: int,  # most prompt tokens (causal: prompt and generated together)
        max_new_limit: int,  # most generated tokens, whatever the prompt
        causal: bool,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.defaults = defaults
        self.batcher = batcher
        self._metrics = metrics
        self._window = window
        self._max_new_limit = max_new_limit
        self._causal = causal

    # -- the request ----------------------------------------------------------------------

    def prompt_ids(self, prompt: str, special_tokens: bool = True) -> np.ndarray:
        ids = self.tokenizer.encode_whole(prompt, special_tokens)
        if len(ids) == 0:
            raise InvalidArgument("prompt must not be empty")
        room = self._window - (1 if self._causal else 0)  # a causal LM needs a slot to answer
        if len(ids) > room:
            raise InvalidArgument(
                f"the prompt is {len(ids)} tokens; model {self.model} takes at most {room} "
                f"(its context window is {self._window} tokens)"
            )
        return ids

    def settings(
        self,
        prompt: np.ndarray,
        max_new_tokens: int,
        num_beams: int,
        length_penalty: float = 0.0,
        no_repeat_ngram_size: int = 0,
    ) -> SearchSettings:
        d = self.defaults
        room = self._max_new_limit
        if self._causal:
            room = min(room, self._window - len(prompt))
        if max_new_tokens and not 1 <= max_new_tokens <= room:
            raise InvalidArgument(
                f"max_new_tokens must be between 1 and {room} for this prompt (model "
                f"{self.model}'s context window is {self._window} tokens); got {max_new_tokens}"
            )
        beams = num_beams or d.num_beams
        most_beams = min(MAX_BEAMS, self.batcher.max_rows)
        if not 1 <= beams <= most_beams:
            raise InvalidArgument(f"num_beams must be between 1 and {most_beams}; got {beams}")
        penalty = length_penalty or d.length_penalty
        if not math.isfinite(penalty) or abs(penalty) > MAX_LENGTH_PENALTY:
            raise InvalidArgument(
                f"length_penalty must be a number within ±{MAX_LENGTH_PENALTY:g}; got {penalty}"
            )
        ngram = no_repeat_ngram_size or d.no_repeat_ngram_size
        if not 0 <= ngram <= MAX_NO_REPEAT_NGRAM:
            raise InvalidArgument(
                f"no_repeat_ngram_size must be at most {MAX_NO_REPEAT_NGRAM}; got {ngram}"
            )
        return SearchSettings(
            decoder_start_token_id=d.decoder_start_token_id,
            eos_token_ids=tuple(d.eos_token_ids),
            max_new_tokens=max_new_tokens or min(d.max_new_tokens, room),
            num_beams=beams,
            length_penalty=penalty,
            early_stopping=d.early_stopping,
            no_repeat_ngram_size=ngram,
            min_length=d.min_length,
            forced_bos_token_id=d.forced_bos_token_id,
            forced_eos_token_id=d.forced_eos_token_id,
        )

    def search(
        self,
        settings: SearchSettings,
        prompt: np.ndarray,
        sampling: Sampling | None = None,
        stops: tuple[str, ...] = (),
    ) -> Search:
        prefix = [int(t) for t in prompt] if self._causal else None
        if settings.num_beams > 1:
            return Beam(settings, prefix)
        stop = self._stop_check(stops) if stops else None
        if sampling is not None:
            return Sample(settings, sampling, prefix, stop)
        return Greedy(settings, prefix, stop)

    def _stop_check(self, stops: tuple[str, ...]) -> Callable[[list[int]], bool]:
        decode = self.tokenizer.decode
        return lambda ids: any(stop in decode(ids) for stop in stops)

    def _prepare(self, query: GenerateQuery) -> tuple[np.ndarray, Search]:
        sampling = self._sampling(query)
        stops = _check_stops(query.stop)
        prompt = self.prompt_ids(query.prompt)
        settings = self.settings(prompt, query.max_new_tokens, query.num_beams)
        if sampling is not None and settings.num_beams > 1:
            raise InvalidArgument("sampling (temperature > 0) is offered with num_beams 1 only")
        self._metrics.input_tokens.labels(self.model, GENERATE.name).inc(len(prompt))
        return prompt, self.search(settings, prompt, sampling, stops)

    def _sampling(self, query: GenerateQuery) -> Sampling | None:
        t, p = query.temperature, query.top_p
        if not math.isfinite(t) or not 0.0 <= t <= MAX_TEMPERATURE:
            raise InvalidArgument(
                f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE:g}; got {t}"
            )
        if not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise InvalidArgument(f"top_p must be in (0, 1] (0: off); got {p}")
        if t == 0.0:
            if p:
                raise InvalidArgument("top_p applies to sampling: set a temperature above 0")
            return None
        seed = query.seed or secrets.randbits(63)
        return Sampling(temperature=t, top_p=p or 1.0, top_k=self.defaults.top_k, seed=seed)

    # -- answers --------------------------------------------------------------------------

    async def generate(self, query: GenerateQuery, deadline: float | None) -> Generated:
        prompt, search = self._prepare(query)
        return await self.complete(prompt, search, query.stop, deadline)

    def stream(self, query: GenerateQuery, deadline: float | None) -> AsyncIterator[GeneratedPiece]:
        prompt, search = self._prepare(query)
        return self.pieces(prompt, search, query.stop, deadline)

    async def complete(
        self, prompt: np.ndarray, search: Search, stops: tuple[str, ...], deadline: float | None
    ) -> Generated:
        ids = await self.batcher.generate(prompt, search, deadline)
        text, reason = self.finish(ids, search, stops)
        return Generated(text, ids, reason, len(prompt))

    def finish(self, ids: list[int], search: Search, stops: tuple[str, ...]) -> tuple[str, str]:
        """The text (cut before the first stop string) and why generation ended."""
        text = self.tokenizer.decode(ids)
        cut = _first_stop(text, stops)
        if cut is not None:
            return text[:cut], STOP
        return text, search.finish_reason or LENGTH

    async def pieces(
        self, prompt: np.ndarray, search: Search, stops: tuple[str, ...], deadline: float | None
    ) -> AsyncIterator[GeneratedPiece]:
        """Text as tokens are chosen (beam search: all at the end), held back while it may
        still change (a partial character) or may be the start of a stop string."""
        if isinstance(search, Beam):
            done = await self.complete(prompt, search, stops, deadline)
            yield GeneratedPiece(done.text, done.finish_reason)
            return
        tokens: asyncio.Queue[int | None] = asyncio.Queue()

        async def run() -> list[int]:
            try:
                return await self.batcher.generate(prompt, search, deadline, tokens.put_nowait)
            finally:
                tokens.put_nowait(None)

        generation = asyncio.ensure_future(run())
        try:
            chosen: list[int] = []
            sent = ""
            while (token := await tokens.get()) is not None:
                chosen.append(token)
                text = self.tokenizer.decode(chosen)
                if _first_stop(text, stops) is not None:
                    continue  # the end: sent with the finish reason below
                stable = len(text) - _held_back(text, stops)
                if text.startswith(sent) and not text.endswith(_REPLACEMENT) and stable > len(sent):
                    yield GeneratedPiece(text[len(sent) : stable])
                    sent = text[:stable]
            text, reason = self.finish(await generation, search, stops)
            yield GeneratedPiece(text[len(sent) :] if text.startswith(sent) else "", reason)
        finally:
            if not generation.done():
                generation.cancel()


def _check_stops(stops: tuple[str, ...]) -> tuple[str, ...]:
    if len(stops) > MAX_STOPS:
        raise InvalidArgument(f"at most {MAX_STOPS} stop strings; got {len(stops)}")
    for stop in stops:
        if not 0 < len(stop) <= MAX_STOP_CHARS:
            raise InvalidArgument(f"a stop string must be 1 to {MAX_STOP_CHARS} characters")
    return stops


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Characters at the end of `text` that may begin a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


__all__ = ["EOS", "LENGTH", "STOP", "TextGenerator"]
