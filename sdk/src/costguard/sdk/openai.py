"""An instrumented ``openai.AsyncOpenAI``: every chat completion and response is recorded.

from openai import AsyncOpenAI
from costguard.sdk.openai import instrument_openai

client = instrument_openai(AsyncOpenAI())
reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
async with await client.responses.create(model="gpt-4o-mini", input="hi", stream=True) as s:
    async for event in s: ...

``chat.completions.create`` and ``responses.create``, streaming or not, record exactly one
LLM event each (see ``LlmCall``): the model the response reports (else the requested one),
input/cached/output/reasoning tokens from ``usage``, wall-clock latency (for a stream:
until it ends), success and an error code (see ``error_code``). Errors are recorded and
re-raised unchanged. A stream is recorded when it is exhausted, closed or its ``async
with`` block exits; a stream that ends without usage is recorded with
``usage_reported=False``. Streaming chat calls ask for usage in the stream
(``stream_options.include_usage``); the extra usage-only chunk is passed on only to callers
that asked for it themselves, so they see the same chunks as with the bare client.
Everything else on the client (``embeddings``, ``chat.completions.parse``, ...) passes
through to the wrapped client unrecorded. This module needs the ``openai`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from openai import AsyncOpenAI, AsyncStream
from openai.resources.chat import AsyncChat
from openai.resources.chat.completions import AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext
from costguard.sdk._openai import (
    CHAT_COMPLETIONS,
    RESPONSES,
    CallRecorder,
    ChatChunks,
    InstrumentedStream,
    ResponseEvents,
    chat_usage,
    error_code,
    responses_usage,
)

__all__ = ["InstrumentedOpenAI", "InstrumentedStream", "error_code", "instrument_openai"]


class _Instrumented:
    def __init__(
        self, telemetry: TelemetryClient | None, user_ctx: UserContext | None, context_type: str
    ) -> None:
        self._telemetry = telemetry
        self._user_ctx = user_ctx
        self._context_type = context_type

    def _recorder(self, operation: str, params: Mapping[str, Any]) -> CallRecorder:
        return CallRecorder(
            operation=operation,
            requested_model=params.get("model"),
            telemetry=self._telemetry,
            user_ctx=self._user_ctx,
            context_type=self._context_type,
        )


class InstrumentedChatCompletions(_Instrumented):
    """``client.chat.completions`` whose ``create`` is recorded."""

    def __init__(
        self,
        inner: AsyncCompletions,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        context_type: str,
    ) -> None:
        super().__init__(telemetry, user_ctx, context_type)
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Any
    ) -> InstrumentedStream[ChatCompletionChunk]: ...
    @overload
    async def create(
        self, *, stream: Literal[False] | None = ..., **params: Any
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self, *, stream: bool, **params: Any
    ) -> ChatCompletion | InstrumentedStream[ChatCompletionChunk]: ...
    async def create(
        self, **params: Any
    ) -> ChatCompletion | InstrumentedStream[ChatCompletionChunk]:
        """``AsyncCompletions.create`` with the same arguments, recorded as one LLM event."""
        pass_usage_chunk = _ask_for_stream_usage(params) if params.get("stream") else True
        recorder = self._recorder(CHAT_COMPLETIONS, params)
        try:
            result: ChatCompletion | AsyncStream[ChatCompletionChunk]
            result = await self._inner.create(**params)
        except BaseException as exc:
            recorder.failed(exc)
            raise
        if isinstance(result, AsyncStream):
            return InstrumentedStream(
                result, ChatChunks(pass_usage_chunk=pass_usage_chunk), recorder
            )
        recorder.succeeded(model=result.model, usage=chat_usage(result.usage))
        return result


class InstrumentedResponses(_Instrumented):
    """``client.responses`` whose ``create`` is recorded."""

    def __init__(
        self,
        inner: AsyncResponses,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        context_type: str,
    ) -> None:
        super().__init__(telemetry, user_ctx, context_type)
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Any
    ) -> InstrumentedStream[ResponseStreamEvent]: ...
    @overload
    async def create(self, *, stream: Literal[False] | None = ..., **params: Any) -> Response: ...
    @overload
    async def create(
        self, *, stream: bool, **params: Any
    ) -> Response | InstrumentedStream[ResponseStreamEvent]: ...
    async def create(self, **params: Any) -> Response | InstrumentedStream[ResponseStreamEvent]:
        """``AsyncResponses.create`` with the same arguments, recorded as one LLM event."""
        recorder = self._recorder(RESPONSES, params)
        try:
            result: Response | AsyncStream[ResponseStreamEvent]
            result = await self._inner.create(**params)
        except BaseException as exc:
            recorder.failed(exc)
            raise
        if isinstance(result, AsyncStream):
            return InstrumentedStream(result, ResponseEvents(), recorder)
        failure = "response_failed" if result.status == "failed" else ""
        recorder.succeeded(model=result.model, usage=responses_usage(result.usage), failure=failure)
        return result


class InstrumentedChat:
    """``client.chat`` with recorded ``completions``."""

    def __init__(self, inner: AsyncChat, completions: InstrumentedChatCompletions) -> None:
        self._inner = inner
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class InstrumentedOpenAI:
    """An ``AsyncOpenAI`` whose ``chat.completions.create`` and ``responses.create`` are
    recorded; every other attribute is the wrapped client's (``unwrapped``)."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        telemetry: TelemetryClient | None = None,
        user_ctx: UserContext | None = None,
        context_type: str = "",
    ) -> None:
        self.unwrapped = client
        completions = InstrumentedChatCompletions(
            client.chat.completions, telemetry, user_ctx, context_type
        )
        self.chat = InstrumentedChat(client.chat, completions)
        self.responses = InstrumentedResponses(client.responses, telemetry, user_ctx, context_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unwrapped, name)


def instrument_openai(
    client: AsyncOpenAI,
    *,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | None = None,
    context_type: str = "",
) -> InstrumentedOpenAI:
    """Wrap ``client`` so that each chat completion and response records one LLM event.

    ``telemetry`` defaults to the SDK's configured client. Attribution comes from
    ``user_ctx`` when given, else from the ``UserContext`` current when each call starts;
    calls made inside ``cached_insight`` carry its insight key. ``context_type`` says what
    the calls are for (``summary``, ``chat``, ...); empty takes the user context's, then
    ``insight`` inside ``cached_insight``, else ``general``. The wrapped client is not
    modified and can still be used bare.
    """
    return InstrumentedOpenAI(
        client, telemetry=telemetry, user_ctx=user_ctx, context_type=context_type
    )


def _ask_for_stream_usage(params: dict[str, Any]) -> bool:
    """Make a streaming chat call report usage; return whether the caller asked for it.

    Merged into the caller's ``stream_options`` (``None`` or ``omit`` count as unset).
    """
    given = params.get("stream_options")
    options: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    caller_asked = options.get("include_usage") is True
    params["stream_options"] = {**options, "include_usage": True}
    return caller_asked
