"""What an HTTP request is to the servicers: a stand-in for grpc.aio's ServicerContext.

The HTTP routes call the very servicers gRPC calls, so that both wires share admission,
deadlines, limits, metrics and error codes (service/api/calls.py). A servicer asks its
context for two things, the time left and `abort`; here the deadline comes from a request
header and `abort` raises CallAborted, which the route turns into an HTTP status.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, NoReturn, cast

import grpc

from service.errors import InvalidArgument

# The timeout a client sends, in seconds: ours, and the one the OpenAI SDKs send with every
# request (its client timeout, 600 s unless set). The shorter wins.
TIMEOUT_HEADERS = ("x-request-timeout", "x-stainless-timeout")
MAX_TIMEOUT_S = 86_400.0

# The contract's status for each gRPC code; never 500 for anything a client sent.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,  # the client went away; nobody reads it
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


class CallAborted(Exception):
    """A servicer ended the call with `code`: the HTTP reply is its status and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HttpContext:
    """The part of grpc.aio.ServicerContext that the servicers use, for one HTTP request."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline  # time.monotonic() seconds, or None: no limit

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        raise CallAborted(code, details)

    def as_servicer_context(self) -> grpc.aio.ServicerContext:
        # Duck-typed: the servicers reach only time_remaining and abort (tests/test_http.py
        # runs every route through them).
        return cast(grpc.aio.ServicerContext, self)


def deadline_from(headers: Mapping[str, str]) -> float | None:
    """The request's deadline from its timeout headers; INVALID_ARGUMENT names a bad one."""
    deadline = None
    for name in TIMEOUT_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= MAX_TIMEOUT_S:  # also refuses nan and inf
            raise InvalidArgument(
                f"header {name}: {value!r} is not a timeout; send seconds, more than 0 and "
                f"at most {MAX_TIMEOUT_S:.0f}"
            )
        at = time.monotonic() + seconds
        deadline = at if deadline is None else min(deadline, at)
    return deadline
