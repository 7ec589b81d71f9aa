"""attnserve.v1's task API in JSON: ``POST /v1/summarize``, ``/v1/answer``, ``/v1/generate``
(and ``/v1/generate_stream``, one JSON chunk per line).

The body is the RPC's request message in the proto3 JSON mapping (lowerCamelCase or the
proto's own field names; unknown fields refused), the reply its response message, every
field present. Each route calls the gRPC servicer's method itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.text_inference import TextInferenceServicer
from service.errors import InvalidArgument
from service.http.app import Endpoint, openai_error, parse_object
from service.http.context import CallAborted, HttpContext, http_status

Req = TypeVar("Req", bound=Message)


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def parse(body: bytes, message: Req) -> Req:
    """`body` as `message` in the proto3 JSON mapping; INVALID_ARGUMENT says what is wrong."""
    value = parse_object(body)
    try:
        return json_format.ParseDict(value, message, max_recursion_depth=32)
    except json_format.ParseError as exc:
        name = message.DESCRIPTOR.name
        raise InvalidArgument(f"the request body is not a {name}: {exc}") from None


class TaskRoutes:
    def __init__(self, servicer: TextInferenceServicer) -> None:
        self._v1 = servicer

    def endpoints(self) -> list[Endpoint]:
        s = self._v1
        unary = {
            "/v1/summarize": _unary(s.Summarize, pb.SummarizeRequest),
            "/v1/answer": _unary(s.Answer, pb.AnswerRequest),
            "/v1/generate": _unary(s.Generate, pb.GenerateRequest),
            "/v1/generate_stream": self.generate_stream,
        }
        return [Endpoint("POST", path, handler, openai_error) for path, handler in unary.items()]

    async def generate_stream(
        self, request: Request, body: bytes, context: HttpContext
    ) -> Response:
        """GenerateChunks as JSON lines. The first chunk is awaited before the reply starts,
        so that a request refused at once gets its status code, not a 200 and a broken
        stream; a failure after that ends the stream with a chunk holding an "error"."""
        message = parse(body, pb.GenerateRequest())
        chunks = aiter(self._v1.GenerateStream(message, context.as_servicer_context()))
        first = await anext(chunks, None)

        async def lines() -> AsyncIterator[bytes]:
            if first is None:
                return
            yield _line(to_json(first))
            try:
                async for chunk in chunks:
                    yield _line(to_json(chunk))
            except CallAborted as exc:
                error = {"message": exc.message, "code": exc.code.name.lower()}
                yield _line({"error": error, "status": http_status(exc.code)})

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def _unary(
    method: Callable[[Req, grpc.aio.ServicerContext], Awaitable[Message]], kind: type[Req]
) -> Callable[[Request, bytes, HttpContext], Awaitable[Response]]:
    async def handle(request: Request, body: bytes, context: HttpContext) -> Response:
        reply = await method(parse(body, kind()), context.as_servicer_context())
        return JSONResponse(to_json(reply))

    return handle


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
