"""The decoder batch's key/value caches: fixed buffers, one row per sequence (beams included),
that the decoder step writes in place.

Each self-attention buffer is [slots, heads, capacity, d_kv]. A row writes its token's key and
value at its own position (its number of decoder tokens so far), so rows may be at different
steps, and the graph masks the slots a row has not written. The step binds each buffer as
both its past input and its present output, and onnxruntime's TensorScatter writes one slot
without copying the rest: a step moves no cache at all. The cross-attention keys and values
([slots, heads, source capacity, d_kv]) are written once, when a row joins, and masked past
its source by the encoder mask.

Bytes still move in three cases, each counted in `copied` by reason:
- join: a joining row's cross keys and values, from the encoder's output into its slot;
- grow: the capacity (or the slots) run out; the buffers double and the live rows move over,
  so a sequence of n tokens grows its cache about log2(n) times;
- reorder: rows leave from the middle (those after them move up) or beam search forks beams
  (a beam takes another's cache); only the rows that change are copied.

Buffers are only as wide as the longest row needs (rounded up to a power of two), because
the attention reads every slot of the capacity, written or not.

A causal LM's cache (`cross=False`) has no cross-attention part: its rows join empty, and a
prompt is written a chunk at a time into one row (`past(row)`, `make_room(tokens, row)`,
`advance(tokens, row)`); beams take a copy of the prompt's row (`fork`, counted as reorder).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MIN_CAPACITY = 16  # decoder slots per row at first
MIN_SOURCE = 16  # encoder slots per row at first


class BatchCache:
    def __init__(self, layers: int, heads: int, d_kv: int, cross: bool = True) -> None:
        self._tensors = 2 * layers  # a key and a value per layer
        self._cross_tensors = self._tensors if cross else 0
        self._heads, self._d_kv = heads, d_kv
        self._empty()
        self.copied: Counter[str] = Counter()  # bytes moved, by reason; the batch takes them

    def _empty(self) -> None:
        self.lengths = np.zeros(0, np.int64)  # tokens each row has written
        self._past = [self._zeros(0, 0) for _ in range(self._tensors)]
        self._cross = [self._zeros(0, 0) for _ in range(self._cross_tensors)]
        self._encoder_mask = np.zeros((0, 0), np.int64)

    def _zeros(self, slots: int, width: int) -> np.ndarray:
        # Zeros, not np.empty: a masked slot's value is multiplied by 0, and 0 x NaN is NaN.
        return np.zeros((slots, self._heads, width, self._d_kv), np.float32)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def slots(self) -> int:
        return int(self._past[0].shape[0])

    @property
    def capacity(self) -> int:
        return int(self._past[0].shape[2])

    @property
    def source_capacity(self) -> int:
        return int(self._cross[0].shape[2]) if self._cross else 0

    def past(self, row: int | None = None) -> list[np.ndarray]:
        """The live rows of each self-attention buffer, or one row (views: the step writes
        into them; one row of a C-ordered buffer is contiguous, so it binds in place too)."""
        rows = slice(0, self.rows) if row is None else slice(row, row + 1)
        return [buffer[rows] for buffer in self._past]

    def cross(self) -> list[np.ndarray]:
        return [buffer[: self.rows] for buffer in self._cross]

    def encoder_mask(self) -> np.ndarray:
        return self._encoder_mask[: self.rows]

    def add(self, cross: list[np.ndarray], encoder_mask: np.ndarray) -> None:
        """Append rows with nothing written; `cross` holds [rows, heads, source, d_kv] each."""
        start, joining = self.rows, len(encoder_mask)
        source = encoder_mask.shape[1]
        self._fit(start + joining, self.capacity, source)
        end = start + joining
        for buffer, new in zip(self._cross, cross, strict=True):
            buffer[start:end, :, :source] = new
            self.copied["join"] += new.nbytes
        self._encoder_mask[start:end] = 0
        self._encoder_mask[start:end, :source] = encoder_mask
        self.lengths = np.concatenate([self.lengths, np.zeros(joining, np.int64)])

    def add_rows(self, count: int) -> None:
        """Append `count` rows with nothing written (a causal LM's joining sequences)."""
        self._fit(self.rows + count, self.capacity, 0)
        self.lengths = np.concatenate([self.lengths, np.zeros(count, np.int64)])

    def make_room(self, tokens: int = 1, row: int | None = None) -> None:
        """Before a step: room for every row (or `row`) to write `tokens` more tokens."""
        written = self.lengths.max(initial=0) if row is None else self.lengths[row]
        needed = int(written) + tokens
        if needed > self.capacity:
            self._fit(self.slots, needed, self.source_capacity)

    def advance(self, tokens: int = 1, rows: np.ndarray | int | None = None) -> None:
        """After a step: every row (or `rows`) wrote `tokens` tokens."""
        if rows is None:
            self.lengths += tokens
        else:
            self.lengths[rows] += tokens

    def fork(self, row: int, copies: range) -> None:
        """Rows `copies` take row `row`'s cache: beams of one prompt, prefilled once."""
        for buffer in (*self._past, *self._cross):
            buffer[copies.start : copies.stop] = buffer[row]
            self.copied["reorder"] += buffer[row].nbytes * len(copies)
        self.lengths[copies.start : copies.stop] = self.lengths[row]

    def select(self, index: np.ndarray) -> None:
        """Keep the rows in `index`, in that order (rows may repeat: beams that fork)."""
        if len(index) == 0:
            self._empty()  # an idle batch holds no memory
            return
        changed = np.flatnonzero(index != np.arange(len(index)))
        if len(changed):
            sources = index[changed]
            for buffer in (*self._past, *self._cross):
                moved = buffer[sources]  # a copy first: a source may also be a destination
                buffer[changed] = moved
                self.copied["reorder"] += moved.nbytes
            self._encoder_mask[changed] = self._encoder_mask[sources]
        self.lengths = self.lengths[index]

    def _fit(self, rows: int, capacity: int, source: int) -> None:
        """Grow the buffers to hold `rows` rows of `capacity` and `source` slots (powers of
        two), moving the live rows over."""
        slots = max(self.slots, _power_of_two(rows, 1))
        width = max(self.capacity, _power_of_two(capacity, MIN_CAPACITY))
        source_width = max(self.source_capacity, _power_of_two(source, MIN_SOURCE))
        if (slots, width, source_width) == (self.slots, self.capacity, self.source_capacity):
            return
        live = self.rows
        self._past = [self._moved(old, slots, width, live) for old in self._past]
        self._cross = [self._moved(old, slots, source_width, live) for old in self._cross]
        mask = np.zeros((slots, source_width), np.int64)
        mask[:live, : self._encoder_mask.shape[1]] = self._encoder_mask[:live]
        self._encoder_mask = mask

    def _moved(self, old: np.ndarray, slots: int, width: int, live: int) -> np.ndarray:
        new = self._zeros(slots, width)
        if live:
            new[:live, :, : old.shape[2]] = old[:live]
            self.copied["grow"] += old[:live].nbytes
        return new


def _power_of_two(value: int, minimum: int) -> int:
    return max(minimum, 1 << max(0, value - 1).bit_length())
