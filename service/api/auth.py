"""Optional bearer-token authentication for every RPC except health checks.

Health stays open so that Kubernetes probes and load balancers need no secret. The rule
itself (BearerToken) is the HTTP routes' too (service/http/app.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health
from pydantic import SecretStr

_OPEN_PREFIXES = (f"/{health.SERVICE_NAME}/",)


class BearerToken:
    """`Bearer <token>` in the authorization header, compared in constant time (the token
    must not leak through response timing)."""

    def __init__(self, token: SecretStr) -> None:
        self._expected = f"Bearer {token.get_secret_value()}".encode()

    def refusal(self, given: bytes, header: str) -> str | None:
        """None when `given` (the header's value) carries the token; else what to fix."""
        if hmac.compare_digest(given, self._expected):
            return None
        reason = "missing" if not given else "wrong"
        return f"{reason} bearer token: send '{header}: Bearer <token>'"


def _deny(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: SecretStr) -> None:
        self._token = BearerToken(token)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(_OPEN_PREFIXES):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        given = metadata.get("authorization", "")
        given_bytes = given.encode() if isinstance(given, str) else given
        refusal = self._token.refusal(given_bytes, "authorization")
        if refusal is not None:
            return _deny(refusal)
        return await continuation(details)
