"""Packing rows into batches: token budget, grouping by length, fairness, dropping."""

from __future__ import annotations

import numpy as np
import pytest

from service.batching.queue import Entry, Row, RowQueue


def make_entry(lengths: list[int], enqueued: float = 0.0) -> Entry:
    entry = Entry(enqueued=enqueued, deadline=None)
    entry.rows = [
        Row(entry, i, np.full(n, i + 1, dtype=np.int64), None) for i, n in enumerate(lengths)
    ]
    return entry


def drain(queue: RowQueue, max_tokens: int, max_rows: int, slack: float = 1.0) -> list[list[int]]:
    batches = []
    while (batch := queue.next_batch(max_tokens, max_rows, slack)) is not None:
        assert batch.tokens <= max_tokens or len(batch.rows) == 1
        assert len(batch.rows) <= max_rows
        assert batch.padded_length == max(r.length for r in batch.rows)
        batches.append(sorted(r.length for r in batch.rows))
    return batches


def test_batches_respect_token_budget_and_row_limit() -> None:
    queue = RowQueue(max_length=128)
    queue.add(make_entry([10] * 100))
    batches = drain(queue, max_tokens=64, max_rows=4)
    assert all(len(b) == 4 for b in batches[:-1])
    assert sum(len(b) for b in batches) == 100
    queue.add(make_entry([30] * 10))
    assert [len(b) for b in drain(queue, max_tokens=64, max_rows=32)] == [2] * 5


def test_similar_lengths_are_grouped_and_padding_stays_low() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(5, 120, size=400)]
    queue = RowQueue(max_length=128)
    for n in lengths:  # one row per request, as concurrent Embed calls bring them
        queue.add(make_entry([n]))
    total_tokens = 0
    while (batch := queue.next_batch(512, 64)) is not None:
        total_tokens += batch.tokens
    padding = 1 - sum(lengths) / total_tokens
    # the same rows in arrival order, 32 per batch, padded to the longest (count batching)
    arrival = sum(32 * max(lengths[i : i + 32]) for i in range(0, 400, 32))
    assert padding < 0.05
    assert 1 - sum(lengths) / arrival > 0.3


def test_a_lone_row_is_its_own_batch() -> None:
    queue = RowQueue(max_length=16)
    queue.add(make_entry([7]))
    batch = queue.next_batch(512, 64)
    assert batch is not None and [r.length for r in batch.rows] == [7]
    assert queue.next_batch(512, 64) is None
    assert queue.rows == 0 and queue.tokens == 0


def test_big_request_does_not_block_a_small_one() -> None:
    queue = RowQueue(max_length=64)
    big = make_entry([40] * 300, enqueued=0.0)
    small = make_entry([3], enqueued=1.0)
    queue.add(big)
    queue.add(small)
    first = queue.next_batch(160, 64)
    second = queue.next_batch(160, 64)
    assert first is not None and second is not None
    # round-robin heads: the small request leads the second batch at the latest
    assert small.rows[0].taken
    assert any(r.entry is small for r in [*first.rows, *second.rows])


def test_every_row_is_served_once_under_mixed_load() -> None:
    rng = np.random.default_rng(1)
    queue = RowQueue(max_length=256)
    entries = [make_entry([int(n) for n in rng.integers(1, 257, size=k)]) for k in (1, 5, 50)]
    for e in entries:
        queue.add(e)
    seen: list[Row] = []
    while (batch := queue.next_batch(1024, 16)) is not None:
        seen.extend(batch.rows)
    assert len(seen) == len({id(r) for r in seen}) == sum(len(e.rows) for e in entries)
    assert all(e.untaken == 0 for e in entries)


def test_no_starvation_of_long_rows() -> None:
    # A steady stream of short rows must not keep a long row waiting forever: it leads a
    # batch within as many batches as there are requests ahead of it.
    queue = RowQueue(max_length=256)
    long_entry = make_entry([250])
    queue.add(long_entry)
    batches_before = 0
    while not long_entry.rows[0].taken and batches_before < 50:
        queue.add(make_entry([8, 8, 8, 8]))
        queue.next_batch(512, 64)
        batches_before += 1
    assert long_entry.rows[0].taken and batches_before <= 2


def test_dropped_entry_rows_are_skipped_and_counted() -> None:
    queue = RowQueue(max_length=32)
    gone = make_entry([10] * 5)
    kept = make_entry([10] * 3)
    queue.add(gone)
    queue.add(kept)
    assert queue.drop(gone) == 5
    assert queue.rows == 3 and queue.tokens == 30
    batch = queue.next_batch(1000, 64)
    assert batch is not None and {r.entry is kept for r in batch.rows} == {True}
    assert queue.next_batch(1000, 64) is None
    assert queue.drop(gone) == 0  # dropping twice changes nothing


def test_rows_longer_than_the_window_are_refused() -> None:
    queue = RowQueue(max_length=8)
    with pytest.raises(ValueError, match="outside"):
        queue.add(make_entry([9]))
    assert queue.rows == 0


def test_compaction_keeps_memory_bounded() -> None:
    queue = RowQueue(max_length=64)
    for _ in range(200):
        e = make_entry([17] * 10)
        queue.add(e)
        queue.drop(e)
    assert sum(len(b) for b in queue._buckets) <= 1024 + 10


def test_arrival_order_mode_takes_oldest_rows_whatever_their_length() -> None:
    queue = RowQueue(max_length=128)
    queue.add(make_entry([5, 100, 7]))
    queue.add(make_entry([6]))
    batch = queue.next_batch_in_arrival_order(3)
    assert batch is not None and [r.length for r in batch.rows] == [5, 100, 7]
    assert batch.padded_length == 100 and batch.padding_ratio > 0.6
    rest = queue.next_batch_in_arrival_order(3)
    assert rest is not None and [r.length for r in rest.rows] == [6]


def test_padding_slack_keeps_very_different_lengths_apart() -> None:
    queue = RowQueue(max_length=128)
    for n in (20, 60, 100, 110, 104):
        queue.add(make_entry([n]))
    batches = drain(queue, max_tokens=512, max_rows=64, slack=0.125)
    # head 20 runs alone; 100, 104 and 110 share (each adds <= 1/8 of 110), 60 alone
    assert sorted(batches) == [[20], [60], [100, 104, 110]]
    generous = RowQueue(max_length=128)
    for n in (20, 60, 100, 110, 104):
        generous.add(make_entry([n]))
    assert len(drain(generous, max_tokens=4096, max_rows=64)) == 1  # default slack: no limit
