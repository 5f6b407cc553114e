"""What one OpenAI call costs: usage, error codes and the meters.

Token counts follow the OpenTelemetry GenAI conventions (and ``LlmCall``): input tokens
include cached ones, output tokens include reasoning ones, so each provider figure is
copied once and never added to another. The per-call recorders are ``_recording``'s,
shared with the Gemini instrumentation; :data:`OPENAI` is what is OpenAI's about them.

A :class:`Meter` watches one HTTP call to a priced endpoint (see ``METERS``) from the
moment ``client.post`` is called: it sees the parsed body (the request's ``post_parser``),
the items of a stream (:class:`InstrumentedStream`), the raw response of the
``with_raw_response`` and ``with_streaming_response`` forms, and the exception, and records
exactly one event: an LLM event (chat completions, responses, embeddings) or a cost event
(images, speech, transcriptions). Usage that never arrives is estimated (``_tokens``) and
recorded with ``usage_reported=False``; a call that failed before OpenAI could bill it (the
request was refused with an HTTP error, or never left) is recorded with no tokens, or, for
a cost event, not at all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import struct
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar, cast

import httpx2
import openai
from openai import AsyncAPIResponse, AsyncStream
from openai._legacy_response import LegacyAPIResponse
from openai.types import CreateEmbeddingResponse, ImagesResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import (
    Response,
    ResponseUsage,
)

from costguard.sdk import _tokens
from costguard.sdk._errors import (
    API_ERROR,
    CONNECTION_ERROR,
    INVALID_RESPONSE,
    TIMEOUT,
    http_error,
    never_sent,
    other_error,
)
from costguard.sdk._recording import (
    CallRecorder,
    CostRecorder,
    ProviderRules,
    Usage,
)
from costguard.sdk._recording import guarded as shared_guarded

log = logging.getLogger(__name__)

CHAT_COMPLETIONS = "chat.completions"
RESPONSES = "responses"
EMBEDDINGS = "embeddings.create"
# A transcription's seconds, when neither the response nor a WAV header gives them: the
# upload's size at 128 kbit/s (a usual MP3 / M4A bit rate), flagged ``estimated``.
ESTIMATED_AUDIO_BYTES_PER_SECOND = 16_000
_WAV_HEAD_BYTES = 1 << 16  # how much of an upload is read to find a WAV header's chunks


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
    """The ``error_code`` recorded for a call that raised ``exc``, in the vocabulary of
    ``_errors`` (shared with the Gemini instrumentation).

    ``http_<status>`` for an HTTP error status (``http_429``, ``http_500``); ``timeout``;
    ``connection_error``; ``invalid_response`` when the body did not parse; ``api_error``
    for an error the API sent inside a stream; ``cancelled`` when the caller's task was
    cancelled; otherwise the exception's class name (as ``job_telemetry`` does). A call
    that returns but reports ``status: failed`` (Responses API) is ``response_failed``.
    """
    # Subclasses before their bases: APITimeoutError is an APIConnectionError.
    if isinstance(exc, openai.APIStatusError):
        return http_error(exc.status_code)
    if isinstance(exc, openai.APITimeoutError):
        return TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return CONNECTION_ERROR
    if isinstance(exc, openai.APIResponseValidationError):
        return INVALID_RESPONSE
    if isinstance(exc, openai.APIError):
        return API_ERROR
    return other_error(exc)


def may_be_billed(exc: BaseException) -> bool:
    """Whether OpenAI may have billed a call that raised ``exc``.

    No for an HTTP error status (OpenAI refused the request), for a connection that failed
    before the request was written whole, and for an error of the client's own (invalid
    arguments and the like, before anything is sent). Yes for a timeout waiting for the
    answer, a connection dropped mid-answer, an error inside a stream, a body that did not
    parse, and a cancellation (the request may be out).
    """
    if isinstance(exc, openai.APIStatusError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return not never_sent(exc.__cause__)
    return isinstance(exc, openai.OpenAIError | asyncio.CancelledError)


OPENAI = ProviderRules(
    provider="openai",
    label="an OpenAI call",
    error_code=error_code,
    may_be_billed=may_be_billed,
    count_output=lambda model, text: _tokens.count_tokens(model, [text]),
)


class Meter:
    """Watches one call to a priced endpoint; see the module docstring. Subclasses say how
    a parsed body, a stream item, an answer or a failure is recorded; every hook is called
    with the recording already guarded, and none may raise into the caller."""

    def parsed(self, result: object) -> None:
        """The body was parsed into ``result`` (a model, or an :class:`InstrumentedStream`)."""

    def answered(self, result: object) -> None:
        """``client.post`` returned ``result``."""

    def failed(self, exc: BaseException) -> None:
        """The call raised ``exc``."""

    def observe(self, item: object) -> bool:
        """Take note of one streamed item; return whether the caller should see it."""
        return True

    def ended(self) -> None:
        """The stream ended."""

    def left(self) -> None:
        """The call's response was closed or dropped before its usage was seen: a stream
        closed or abandoned early, a raw response never parsed."""


def guarded(hook: Callable[[], None]) -> None:
    shared_guarded(hook, OPENAI.label)


def post_parser(meter: Meter, original: object) -> Callable[[object], object]:
    """The request's ``post_parser``: ``original``'s (``parse()`` helpers have one), then
    the meter's look at the result, which it returns unchanged."""

    def parse(result: object) -> object:
        if callable(original):
            result = original(result)
        guarded(lambda: meter.parsed(result))
        return result

    return parse


async def answered(meter: Meter, result: object, *, stream: bool) -> None:
    """``client.post`` returned: hand the result over, and make the raw forms record."""
    guarded(lambda: meter.answered(result))
    try:
        if isinstance(result, LegacyAPIResponse):
            # Read already (or a stream not started): parsing here records it, and the
            # caller's parse() gets the same, cached, object.
            result.parse()
        elif isinstance(result, AsyncAPIResponse):
            if stream:
                await result.parse()  # makes the stream object without reading it
            else:
                _record_when_closed(meter, result)
    except Exception:
        log.warning("could not read a raw OpenAI response; its usage is estimated", exc_info=True)
        guarded(meter.left)


def _record_when_closed(meter: Meter, response: AsyncAPIResponse[Any]) -> None:
    """A ``with_streaming_response`` body is read, if at all, by the caller: when it is
    closed (its ``async with`` ends), parse what was read, else record an estimate."""
    close = response.close

    async def closing() -> None:
        try:
            try:
                _ = response.http_response.content  # raises when the body was not read
            except httpx2.ResponseNotRead:
                guarded(meter.left)
            else:
                await response.parse()
        except Exception:
            guarded(meter.left)
        await close()

    object.__setattr__(response, "close", closing)


_T = TypeVar("_T")


class _StreamState:
    """What a stream's close hook and finalizer share, without holding the stream."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.reading = False  # inside the wrapped stream's __anext__: it reports itself

    def closed(self) -> None:
        if not self.reading:
            guarded(self.meter.left)


class InstrumentedStream(AsyncStream[_T], Generic[_T]):
    """The ``openai.AsyncStream`` of a metered call: the same stream, whose items its meter
    sees (and may hide: the usage chunk the caller did not ask for). The call is recorded
    when the stream ends or fails, or when its response is closed or the stream dropped
    before that (with what had been seen)."""

    _state: _StreamState | None = None

    def attach(self, meter: Meter) -> None:
        state = self._state = _StreamState(meter)
        response, close = self.response, self.response.aclose

        async def closing() -> None:
            try:
                await close()
            finally:
                state.closed()

        # Every way a stream is let go closes this response: our close(), the helpers'
        # (``.stream()`` closes the response itself), the end of the body.
        object.__setattr__(response, "aclose", closing)
        weakref.finalize(self, state.closed).atexit = False

    async def __stream__(self) -> Any:
        inner = super().__stream__()
        state = self._state
        while True:
            if state is not None:
                state.reading = True
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                if state is not None:
                    guarded(state.meter.ended)
                return
            except BaseException as exc:
                if state is not None and not isinstance(exc, GeneratorExit):
                    guarded(functools.partial(state.meter.failed, exc))
                raise
            finally:
                if state is not None:
                    state.reading = False
            if state is None or state.meter.observe(item):
                yield item


# --- LLM calls ----------------------------------------------------------------------------


class LlmMeter(Meter):
    """An LLM call: tokens from the usage the body or the stream reports, else estimated."""

    def __init__(self, recorder: CallRecorder) -> None:
        self.recorder = recorder
        self.model: str | None = None
        self.usage: Usage | None = None
        self.failure = ""
        self.received: list[str] = []

    def failed(self, exc: BaseException) -> None:
        self.recorder.failed(exc, model=self.model, received="".join(self.received))

    def ended(self) -> None:
        self.recorder.succeeded(
            model=self.model,
            usage=self.usage,
            failure=self.failure,
            received="".join(self.received),
        )

    left = ended


class ChatMeter(LlmMeter):
    def __init__(self, recorder: CallRecorder, *, pass_usage_chunk: bool) -> None:
        super().__init__(recorder)
        self._pass_usage_chunk = pass_usage_chunk

    def parsed(self, result: object) -> None:
        if isinstance(result, InstrumentedStream):
            result.attach(self)
        elif isinstance(result, ChatCompletion):
            self.model, self.usage = result.model, chat_usage(result.usage)
            for choice in result.choices:
                message = choice.message
                self.received += [message.content or "", message.refusal or ""]
                for call in message.tool_calls or []:
                    function = getattr(call, "function", None)
                    if function is not None:
                        self.received += [function.name, function.arguments]
            self.ended()
        else:
            self.left()

    def observe(self, item: object) -> bool:
        if not isinstance(item, ChatCompletionChunk):
            return True
        self.model = item.model or self.model
        for choice in item.choices:
            delta = choice.delta
            self.received += [delta.content or "", delta.refusal or ""]
            for call in delta.tool_calls or []:
                if call.function is not None:
                    self.received += [call.function.name or "", call.function.arguments or ""]
        if item.usage is None:
            return True
        self.usage = chat_usage(item.usage)
        # The usage-only chunk (empty choices) exists because we asked for it.
        return self._pass_usage_chunk or bool(item.choices)


class ResponsesMeter(LlmMeter):
    """Read by shape, not class: ``beta.responses`` has classes of its own, alike."""

    def _take(self, response: object, *, usage: bool = True) -> None:
        model = getattr(response, "model", None)
        self.model = model if isinstance(model, str) and model else self.model
        if usage:
            self.usage = responses_usage(
                cast(ResponseUsage | None, getattr(response, "usage", None))
            )

    def parsed(self, result: object) -> None:
        if isinstance(result, InstrumentedStream):
            result.attach(self)
        elif isinstance(result, Response) or hasattr(result, "output"):
            self._take(result)
            self.failure = "response_failed" if getattr(result, "status", "") == "failed" else ""
            self.received.append(_text(getattr(result, "output_text", "")))
            self.ended()
        else:
            self.left()

    def observe(self, item: object) -> bool:
        kind, delta = _text(getattr(item, "type", None)), getattr(item, "delta", None)
        response = getattr(item, "response", None)
        if kind == "response.created":
            self._take(response, usage=False)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._take(response)
            if kind == "response.failed":
                self.failure = "response_failed"
        elif kind == "error":
            self.failure = "api_error"
        # Text deltas (output text, refusals, function arguments, reasoning summaries),
        # not the base64 of audio.
        elif isinstance(delta, str) and kind.endswith(".delta") and "audio" not in kind:
            self.received.append(delta)
        return True


class EmbeddingsMeter(LlmMeter):
    def parsed(self, result: object) -> None:
        if isinstance(result, CreateEmbeddingResponse):
            self.model = result.model
            tokens = result.usage.prompt_tokens if result.usage is not None else None
            if tokens is not None:
                self.usage = Usage(tokens, 0, 0, 0)
            self.ended()
        else:
            self.left()


# --- cost events: images, speech, transcriptions ------------------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


class ImagesMeter(Meter):
    """``openai_image``: images returned, at the quality and size the response reports, else
    those asked for, else the model's defaults (DALL-E 2 has only ``standard``)."""

    DEFAULT_MODEL = "dall-e-2"  # what the API uses when no model is given

    def __init__(self, recorder: CostRecorder, *, operation: str, body: Mapping[str, Any]):
        self._recorder = recorder
        self._operation = operation
        self._model = _text(body.get("model")) or self.DEFAULT_MODEL
        self._size = _text(body.get("size"))
        self._quality = _text(body.get("quality"))
        count = body.get("n")
        self._asked = count if isinstance(count, int) and count > 0 else 1
        self._completed = 0

    def _record(self, images: int, *, estimated: bool = False, **extra: object) -> None:
        size = self._size or ("auto" if self._model.startswith("gpt-image") else "1024x1024")
        quality = self._quality or ("auto" if self._model.startswith("gpt-image") else "standard")
        if self._model == "dall-e-2":
            quality = "standard"
        metadata: dict[str, Any] = {
            "model": self._model,
            "size": size,
            "quality": quality,
            "operation": self._operation,
            "n": self._asked,
            **extra,
        }
        if estimated:
            metadata["estimated"] = True
        self._recorder.record(images, metadata)

    def parsed(self, result: object) -> None:
        if isinstance(result, InstrumentedStream):
            result.attach(self)
        elif isinstance(result, ImagesResponse):
            self._size = _text(result.size) or self._size
            self._quality = _text(result.quality) or self._quality
            self._record(len(result.data or []))
        else:
            self.left()

    def observe(self, item: object) -> bool:
        if _text(getattr(item, "type", None)).endswith(".completed"):
            self._completed += 1
            self._size = _text(getattr(item, "size", None)) or self._size
            self._quality = _text(getattr(item, "quality", None)) or self._quality
        return True

    def ended(self) -> None:
        self._record(self._completed)

    def left(self) -> None:
        self._record(max(self._completed, self._asked), estimated=True)

    def failed(self, exc: BaseException) -> None:
        if may_be_billed(exc):
            self._record(self._asked, estimated=True, error_code=error_code(exc))


class SpeechMeter(Meter):
    """``openai_tts``: the characters of the input text, once OpenAI has answered."""

    def __init__(self, recorder: CostRecorder, *, body: Mapping[str, Any]) -> None:
        self._recorder = recorder
        self._characters = len(_text(body.get("input")))
        self._metadata = {
            "model": _text(body.get("model")),
            "voice": body.get("voice") if isinstance(body.get("voice"), str) else "",
            "response_format": _text(body.get("response_format")) or "mp3",
            "operation": "audio.speech.create",
        }

    def answered(self, result: object) -> None:
        self._recorder.record(self._characters, self._metadata)

    def failed(self, exc: BaseException) -> None:
        if may_be_billed(exc):
            metadata = {**self._metadata, "estimated": True, "error_code": error_code(exc)}
            self._recorder.record(self._characters, metadata)


@dataclass(frozen=True)
class Upload:
    """What a transcription's upload is: its first bytes and its size, when readable."""

    head: bytes
    size: int | None


def read_upload(files: object) -> Upload | None:
    """The ``file`` of a multipart request (bytes, a path, a seekable file object, or a
    ``(name, content, ...)`` tuple of one), read without consuming it."""
    if not isinstance(files, list | tuple):
        return None
    for entry in files:
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "file":
            content = entry[1][1] if isinstance(entry[1], tuple) else entry[1]
            return _peek(content)
    return None


def _peek(content: object) -> Upload | None:
    if isinstance(content, bytes | bytearray | memoryview):
        data = bytes(content)
        return Upload(data[:_WAV_HEAD_BYTES], len(data))
    if isinstance(content, os.PathLike | str) and os.path.isfile(content):
        with open(content, "rb") as path:
            return Upload(path.read(_WAV_HEAD_BYTES), os.path.getsize(content))
    if hasattr(content, "seekable") and hasattr(content, "read"):
        handle = cast(IO[bytes], content)
        if not handle.seekable():
            return None
        start = handle.tell()
        try:
            head = handle.read(_WAV_HEAD_BYTES)
            size = handle.seek(0, os.SEEK_END) - start
        finally:
            handle.seek(start)
        return Upload(head if isinstance(head, bytes) else b"", size)
    return None


def wav_seconds(upload: Upload) -> float | None:
    """The length of a PCM WAV upload from its header (``data`` bytes / byte rate); ``None``
    when it is not one. A ``data`` size of 0 or 0xFFFFFFFF (a streamed WAV) means "to the
    end of the file"."""
    head = upload.head
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(head):
        chunk = head[offset : offset + 4]
        size: int = struct.unpack_from("<I", head, offset + 4)[0]
        body = offset + 8
        if chunk == b"fmt " and body + 12 <= len(head):
            byte_rate = int(struct.unpack_from("<I", head, body + 8)[0])
        elif chunk == b"data":
            if byte_rate <= 0:
                return None
            if size in (0, 0xFFFFFFFF) and upload.size is not None:
                size = upload.size - body
            return size / byte_rate
        offset = body + size + (size & 1)  # chunks are padded to an even length
    return None


class TranscriptionMeter(Meter):
    """``openai_transcription``: seconds of input audio. From the response when it says
    (``duration`` of ``verbose_json``, or duration usage); else measured from the upload's
    WAV header; else the upload's size at 128 kbit/s, flagged ``estimated``."""

    def __init__(
        self,
        recorder: CostRecorder,
        *,
        operation: str,
        body: Mapping[str, Any],
        upload: Upload | None,
    ) -> None:
        self._recorder = recorder
        self._upload = upload
        self._metadata: dict[str, Any] = {
            "model": _text(body.get("model")),
            "response_format": _text(body.get("response_format")) or "json",
            "operation": operation,
        }

    def _record(self, seconds: float | None = None, *, failed: str = "") -> None:
        source = "response"
        if seconds is None:
            measured = wav_seconds(self._upload) if self._upload is not None else None
            source, seconds = "wav_header", measured
        estimated = bool(failed)
        if seconds is None:
            size = self._upload.size if self._upload is not None else None
            source, estimated = "file_size", True
            seconds = (size or 0) / ESTIMATED_AUDIO_BYTES_PER_SECOND
        metadata = {**self._metadata, "seconds_from": source}
        if estimated:
            metadata["estimated"] = True
        if failed:
            metadata["error_code"] = failed
        # At least a millisecond, so that a call recorded is never a silent $0.
        self._recorder.record(max(round(seconds, 3), 0.001), metadata)

    def parsed(self, result: object) -> None:
        if isinstance(result, InstrumentedStream):
            result.attach(self)
            return
        given: object = getattr(result, "duration", None)
        usage = getattr(result, "usage", None)
        if not isinstance(given, int | float) and getattr(usage, "type", "") == "duration":
            given = getattr(usage, "seconds", None)
        seconds = None
        if isinstance(given, int | float) and math.isfinite(given) and given >= 0:
            seconds = float(given)
        self._record(seconds)

    def ended(self) -> None:
        self._record()

    left = ended

    def failed(self, exc: BaseException) -> None:
        if may_be_billed(exc):
            self._record(failed=error_code(exc))
