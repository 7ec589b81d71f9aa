"""A request's life in a batcher around its batching: refused once closed, expired at its
deadline, dropped when its caller cancels, and the drain on shutdown.

Both batchers (the encoder's token-budget scheduler and the seq2seq continuous batcher)
have it; each keeps its own admission rule and its own batching, and tells the lifecycle
how to drop one of its requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from service.errors import DeadlineExpired, Unavailable
from service.metrics import CANCELLED, DEADLINE

# How far apart gRPC's deadline and ours (from time_remaining() at the start) may fall.
DEADLINE_SLACK = 0.05  # seconds

Request = TypeVar("Request")
Result = TypeVar("Result")


def cancel_reason(deadline: float | None, now: float) -> str:
    """Why a cancelled request's work was dropped, as attnserve_dropped_rows_total names it.

    gRPC cancels the handler when the client's deadline passes, too, by its own clock: a
    cancel that close to our estimate of the deadline is the deadline.
    """
    expired = deadline is not None and now >= deadline - DEADLINE_SLACK
    return DEADLINE if expired else CANCELLED


class Lifecycle(Generic[Request]):
    def __init__(
        self,
        drop: Callable[[Request, str], None],
        clock: Callable[[], float],
        expired_message: str,
    ) -> None:
        """``drop(request, reason)`` forgets the request's work and counts it as dropped;
        ``expired_message`` is DeadlineExpired's, as this batcher words it."""
        self._drop = drop
        self._clock = clock
        self._expired_message = expired_message
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise Unavailable("server is shutting down")

    async def close(self, busy: Callable[[], bool]) -> None:
        """Refuse new work; return once ``busy`` says nothing is queued or running."""
        self.closed = True
        while busy():
            await asyncio.sleep(0.01)

    async def wait(
        self, request: Request, done: asyncio.Future[Result], deadline: float | None
    ) -> Result:
        """The request's result; DeadlineExpired once ``deadline`` (on the batcher's clock)
        passes, and its work dropped then or when the caller is cancelled."""
        timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            timer = asyncio.get_running_loop().call_later(delay, self._expire, request, done)
        try:
            return await done
        except asyncio.CancelledError:
            self._drop(request, cancel_reason(deadline, self._clock()))
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, request: Request, done: asyncio.Future[Any]) -> None:
        if not done.done():
            self._drop(request, DEADLINE)
            done.set_exception(DeadlineExpired(self._expired_message))
