"""The HTTP app: every route's token check, body, deadline, cancellation and error reply.

Each route is an `Endpoint`: a handler that reads its request and calls a servicer (so
admission, limits and metrics are gRPC's), and the error shape of its API family: OpenAI's
``{"error": {"message", "type", "code"}}`` on /v1, KServe's ``{"error": "..."}`` on /v2.
Status codes are the contract's (context.HTTP_STATUS); 429 says when to retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.auth import BearerToken
from service.errors import InvalidArgument, ServiceError
from service.http.context import CallAborted, HttpContext, deadline_from, http_status

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# A route's work: the request, its body (read, size-checked and decompressed), its context.
Handler = Callable[[Request, bytes, HttpContext], Awaitable[Response]]
ErrorReply = Callable[[int, grpc.StatusCode, str], Response]

# A refused request may be retried after this long (RESOURCE_EXHAUSTED: the queue is full).
RETRY_AFTER_S = 1
# The deadline's own handling (queued work dropped, DEADLINE_EXCEEDED) comes from the
# scheduler at the deadline; past it by this much, work still computing is cancelled too,
# as gRPC cancels a handler whose deadline has passed.
DEADLINE_GRACE_S = 0.05


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, code: grpc.StatusCode, message: str) -> Response:
    """The error body the OpenAI SDKs parse (their exception class follows the status)."""
    kind = _OPENAI_TYPES.get(status, "server_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": code.name.lower()}}
    return _error_response(status, body)


def kserve_error(status: int, code: grpc.StatusCode, message: str) -> Response:
    """KServe V2 REST's error body, as Triton answers and tritonclient.http reads it."""
    return _error_response(status, {"error": message})


def _error_response(status: int, body: dict[str, Any]) -> Response:
    headers = {}
    if status == 429:
        headers["retry-after"] = str(RETRY_AFTER_S)
    elif status == 401:
        headers["www-authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    errors: ErrorReply
    open: bool = False  # answered without the bearer token (health, for probes)


class App:
    """The Starlette app of a list of endpoints, with the checks every request goes through."""

    def __init__(
        self, endpoints: list[Endpoint], token: SecretStr | None, max_body_bytes: int
    ) -> None:
        self._token = BearerToken(token) if token else None
        self.max_body_bytes = max_body_bytes
        routes = [
            Route(e.path, self._wrap(e), methods=[e.method], include_in_schema=False)
            for e in endpoints
        ]
        self.asgi = Starlette(routes=routes, exception_handlers={HTTPException: self._unrouted})

    def _wrap(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if not endpoint.open:
                    self._authorize(request)
                context = HttpContext(deadline_from(request.headers))
                body = await read_body(request, self.max_body_bytes)
                work = endpoint.handler(request, body, context)
                return await _until_done(request, context, work)
            # A servicer's abort, or a refusal before any servicer saw the request.
            except (CallAborted, ServiceError) as exc:
                return endpoint.errors(http_status(exc.code), exc.code, exc.message)
            except ClientDisconnect:
                return Response(status_code=499)  # nobody is there to read it
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                return endpoint.errors(504, code, "the request's timeout passed")
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                code = grpc.StatusCode.INTERNAL
                return endpoint.errors(500, code, "internal error; the server log has the details")

        return run

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            return
        given = request.headers.get("authorization", "").encode()
        refusal = self._token.refusal(given, "Authorization")
        if refusal is not None:
            raise CallAborted(grpc.StatusCode.UNAUTHENTICATED, refusal)

    async def _unrouted(self, request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405, in the error shape of the API the path belongs to."""
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        reply = openai_error if request.url.path.startswith("/v1/") else kserve_error
        if status == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            return reply(405, grpc.StatusCode.UNIMPLEMENTED, message)
        return reply(status, grpc.StatusCode.NOT_FOUND, f"no route {request.url.path}")


async def _until_done(
    request: Request, context: HttpContext, work: Awaitable[Response]
) -> Response:
    """`work`'s reply; cancelled (as gRPC cancels) when the client leaves or the deadline
    passes. TimeoutError for the deadline."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    timeout = context.time_remaining()
    try:
        done, _ = await asyncio.wait(
            {task, gone},
            timeout=None if timeout is None else timeout + DEADLINE_GRACE_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if gone in done:
        raise ClientDisconnect()
    raise TimeoutError()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (asked only once the body is read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# -- bodies ----------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed (gzip or deflate, as tritonclient.http may send it);
    INVALID_ARGUMENT past `limit` bytes, before or after decompression."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidArgument(_too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidArgument(_too_large(size, limit))
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidArgument(f"content-encoding {encoding!r}: send gzip, deflate or none")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidArgument(f"the body is not valid {encoding}: {exc}") from None
    if len(plain) > limit:
        raise InvalidArgument(_too_large(len(plain), limit) + " once decompressed")
    return plain


def _too_large(size: int, limit: int) -> str:
    return f"the request body is {size} bytes; the most this server accepts is {limit}"


def parse_json(body: bytes, what: str = "the request body") -> Any:
    """`body` as JSON; INVALID_ARGUMENT says where it is not."""
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{what} nests too deep") from None
    if b"\\u" in body:  # only a \u escape can make a lone surrogate, which no text may hold
        _check_unicode(value, what)
    return value


def _check_unicode(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            strings = []
            stack.extend(item)
        else:
            continue
        for text in strings:
            try:
                text.encode()
            except UnicodeEncodeError:
                raise InvalidArgument(
                    f"{what} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape that is "
                    "not half of a pair): it is not Unicode text"
                ) from None


def parse_object(body: bytes) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise InvalidArgument(f"the request body must be a JSON object; got {_kind(value)}")
    return value


def checked(model: type[M], value: Any, what: str) -> M:
    """`value` as `model`; INVALID_ARGUMENT names the first field at fault and why."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidArgument(f"{what}: {where + ': ' if where else ''}{first['msg']}") from None


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
