"""Answer on a sentence encoder: the context sentences closest to the question.

Answer-sentence selection: the question and every context sentence are embedded in one
request (so they share batches), and sentences are ranked by cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.tasks.encoder import SentenceEncoder
from service.tasks.sentences import split_sentences
from service.tasks.spans import ScoredSpan, check_picks

DEFAULT_ANSWERS = 1


@dataclass(frozen=True, slots=True)
class Answers:
    answers: list[ScoredSpan]  # best first
    truncated_sentences: int


async def answer(
    encoder: SentenceEncoder, question: str, context: str, top_k: int, deadline: float | None
) -> Answers:
    encoder.check_text(question, "question")
    encoder.check_text(context, "context")
    k = check_picks(top_k, DEFAULT_ANSWERS, "top_k")
    sentences = split_sentences(context)
    vectors = await encoder.encode(
        [question, *(s.text for s in sentences)], "answer", True, deadline
    )
    scores = vectors.values[1:] @ vectors.values[0]
    best = np.argsort(-scores, kind="stable")[:k]
    spans = [
        ScoredSpan(sentences[i].text, float(scores[i]), sentences[i].start, sentences[i].end)
        for i in best
    ]
    truncated = sum(1 for i in vectors.truncated if i > 0)  # index 0 is the question
    return Answers(spans, truncated)
