"""Speculative decoding for a greedy request alone in its batch: the model's int8 variant
drafts a few tokens, one cheap step each, and the served graph checks them all in one call.

Why it pays: at one row a step reads every weight once, whatever its number of tokens, so it
is bound by memory bandwidth (docs/benchmarks.md measures ~80% of the bound), and a call over
the last token and k drafted ones costs about one step. The int8 draft reads a quarter of the
bytes.

Why the tokens do not change: the search takes the served graph's logits position by
position, exactly as it would have step by step (its logits processors, stop strings and
lengths included), and stops at the first drafted token it would not have chosen; its own
choice there is the next token. So whatever the draft proposes, the output is the served
graph's greedy output (up to the rounding of one several-token call against several
one-token calls); the draft only decides how many tokens a call yields.

The draft keeps its own one-row cache of the request's tokens. Rejected drafts are undone in
both caches by moving the row's length back: slots past it are masked and written over. A
new request, or one that was batched with others for a while (no rounds then), catches the
draft up with the tokens it missed, at most `catch_up` per call: a long prompt takes several
calls, the batch stepping plainly meanwhile, so that no call grows by more than one prefill
budget of the draft's. The number drafted adapts as transformers' assisted generation does:
two more after a round that took them all, one fewer after a miss.

Before the draft model, a round looks the request's latest tokens up (prompt lookup, as
vLLM's n-gram proposer and transformers' `prompt_lookup_num_tokens` do): when the last
`lookup` tokens (down to 2) occurred before, in the source or prompt or the output so far,
the tokens that followed them are the draft, for no model call at all. A summary copies
runs of its source, and an answer repeats its prompt's names; where nothing matches, the
draft model drafts. Without a draft model (a model with no int8 variant) rounds are lookups
alone.

Rounds only pay when the draft agrees often enough (a random t5-small's int8 agreed on 34%
of drafts, and its rounds were slower than plain steps). So the speculator times both, per
token, and pauses rounds while they are the slower: a few plain steps first, then pauses that
double each time rounds lose again, up to MAX_PAUSE calls, between tries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeGuard

import numpy as np

from service.seq2seq.cache import BatchCache
from service.seq2seq.search import Advance, Greedy, Search

DRAFT_TOKENS = 6  # most tokens drafted per round, unless the server is told otherwise
LOOKUP = 3  # longest run of the latest tokens looked up (prompt lookup), unless told otherwise
SHORTEST_LOOKUP = 2  # a single token recurs too often to say what follows it
PROBE_STEPS = 4  # plain steps timed before the first round, and the first pause
MAX_PAUSE = 512  # most plain calls between two tries of rounds that lost
SMOOTHING = 0.25  # the weight of a new timing in the moving averages

Verify = Callable[[np.ndarray, BatchCache], np.ndarray]  # ids [1, T] → logits [1, T, vocab]


class Draft(Protocol):
    """The draft model's side: a one-row cache for a request, and a step on it."""

    def new_cache(self) -> BatchCache: ...

    def start(self, cache: BatchCache, source: np.ndarray) -> None:
        """Add the request's one row to an empty `cache` (a seq2seq draft encodes `source`)."""

    def last_logits(self, ids: np.ndarray, cache: BatchCache) -> np.ndarray:
        """`ids` [1, T] written after the row's tokens; the last one's logits [1, vocab]."""


@dataclass(slots=True)
class Round:
    advances: list[Advance]  # the search's, one per token taken, in order
    drafted: int
    accepted: int


class Speculator:
    def __init__(
        self,
        draft: Draft | None,
        most: int = DRAFT_TOKENS,
        catch_up: int = 128,
        weigh: bool = True,
        lookup: int = 0,
    ) -> None:
        self.draft = draft  # None: lookups alone
        self._lookup = lookup  # longest run of latest tokens looked up; 0: no lookups
        self._weighs = weigh  # False: a round on every call that suits (the tests' drafts)
        self._most = most
        self._catch_up = catch_up  # most tokens the draft is fed in one call to catch up
        self._tokens = min(most, 4)
        self._cache = draft.new_cache() if draft is not None else None
        self._owner: object | None = None  # the job whose tokens the draft cache holds
        # Seconds per token of plain one-row steps and of rounds (moving averages): rounds
        # pause while they are the slower, as with a draft that seldom agrees.
        self._step_seconds: float | None = None
        self._round_seconds: float | None = None
        self._paused = PROBE_STEPS if weigh else 0  # plain calls before the next round
        self._backoff = PROBE_STEPS

    def takes(self, search: Search) -> TypeGuard[Greedy]:
        """Whether a round suits this search now: plain greedy (not sampling, not beams),
        with room for a drafted token and the one the check adds, and rounds not paused."""
        if type(search) is not Greedy or search.max_length - len(search.sequence) < 2:
            return False
        if self._paused:
            self._paused -= 1
            return False
        return True

    def observe_step(self, seconds: float) -> None:
        """A plain step of one greedy row took `seconds` (its one token)."""
        self._step_seconds = _average(self._step_seconds, seconds)

    def round(self, owner: object, source: np.ndarray, search: Greedy, verify: Verify,
              cache: BatchCache) -> Round | None:  # fmt: skip
        """Draft, check and take tokens for `search`, whose row is the only one of `cache`
        (the served graph's); `source` the request's encoder ids (seq2seq) or prompt. None:
        nothing to draft (no lookup matched, and no draft model), or the draft model was more
        than `catch_up` tokens behind (a new request's prompt) and took that many; the batch
        steps plainly this call."""
        sequence = list(search.sequence)  # the prefix and the tokens taken; all but the last cached
        started = time.perf_counter()
        room = search.max_length - len(sequence) - 1
        drafted = self._looked_up(source, sequence, room) if self._lookup else []
        by_model = not drafted
        if by_model:
            if self.draft is None or self._cache is None:
                return None
            if self._owner is not owner:
                self._cache.select(np.zeros(0, np.int64))  # another request's: start over
                self.draft.start(self._cache, source)
                self._owner = owner
            written = int(self._cache.lengths[0])
            if len(sequence) - written > self._catch_up:
                self.draft.last_logits(np.array([sequence[written : written + self._catch_up]]),
                                       self._cache)  # fmt: skip
                return None
            drafted = self._propose(search, sequence, min(self._tokens, room))
        count = len(drafted)
        logits = verify(np.array([[sequence[-1], *drafted]], np.int64), cache)[0]
        advances: list[Advance] = []
        for position in range(count + 1):
            advance = search.advance(logits[position : position + 1])
            advances.append(advance)
            if advance.done or position == count or advance.token != drafted[position]:
                break
        accepted = len(advances) - 1  # drafted tokens taken; the last is the check's own
        cache.advance(accepted - count)  # unwritten: the drafts after the first miss
        if by_model and self._cache is not None:
            # The draft was fed the sequence and every draft but the last: it keeps those taken.
            self._cache.lengths[0] = len(sequence) + min(accepted, count - 1)
            self._adapt(accepted == count)
        per_token = (time.perf_counter() - started) / len(advances)
        self._round_seconds = _average(self._round_seconds, per_token)
        self._weigh()
        return Round(advances, count, accepted)

    def _weigh(self) -> None:
        """Pause rounds while they give tokens slower than plain steps; the pause doubles
        (up to MAX_PAUSE calls) each time they lose again after one, and resets when they win."""
        if not self._weighs or self._step_seconds is None or self._round_seconds is None:
            return
        if self._round_seconds > self._step_seconds:
            self._paused = self._backoff
            self._backoff = min(MAX_PAUSE, 2 * self._backoff)
            self._round_seconds = None  # the next rounds are judged afresh
        else:
            self._backoff = PROBE_STEPS

    def _looked_up(self, source: np.ndarray, sequence: list[int], room: int) -> list[int]:
        # A causal LM's sequence starts with its prompt, a seq2seq one's with the start token.
        copied = len(sequence) >= len(source) and np.array_equal(sequence[: len(source)], source)
        context = np.array(sequence if copied else [*source, *sequence], np.int64)
        return looked_up(context, self._lookup, min(self._most, room))

    def _propose(self, search: Greedy, sequence: list[int], count: int) -> list[int]:
        """`count` tokens, each the one the search would choose after the draft's logits."""
        assert self.draft is not None and self._cache is not None
        written = int(self._cache.lengths[0])
        ids = np.array([sequence[written:]], np.int64)  # the last token, and any it missed
        drafted: list[int] = []
        while len(drafted) < count:
            logits = self.draft.last_logits(ids, self._cache)
            drafted.append(search.proposal(logits, drafted))
            ids = np.array([[drafted[-1]]], np.int64)
        return drafted

    def _adapt(self, all_taken: bool) -> None:
        self._tokens = min(self._most, self._tokens + 2) if all_taken else max(1, self._tokens - 1)


def looked_up(context: np.ndarray, longest: int, count: int) -> list[int]:
    """Up to `count` tokens that followed the latest earlier occurrence of the last n tokens of
    `context`, for n from `longest` down to SHORTEST_LOOKUP; none when no run recurs."""
    for n in range(min(longest, len(context) - 1), SHORTEST_LOOKUP - 1, -1):
        # Every start of a window of n before the last one, where the window equals the end.
        windows = np.lib.stride_tricks.sliding_window_view(context[:-1], n)
        starts = np.flatnonzero((windows == context[-n:]).all(axis=1))
        if len(starts):
            follows = int(starts[-1]) + n
            return [int(t) for t in context[follows : follows + count]]
    return []


def _average(average: float | None, value: float) -> float:
    return value if average is None else (1 - SMOOTHING) * average + SMOOTHING * value
