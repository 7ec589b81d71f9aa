"""How the load test sends one request and names its fate: over gRPC, or over HTTP to the
same server's routes (`--protocol http`: /v1/embeddings as the OpenAI SDKs call it, with
base64 vectors; /v1/answer and /v1/summarize in the proto3 JSON mapping).

An HTTP status is reported as the gRPC code it stands for (the contract's table), so the two
protocols' reports read alike.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any, Protocol

import grpc
from google.protobuf import json_format

from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.client import call_metadata, channel_credentials
from service.http.context import HTTP_STATUS

METHODS = {"embed": "Embed", "answer": "Answer", "summarize": "Summarize"}
ROUTES = {"embed": "/v1/embeddings", "answer": "/v1/answer", "summarize": "/v1/summarize"}
_CODE_OF_STATUS = {status: code.name for code, status in HTTP_STATUS.items()}
_CODE_OF_STATUS[400] = "INVALID_ARGUMENT"  # OUT_OF_RANGE shares 400; ours are all this


class Sender(Protocol):
    def prepare(self, requests: Sequence[Any]) -> list[Any]:
        """The task's protobuf requests in the form `send` takes (encoded once, not per send)."""
        ...

    async def send(self, request: Any, timeout: float) -> str:
        """Send one prepared request; the gRPC status code name of its answer."""
        ...


class GrpcSender:
    def __init__(self, channel: grpc.aio.Channel, task: str, metadata: Any) -> None:
        self._method = getattr(pb_grpc.TextInferenceStub(channel), METHODS[task])
        self._metadata = metadata

    def prepare(self, requests: Sequence[Any]) -> list[Any]:
        return list(requests)

    async def send(self, request: Any, timeout: float) -> str:
        try:
            await self._method(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            return str(err.code().name)
        return "OK"


class HttpSender:
    """Prepared requests are bodies, or (body, headers of its own)."""

    def __init__(
        self,
        session: Any,
        base_url: str,
        task: str,
        headers: dict[str, str],
        vectors: str = "base64",
    ) -> None:
        self._session = session
        self._url = base_url + ROUTES[task]
        self._task = task
        self._headers = {"content-type": "application/json", **headers}
        self._vectors = vectors  # embed: the encoding_format asked for

    def prepare(self, requests: Sequence[Any]) -> list[Any]:
        return [self._body(r) for r in requests]

    def _body(self, request: Any) -> bytes | tuple[bytes, dict[str, str]]:
        if self._task == "embed":  # the OpenAI embeddings API, as its SDKs send it
            body = {"input": list(request.texts), "encoding_format": self._vectors}
            if request.model:
                body["model"] = request.model
            return json.dumps(body).encode()
        return json_format.MessageToJson(request).encode()

    async def send(self, request: Any, timeout: float) -> str:
        import aiohttp

        body, own = request if isinstance(request, tuple) else (request, {})
        headers = {**self._headers, **own, "x-request-timeout": f"{timeout:g}"}
        try:
            async with self._session.post(
                self._url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as reply:  # fmt: skip
                await reply.read()
                return _CODE_OF_STATUS.get(reply.status, f"HTTP_{reply.status}")
        except TimeoutError:
            return "DEADLINE_EXCEEDED"
        except aiohttp.ClientError:
            return "UNAVAILABLE"


def open_grpc(args: Any, task: str) -> tuple[grpc.aio.Channel, GrpcSender]:
    """A channel (the caller closes it) and its sender, as the connection flags ask."""
    from service.client import CHANNEL_OPTIONS

    credentials = channel_credentials(args)
    if credentials is None:
        channel = grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.aio.secure_channel(args.target, credentials, options=CHANNEL_OPTIONS)
    return channel, GrpcSender(channel, task, call_metadata(args))


def open_http(args: Any, task: str, vectors: str = "base64") -> tuple[Any, HttpSender]:
    """An aiohttp session (the caller closes it) and its sender, as the connection flags ask:
    https with --tls-ca (and a client certificate for mTLS), the token as a bearer header."""
    import aiohttp

    tls: ssl.SSLContext | bool = False
    if args.tls_ca or args.tls_cert:
        tls = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
    call_metadata(args)  # refuses a token over plaintext without --allow-insecure-token
    headers = {"authorization": f"Bearer {args.token}"} if args.token else {}
    # No connection cap: an open loop keeps every request it sent in flight.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=tls))
    scheme = "https" if tls else "http"
    return session, HttpSender(session, f"{scheme}://{args.target}", task, headers, vectors)
