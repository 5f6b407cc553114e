"""What one OpenAI call costs: usage, error codes, the per-call recorder, recorded streams.

Token counts follow the OpenTelemetry GenAI conventions (and ``LlmCall``): input tokens
include cached ones, output tokens include reasoning ones, so each provider figure is
copied once and never added to another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

import httpx2
import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseStreamEvent,
    ResponseUsage,
)

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context
from costguard.sdk._events import LlmCall, record_llm_event
from costguard.sdk._insight import UNKNOWN_MODEL, active_insight, insight_context_type

log = logging.getLogger(__name__)

CHAT_COMPLETIONS = "chat.completions"
RESPONSES = "responses"
MAX_ERROR_CODE_LENGTH = 64  # the width of telemetry_llm_events.error_code


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, GenAI-style (cached within input, reasoning within output)."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int


def chat_usage(usage: CompletionUsage | None) -> Usage | None:
    """Usage of a chat completion (or of a stream's usage chunk); ``None`` when unreported."""
    if usage is None:
        return None
    prompt_details, completion_details = (
        usage.prompt_tokens_details,
        usage.completion_tokens_details,
    )
    return Usage(
        input_tokens=usage.prompt_tokens,
        cached_input_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        output_tokens=usage.completion_tokens,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def responses_usage(usage: ResponseUsage | None) -> Usage | None:
    """Usage of a Responses API response; ``None`` when unreported."""
    if usage is None:
        return None
    # The model declares the details required, but a lenient parse may leave them out.
    input_details, output_details = usage.input_tokens_details, usage.output_tokens_details
    return Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=(input_details.cached_tokens or 0) if input_details else 0,
        output_tokens=usage.output_tokens,
        reasoning_tokens=(output_details.reasoning_tokens or 0) if output_details else 0,
    )


def error_code(exc: BaseException) -> str:
    """The ``error_code`` recorded for a call that raised ``exc``.

    ``http_<status>`` for an HTTP error status (``http_429``, ``http_500``); ``timeout``;
    ``connection_error``; ``invalid_response`` when the body did not parse; ``api_error``
    for an error the API sent inside a stream; ``cancelled`` when the caller's task was
    cancelled; otherwise the exception's class name (as ``job_telemetry`` does). A call
    that returns but reports ``status: failed`` (Responses API) is ``response_failed``.
    """
    # Subclasses before their bases: APITimeoutError is an APIConnectionError.
    code: str
    if isinstance(exc, openai.APIStatusError):
        code = f"http_{exc.status_code}"
    elif isinstance(exc, openai.APITimeoutError):
        code = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        code = "connection_error"
    elif isinstance(exc, openai.APIResponseValidationError):
        code = "invalid_response"
    elif isinstance(exc, openai.APIError):
        code = "api_error"
    elif isinstance(exc, asyncio.CancelledError):
        code = "cancelled"
    else:
        code = type(exc).__name__
    return code[:MAX_ERROR_CODE_LENGTH]


class CallRecorder:
    """Measures one call from its start and records exactly one LLM event for it.

    Attribution (user context, insight) is captured when the call starts, so a stream
    consumed later or in another task is still charged to whoever made the call.
    """

    def __init__(
        self,
        *,
        operation: str,
        requested_model: object,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        context_type: str = "",
    ) -> None:
        self._operation = operation
        self._context_type = context_type
        self._requested_model = requested_model if isinstance(requested_model, str) else ""
        self._telemetry = telemetry
        self._user_ctx = user_ctx or current_user_context()
        self._insight = active_insight()
        self._created_at = datetime.now(UTC)
        self._started = time.perf_counter()
        self.recorded = False

    def succeeded(self, *, model: str | None, usage: Usage | None, failure: str = "") -> None:
        """The call returned (a stream: ended); ``failure`` marks a reported failure."""
        self._record(model, usage, failure)

    def failed(self, exc: BaseException, *, model: str | None = None) -> None:
        """The call raised ``exc``."""
        self._record(model, None, error_code(exc))

    def _record(self, model: str | None, usage: Usage | None, failure: str) -> None:
        if self.recorded:
            return
        self.recorded = True
        try:
            self._emit(model or self._requested_model or UNKNOWN_MODEL, usage, failure)
        except Exception:  # telemetry never breaks the caller
            log.exception("could not record an OpenAI call")

    def _emit(self, model: str, usage: Usage | None, failure: str) -> None:
        counts = usage or Usage(0, 0, 0, 0)
        call = LlmCall(
            llm_model=model,
            operation=self._operation,
            input_tokens=counts.input_tokens,
            # Clamped so that a provider's odd report cannot get the event rejected.
            cached_input_tokens=min(counts.cached_input_tokens, counts.input_tokens),
            output_tokens=counts.output_tokens,
            reasoning_tokens=min(counts.reasoning_tokens, counts.output_tokens),
            duration_ms=int((time.perf_counter() - self._started) * 1000),
            success=not failure,
            error_code=failure,
            usage_reported=usage is not None,
            insight_key=self._insight.key if self._insight else "",
            context_type=self._context_type or self._insight_context_type(),
            user_ctx=self._user_ctx,
            created_at=self._created_at,
        )
        record_llm_event(call, client=self._telemetry)
        if self._insight is not None and not failure:
            self._insight.note_call(model, self._operation)

    def _insight_context_type(self) -> str:
        # Outside an insight, "" lets the event take the user context's, else the default.
        return insight_context_type(self._user_ctx) if self._insight else ""


T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class StreamObserver(Protocol[T_contra]):
    model: str | None
    usage: Usage | None
    failure: str

    def observe(self, item: T_contra) -> bool:
        """Take note of one item; return whether the caller should see it."""
        ...


class ChatChunks:
    def __init__(self, *, pass_usage_chunk: bool) -> None:
        self.model: str | None = None
        self.usage: Usage | None = None
        self.failure = ""
        self._pass_usage_chunk = pass_usage_chunk

    def observe(self, item: ChatCompletionChunk) -> bool:
        self.model = item.model or self.model
        if item.usage is None:
            return True
        self.usage = chat_usage(item.usage)
        # The usage-only chunk (empty choices) exists because we asked for it.
        return self._pass_usage_chunk or bool(item.choices)


class ResponseEvents:
    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: Usage | None = None
        self.failure = ""

    def observe(self, item: ResponseStreamEvent) -> bool:
        if isinstance(item, ResponseCreatedEvent):
            self.model = item.response.model or self.model
        elif isinstance(item, ResponseCompletedEvent | ResponseIncompleteEvent):
            self.model = item.response.model or self.model
            self.usage = responses_usage(item.response.usage)
        elif isinstance(item, ResponseFailedEvent):
            self.model = item.response.model or self.model
            self.usage = responses_usage(item.response.usage)
            self.failure = "response_failed"
        elif isinstance(item, ResponseErrorEvent):
            self.failure = "api_error"
        return True


class InstrumentedStream(Generic[T]):
    """An ``openai.AsyncStream`` that records its call once it ends.

    Iterate it (``async for``) and use it as an async context manager exactly like the
    stream the bare client returns; ``response`` and ``close()`` are the same too.
    """

    def __init__(
        self, inner: AsyncStream[T], observer: StreamObserver[T], recorder: CallRecorder
    ) -> None:
        self._inner = inner
        self._observer = observer
        self._recorder = recorder

    @property
    def response(self) -> httpx2.Response:
        """The HTTP response the stream reads from."""
        return self._inner.response

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while True:
            try:
                item = await self._inner.__anext__()
            except StopAsyncIteration:
                self._finish()
                raise
            except BaseException as exc:
                self._recorder.failed(exc, model=self._observer.model)
                raise
            if self._observer.observe(item):
                return item

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the response; a stream closed early is recorded with what it had seen."""
        try:
            await self._inner.close()
        finally:
            self._finish()

    async def aclose(self) -> None:
        """Alias for ``close()``."""
        await self.close()

    def _finish(self) -> None:
        observed = self._observer
        self._recorder.succeeded(
            model=observed.model, usage=observed.usage, failure=observed.failure
        )
