"""CPU time spent inside the engine: what attnserve_engine_cpu_seconds_total reports.

onnxruntime (and OpenVINO) compute on the thread that calls run and on the session's own
pool of threads. The calling thread's share is read from its CPU clock around each run. The
pool is found by name: Linux threads inherit the name of the thread that starts them, so the
thread that creates a session is renamed for that moment, and every thread that then carries
the name belongs to the session. Their CPU time is read from /proc when metrics are scraped.
Without /proc (not Linux) only the calling thread's share is counted.

OpenVINO's threads are not a session's own: its CPU plugin computes on oneTBB's workers, one
pool for the whole process, started by the first session that compiles with more than one
thread and taken up by every later one (seen here: the embedder's solo session started the
one worker a 2-core machine gets, and minilm's solo runs then computed on it, so its time went
to the embedder and minilm counted only its calling threads). Those threads are SharedThreads:
found by the one name every OpenVINO session is created under (threads a worker starts later
inherit it too), and their CPU time, read from each thread's clock around every run, goes to
the runs in progress, split evenly between them when engines run side by side (to the engine
that ran last between runs: a worker's spin after a run is that run's).

With the process's own CPU time (process_cpu_seconds_total) this gives the CPU a server spends
outside the engine, per request, from one scrape: the figure issue 13 is measured by.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_TASKS = Path("/proc/self/task")
_PR_SET_NAME, _PR_GET_NAME = 15, 16
_TAGS = itertools.count()
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl() if _TASKS.is_dir() else None


def _thread_name() -> bytes:
    buffer = ctypes.create_string_buffer(16)
    assert _PRCTL is not None
    _PRCTL(_PR_GET_NAME, buffer, 0, 0, 0)
    return buffer.value


@contextmanager
def _named(name: bytes) -> Iterator[None]:
    assert _PRCTL is not None
    before = _thread_name()
    _PRCTL(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    try:
        yield
    finally:
        _PRCTL(_PR_SET_NAME, ctypes.c_char_p(before), 0, 0, 0)


def _threads_named(name: bytes) -> list[int]:
    found = []
    for task in _TASKS.iterdir():
        try:
            if (task / "comm").read_bytes().strip() == name:
                found.append(int(task.name))
        except OSError:  # the thread ended while we looked
            continue
    return found


def _threads_cpu_seconds(tids: list[int]) -> float:
    total = 0
    for tid in tids:
        try:
            stat = (_TASKS / str(tid) / "stat").read_text()
        except OSError:  # an ended thread's time is lost: sessions live as long as the server
            continue
        fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


def _thread_clock(tid: int) -> float | None:
    """Another thread's CPU clock, in seconds (ns resolution, where /proc counts 10 ms ticks);
    None once it has ended. Linux's clock id for thread `tid`, as pthread_getcpuclockid makes
    it: ~tid << 3 | CPUCLOCK_PERTHREAD (4) | CPUCLOCK_SCHED (2)."""
    try:
        return time.clock_gettime((~tid << 3) | 6)
    except OSError:
        return None


class SharedThreads:
    """Threads that every session of one runtime computes on (OpenVINO's oneTBB workers),
    whichever engine started them; their CPU time goes to the engines whose runs it falls in."""

    def __init__(self, name: bytes) -> None:
        self._name = name[:15]
        self._last: dict[int, float] = {}  # thread -> its CPU clock when last read
        self._running: dict[EngineCpu, int] = {}  # engine -> its runs in progress
        self._ran_last: EngineCpu | None = None
        self._building: set[int] = set()  # threads creating a session: they carry the name
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        return len(self._last)

    def starting(self, start: Callable[[], T], engine: EngineCpu) -> T:
        """Call `start` (which creates a session) under the shared name; the threads it
        starts join the pool, and the time they spent starting counts as `engine`'s."""
        me = threading.get_native_id()
        with self._lock:
            self._building.add(me)
        try:
            with _named(self._name):
                result = start()
        finally:
            with self._lock:
                self._building.discard(me)
        with self._lock:  # the scan under the lock: no session's creator is named meanwhile
            self._settle()  # what the pool did before is not this engine's
            for tid in _threads_named(self._name):
                if tid in self._building or tid in self._last:
                    continue
                if (seconds := _thread_clock(tid)) is not None:
                    self._last[tid] = seconds
                    engine._shared_seconds += seconds
        return result

    def entering(self, engine: EngineCpu) -> None:
        with self._lock:
            self._settle()
            self._running[engine] = self._running.get(engine, 0) + 1

    def leaving(self, engine: EngineCpu) -> None:
        with self._lock:
            self._settle()
            if (left := self._running.pop(engine) - 1) > 0:
                self._running[engine] = left
            self._ran_last = engine

    def update(self) -> None:
        """Bring every engine's share up to now (a scrape), with any thread that a worker
        started since (it carries the name): its time so far goes to the runs it served."""
        if _PRCTL is None:
            return
        with self._lock:
            for tid in _threads_named(self._name):
                if tid not in self._building:
                    self._last.setdefault(tid, 0.0)
            self._settle()

    def _settle(self) -> None:
        """Hand the pool's CPU time since the last reading to the runs in progress (the lock
        is held)."""
        spent = 0.0
        for tid, before in list(self._last.items()):
            now = _thread_clock(tid)
            if now is None:  # ended: sessions live as long as the server
                del self._last[tid]
                continue
            spent += max(0.0, now - before)
            self._last[tid] = now
        if spent <= 0.0:
            return
        runs = sum(self._running.values())
        if runs:
            for engine, count in self._running.items():
                engine._shared_seconds += spent * count / runs
        elif self._ran_last is not None:
            self._ran_last._shared_seconds += spent


class EngineCpu:
    """The CPU time of one engine's runs: its callers' share and its sessions' pools."""

    def __init__(self) -> None:
        self._pool: list[int] = []
        self._callers = 0.0
        self._lock = threading.Lock()
        self._shared: SharedThreads | None = None
        self._shared_seconds = 0.0  # written under the SharedThreads' lock

    def starting_threads(self, start: Callable[[], T], shared: SharedThreads | None = None) -> T:
        """Call `start` (which creates a session); threads it starts are counted as ours, or,
        with `shared`, join that pool, and our runs count their share of its time."""
        if _PRCTL is None:
            return start()
        if shared is not None:
            self._shared = shared
            return shared.starting(start, self)
        tag = f"attn-engine{next(_TAGS)}".encode()[:15]
        with _named(tag):
            result = start()
        self._pool.extend(_threads_named(tag))
        return result

    def running(self, run: Callable[[], T]) -> T:
        """Call `run` (one run of a session) and count the calling thread's CPU time."""
        shared = self._shared
        if shared is not None:
            shared.entering(self)
        started = time.thread_time()
        try:
            return run()
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self._callers += spent
            if shared is not None:
                shared.leaving(self)

    @property
    def pool_threads(self) -> int:
        return len(self._pool)

    def seconds(self) -> float:
        if self._shared is not None:
            self._shared.update()
        return self._callers + _threads_cpu_seconds(self._pool) + self._shared_seconds
