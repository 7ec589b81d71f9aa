"""Optional bearer-token authentication for every RPC except health checks.

Health stays open so that Kubernetes probes and load balancers need no secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health
from pydantic import SecretStr

_OPEN_PREFIXES = (f"/{health.SERVICE_NAME}/",)


def _deny(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: SecretStr) -> None:
        self._expected = f"Bearer {token.get_secret_value()}".encode()

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
        # Constant-time comparison: the token must not leak through response timing.
        if not hmac.compare_digest(given_bytes, self._expected):
            reason = "missing" if not given else "wrong"
            return _deny(f"{reason} bearer token: send 'authorization: Bearer <token>'")
        return await continuation(details)
