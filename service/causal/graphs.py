"""The step graph of one causal LM, as the generation loop runs it: a chunk of one row's
prompt (prefill), one token for every row (decode), or a token and the tokens drafted after
it (verify, with every position's logits), written into the cache in place.

Synchronous: the batcher calls it from its worker thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.model_format import LOGITS, PAST, PRESENT, CausalSpec, cache_names, causal_inputs
from service.runtime.engine import Engine
from service.runtime.precision import Route
from service.seq2seq.cache import BatchCache
from service.seq2seq.graphs import GraphMismatch, one_session


class CausalGraphs:
    def __init__(self, name: str, folder: Path, spec: CausalSpec, route: Route, threads: int):
        self.spec = spec
        path = folder / spec.decoder_file
        self.decoder = Engine(f"{name}.decoder", path, route, threads, one_session)
        self._past = cache_names(PAST, spec.num_layers)
        self._present = cache_names(PRESENT, spec.num_layers)
        expected = set(causal_inputs(spec.num_layers))
        if set(self.decoder.input_names) != expected or not set(self._present) <= set(
            self.decoder.output_names
        ):
            raise GraphMismatch(
                f"the step graph's inputs {self.decoder.input_names} are not {sorted(expected)}"
            )
        self._logits_index = self.decoder.output_names.index(LOGITS)
        self.providers = self.decoder.providers

    def step(
        self,
        ids: np.ndarray,
        cache: BatchCache,
        row: int | None = None,
        every_position: bool = False,
    ) -> np.ndarray:
        """`ids` [rows, tokens] written after each row's tokens so far, for every row of
        `cache` or for `row` alone; the logits of each row's last token [rows, vocab], or
        (`every_position`) of each of its tokens [rows, tokens, vocab]."""
        tokens = ids.shape[1]
        wanted = np.arange(tokens) if every_position else np.array([tokens - 1])
        cache.make_room(tokens, row)
        past = cache.past(row)
        lengths = cache.lengths if row is None else cache.lengths[row : row + 1]
        feeds = {
            "input_ids": ids,
            # A token's position is its cache slot: the row's length, and on.
            "position_ids": lengths[:, None] + np.arange(tokens, dtype=np.int64)[None, :],
            "logit_positions": wanted.astype(np.int64),
        }
        feeds |= dict(zip(self._past, past, strict=True))
        outputs = self.decoder.run_into(feeds, dict(zip(self._present, past, strict=True)))
        cache.advance(tokens, row)
        logits: np.ndarray = outputs[self._logits_index]
        return logits if every_position else logits[:, 0]

    # As a draft model (service/seq2seq/speculation.py): a one-row cache, the last logits.
    def start(self, cache: BatchCache, source: np.ndarray) -> None:
        cache.add_rows(1)

    def last_logits(self, ids: np.ndarray, cache: BatchCache) -> np.ndarray:
        return self.step(ids, cache)

    def verify(self, ids: np.ndarray, cache: BatchCache) -> np.ndarray:
        """`ids` [rows, tokens] after every row's tokens; every position's logits."""
        return self.step(ids, cache, every_position=True)

    def new_cache(self) -> BatchCache:
        spec = self.spec
        return BatchCache(spec.num_layers, spec.num_kv_heads, spec.head_dim, cross=False)
