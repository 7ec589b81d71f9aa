"""What every RPC of every API does around its work: admission, deadline, metrics, errors.

One place maps ServiceError to its status code and records requests_total,
request_duration and inflight, so attnserve.v1 and KServe V2 count and fail alike, over gRPC
and over HTTP (whose routes call the same servicers with service.http's stand-in for the
gRPC context, and map the status code to theirs); the read-only RPCs (`read`) fail alike
too, without being counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc

from service.errors import ServiceError, Unavailable
from service.http.context import HttpContext
from service.metrics import GRPC, HTTP, Metrics
from service.repository import Repository

log = logging.getLogger(__name__)

T = TypeVar("T")

UNKNOWN_MODEL = "unknown"  # the model label of a request for a model we do not have


class CallRunner:
    def __init__(self, repository: Repository, metrics: Metrics) -> None:
        self.repository = repository
        self.metrics = metrics
        self.draining = False  # set on SIGTERM: new work gets UNAVAILABLE
        self.active = 0  # requests admitted and not yet answered
        self._idle = asyncio.Event()
        self._idle.set()
        # (model, task, protocol) -> its inflight gauge, duration histogram and OK counter,
        # looked up once: labels() per request was a measurable share of the loop's CPU per
        # request.
        self._series: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until every admitted request is answered; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def model_label(self, requested: str) -> str:
        """The label of a request for `requested` (empty: the default model)."""
        # Only names the repository knows become label values: clients cannot grow the
        # metric's cardinality by sending made-up model names.
        name = requested or self.repository.settings.default_model
        return name if name in self.repository.models else UNKNOWN_MODEL

    async def run(
        self,
        context: grpc.aio.ServicerContext,
        task: str,
        model: str,
        work: Callable[[float | None], Awaitable[T]],
    ) -> T:
        """Run `work(deadline)` as one request; ServiceErrors become their status codes.

        `model` is the metrics label: model_label's, or UNKNOWN_MODEL.
        """
        async with self._call(context, task, model) as deadline:
            return await work(deadline)

    async def stream(
        self,
        context: grpc.aio.ServicerContext,
        task: str,
        model: str,
        work: Callable[[float | None], AsyncIterator[T]],
    ) -> AsyncIterator[T]:
        """`run` for a server-streaming RPC: yields what `work(deadline)` yields."""
        async with self._call(context, task, model) as deadline:
            async for item in work(deadline):
                yield item

    async def read(self, context: grpc.aio.ServicerContext, build: Callable[[], T]) -> T:
        """Answer a read-only RPC, not counted; a ServiceError becomes its status code."""
        try:
            return build()
        except ServiceError as exc:
            await _abort(context, exc)
            raise  # abort raises; this line only satisfies the type checker

    @asynccontextmanager
    async def _call(
        self, context: grpc.aio.ServicerContext, task: str, model: str
    ) -> AsyncIterator[float | None]:
        """One request's admission, deadline, metrics and error mapping, around its work."""
        started = time.perf_counter()
        protocol = HTTP if isinstance(context, HttpContext) else GRPC
        inflight, duration, ok = self._series_of(model, task, protocol)
        inflight.inc()
        code = grpc.StatusCode.OK
        admitted = not self.draining
        if admitted:
            self.active += 1
            self._idle.clear()
        try:
            if not admitted:
                raise Unavailable("server is shutting down; retry on another replica")
            remaining = context.time_remaining()
            yield None if remaining is None else time.monotonic() + remaining
        except ServiceError as exc:
            code = exc.code
            await _abort(context, exc)
            raise  # abort raises; this line only satisfies the type checker
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s on model %s failed", task, model)
            await context.abort(code, "internal error; the server log has the details")
            raise
        finally:
            if admitted:
                self.active -= 1
                if self.active == 0:
                    self._idle.set()
            inflight.dec()
            if code == grpc.StatusCode.OK:
                ok.inc()
            else:
                self.metrics.requests.labels(model, task, code.name, protocol).inc()
            duration.observe(time.perf_counter() - started)

    def _series_of(self, model: str, task: str, protocol: str) -> tuple[Any, Any, Any]:
        # Every label is bounded (model_label's names, the task names, two protocols): so is
        # this cache.
        key = (model, task, protocol)
        series = self._series.get(key)
        if series is None:
            m = self.metrics
            series = (
                m.inflight.labels(*key),
                m.request_duration.labels(*key),
                m.requests.labels(model, task, grpc.StatusCode.OK.name, protocol),
            )
            self._series[key] = series
        return series


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    """End the RPC with the error's status code and its message for the client."""
    await context.abort(error.code, error.message)
