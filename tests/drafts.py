"""A draft model for speculative rounds that is always wrong, for the tests that check the
tokens do not depend on the draft."""

from __future__ import annotations

from typing import Any

import numpy as np


class Shifted:
    """Proposes a token the model would not: a real draft's logits moved one token along
    the vocabulary."""

    def __init__(self, graphs: Any) -> None:
        self._graphs = graphs

    def new_cache(self) -> Any:
        return self._graphs.new_cache()

    def start(self, cache: Any, source: np.ndarray) -> None:
        self._graphs.start(cache, source)

    def last_logits(self, ids: np.ndarray, cache: Any) -> np.ndarray:
        return np.asarray(np.roll(self._graphs.last_logits(ids, cache), 1, axis=-1))


def one_at_a_time(batch: Any, jobs: list[Any]) -> tuple[int, int]:
    """Each job through `batch` (a RowBatch) alone, to its end; the tokens drafted and, of
    those, accepted."""
    drafted = accepted = 0
    for job in jobs:
        joining = [job]
        while batch.jobs or joining:
            report = batch.step(joining, [])
            joining = []
            drafted, accepted = drafted + report.drafted, accepted + report.accepted
    return drafted, accepted
