"""The encoder and decoder-step graphs of one seq2seq model, as the generation loop runs them:
a decoder step takes one token per row (decoding) or several (verifying drafted tokens).

Synchronous: the batcher calls these from its worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.model_format import (
    CROSS,
    ENCODER_INPUTS,
    LOGITS,
    PAST,
    PRESENT,
    cache_names,
    decoder_inputs,
)
from service.runtime.engine import Engine
from service.runtime.precision import Route
from service.seq2seq.cache import BatchCache
from service.seq2seq.spec import Seq2SeqSpec


def one_session(provider: str) -> int:
    # One session per graph: a generation loop runs one step at a time.
    return 1


class GraphMismatch(ValueError):
    """The graphs' inputs or outputs are not what model.yaml describes."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """Encoder outputs for a batch of sources: cross keys/values and the source mask."""

    cross: list[np.ndarray]  # [rows, heads, source, d_kv] per tensor, in graph order
    mask: np.ndarray  # [rows, source]


class Seq2SeqGraphs:
    def __init__(
        self,
        name: str,
        folder: Path,
        spec: Seq2SeqSpec,
        route: Route,
        threads: int,
    ) -> None:
        self.spec = spec
        self.encoder = Engine(
            f"{name}.encoder", folder / spec.encoder_file, route, threads, one_session
        )
        self.decoder = Engine(
            f"{name}.decoder", folder / spec.decoder_file, route, threads, one_session
        )
        self._cross = cache_names(CROSS, spec.num_layers)
        self._past = cache_names(PAST, spec.num_layers)
        self._present = cache_names(PRESENT, spec.num_layers)
        self._check()
        self._cross_index = [self.encoder.output_names.index(n) for n in self._cross]
        self._present_index = [self.decoder.output_names.index(n) for n in self._present]
        self._logits_index = self.decoder.output_names.index(LOGITS)
        self.providers = self.encoder.providers

    def _check(self) -> None:
        expected = set(decoder_inputs(self.spec.num_layers))
        missing = set(self._cross) - set(self.encoder.output_names)
        missing |= set(self._present) - set(self.decoder.output_names)
        missing |= expected - set(self.decoder.input_names)
        unknown = set(self.decoder.input_names) - expected
        if missing or unknown or set(self.encoder.input_names) != set(ENCODER_INPUTS):
            raise GraphMismatch(
                f"the graphs do not match what this server runs (missing {sorted(missing)}, "
                f"unexpected inputs {sorted(unknown)}); a decoder exported before the in-place "
                "cache (attention_mask input, no position_ids) must be exported again"
            )
        shapes = {o.name: o.shape for o in self.decoder.outputs()}
        # A step exported before it took several tokens per row gives one token's logits.
        if len(shapes.get(LOGITS) or []) == 2:
            raise GraphMismatch(
                f"the decoder's logits are {shapes[LOGITS]} (one token per row): a decoder "
                "exported before multi-token steps ([batch, tokens, vocab] logits) must be "
                "exported again"
            )

    def encode(self, rows: Sequence[np.ndarray]) -> Encoded:
        """Run the encoder on token-id rows padded to the longest (pad id, mask 0)."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.spec.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        outputs = self.encoder.run({"input_ids": ids, "attention_mask": mask})
        return Encoded([outputs[i] for i in self._cross_index], mask)

    def step(self, tokens: np.ndarray, cache: BatchCache) -> np.ndarray:
        """One decoder step for every row of `cache`: `tokens` [rows] (one per row) returns
        logits [rows, vocab]; [rows, T] (T per row, written after each row's tokens so far)
        returns every one's logits [rows, T, vocab]. Each row's keys and values are written
        into the cache's own buffers (bound as input and output)."""
        # Bound in place, so C-contiguous (a slice of a wider array may not be).
        ids = np.ascontiguousarray(tokens if tokens.ndim == 2 else tokens[:, None])
        count = ids.shape[1]
        cache.make_room(count)
        past = cache.past()
        feeds = {
            "input_ids": ids,
            # A token's position is the number of decoder tokens before it: its write slot.
            "position_ids": cache.lengths[:, None] + np.arange(count, dtype=np.int64)[None, :],
            "encoder_attention_mask": cache.encoder_mask(),
        }
        feeds |= dict(zip(self._past, past, strict=True))
        feeds |= dict(zip(self._cross, cache.cross(), strict=True))
        outputs = self.decoder.run_into(feeds, dict(zip(self._present, past, strict=True)))
        cache.advance(count)
        logits: np.ndarray = outputs[self._logits_index]
        return logits if tokens.ndim == 2 else logits[:, 0]

    def verify(self, ids: np.ndarray, cache: BatchCache) -> np.ndarray:
        """`ids` [rows, T] after every row's tokens (a token and the ones drafted after it);
        every position's logits [rows, T, vocab] (service/seq2seq/speculation.py's Verify)."""
        return self.step(ids, cache)

    # As a draft model (service/seq2seq/speculation.py): a one-row cache, the last logits.
    def start(self, cache: BatchCache, source: np.ndarray) -> None:
        encoded = self.encode([source])
        cache.add(encoded.cross, encoded.mask)

    def last_logits(self, ids: np.ndarray, cache: BatchCache) -> np.ndarray:
        return self.step(ids, cache)[:, -1]

    def new_cache(self) -> BatchCache:
        return BatchCache(self.spec.num_layers, self.spec.num_heads, self.spec.d_kv)
