"""One line per pipeline step on stderr, with the seconds elapsed since the export began."""

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total_steps: int, stream: TextIO = sys.stderr) -> None:
        self._total = total_steps
        self._done = 0
        self._stream = stream
        self._start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def step(self, message: str) -> None:
        self._done += 1
        self._print(f"[{self._done}/{self._total}] {message} … ({self.elapsed:.1f}s)")

    def finish(self, message: str) -> None:
        self._print(f"{message} in {self.elapsed:.1f}s")

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)
