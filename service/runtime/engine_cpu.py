"""CPU time spent inside the engine: what attnserve_engine_cpu_seconds_total reports.

onnxruntime (and OpenVINO) compute on the thread that calls run and on the session's own
pool of threads. The calling thread's share is read from its CPU clock around each run. The
pool is found by name: Linux threads inherit the name of the thread that starts them, so the
thread that creates a session is renamed for that moment, and every thread that then carries
the name belongs to the session. Their CPU time is read from /proc when metrics are scraped.
Without /proc (not Linux) only the calling thread's share is counted.

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


class EngineCpu:
    """The CPU time of one engine's runs: its callers' share and its sessions' pools."""

    def __init__(self) -> None:
        self._pool: list[int] = []
        self._callers = 0.0
        self._lock = threading.Lock()

    def starting_threads(self, start: Callable[[], T]) -> T:
        """Call `start` (which creates a session); threads it starts are counted as ours."""
        if _PRCTL is None:
            return start()
        tag = f"attn-engine{next(_TAGS)}".encode()[:15]
        with _named(tag):
            result = start()
        self._pool.extend(_threads_named(tag))
        return result

    def running(self, run: Callable[[], T]) -> T:
        """Call `run` (one run of a session) and count the calling thread's CPU time."""
        started = time.thread_time()
        try:
            return run()
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self._callers += spent

    @property
    def pool_threads(self) -> int:
        return len(self._pool)

    def seconds(self) -> float:
        return self._callers + _threads_cpu_seconds(self._pool)
