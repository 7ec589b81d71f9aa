"""Greedy, beam search and sampling for one request, step by step, as transformers 5.x
generate does, for seq2seq decoders (the sequence starts with the decoder start token) and
causal LMs (it starts with the prompt; lengths count the prompt, as generate()'s do).

Each search owns a fixed number of decoder rows (1, or num_beams) and is advanced with
those rows' logits after every decoder step. It answers which of its rows continue into
the next step (beam search reorders them) and whether it is done. The arithmetic mirrors
`GenerationMixin._sample` (greedy) and `GenerationMixin._beam_search` with its helpers,
in float32 with the same -1e9 sentinels, so that the same logits pick the same tokens;
the logits processors are NoRepeatNGram, MinLength, ForcedBOS and ForcedEOS, in
transformers' order.

Plain numpy, no threads or asyncio: the batcher calls it from its worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_NEG = np.float32(-1.0e9)  # transformers' "never pick this" score


@dataclass(frozen=True, slots=True)
class SearchSettings:
    decoder_start_token_id: int
    eos_token_ids: tuple[int, ...]
    max_new_tokens: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str  # True, False or "never"
    no_repeat_ngram_size: int
    min_length: int  # decoder length (start token included) before EOS may come
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None


@dataclass(frozen=True, slots=True)
class Sampling:
    """Multinomial sampling (GenerateRequest temperature, top_p, seed) with the model's top_k;
    transformers' warpers in its order: temperature, top-k, top-p."""

    temperature: float
    top_p: float  # 1.0: off
    top_k: int  # 0: off
    seed: int


Stop = Callable[[list[int]], bool]  # True once the generated ids' text holds a stop string

LENGTH, EOS, STOP = "length", "eos", "stop"  # finish reasons


def process(
    scores: np.ndarray, sequences: list[list[int]], settings: SearchSettings, max_length: int
) -> None:
    """Apply the logits processors in place; `sequences` are the rows' ids so far (the start
    token or the prompt first); `max_length` the length at which generation stops."""
    cur_len = len(sequences[0])
    n = settings.no_repeat_ngram_size
    if n and cur_len >= n:
        vocab = scores.shape[-1]
        for row, seq in enumerate(sequences):
            prefix = seq[cur_len - n + 1 :]
            for start in range(cur_len - n + 1):
                if seq[start : start + n - 1] == prefix and seq[start + n - 1] < vocab:
                    scores[row, seq[start + n - 1]] = -np.inf
    if cur_len < settings.min_length:
        scores[:, list(settings.eos_token_ids)] = -np.inf
    if settings.forced_bos_token_id is not None and cur_len == 1:
        scores[:] = -np.inf
        scores[:, settings.forced_bos_token_id] = 0.0
    if settings.forced_eos_token_id is not None and cur_len == max_length - 1:
        scores[:] = -np.inf
        scores[:, settings.forced_eos_token_id] = 0.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out.astype(np.float32, copy=False)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first; ties keep index order."""
    if len(values) > 4 * k:
        candidates = np.argpartition(-values, k - 1)[:k]
        return candidates[np.lexsort((candidates, -values[candidates]))]
    return np.argsort(-values, kind="stable")[:k]


@dataclass(frozen=True, slots=True)
class Advance:
    """The outcome of one step for one search."""

    rows: list[int]  # for each of its rows in the next step, the row it continues
    token: int | None  # greedy: the token just chosen (for streaming)
    done: bool


class Search:
    """What every search shares: its prefix (the decoder start token, or a causal LM's
    prompt), the length at which it stops, and why it finished."""

    rows: int

    def __init__(self, settings: SearchSettings, prompt: Sequence[int] | None) -> None:
        self.settings = settings
        self.prefix = list(prompt) if prompt else [settings.decoder_start_token_id]
        self.max_length = len(self.prefix) + settings.max_new_tokens
        self.finish_reason = ""

    def next_tokens(self) -> list[int]:
        raise NotImplementedError

    def advance(self, logits: np.ndarray) -> Advance:
        raise NotImplementedError

    def result(self) -> list[int]:
        raise NotImplementedError


class Greedy(Search):
    """One row, the most likely token each step (or a sampled one: Sample)."""

    def __init__(
        self,
        settings: SearchSettings,
        prompt: Sequence[int] | None = None,
        stop: Stop | None = None,
    ) -> None:
        super().__init__(settings, prompt)
        self.rows = 1
        self.sequence = list(self.prefix)
        self._stop = stop

    def next_tokens(self) -> list[int]:
        return [self.sequence[-1]]

    def choose(self, scores: np.ndarray) -> int:
        return int(np.argmax(scores))

    def proposal(self, logits: np.ndarray, drafted: list[int]) -> int:
        """The token greedy search would choose after its sequence and `drafted`, from a draft
        model's `logits` [1, vocab], without taking it (service/seq2seq/speculation.py)."""
        scores = logits.astype(np.float32, copy=True)
        process(scores, [self.sequence + drafted], self.settings, self.max_length)
        return int(np.argmax(scores[0]))

    def advance(self, logits: np.ndarray) -> Advance:
        scores = logits.astype(np.float32, copy=True)
        process(scores, [self.sequence], self.settings, self.max_length)
        token = self.choose(scores[0])
        self.sequence.append(token)
        if token in self.settings.eos_token_ids:
            self.finish_reason = EOS
        elif self._stop is not None and self._stop(self.result()):
            self.finish_reason = STOP
        elif len(self.sequence) >= self.max_length:
            self.finish_reason = LENGTH
        return Advance(rows=[0], token=token, done=bool(self.finish_reason))

    def result(self) -> list[int]:
        return self.sequence[len(self.prefix) :]


class Sample(Greedy):
    """Greedy's loop with a token drawn from the warped distribution: its own generator, so a
    seed gives the same tokens whatever else is in the batch (given the same logits)."""

    def __init__(
        self,
        settings: SearchSettings,
        sampling: Sampling,
        prompt: Sequence[int] | None = None,
        stop: Stop | None = None,
    ) -> None:
        super().__init__(settings, prompt, stop)
        self.sampling = sampling
        self._random = np.random.default_rng(sampling.seed)

    def choose(self, scores: np.ndarray) -> int:
        return int(self._random.choice(len(scores), p=warped(scores, self.sampling)))


def warped(scores: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Probabilities after temperature, top-k and top-p, as transformers' warpers leave them
    (top-p keeps the smallest set whose probability reaches top_p, at least one token)."""
    scores = scores.astype(np.float64) / sampling.temperature
    if 0 < sampling.top_k < len(scores):
        kth = np.partition(scores, -sampling.top_k)[-sampling.top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    if sampling.top_p < 1.0:
        order = np.argsort(scores, kind="stable")  # ascending, as TopPLogitsWarper sorts
        probabilities = _softmax(scores[order])
        removed = np.cumsum(probabilities) <= 1.0 - sampling.top_p
        removed[-1] = False
        scores = scores.copy()
        scores[order[removed]] = -np.inf
    return _softmax(scores)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    out: np.ndarray = shifted / shifted.sum()
    return out


class Beam(Search):
    def __init__(self, settings: SearchSettings, prompt: Sequence[int] | None = None) -> None:
        super().__init__(settings, prompt)
        beams = settings.num_beams
        self.rows = beams
        self._keep = max(2, 1 + len(settings.eos_token_ids)) * beams
        self._start = len(self.prefix)  # transformers' decoder_prompt_len
        self._cur_len = self._start
        self._running = [list(self.prefix) for _ in range(beams)]
        # Only the first beam is live at first, so the beams do not all pick the same tokens.
        self._running_scores = np.full(beams, _NEG, dtype=np.float32)
        self._running_scores[0] = 0.0
        self._finished: list[list[int]] = [[] for _ in range(beams)]
        self._finished_scores = np.full(beams, _NEG, dtype=np.float32)
        self._is_finished = np.zeros(beams, dtype=bool)
        self._improvable = True  # transformers' is_early_stop_heuristic_unsatisfied

    def next_tokens(self) -> list[int]:
        return [seq[-1] for seq in self._running]

    def advance(self, logits: np.ndarray) -> Advance:
        s = self.settings
        beams, vocab = logits.shape
        log_probs = log_softmax(logits.astype(np.float32, copy=False))
        process(log_probs, self._running, s, self.max_length)
        accumulated = (log_probs + self._running_scores[:, None]).reshape(-1)
        top = top_k(accumulated, self._keep)
        top_scores = accumulated[top]
        origins, tokens = top // vocab, top % vocab
        candidates = [self._running[o] + [int(t)] for o, t in zip(origins, tokens, strict=True)]
        at_end = self._cur_len + 1 >= self.max_length
        hits = np.array([at_end or int(t) in s.eos_token_ids for t in tokens])

        # The best candidates that did not stop run on.
        running_scores = top_scores + hits.astype(np.float32) * _NEG
        chosen = top_k(running_scores, beams)
        self._running = [candidates[i] for i in chosen]
        self._running_scores = running_scores[chosen]

        # Stopped candidates among the top `beams` compete for the finished slots.
        just_finished = hits & (np.arange(len(top)) < beams)
        # Generated length of the candidates: cur_len + 1 minus the prefix.
        generated = self._cur_len + 1 - self._start
        scores = top_scores / np.float32(generated**s.length_penalty)
        all_full = bool(self._is_finished.all()) and s.early_stopping is True
        scores += np.float32(all_full) * _NEG
        scores += np.float32(not self._improvable) * _NEG
        scores += (~just_finished).astype(np.float32) * _NEG
        merged_scores = np.concatenate([self._finished_scores, scores])
        merged = [*self._finished, *candidates]
        merged_finished = np.concatenate([self._is_finished, just_finished])
        best = top_k(merged_scores, beams)
        self._finished = [merged[i] for i in best]
        self._finished_scores = merged_scores[best]
        self._is_finished = merged_finished[best]

        self._cur_len += 1
        self._improvable = self._improvable and self._can_improve()
        open_beam = not (bool(self._is_finished.all()) and s.early_stopping is True)
        done = not (self._improvable and open_beam and not bool(hits.all()))
        if done:
            kept = self._finished[0]
            self.finish_reason = EOS if kept and kept[-1] in s.eos_token_ids else LENGTH
        return Advance(rows=[int(origins[i]) for i in chosen], token=None, done=done)

    def _can_improve(self) -> bool:
        s = self.settings
        if s.early_stopping == "never" and s.length_penalty > 0.0:
            best_length = self.max_length - self._start
        else:
            best_length = self._cur_len - self._start
        best_possible = self._running_scores[0] / np.float32(best_length**s.length_penalty)
        worst = np.where(self._is_finished, self._finished_scores.min(), _NEG)
        return bool((best_possible > worst).any())

    def result(self) -> list[int]:
        return self._finished[0][self._start :]
