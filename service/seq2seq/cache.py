"""The decoder batch's key/value caches, stacked: one row per sequence (beams included).

Rows are at different steps, so each row's self-attention past is left-padded to the
batch's longest and masked; cross-attention keys and values are right-padded to the
longest source and masked by the encoder mask. Between steps the stacked arrays are reused
as they are (the decoder's `present` becomes the next `past`); they are copied only when
rows join, leave or are reordered by beam search, and trimmed then to what a row still needs.

A past of length 0 never reaches the graph: an empty batch starts with one masked slot.
"""

from __future__ import annotations

import numpy as np


class BatchCache:
    def __init__(self, layers: int, heads: int, d_kv: int) -> None:
        self._shape = (heads, d_kv)
        self.past = [np.zeros((0, heads, 1, d_kv), np.float32) for _ in range(2 * layers)]
        self.cross = [np.zeros((0, heads, 1, d_kv), np.float32) for _ in range(2 * layers)]
        self.encoder_mask = np.zeros((0, 1), np.int64)
        self.lengths = np.zeros(0, np.int64)  # real past tokens per row

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def past_length(self) -> int:
        return int(self.past[0].shape[2])

    def add(self, cross: list[np.ndarray], encoder_mask: np.ndarray) -> None:
        """Append rows with no past; `cross` holds [rows, heads, source, d_kv] per tensor."""
        rows = len(encoder_mask)
        source = max(self.encoder_mask.shape[1], encoder_mask.shape[1])
        self.cross = [
            np.concatenate([_pad_source(old, source), _pad_source(new, source)])
            for old, new in zip(self.cross, cross, strict=True)
        ]
        self.encoder_mask = np.concatenate(
            [_pad_mask(self.encoder_mask, source), _pad_mask(encoder_mask, source)]
        )
        empty = np.zeros((rows, *self._shape[:1], self.past_length, self._shape[1]), np.float32)
        self.past = [np.concatenate([old, empty]) for old in self.past]
        self.lengths = np.concatenate([self.lengths, np.zeros(rows, np.int64)])

    def select(self, index: np.ndarray) -> None:
        """Keep the rows in `index`, in that order (rows may repeat: beams that fork)."""
        self.lengths = self.lengths[index]
        keep_past = max(1, int(self.lengths.max(initial=0)))
        mask = self.encoder_mask[index]
        keep_source = max(1, int(mask.sum(axis=1).max(initial=0)))
        start = self.past_length - keep_past
        self.past = [np.ascontiguousarray(p[index, :, start:]) for p in self.past]
        self.cross = [np.ascontiguousarray(c[index, :, :keep_source]) for c in self.cross]
        self.encoder_mask = np.ascontiguousarray(mask[:, :keep_source])

    def self_attention_mask(self) -> np.ndarray:
        """[rows, past + 1]: 1 for each row's real past and the current token."""
        width = self.past_length + 1
        columns = np.arange(width)[None, :]
        return (columns >= width - 1 - self.lengths[:, None]).astype(np.int64)

    def advance(self, presents: list[np.ndarray]) -> None:
        """After a step: the presents (past + the fed token) are the next step's past."""
        self.past = presents
        self.lengths = self.lengths + 1


def _pad_source(cache: np.ndarray, source: int) -> np.ndarray:
    missing = source - cache.shape[2]
    if missing == 0:
        return cache
    return np.pad(cache, ((0, 0), (0, 0), (0, missing), (0, 0)))


def _pad_mask(mask: np.ndarray, source: int) -> np.ndarray:
    return np.pad(mask, ((0, 0), (0, source - mask.shape[1])))
