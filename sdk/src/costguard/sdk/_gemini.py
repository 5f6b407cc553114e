"""What one Gemini request costs: usage, error codes, and the meter of each metered method.

google-genai's public methods (``generate_content``, ``generate_content_stream``,
``embed_content``, ``generate_images``, and the chats' ``send_message`` through them) each
send their HTTP requests through one private method of the client's ``Models`` and
``AsyncModels``: ``_generate_content``, ``_generate_content_stream``, ``_embed_content``,
``_generate_images``, one call per request. Those four are metered, on the instances, so
every public form records, and each request records exactly once: the automatic
continuation and automatic function calling loops of ``generate_content`` send one
request per hop or turn, each billed by Google, each recorded. The HTTP attempts of a
request (its retries under ``HttpOptions.retry_options``) are counted through the API
client's ``_request_once`` and ``_async_request_once``; an attempt count of 0 means the
request never left.

These are google-genai 3.3's private names: :func:`install` refuses a client without them
rather than record nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext
from costguard.sdk._errors import (
    API_ERROR,
    CONNECTION_ERROR,
    INVALID_RESPONSE,
    http_error,
    never_sent,
    other_error,
    transport_error,
)
from costguard.sdk._recording import CallRecorder, CostRecorder, ProviderRules, Usage, guarded
from costguard.sdk._tokens import approximate_tokens

log = logging.getLogger(__name__)

GOOGLE = "google"  # genai-prices' provider id, for the Developer API and Vertex AI alike
GENERATE_CONTENT = "generate_content"
EMBED_CONTENT = "embed_content"
GENERATE_IMAGES = "generate_images"
GEMINI_IMAGE = "gemini_image"
# What Imagen makes when the request does not say (sampleImageSize, aspectRatio).
DEFAULT_IMAGE_SIZE = "1K"
DEFAULT_ASPECT_RATIO = "1:1"
_LABEL = "a Gemini call"
# "projects/p/locations/l/publishers/google/models/gemini-2.5-flash" and its shorter forms.
_RESOURCE = re.compile(r"(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/(.+)")
_TEXT_KEYS = frozenset({"text", "code", "output"})  # parts' text, code and its output
_JSON_KEYS = frozenset({"args", "response"})  # function calls and their results

_T = TypeVar("_T")


def model_name(model: object) -> str:
    """The model asked for, without ``models/``, ``publishers/google/models/`` (with or
    without ``projects/.../locations/...``) or Vertex's ``google/`` shorthand."""
    name = model if isinstance(model, str) else ""
    found = _RESOURCE.fullmatch(name)
    if found is not None:
        return found.group(1)
    return name.removeprefix("models/").removeprefix("google/")


def error_code(exc: BaseException) -> str:
    """The ``error_code`` of a Gemini call that raised ``exc``, in ``_errors``' vocabulary:
    ``http_<code>`` for google-genai's ``APIError`` (``http_429`` for RESOURCE_EXHAUSTED,
    ``http_500`` for INTERNAL), ``api_error`` for one without a code, ``invalid_response``
    for a body that did not parse, ``timeout`` and ``connection_error`` for the transport's
    failures (httpx2 for the sync client, aiohttp or httpx2 for the async one, google-auth
    fetching a token), ``cancelled``, else the exception's class name."""
    if isinstance(exc, genai_errors.APIError):
        code = exc.code
        return http_error(code) if isinstance(code, int) and code > 0 else API_ERROR
    if isinstance(exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
        return INVALID_RESPONSE
    if isinstance(exc, auth_exceptions.TransportError):
        return CONNECTION_ERROR
    return transport_error(exc) or other_error(exc)


def may_be_billed(exc: BaseException) -> bool:
    """Whether Google may have billed a request that was sent and raised ``exc``.

    No for an ``APIError`` (Google refused it with an HTTP error status), for a google-auth
    failure (no token, so nothing was sent) and for a transport failure from before the
    request was written whole. Yes for anything after that: a timeout waiting for the
    answer, a connection dropped mid-answer, a body that did not parse, a cancellation.
    """
    if isinstance(exc, genai_errors.APIError | auth_exceptions.GoogleAuthError):
        return False
    if transport_error(exc) is not None:
        return not never_sent(exc)
    return True


GEMINI = ProviderRules(
    provider=GOOGLE,
    label=_LABEL,
    error_code=error_code,
    may_be_billed=may_be_billed,
    count_output=lambda model, text: approximate_tokens(text),
)


def content_usage(meta: types.GenerateContentResponseUsageMetadata | None) -> Usage | None:
    """The tokens of a response (or of a stream's reading); ``None`` when unreported.

    Input is the prompt (cached content included) plus the tool results fed back to the
    model; output is the candidates plus the thoughts; generated images are the IMAGE
    entries of the candidates' breakdown (part of the candidates).
    """
    if meta is None:
        return None
    counts = (
        meta.prompt_token_count,
        meta.candidates_token_count,
        meta.thoughts_token_count,
        meta.total_token_count,
    )
    if all(count is None for count in counts):
        return None
    thoughts = meta.thoughts_token_count or 0
    images = sum(
        detail.token_count or 0
        for detail in meta.candidates_tokens_details or []
        if detail.modality == types.MediaModality.IMAGE
    )
    return Usage(
        input_tokens=(meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0),
        cached_input_tokens=meta.cached_content_token_count or 0,
        output_tokens=(meta.candidates_token_count or 0) + thoughts,
        reasoning_tokens=thoughts,
        output_image_tokens=images,
    )


def embedding_usage(response: types.EmbedContentResponse) -> Usage | None:
    """The input tokens of an embedding request when the API reports them: the response's
    usage, else the sum of every embedding's ``statistics.token_count`` (Vertex AI)."""
    meta = response.usage_metadata
    if meta is not None and meta.prompt_token_count is not None:
        return Usage(meta.prompt_token_count, 0, 0, 0)
    counts = [
        embedding.statistics.token_count if embedding.statistics is not None else None
        for embedding in response.embeddings or []
    ]
    reported = [count for count in counts if count is not None]
    if not counts or len(reported) != len(counts):
        return None
    return Usage(round(sum(reported)), 0, 0, 0)


def texts_of(value: object) -> list[str]:
    """The text a model reads in request contents: strings, the ``text`` of parts, code
    and its output, and the JSON of function calls and results, however deep. Images,
    audio, files and other media are not counted, so an estimate is low for them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, pydantic.BaseModel):
        return texts_of(value.model_dump(exclude_none=True))
    if isinstance(value, Mapping):
        found: list[str] = []
        for key, item in value.items():
            if key in _TEXT_KEYS and isinstance(item, str):
                found.append(item)
            elif key in _JSON_KEYS and isinstance(item, Mapping):
                found.append(json.dumps(item, sort_keys=True, default=str))
            elif isinstance(item, Mapping | list | tuple | pydantic.BaseModel):
                found += texts_of(item)
        return found
    if isinstance(value, list | tuple):
        return [text for item in value for text in texts_of(item)]
    return []


def response_texts(response: types.GenerateContentResponse) -> list[str]:
    """The text the caller received in a response or chunk: text parts (thoughts
    included), function calls, code and its output."""
    found: list[str] = []
    for candidate in response.candidates or []:
        content = candidate.content
        for part in (content.parts if content is not None else None) or []:
            found += [part.text or ""]
            if part.function_call is not None:
                call = part.function_call
                found += [call.name or "", json.dumps(call.args or {}, sort_keys=True)]
            if part.executable_code is not None:
                found.append(part.executable_code.code or "")
            if part.code_execution_result is not None:
                found.append(part.code_execution_result.output or "")
    return [text for text in found if text]


def estimated_tokens(texts: list[str]) -> int:
    return sum(approximate_tokens(text) for text in texts)


def _field(config: object, name: str) -> object:
    if isinstance(config, Mapping):
        return config.get(name)
    return getattr(config, name, None)


def _raw(response: types.GenerateContentResponse) -> types.GenerateContentResponse:
    """The response itself, or, for ``should_return_http_response``, its raw body parsed."""
    http = response.sdk_http_response
    if response.usage_metadata is not None or response.candidates or http is None:
        return response
    if not http.body:
        return response
    try:
        return types.GenerateContentResponse.model_validate(json.loads(http.body))
    except ValueError:
        return response


# --- attempts -----------------------------------------------------------------------------


class Attempts:
    """The HTTP attempts the client made for one metered request, its retries included."""

    def __init__(self) -> None:
        self.count = 0


_attempts: ContextVar[Attempts | None] = ContextVar("costguard_gemini_attempts", default=None)


@contextmanager
def attempting(attempts: Attempts) -> Iterator[None]:
    """Count the attempts made inside the block (in this thread or task) into ``attempts``."""
    token = _attempts.set(attempts)
    try:
        yield
    finally:
        _attempts.reset(token)


def _note_attempt() -> None:
    attempts = _attempts.get()
    if attempts is not None:
        attempts.count += 1


# The counting wrappers installed so far: an API client shared by two instrumented clients
# is wrapped once.
_COUNTING: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def counting(send: Callable[..., _T]) -> Callable[..., _T]:
    """The API client's ``_request_once``, counting each attempt."""

    @functools.wraps(send)
    def once(*args: Any, **kwargs: Any) -> _T:
        _note_attempt()
        return send(*args, **kwargs)

    _COUNTING.add(once)
    return once


def counting_async(send: Callable[..., Any]) -> Callable[..., Any]:
    """The API client's ``_async_request_once``, counting each attempt."""

    @functools.wraps(send)
    async def once(*args: Any, **kwargs: Any) -> Any:
        _note_attempt()
        return await send(*args, **kwargs)

    _COUNTING.add(once)
    return once


# --- meters -------------------------------------------------------------------------------


@dataclass
class Setup:
    """What an instrumented client's meters are made with; ``instrument_gemini`` on an
    instrumented client replaces it."""

    telemetry: TelemetryClient | None
    user_ctx: UserContext | None
    context_type: str

    def recorder(self, operation: str, model: str, estimate: Callable[[], int]) -> CallRecorder:
        return CallRecorder(
            rules=GEMINI,
            operation=operation,
            requested_model=model,
            telemetry=self.telemetry,
            user_ctx=self.user_ctx,
            context_type=self.context_type,
            estimate_input=lambda _model: estimate(),
        )


class Meter:
    """Watches one request of a metered method and records it once; no hook may raise
    into the caller (each is called guarded)."""

    def __init__(self) -> None:
        self.attempts = Attempts()

    def returned(self, result: object) -> None:
        """The method returned ``result`` (a stream: once it is made)."""

    def failed(self, exc: BaseException) -> None:
        """The method raised ``exc``."""

    def sent(self) -> bool:
        return self.attempts.count > 0


class LlmMeter(Meter):
    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def failed(self, exc: BaseException) -> None:
        self.recorder.failed(exc, billed=self.billed(exc))

    def billed(self, exc: BaseException, *, chunks: int = 0) -> bool:
        """Refused (an HTTP error status) or never sent: no tokens. An error the API sent
        inside a stream it had accepted (``chunks`` received) may have been billed."""
        if not self.sent():
            return False
        if isinstance(exc, genai_errors.APIError):
            return chunks > 0
        return may_be_billed(exc)


class ContentMeter(LlmMeter):
    """One ``generateContent`` request."""

    def returned(self, result: object) -> None:
        if not isinstance(result, types.GenerateContentResponse):
            self.recorder.succeeded(model=None, usage=None)
            return
        response = _raw(result)
        self.recorder.succeeded(
            model=None,
            usage=content_usage(response.usage_metadata),
            received="".join(response_texts(response)),
        )


class StreamMeter(LlmMeter):
    """One ``streamGenerateContent`` request. Usage is cumulative on every chunk, so the
    last reading is the request's. A stream that ends without a finish reason (or a
    blocked prompt's feedback) was cut before its last chunk: its tokens are estimated,
    the input from the last reading's prompt count if any, else from the request."""

    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__(recorder)
        self.usage: Usage | None = None
        self.prompt_tokens: int | None = None
        self.finished = False
        self.chunks = 0
        self.received: list[str] = []

    def observe(self, chunk: object) -> None:
        if not isinstance(chunk, types.GenerateContentResponse):
            return
        self.chunks += 1
        reading = chunk.usage_metadata
        self.usage = content_usage(reading) or self.usage
        if reading is not None and reading.prompt_token_count is not None:
            self.prompt_tokens = reading.prompt_token_count + (
                reading.tool_use_prompt_token_count or 0
            )
        feedback = chunk.prompt_feedback
        if any(c.finish_reason for c in chunk.candidates or []) or (
            feedback is not None and feedback.block_reason
        ):
            self.finished = True
        self.received += response_texts(chunk)

    def ended(self) -> None:
        usage = self.usage if self.finished else None
        self.recorder.succeeded(model=None, usage=usage, received="".join(self.received))

    def left(self) -> None:
        """Closed or dropped: what was seen, unless nothing was ever sent."""
        if self.sent():
            self.ended()

    def failed(self, exc: BaseException) -> None:
        billed = self.billed(exc, chunks=self.chunks)
        self.recorder.failed(exc, received="".join(self.received), billed=billed)


class EmbedMeter(LlmMeter):
    def returned(self, result: object) -> None:
        usage = embedding_usage(result) if isinstance(result, types.EmbedContentResponse) else None
        self.recorder.succeeded(model=None, usage=usage)


class ImagesMeter(Meter):
    """``gemini_image``: the images an Imagen request returned (a failed request returns
    none, and records nothing)."""

    def __init__(self, recorder: CostRecorder, *, model: str, config: object) -> None:
        super().__init__()
        self._recorder = recorder
        self._model = model
        asked = _field(config, "number_of_images")
        size, ratio = _field(config, "image_size"), _field(config, "aspect_ratio")
        self._metadata: dict[str, Any] = {
            "model": model,
            "operation": GENERATE_IMAGES,
            "resolution": size if isinstance(size, str) and size else DEFAULT_IMAGE_SIZE,
            "aspect_ratio": ratio if isinstance(ratio, str) and ratio else DEFAULT_ASPECT_RATIO,
        }
        if isinstance(asked, int) and not isinstance(asked, bool):
            self._metadata["number_of_images"] = asked

    def returned(self, result: object) -> None:
        images = result.generated_images if isinstance(result, types.GenerateImagesResponse) else []
        # The prompt's own safety attributes come as an entry without an image.
        made = sum(
            1
            for generated in images or []
            if generated.image is not None
            and (generated.image.image_bytes or generated.image.gcs_uri)
        )
        retries = max(self.attempts.count - 1, 0)
        self._recorder.record(made, {**self._metadata, "retry_count": retries})


def _content_meter(setup: Setup, kwargs: Mapping[str, Any]) -> ContentMeter:
    return ContentMeter(_llm_recorder(setup, GENERATE_CONTENT, kwargs))


def _stream_meter(setup: Setup, kwargs: Mapping[str, Any]) -> StreamMeter:
    meter: StreamMeter | None = None

    def estimate() -> int:
        if meter is not None and meter.prompt_tokens is not None:
            return meter.prompt_tokens
        return _request_tokens(kwargs)

    meter = StreamMeter(setup.recorder(GENERATE_CONTENT, model_name(kwargs.get("model")), estimate))
    return meter


def _llm_recorder(setup: Setup, operation: str, kwargs: Mapping[str, Any]) -> CallRecorder:
    return setup.recorder(
        operation, model_name(kwargs.get("model")), lambda: _request_tokens(kwargs)
    )


def _request_tokens(kwargs: Mapping[str, Any]) -> int:
    """The estimated input of a request: its contents and system instruction."""
    texts = texts_of(kwargs.get("contents")) + texts_of(kwargs.get("content"))
    texts += texts_of(_field(kwargs.get("config"), "system_instruction"))
    return estimated_tokens(texts)


def _embed_meter(setup: Setup, kwargs: Mapping[str, Any]) -> EmbedMeter:
    return EmbedMeter(_llm_recorder(setup, EMBED_CONTENT, kwargs))


def _images_meter(setup: Setup, kwargs: Mapping[str, Any]) -> ImagesMeter:
    recorder = CostRecorder(
        service=GEMINI_IMAGE,
        unit="images",
        telemetry=setup.telemetry,
        user_ctx=setup.user_ctx,
        label=_LABEL,
    )
    model = model_name(kwargs.get("model"))
    return ImagesMeter(recorder, model=model, config=kwargs.get("config"))


# --- the metered methods ------------------------------------------------------------------


_M = TypeVar("_M", bound=Meter)


class Instrumentation:
    """What ``instrument_gemini`` installed on one client: its setup, read by every meter
    when its request starts."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    def start(
        self, factory: Callable[[Setup, Mapping[str, Any]], _M], kwargs: Mapping[str, Any]
    ) -> _M | None:
        try:
            return factory(self.setup, kwargs)
        except Exception:  # telemetry never breaks the caller: the call runs unmetered
            log.exception("could not meter %s", _LABEL)
            return None


def metered(
    original: Callable[..., Any],
    factory: Callable[[Setup, Mapping[str, Any]], Meter],
    instrumentation: Instrumentation,
) -> Callable[..., Any]:
    """A sync method that sends one request and returns its parsed response."""

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        meter = instrumentation.start(factory, kwargs)
        if meter is None:
            return original(*args, **kwargs)
        with attempting(meter.attempts):
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                guarded(functools.partial(meter.failed, exc), _LABEL)
                raise
        guarded(functools.partial(meter.returned, result), _LABEL)
        return result

    return call


def metered_async(
    original: Callable[..., Any],
    factory: Callable[[Setup, Mapping[str, Any]], Meter],
    instrumentation: Instrumentation,
) -> Callable[..., Any]:
    """An async method that sends one request and returns its parsed response."""

    @functools.wraps(original)
    async def call(*args: Any, **kwargs: Any) -> Any:
        meter = instrumentation.start(factory, kwargs)
        if meter is None:
            return await original(*args, **kwargs)
        with attempting(meter.attempts):
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                guarded(functools.partial(meter.failed, exc), _LABEL)
                raise
        guarded(functools.partial(meter.returned, result), _LABEL)
        return result

    return call


def _watched(inner: Iterator[_T], meter: StreamMeter) -> Iterator[_T]:
    """The sync stream, chunk for chunk; its request is sent when the first is asked for."""
    try:
        while True:
            with attempting(meter.attempts):
                try:
                    chunk = next(inner)
                except StopIteration:
                    guarded(meter.ended, _LABEL)
                    return
                except BaseException as exc:
                    guarded(functools.partial(meter.failed, exc), _LABEL)
                    raise
            guarded(functools.partial(meter.observe, chunk), _LABEL)
            yield chunk
    finally:  # closed, or dropped, before its end (a no-op once recorded)
        guarded(meter.left, _LABEL)


async def _watched_async(inner: AsyncIterator[_T], meter: StreamMeter) -> AsyncIterator[_T]:
    """The async stream, chunk for chunk; its request was sent when it was made."""
    try:
        while True:
            try:
                chunk = await inner.__anext__()
            except StopAsyncIteration:
                guarded(meter.ended, _LABEL)
                return
            except BaseException as exc:
                guarded(functools.partial(meter.failed, exc), _LABEL)
                raise
            guarded(functools.partial(meter.observe, chunk), _LABEL)
            yield chunk
    finally:
        guarded(meter.left, _LABEL)


def metered_stream(
    original: Callable[..., Iterator[Any]], instrumentation: Instrumentation
) -> Callable[..., Iterator[Any]]:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
        meter = instrumentation.start(_stream_meter, kwargs)
        if meter is None:
            return original(*args, **kwargs)
        stream = _watched(original(*args, **kwargs), meter)
        # A stream dropped unstarted: nothing was sent, so left() records nothing.
        weakref.finalize(stream, guarded, meter.left, _LABEL).atexit = False
        return stream

    return call


def metered_stream_async(
    original: Callable[..., Any], instrumentation: Instrumentation
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def call(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        meter = instrumentation.start(_stream_meter, kwargs)
        if meter is None:
            inner: AsyncIterator[Any] = await original(*args, **kwargs)
            return inner
        with attempting(meter.attempts):
            try:
                inner = await original(*args, **kwargs)
            except BaseException as exc:
                guarded(functools.partial(meter.failed, exc), _LABEL)
                raise
        stream = _watched_async(inner, meter)
        # Sent already: a stream dropped before its first chunk is recorded all the same.
        weakref.finalize(stream, guarded, meter.left, _LABEL).atexit = False
        return stream

    return call


_FACTORIES: dict[str, Callable[[Setup, Mapping[str, Any]], Meter]] = {
    "_generate_content": _content_meter,
    "_embed_content": _embed_meter,
    "_generate_images": _images_meter,
}
_STREAM = "_generate_content_stream"
METHODS = (*_FACTORIES, _STREAM)  # on Models and AsyncModels
SENDS = ("_request_once", "_async_request_once")  # on the API client
_INSTALLED = "_costguard_instrumentation"


def installed(models: object) -> Instrumentation | None:
    found = getattr(models, _INSTALLED, None)
    return found if isinstance(found, Instrumentation) else None


def install(models: object, aio_models: object, api_client: object, setup: Setup) -> None:
    """Meter ``models`` and ``aio_models`` (one client's), counting the attempts of
    ``api_client``; on a client already instrumented, replace its setup."""
    found = installed(models)
    if found is not None:
        found.setup = setup
        return
    for owner, names in ((models, METHODS), (aio_models, METHODS), (api_client, SENDS)):
        missing = [name for name in names if not callable(getattr(owner, name, None))]
        if missing:
            raise TypeError(
                f"{type(owner).__name__} has no {', '.join(missing)}: costguard's Gemini "
                "instrumentation needs google-genai 3.3"
            )
    instrumentation = Instrumentation(setup)
    for name, factory in _FACTORIES.items():
        setattr(models, name, metered(getattr(models, name), factory, instrumentation))
        setattr(
            aio_models, name, metered_async(getattr(aio_models, name), factory, instrumentation)
        )
    setattr(models, _STREAM, metered_stream(getattr(models, _STREAM), instrumentation))
    stream_async = metered_stream_async(getattr(aio_models, _STREAM), instrumentation)
    setattr(aio_models, _STREAM, stream_async)
    for name, wrap in zip(SENDS, (counting, counting_async), strict=True):
        send = getattr(api_client, name)
        if send not in _COUNTING:  # another client's, on this one
            setattr(api_client, name, wrap(send))
    setattr(models, _INSTALLED, instrumentation)
    setattr(aio_models, _INSTALLED, instrumentation)
