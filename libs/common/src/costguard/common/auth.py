"""Service-token authentication between costguard processes.

When ``COSTGUARD_SERVICE_TOKEN`` is set, every RPC except health checking and reflection
must carry ``authorization: Bearer <token>`` metadata; otherwise the call ends with
``UNAUTHENTICATED``. Probes (Kubernetes, ``grpc_health_probe``) stay token-free.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeAlias

import grpc
from grpc import aio

_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata a client sends so that a server with this token accepts it."""
    return (("authorization", f"Bearer {token}"),) if token else ()


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context = aio.ServicerContext[Any, Any]


def _presented_token(metadata: Iterable[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return ""


async def _refuse(context: Context) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service token")


def _checked(handler: Handler, allowed: Callable[[Context], bool]) -> Handler:
    """``handler``, ending each call without ``allowed`` credentials before it runs (and
    before a streamed request is read)."""

    async def respond(request: Any, context: Context) -> Any:
        if not allowed(context):
            await _refuse(context)
        return await behavior(request, context)

    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        if not allowed(context):
            await _refuse(context)
        async for reply in behavior(request, context):
            yield reply

    # Any: the stubs type the behaviors as sync callables.
    kinds: dict[tuple[bool, bool], tuple[Any, Any]] = {
        (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
        (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
        (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
    }
    make, behavior = kinds[(handler.request_streaming, handler.response_streaming)]
    checked: Handler = make(
        stream if handler.response_streaming else respond,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return checked


def token_guard(token: str) -> Callable[[str, Handler], Handler]:
    """What wraps each method's handler (``/package.Service/Method``) so that its calls need
    ``token``; health checking and reflection stay open."""
    expected = token.encode()

    def allowed(context: Context) -> bool:
        presented = _presented_token(context.invocation_metadata()).encode()
        return hmac.compare_digest(presented, expected)

    def guard(method: str, handler: Handler) -> Handler:
        return handler if method.startswith(_OPEN_PREFIXES) else _checked(handler, allowed)

    return guard
