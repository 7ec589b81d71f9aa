"""The queue of rows waiting for the engine, and how batches are cut from it.

A row is one tokenized sequence; a request (an ``Entry``) brings one or many. Rows are kept
in buckets by length so that a batch of similar lengths is found in O(max length) steps,
whatever the queue holds. Fairness comes from choosing each batch's first row round-robin
over requests: a request with hundreds of rows cannot hold back a small one for more than
a batch or two, and no row waits forever (every request gets a turn as head).

This module is plain data and arithmetic, with no asyncio and no engine, so that packing
can be tested on its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Padding a row may always add, in tokens: a batch's own overhead is worth about this much.
MIN_SLACK = 8


@dataclass(eq=False, slots=True)
class Row:
    entry: Entry
    index: int  # position in the entry's rows
    ids: np.ndarray  # int64 token ids, unpadded
    type_ids: np.ndarray | None
    taken: bool = False

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass(eq=False, slots=True)
class Entry:
    """One request's rows and where their results go."""

    enqueued: float
    deadline: float | None
    rows: list[Row] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    untaken: int = 0  # rows still in the queue
    unfinished: int = 0  # rows not yet computed
    dead: bool = False  # cancelled or expired: its queued rows are dropped
    waiter: Any = None  # the scheduler's handle (a future) for delivering results

    def next_row(self) -> Row | None:
        """The entry's oldest row not yet taken (rows are taken in any order)."""
        for row in self.rows:
            if not row.taken:
                return row
        return None


@dataclass(slots=True)
class Batch:
    rows: list[Row]
    padded_length: int

    @property
    def tokens(self) -> int:
        return len(self.rows) * self.padded_length

    @property
    def real_tokens(self) -> int:
        return sum(row.length for row in self.rows)

    @property
    def padding_ratio(self) -> float:
        return 1.0 - self.real_tokens / self.tokens


class RowQueue:
    """Rows waiting for a batch, bucketed by length, with round-robin heads per entry."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buckets: list[deque[Row]] = [deque() for _ in range(max_length + 1)]
        self._live = [0] * (max_length + 1)  # live (untaken, not dead) rows per length
        self._entries: deque[Entry] = deque()  # entries with untaken rows, in turn order
        self.rows = 0
        self.tokens = 0
        self._stale = 0  # taken or dropped rows still sitting in buckets

    def __len__(self) -> int:
        return self.rows

    def add(self, entry: Entry) -> None:
        for row in entry.rows:
            if not 0 < row.length <= self.max_length:
                raise ValueError(f"row length {row.length} outside 1..{self.max_length}")
        for row in entry.rows:
            self._buckets[row.length].append(row)
            self._live[row.length] += 1
            self.tokens += row.length
        entry.untaken = len(entry.rows)
        self.rows += entry.untaken
        self._entries.append(entry)

    def drop(self, entry: Entry) -> int:
        """Forget an entry's queued rows (they stay in buckets and are skipped lazily)."""
        if entry.dead:
            return 0
        entry.dead = True
        dropped = 0
        for row in entry.rows:
            if not row.taken:
                self._live[row.length] -= 1
                self.tokens -= row.length
                dropped += 1
        self.rows -= dropped
        self._stale += dropped
        entry.untaken = 0
        self._compact()
        return dropped

    def only_from(self, entry: Entry) -> bool:
        """Whether every row still queued belongs to `entry` (true of an empty queue)."""
        return all(e is entry or e.dead or not e.untaken for e in self._entries)

    def oldest_enqueued(self) -> float | None:
        times = [e.enqueued for e in self._entries if e.untaken and not e.dead]
        return min(times) if times else None

    def next_batch(
        self, max_tokens: int, max_rows: int, padding_slack: float = 1.0
    ) -> Batch | None:
        """Cut the next batch: the head entry's oldest row plus rows of similar length.

        Grows a window of lengths around the head's, each step taking the row that adds
        the least padding (a shorter row wastes padded - len tokens; a longer one pads
        every row already in), while rows x padded length stays within ``max_tokens`` and
        the padding a row adds stays within ``padding_slack`` x the padded length (at
        least MIN_SLACK tokens). Past that, the row is cheaper in a batch of its own
        lengths: on a CPU a padded token costs as much as a real one, and a batch's fixed
        cost is only a few tokens' worth.
        """
        head = self._next_head()
        if head is None:
            return None
        self._take(head)
        self._stale += 1  # the head is taken out of turn; its bucket skips it later
        rows = [head]
        padded = head.length
        down = head.length  # next length to look at going down (<= padded)
        up = head.length + 1  # next length to look at going up (> padded)
        while len(rows) < max_rows and self.rows:  # none left: no lengths to scan
            while down > 0 and self._live[down] == 0:
                down -= 1
            while up <= self.max_length and self._live[up] == 0:
                up += 1
            n = len(rows)
            down_fits = down > 0 and (n + 1) * padded <= max_tokens
            up_fits = up <= self.max_length and (n + 1) * up <= max_tokens
            if not (down_fits or up_fits):
                break
            down_waste = padded - down
            up_waste = n * (up - padded)
            down_fits = down_fits and down_waste <= max(MIN_SLACK, padding_slack * padded)
            up_fits = up_fits and up_waste <= max(MIN_SLACK, padding_slack * up)
            if not (down_fits or up_fits):
                break
            if not up_fits or (down_fits and down_waste <= up_waste):
                rows.append(self._pop(down))
            else:
                rows.append(self._pop(up))
                padded = up
        self._compact()
        return Batch(rows=rows, padded_length=padded)

    def next_batch_in_arrival_order(self, max_rows: int) -> Batch | None:
        """Count-based batching as Triton, TorchServe and BentoML do it: the oldest rows,
        whatever their lengths, padded to the longest. Kept as a baseline for `make bench`."""
        while self._entries and (self._entries[0].dead or not self._entries[0].untaken):
            self._entries.popleft()
        rows: list[Row] = []
        for entry in self._entries:
            for row in entry.rows:
                if len(rows) == max_rows:
                    break
                if not row.taken and not entry.dead:
                    self._take(row)
                    self._stale += 1
                    rows.append(row)
        if not rows:
            return None
        self._compact()
        return Batch(rows=rows, padded_length=max(r.length for r in rows))

    def _next_head(self) -> Row | None:
        while self._entries:
            entry = self._entries.popleft()
            if entry.dead or entry.untaken == 0:
                continue
            row = entry.next_row()
            assert row is not None  # untaken > 0
            if entry.untaken > 1:
                self._entries.append(entry)  # its next turn comes after the others'
            return row
        return None

    def _pop(self, length: int) -> Row:
        bucket = self._buckets[length]
        while True:
            row = bucket.popleft()
            if not row.taken and not row.entry.dead:
                self._take(row)
                return row
            self._stale -= 1

    def _compact(self) -> None:
        # Buckets of lengths no batch visits would keep dropped rows forever.
        if self._stale <= 1024 or self._stale <= self.rows:
            return
        for length, bucket in enumerate(self._buckets):
            self._buckets[length] = deque(r for r in bucket if not (r.taken or r.entry.dead))
        self._stale = 0

    def _take(self, row: Row) -> None:
        row.taken = True
        row.entry.untaken -= 1
        self._live[row.length] -= 1
        self.rows -= 1
        self.tokens -= row.length
