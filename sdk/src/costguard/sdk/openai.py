"""An instrumented ``openai.AsyncOpenAI``: every call OpenAI bills for is recorded.

from openai import AsyncOpenAI
from costguard.sdk.openai import instrument_openai

client = instrument_openai(AsyncOpenAI())
reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
async with await client.responses.create(model="gpt-4o-mini", input="hi", stream=True) as s:
    async for event in s: ...

The instrumented client is a copy of the given one (``AsyncOpenAI.copy()``: the same
options and connection pool) whose HTTP POSTs to the priced endpoints are metered, so every
method and form that reaches them records, the helpers and raw forms included:

- ``chat.completions`` ``create`` (streamed or not), ``parse`` and ``stream``; ``responses``
  ``create``, ``parse`` and ``stream``; ``embeddings.create``: one LLM event each (see
  ``LlmCall``), operation ``chat.completions``, ``responses`` or ``embeddings.create``, with
  the model the response reports (else the requested one), input/cached/output/reasoning
  tokens from ``usage``, latency (a stream: until it ends), success and an error code
  (``error_code``). ``beta.chat.completions`` and ``beta.responses`` are the same.
- ``images.generate`` (and ``edit``, ``create_variation``), ``audio.speech.create``,
  ``audio.transcriptions.create`` (and ``audio.translations.create``): one cost event each,
  ``ai_api_call`` / ``openai_image`` (images returned, with ``model``, ``size``,
  ``quality``), ``openai_tts`` (characters of the input, with ``model``, ``voice``,
  ``response_format``), ``openai_transcription`` (seconds of audio; see
  ``TranscriptionMeter``), priced by docs/cost-events.md.
- each of those through ``with_raw_response`` (recorded from the parsed body) and
  ``with_streaming_response`` (from the body when the caller parses it, else when the
  ``async with`` ends), at the client, the resource or the method level.

Usage that never arrives is estimated and flagged ``usage_reported=False``, never 0: a
stream that ends without usage, one closed or dropped before it (``break``, ``close()``,
leaving ``async with``), a raw body never parsed, a call that fails once sent (a timeout,
a connection cut mid-stream). The input tokens are counted from the request, the output
tokens from the text the caller received (``_tokens``: tiktoken for OpenAI models, else
``ceil(characters / 4)``). A call OpenAI refused (an HTTP error status) or that never left
(connection refused) is recorded as a failure with no tokens, and records no cost event.
Streaming chat calls ask for usage in the stream (``stream_options.include_usage``); the
extra usage-only chunk is passed on only to callers that asked for it themselves. Errors
are re-raised unchanged, and recording never breaks a call. Anything else on the client
(files, batches, moderations, ...) is the copy's, unrecorded. Needs the ``openai`` extra.

Any OpenAI-compatible endpoint works the same (Azure OpenAI, OpenRouter, Groq, Together, a
local vLLM: any client whose ``base_url`` points elsewhere). The LLM events' ``provider``,
which picks the prices, comes from the client's host through :data:`PROVIDER_HOSTS` (the
providers' ids in genai-prices). A host it does not list (a proxy, a local vLLM) stays
``openai``: OpenAI's models are priced at OpenAI's prices, any other model at the seed
constants, flagged unpriced, until ``provider=`` names the provider or ``provider_hosts=``
adds the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, cast, get_args
from urllib.parse import urlsplit

from openai import AsyncOpenAI, AsyncStream
from openai._client import AsyncOpenAIWithRawResponse, AsyncOpenAIWithStreamedResponse
from openai.resources.audio import AsyncAudio
from openai.resources.beta import AsyncBeta
from openai.resources.chat import AsyncChat
from openai.resources.embeddings import AsyncEmbeddings
from openai.resources.images import AsyncImages
from openai.resources.responses import AsyncResponses

from costguard.sdk import _tokens
from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext
from costguard.sdk._openai import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    OPENAI,
    RESPONSES,
    ChatMeter,
    EmbeddingsMeter,
    ImagesMeter,
    InstrumentedStream,
    Meter,
    ResponsesMeter,
    SpeechMeter,
    TranscriptionMeter,
    answered,
    error_code,
    post_parser,
    read_upload,
)
from costguard.sdk._recording import CallRecorder, CostRecorder

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDER_HOSTS",
    "InstrumentedOpenAI",
    "InstrumentedStream",
    "error_code",
    "instrument_openai",
    "provider_of",
]

# The provider of an OpenAI-compatible endpoint, by its host or a parent domain of it: the
# provider ids of genai-prices, so that each provider's own prices apply (Groq's for a Llama
# model served by Groq, Azure's for an Azure deployment).
PROVIDER_HOSTS: Mapping[str, str] = MappingProxyType(
    {
        "api.openai.com": "openai",
        "openai.azure.com": "azure",
        "cognitiveservices.azure.com": "azure",
        "services.ai.azure.com": "azure",
        "openrouter.ai": "openrouter",
        "api.groq.com": "groq",
        "api.together.xyz": "together",
        "api.deepseek.com": "deepseek",
        "api.mistral.ai": "mistral",
        "api.fireworks.ai": "fireworks",
        "api.x.ai": "x-ai",
        "api.perplexity.ai": "perplexity",
        "api.cerebras.ai": "cerebras",
        "generativelanguage.googleapis.com": "google",  # Gemini's OpenAI-compatible API
    }
)
# Any other host (a proxy in front of OpenAI, a local vLLM or Ollama): OpenAI's models keep
# OpenAI's prices, and any other model is flagged unpriced rather than guessed.
DEFAULT_PROVIDER = "openai"


def provider_of(base_url: object, hosts: Mapping[str, str] = PROVIDER_HOSTS) -> str:
    """The provider serving ``base_url``: the entry of ``hosts`` for its host or the nearest
    parent domain listed (``myres.openai.azure.com`` is ``azure``), else
    :data:`DEFAULT_PROVIDER`."""
    host = (urlsplit(str(base_url)).hostname or "").lower().rstrip(".")
    parts = host.split(".")
    for start in range(len(parts)):
        found = hosts.get(".".join(parts[start:]))
        if found:
            return found
    return DEFAULT_PROVIDER


class _Setup:
    """What every meter of one instrumented client is made with."""

    def __init__(
        self,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        context_type: str,
        provider: str,
    ) -> None:
        self.telemetry = telemetry
        self.user_ctx = user_ctx
        self.context_type = context_type
        # OpenAI's rules, under the provider actually serving the calls.
        self.rules = dataclasses.replace(OPENAI, provider=provider)

    def llm(
        self,
        operation: str,
        body: Mapping[str, Any],
        count: Callable[[str, Mapping[str, Any]], int],
    ) -> CallRecorder:
        return CallRecorder(
            rules=self.rules,
            operation=operation,
            requested_model=body.get("model"),
            telemetry=self.telemetry,
            user_ctx=self.user_ctx,
            context_type=self.context_type,
            estimate_input=lambda model: count(model, body),
        )

    def cost(self, service: str, unit: str) -> CostRecorder:
        return CostRecorder(
            service=service,
            unit=unit,
            telemetry=self.telemetry,
            user_ctx=self.user_ctx,
            label=OPENAI.label,
        )


def _chat(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    asked = True
    if body.get("stream"):
        asked = _ask_for_stream_usage(body)
    recorder = setup.llm(CHAT_COMPLETIONS, body, _tokens.chat_input_tokens)
    return ChatMeter(recorder, pass_usage_chunk=asked)


def _responses(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    return ResponsesMeter(setup.llm(RESPONSES, body, _tokens.responses_input_tokens))


def _embeddings(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    return EmbeddingsMeter(setup.llm(EMBEDDINGS, body, _tokens.embedding_input_tokens))


_IMAGE_OPERATIONS = {
    "/images/generations": "images.generate",
    "/images/edits": "images.edit",
    "/images/variations": "images.create_variation",
}


def _images(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    recorder = setup.cost("openai_image", "images")
    return ImagesMeter(recorder, operation=_IMAGE_OPERATIONS[path], body=body)


def _speech(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    return SpeechMeter(setup.cost("openai_tts", "characters"), body=body)


def _transcription(setup: _Setup, path: str, body: dict[str, Any], files: object) -> Meter:
    operation = path.strip("/").replace("/", ".") + ".create"  # audio.transcriptions.create
    return TranscriptionMeter(
        setup.cost("openai_transcription", "seconds"),
        operation=operation,
        body=body,
        upload=read_upload(files),
    )


MeterFactory = Callable[[_Setup, str, dict[str, Any], object], Meter]
# Every priced endpoint, by the path the client POSTs to; others are not metered.
METERS: dict[str, MeterFactory] = {
    "/chat/completions": _chat,
    "/responses": _responses,
    "/embeddings": _embeddings,
    **dict.fromkeys(_IMAGE_OPERATIONS, _images),
    "/audio/speech": _speech,
    "/audio/transcriptions": _transcription,
    "/audio/translations": _transcription,
}


class MeteredPost:
    """The instrumented copy's ``post``: the client's, metered for the paths of ``METERS``."""

    def __init__(self, post: Callable[..., Any], setup: _Setup) -> None:
        self._post = post
        self._setup = setup

    async def __call__(self, path: str, **params: Any) -> Any:
        # Matched without the query: beta resources post to e.g. "/responses?beta=true".
        endpoint = path.split("?", 1)[0]
        factory = METERS.get(endpoint)
        given = params.get("body")
        if factory is None or not (given is None or isinstance(given, Mapping)):
            return await self._post(path, **params)
        body = dict(given or {})
        meter = factory(self._setup, endpoint, body, params.get("files"))
        if given is not None:
            params["body"] = body  # the chat meter may have asked for stream usage
        options = dict(params.get("options") or {})
        options["post_parser"] = post_parser(meter, options.get("post_parser"))
        params["options"] = options
        stream_cls = params.get("stream_cls")
        chunk = get_args(stream_cls)
        if chunk and getattr(stream_cls, "__origin__", None) is AsyncStream:
            # The same stream, made by the client, whose items the meter sees.
            params["stream_cls"] = cast(Any, InstrumentedStream)[chunk[0]]
        try:
            result = await self._post(path, **params)
        except BaseException as exc:
            meter.failed(exc)
            raise
        await answered(meter, result, stream=bool(params.get("stream")))
        return result


class InstrumentedOpenAI:
    """An ``AsyncOpenAI`` whose billed calls are recorded (see the module docstring):
    ``metered`` is the instrumented copy, whose every attribute this one has, and
    ``unwrapped`` the client given, untouched."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        telemetry: TelemetryClient | None = None,
        user_ctx: UserContext | None = None,
        context_type: str = "",
        provider: str = "",
        provider_hosts: Mapping[str, str] | None = None,
    ) -> None:
        self.unwrapped = client
        self.metered = client.copy()
        if not provider:
            provider = provider_of(client.base_url, {**PROVIDER_HOSTS, **(provider_hosts or {})})
        self.provider = provider
        setup = _Setup(telemetry, user_ctx, context_type, provider)
        # Resources take the client's ``post`` when they are made, so every one of the
        # copy's (chat, responses, beta, the raw and streaming forms) is metered.
        object.__setattr__(self.metered, "post", MeteredPost(self.metered.post, setup))

    @property
    def chat(self) -> AsyncChat:
        return self.metered.chat

    @property
    def responses(self) -> AsyncResponses:
        return self.metered.responses

    @property
    def embeddings(self) -> AsyncEmbeddings:
        return self.metered.embeddings

    @property
    def images(self) -> AsyncImages:
        return self.metered.images

    @property
    def audio(self) -> AsyncAudio:
        return self.metered.audio

    @property
    def beta(self) -> AsyncBeta:
        return self.metered.beta

    @property
    def with_raw_response(self) -> AsyncOpenAIWithRawResponse:
        return self.metered.with_raw_response

    @property
    def with_streaming_response(self) -> AsyncOpenAIWithStreamedResponse:
        return self.metered.with_streaming_response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.metered, name)


def instrument_openai(
    client: AsyncOpenAI,
    *,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | None = None,
    context_type: str = "",
    provider: str = "",
    provider_hosts: Mapping[str, str] | None = None,
) -> InstrumentedOpenAI:
    """Wrap ``client`` so that each call OpenAI bills for records one event.

    ``telemetry`` defaults to the SDK's configured client. Attribution comes from
    ``user_ctx`` when given, else from the ``UserContext`` current when each call starts;
    calls made inside ``cached_insight`` carry its insight key. ``context_type`` says what
    the calls are for (``summary``, ``chat``, ...); empty takes the user context's, then
    ``insight`` inside ``cached_insight``, else ``general``. ``provider`` names who serves
    the calls (a genai-prices provider id: ``groq``, ``azure``, ...); empty takes it from
    the client's ``base_url`` through :data:`PROVIDER_HOSTS`, extended by
    ``provider_hosts`` (host or parent domain to provider). The wrapped client is not
    modified and can still be used bare.
    """
    return InstrumentedOpenAI(
        client,
        telemetry=telemetry,
        user_ctx=user_ctx,
        context_type=context_type,
        provider=provider,
        provider_hosts=provider_hosts,
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
