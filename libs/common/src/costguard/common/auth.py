"""Service-token authentication between costguard processes.

When ``COSTGUARD_SERVICE_TOKEN`` is set, every RPC except health checking and reflection
must carry ``authorization: Bearer <token>`` metadata; otherwise the call ends with
``UNAUTHENTICATED``. Probes (Kubernetes, ``grpc_health_probe``) stay token-free.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata a client sends so that a server with this token accepts it."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def _presented_token(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return ""


async def _deny(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service token")


def _denying_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        _deny,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ServiceTokenInterceptor(aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_OPEN_PREFIXES):
            return handler
        presented = _presented_token(handler_call_details).encode()
        if hmac.compare_digest(presented, self._token):
            return handler
        return _denying_handler(handler)
