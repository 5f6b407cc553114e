"""A request id carried across gRPC calls, so one request's log lines can be found together.

A caller sends ``x-request-id`` metadata; :func:`with_request_id` (wrapped around every
method ``GrpcServer`` serves) adopts it, or makes one when it is missing or unusable, sets the
``request_id`` ContextVar that :class:`~costguard.common.logging.JsonFormatter` writes into
every log line, and echoes the id in the call's trailing metadata. Outgoing calls made while
serving (the gateway's, say) send the current id with :func:`call_metadata` (issue 7).

The ContextVar is set inside the wrapped handler, so it holds in the handler's own task and in
every task the handler creates (``asyncio.create_task`` copies the context). The wrapper reads
the id from the call's own metadata: one wrapper per method serves every call.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc import aio

from costguard.common.auth import token_metadata
from costguard.common.logging import request_id

HEADER = "x-request-id"
# What a caller may choose: visible ASCII without quotes or backslashes, bounded, so an id
# can neither forge a log field nor grow without end.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")

Context = aio.ServicerContext[Any, Any]


def new_request_id() -> str:
    return uuid.uuid4().hex


def acceptable(value: str | None) -> str | None:
    """``value`` when it may serve as a request id, else None."""
    return value if value is not None and _ACCEPTABLE.match(value) else None


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call: the service token and the current request id, if any."""
    rid = request_id.get()
    return (*token_metadata(token), (HEADER, rid)) if rid else token_metadata(token)


def _incoming(metadata: Iterable[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key == HEADER and isinstance(value, str):
            return acceptable(value) or new_request_id()
    return new_request_id()


def _adopt(context: Context) -> None:
    rid = _incoming(context.invocation_metadata())
    request_id.set(rid)
    context.set_trailing_metadata(((HEADER, rid),))


def _unary_response(
    behavior: Callable[[Any, Context], Awaitable[Any]],
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handle(request: Any, context: Context) -> Any:
        _adopt(context)
        return await behavior(request, context)

    return handle


def _streamed_response(
    behavior: Callable[[Any, Context], AsyncIterator[Any]],
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        _adopt(context)
        async for reply in behavior(request, context):
            yield reply

    return handle


def with_request_id(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler``, setting each call's request id and echoing it to the caller."""
    kinds = {
        (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
        (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
        (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
    }
    make, behavior = kinds[(handler.request_streaming, handler.response_streaming)]
    wrap = _streamed_response if handler.response_streaming else _unary_response
    wrapped: grpc.RpcMethodHandler[Any, Any] = make(
        wrap(behavior),  # type: ignore[arg-type]  # the stubs type behaviors as sync
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return wrapped
