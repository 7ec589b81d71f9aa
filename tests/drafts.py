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
