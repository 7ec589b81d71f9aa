"""Span decoding on hand-made logits: no-answer, answer length, word widening, merging."""

from __future__ import annotations

import numpy as np
import pytest

from service.tasks.span_decoding import rank_answers, score_window
from service.tasks.span_windows import QuestionWindows, Window
from tests.server_process import require_default_model

CONTEXT = "Gustave Eiffel's café opened in 1889 🌱 near Zürich."


@pytest.fixture(scope="module")
def window() -> Window:
    tokenizer = require_default_model() / "tokenizer.json"
    (only,) = QuestionWindows(tokenizer, 128, cls_token_id=101).split("Who?", CONTEXT, 32)
    return only


def logits(window: Window, peaks: dict[int, float]) -> np.ndarray:
    values = np.zeros(len(window.ids), dtype=np.float32)
    for index, value in peaks.items():
        values[index] = value
    return values


def token_of(window: Window, word: str) -> int:
    start = CONTEXT.index(word)
    return next(i for i, (a, _) in enumerate(window.encoding.offsets) if a == start and i > 3)


def test_no_answer_wins_only_when_allowed(window: Window) -> None:
    cafe = token_of(window, "café")
    start = logits(window, {0: 9.0, cafe: 5.0})
    end = logits(window, {0: 9.0, cafe: 5.0})
    scored = [score_window(start, end, window.candidates, 15, 12)]
    assert rank_answers(CONTEXT, [window], scored, 3, allow_no_answer=True) == []
    best = rank_answers(CONTEXT, [window], scored, 1, allow_no_answer=False)
    assert [(a.text, CONTEXT[a.start : a.end]) for a, _ in best] == [("café", "café")]
    assert best[0][1] is window  # the window it was read from, for its explanation


def test_answer_length_and_code_point_offsets(window: Window) -> None:
    year, place = token_of(window, "1889"), token_of(window, "Zürich")
    start = logits(window, {year: 8.0})
    end = logits(window, {place: 8.0, year + 1: 4.0})
    long = score_window(start, end, window.candidates, 15, 12)
    ((best, _),) = rank_answers(CONTEXT, [window], [long], 1, allow_no_answer=False)
    assert best.text == "1889 🌱 near Zürich" == CONTEXT[best.start : best.end]
    short = score_window(start, end, window.candidates, 2, 12)
    ((best, _),) = rank_answers(CONTEXT, [window], [short], 1, allow_no_answer=False)
    assert best.text == "1889 🌱"


def test_question_tokens_never_answer(window: Window) -> None:
    question = 1  # "who": the highest logits, but not part of the context
    start = logits(window, {question: 50.0})
    end = logits(window, {question: 50.0})
    scored = score_window(start, end, window.candidates, 15, 12)
    in_context = [i for i, s in enumerate(window.encoding.sequence_ids) if s == 1]
    assert scored.spans and all(s in in_context and e in in_context for s, e, _ in scored.spans)


def test_pieces_of_one_word_merge(window: Window) -> None:
    # Spans inside "Eiffel's" widen to the same words, so their scores add up.
    first = token_of(window, "Eiffel")
    start = logits(window, {first: 6.0, first + 1: 6.0})
    end = logits(window, {first + 1: 6.0})
    scored = [score_window(start, end, window.candidates, 15, 12)]
    answers = rank_answers(CONTEXT, [window], scored, 5, allow_no_answer=False)
    texts = [a.text.lower() for a, _ in answers]
    assert len(texts) == len(set(texts))
