"""Start and end logits of a request's windows → ranked answer spans in the context.

The decoding of the transformers question-answering pipeline (fast-tokenizer path,
align_to_words), step for step, so that the server and the pipeline give the same answers:

* per window, logits of tokens that cannot hold an answer are set to -10000, start and end
  are softmaxed separately, and "no answer" scores start[0] * end[0] (the classifier token);
  position 0 is then zeroed;
* a span (s, e) scores start[s] * end[e], for s <= e < s + max_answer_length, both on
  answer tokens; the best `top_k * 2 + 10` spans of each window are kept;
* each span widens to whole words (token → word → characters), and spans with the same text
  (case-insensitively) add up their scores, keeping the first one's offsets;
* with no-answer allowed, the lowest "no answer" score of all windows ranks among the spans.

Two deliberate differences: ties are broken by the smaller start, then the smaller end (the
pipeline's top-k order among exact ties is unspecified), and spans of zero probability are
never returned (the pipeline pads a short list with them); when "no answer" ranks first the
list is empty, and answers ranked below it are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.tasks.span_windows import CONTEXT, Window
from service.tasks.spans import ScoredSpan

_MASKED_LOGIT = np.float32(-10000.0)


@dataclass(frozen=True, slots=True)
class WindowSpans:
    spans: list[tuple[int, int, float]]  # (start token, end token, probability), best first
    no_answer: float


def score_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    candidates: np.ndarray,
    max_answer_length: int,
    keep: int,
) -> WindowSpans:
    start = _softmax(np.where(candidates, start_logits, _MASKED_LOGIT))
    end = _softmax(np.where(candidates, end_logits, _MASKED_LOGIT))
    no_answer = float(start[0] * end[0])
    start[0] = end[0] = 0.0
    # Upper band of the outer product: end >= start, at most max_answer_length tokens long.
    scores = np.tril(np.triu(np.outer(start, end)), max_answer_length - 1)
    scores[~candidates, :] = 0.0
    scores[:, ~candidates] = 0.0
    flat = scores.ravel()
    positive = np.flatnonzero(flat > 0.0)
    best = positive[np.argsort(-flat[positive], kind="stable")[:keep]]
    starts, ends = np.unravel_index(best, scores.shape)
    return WindowSpans(
        [(int(s), int(e), float(flat[i])) for s, e, i in zip(starts, ends, best, strict=True)],
        no_answer,
    )


def rank_answers(
    context: str,
    windows: Sequence[Window],
    scored: Sequence[WindowSpans],
    top_k: int,
    allow_no_answer: bool,
) -> list[tuple[ScoredSpan, Window]]:
    """The best `top_k` answers over all windows, best first, each with the window it was
    first found in; empty when "no answer" wins."""
    found: list[tuple[ScoredSpan, Window]] = []
    by_text: dict[str, int] = {}
    for window, spans in zip(windows, scored, strict=True):
        for s, e, probability in spans.spans:
            start, end = _characters(window, s, e)
            text = context[start:end]
            index = by_text.get(text.lower())
            if index is None:
                by_text[text.lower()] = len(found)
                found.append((ScoredSpan(text, probability, start, end), window))
            else:
                same, first = found[index]
                merged = ScoredSpan(same.text, same.score + probability, same.start, same.end)
                found[index] = (merged, first)
    ranked = sorted(found, key=lambda pair: pair[0].score, reverse=True)
    if allow_no_answer:
        no_answer = min(spans.no_answer for spans in scored)
        ranked = [pair for pair in ranked if pair[0].score >= no_answer]
    return ranked[:top_k]


def candidates_kept(top_k: int) -> int:
    """Spans kept per window before widening to words merges some of them."""
    return top_k * 2 + 10


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return np.asarray(exp / exp.sum())


def _characters(window: Window, first: int, last: int) -> tuple[int, int]:
    """Code-point offsets in the context of the words holding tokens first..last; the tokens'
    own offsets when they belong to no word."""
    encoding = window.encoding
    start_word, end_word = encoding.token_to_word(first), encoding.token_to_word(last)
    if start_word is not None and end_word is not None:
        start = encoding.word_to_chars(start_word, CONTEXT)
        end = encoding.word_to_chars(end_word, CONTEXT)
        if start is not None and end is not None:
            return start[0], end[1]
    return encoding.offsets[first][0], encoding.offsets[last][1]
