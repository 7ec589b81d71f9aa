"""Greedy and beam search for one request, step by step, as transformers 5.x generate does.

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

    @property
    def max_length(self) -> int:
        """Decoder length at which generation stops, the start token included."""
        return self.max_new_tokens + 1


def process(scores: np.ndarray, sequences: list[list[int]], settings: SearchSettings) -> None:
    """Apply the logits processors in place; `sequences` are the rows' decoder ids so far."""
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
    if settings.forced_eos_token_id is not None and cur_len == settings.max_length - 1:
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


class Greedy:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.rows = 1
        self.sequence = [settings.decoder_start_token_id]

    def next_tokens(self) -> list[int]:
        return [self.sequence[-1]]

    def advance(self, logits: np.ndarray) -> Advance:
        scores = logits.astype(np.float32, copy=True)
        process(scores, [self.sequence], self.settings)
        token = int(np.argmax(scores[0]))
        self.sequence.append(token)
        done = (
            token in self.settings.eos_token_ids or len(self.sequence) >= self.settings.max_length
        )
        return Advance(rows=[0], token=token, done=done)

    def result(self) -> list[int]:
        return self.sequence[1:]


class Beam:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        beams = settings.num_beams
        self.rows = beams
        self._keep = max(2, 1 + len(settings.eos_token_ids)) * beams
        self._cur_len = 1
        self._running = [[settings.decoder_start_token_id] for _ in range(beams)]
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
        process(log_probs, self._running, s)
        accumulated = (log_probs + self._running_scores[:, None]).reshape(-1)
        top = top_k(accumulated, self._keep)
        top_scores = accumulated[top]
        origins, tokens = top // vocab, top % vocab
        candidates = [self._running[o] + [int(t)] for o, t in zip(origins, tokens, strict=True)]
        at_end = self._cur_len + 1 >= s.max_length
        hits = np.array([at_end or int(t) in s.eos_token_ids for t in tokens])

        # The best candidates that did not stop run on.
        running_scores = top_scores + hits.astype(np.float32) * _NEG
        chosen = top_k(running_scores, beams)
        self._running = [candidates[i] for i in chosen]
        self._running_scores = running_scores[chosen]

        # Stopped candidates among the top `beams` compete for the finished slots.
        just_finished = hits & (np.arange(len(top)) < beams)
        # Generated length of the candidates: cur_len + 1 minus the one start token.
        scores = top_scores / np.float32(self._cur_len**s.length_penalty)
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
        return Advance(rows=[int(origins[i]) for i in chosen], token=None, done=done)

    def _can_improve(self) -> bool:
        s = self.settings
        if s.early_stopping == "never" and s.length_penalty > 0.0:
            best_length = s.max_length - 1
        else:
            best_length = self._cur_len - 1
        best_possible = self._running_scores[0] / np.float32(best_length**s.length_penalty)
        worst = np.where(self._is_finished, self._finished_scores.min(), _NEG)
        return bool((best_possible > worst).any())

    def result(self) -> list[int]:
        return self._finished[0][1:]
