"""Answer on a sentence encoder: the context sentences closest to the question.

Answer-sentence selection: the question and every context sentence are embedded in one
request (so they share batches), and sentences are ranked by cosine similarity.
"""

from __future__ import annotations

import numpy as np

from service.tasks.encoder import SentenceEncoder
from service.tasks.pipelines import ANSWER, AnswerQuery, Answers
from service.tasks.sentences import split_sentences
from service.tasks.spans import ScoredSpan, check_picks

DEFAULT_ANSWERS = 1


class SentenceAnswerer:
    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder

    async def answer(self, query: AnswerQuery, deadline: float | None) -> Answers:
        k = check_picks(query.top_k, DEFAULT_ANSWERS, "top_k")
        sentences = split_sentences(query.context)
        vectors = await self._encoder.encode(
            [query.question, *(s.text for s in sentences)], ANSWER.name, True, deadline
        )
        scores = vectors.values[1:] @ vectors.values[0]
        best = np.argsort(-scores, kind="stable")[:k]
        spans = [
            ScoredSpan(sentences[i].text, float(scores[i]), sentences[i].start, sentences[i].end)
            for i in best
        ]
        truncated = sum(1 for i in vectors.truncated if i > 0)  # index 0 is the question
        return Answers(spans, truncated)
