"""Register a servicer for every method of its proto service, with safe deserializers.

grpcio's generated `add_*_to_server` parse requests with `FromString`, and a request that
is not valid protobuf (bad UTF-8 in a string field from another language's client, a
truncated message) then fails as UNKNOWN. Here such requests get INVALID_ARGUMENT with the
parser's reason, and the servicer never sees them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request that could not be parsed."""

    type_name: str
    reason: str

    def message(self) -> str:
        return f"request is not a valid {self.type_name}: {self.reason}"


def _deserializer(message_class: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def parse(data: bytes) -> Message | Malformed:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Malformed(message_class.DESCRIPTOR.full_name, str(exc))

    return parse


def _unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
        return await method(request, context)

    return handle


def _streaming(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
        async for item in method(request, context):
            yield item

    return handle


def add_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Serve every method of `service` that `servicer` implements."""
    handlers = {}
    for method in service.methods:
        if method.client_streaming:
            raise ValueError(f"{method.full_name}: client streaming is not supported here")
        implementation = getattr(servicer, method.name)
        parse = _deserializer(GetMessageClass(method.input_type))
        serialize = GetMessageClass(method.output_type).SerializeToString
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(implementation),
                request_deserializer=parse,
                response_serializer=serialize,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(implementation),
                request_deserializer=parse,
                response_serializer=serialize,
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
