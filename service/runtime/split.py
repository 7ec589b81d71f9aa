"""A batch split by row length between two graphs: short rows on one, the rest on another.

int8 holds cosine 0.99 on rows with enough tokens to average out its rounding, and not on a
handful of tokens (docs/precision.md); so its variant runs rows of at most `fp32_rows_up_to`
tokens on the fp32 graph. Such rows are cheap (cost grows with tokens), and the scheduler's
length-sorted batches keep them together. The exporter checks parity through this same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Run = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


def split_run(
    feeds: Mapping[str, np.ndarray], up_to: int, run_short: Run, run_long: Run
) -> list[np.ndarray]:
    """Rows of at most `up_to` real tokens (by attention_mask) through `run_short`, trimmed
    to their own longest; the others through `run_long`; the outputs ([rows, tokens, ...])
    put back in row order, padded with zeros to the batch's width."""
    lengths = np.asarray(feeds["attention_mask"]).sum(axis=1)
    is_short = lengths <= up_to
    if not is_short.any():
        return run_long(feeds)
    width = next(iter(feeds.values())).shape[1]
    parts = []
    for rows, run in ((np.flatnonzero(is_short), run_short), (np.flatnonzero(~is_short), run_long)):
        if len(rows):
            parts.append((rows, run(_rows(feeds, rows, int(lengths[rows].max())))))
    merged = []
    for index, first in enumerate(parts[0][1]):
        out = np.zeros((len(lengths), width, *first.shape[2:]), dtype=first.dtype)
        for rows, outputs in parts:
            part = outputs[index]
            out[rows, : part.shape[1]] = part
        merged.append(out)
    return merged


def _rows(feeds: Mapping[str, np.ndarray], rows: np.ndarray, width: int) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(array[rows, :width]) for name, array in feeds.items()}
