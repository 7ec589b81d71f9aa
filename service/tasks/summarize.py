"""Extractive Summarize on an encoder: central sentences, not redundant, in document order.

Centrality is continuous LexRank (PageRank over the cosine-similarity graph of the
sentences); picks are made by maximal marginal relevance, so a sentence that repeats one
already chosen loses to a slightly less central one that adds something.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from service.errors import InvalidArgument
from service.tasks.encoder import SentenceEncoder
from service.tasks.pipelines import SUMMARIZE, Summary, SummaryQuery
from service.tasks.sentences import split_sentences
from service.tasks.spans import ScoredSpan, check_picks

DEFAULT_SENTENCES = 3
_DAMPING = 0.85
_MMR_LAMBDA = 0.7  # weight of centrality against redundancy


def lexrank(similarity: np.ndarray, iterations: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Stationary scores of a random walk over the similarity graph (sums to 1)."""
    n = len(similarity)
    weights = np.clip(similarity, 0.0, None)
    np.fill_diagonal(weights, 0.0)
    sums = weights.sum(axis=1, keepdims=True)
    # A sentence similar to nothing links uniformly, so the walk never gets stuck.
    transition = np.where(sums > 0, weights / np.where(sums > 0, sums, 1.0), 1.0 / n)
    scores = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1.0 - _DAMPING) / n + _DAMPING * transition.T @ scores
        if np.abs(updated - scores).sum() < tol:
            return np.asarray(updated)
        scores = updated
    return scores


def mmr(centrality: np.ndarray, similarity: np.ndarray, k: int) -> list[int]:
    """Indices of k picks by maximal marginal relevance, in pick order."""
    relevance = centrality / centrality.max()
    picked: list[int] = []
    candidates = set(range(len(centrality)))
    while candidates and len(picked) < k:

        def gain(i: int) -> float:
            redundancy = max((similarity[i, j] for j in picked), default=0.0)
            return float(_MMR_LAMBDA * relevance[i] - (1 - _MMR_LAMBDA) * redundancy)

        best = max(sorted(candidates), key=gain)
        picked.append(best)
        candidates.remove(best)
    return picked


class ExtractiveSummarizer:
    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder

    async def summarize(self, query: SummaryQuery, deadline: float | None) -> Summary:
        k = check_picks(query.max_sentences, DEFAULT_SENTENCES, "max_sentences")
        sentences = split_sentences(query.text)
        vectors = await self._encoder.encode(
            [s.text for s in sentences], SUMMARIZE.name, True, deadline
        )
        similarity = vectors.values @ vectors.values.T
        centrality = lexrank(similarity)
        chosen = sorted(mmr(centrality, similarity, k))
        spans = [
            ScoredSpan(
                sentences[i].text, float(centrality[i]), sentences[i].start, sentences[i].end
            )
            for i in chosen
        ]
        if not spans:  # a checked text is not blank, hence has a sentence
            raise InvalidArgument("text has no sentences")
        return Summary(
            " ".join(s.text for s in spans), spans, truncated_sentences=len(vectors.truncated)
        )

    async def stream(self, query: SummaryQuery, deadline: float | None) -> AsyncIterator[str]:
        # An extractive summary is known only whole.
        yield (await self.summarize(query, deadline)).text
