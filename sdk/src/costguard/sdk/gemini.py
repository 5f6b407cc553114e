"""An instrumented ``google.genai.Client``: every request Google bills is recorded.

from google import genai
from costguard.sdk.gemini import instrument_gemini

client = instrument_gemini(genai.Client(api_key=...))
reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
async for chunk in await client.aio.models.generate_content_stream(model=..., contents=...):
    ...

The client is metered in place and returned: ``client.models`` and ``client.aio.models``,
and so the chats made from it (``client.chats.create``, ``client.aio.chats.create``), whose
``send_message`` and ``send_message_stream`` call them. Developer API and Vertex AI
clients (``genai.Client(vertexai=True, ...)``) alike. Each request the client sends records
exactly one event (``_gemini`` says how: an automatic function calling or continuation loop
sends, and records, one per turn or hop); instrumenting a client again records nothing
twice, and its latest settings apply.

- ``generate_content`` and ``generate_content_stream``: an LLM event (``LlmCall``),
  provider ``google``, operation ``generate_content`` (streamed too), ``llm_model`` the
  model asked for without its ``models/`` or ``publishers/google/models/`` prefix; from
  ``usage_metadata``: input = ``prompt_token_count`` (cached content included) +
  ``tool_use_prompt_token_count``, cached = ``cached_content_token_count``, output =
  ``candidates_token_count`` + ``thoughts_token_count``, reasoning = the thoughts,
  output image tokens = the IMAGE entry of ``candidates_tokens_details`` (image output of
  gemini-2.5-flash-image; part of the output). Latency (a stream: until it ends), success,
  error code. Text-to-speech (``response_modalities=["AUDIO"]`` on a TTS model) is an LLM
  event of that model like any other.
- A stream reports cumulative usage on its chunks: the last reading is recorded, and every
  chunk is passed on, a usage-only one included. A stream cut before its last chunk (no
  finish reason seen: an exception mid-stream, the caller breaking out or closing it, the
  generator garbage-collected unfinished) is recorded once, estimated and flagged
  ``usage_reported=False``: the input from the last reading's prompt count, else counted
  from the request's text; the output from the text the caller received; at least one
  input token. (An async stream dropped unfinished is recorded once its event loop
  finalizes the generator, a few iterations later.)
- ``embed_content``: an LLM event, operation ``embed_content``, the input tokens the API
  reports (Vertex AI: each embedding's ``statistics.token_count``), else counted from the
  request's text and flagged ``usage_reported=False``.
- ``generate_images`` (Imagen; Vertex AI only in google-genai 3.3): a cost event
  ``ai_api_call`` / ``gemini_image`` in ``images``, quantity the images returned (not those
  filtered out), with ``model``, ``operation`` (``generate_images``), ``number_of_images``
  (as asked; absent when the request leaves it to the API), ``resolution`` (the request's
  ``image_size``, else ``1K``, Imagen's default), ``aspect_ratio`` (the request's, else
  ``1:1``), ``retry_count`` (the HTTP attempts the client made for the request, counted
  at its API client, minus one: its ``HttpOptions.retry_options`` retries; aiohttp's own
  reconnect after a connection error is not seen), and ``duration_ms``. Priced per image
  by model (docs/cost-events.md). A failed request records nothing: no images, no bill.

Counting: tokens the API does not report are ``ceil(characters / 4)`` of the text
(``_tokens.approximate_tokens``; no tokenizer is needed): the request's contents and system
instruction (images, audio and files are not counted), the response's text, thoughts,
function calls and code.

Errors are re-raised unchanged (the same exception object) after they are recorded, with
``_errors``' codes: google-genai's ``APIError`` is ``http_<code>`` (``http_429`` for
RESOURCE_EXHAUSTED, ``http_500`` for INTERNAL); ``timeout``; ``connection_error``;
``invalid_response``; ``cancelled``. A request Google refused (an HTTP error status) or
that never left (connection refused, a client-side error) is recorded as a failure with no
tokens; one that failed after it was sent (a timeout, a cut stream) with an estimate,
flagged ``usage_reported=False``. Recording never breaks a call.

Attribution: ``user_ctx`` when given, else the ``UserContext`` current when each request
starts (for a stream, when its first chunk is asked for: that is when google-genai sends
it); requests inside ``cached_insight`` carry its insight key, and the model and provider
they used are what a cache hit records. Needs the ``gemini`` extra
(``costguard-sdk[gemini]``); written against google-genai 3.3, whose private per-request
methods it meters (``instrument_gemini`` raises ``TypeError`` on a client without them
rather than record nothing).
"""

from __future__ import annotations

from google import genai

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext
from costguard.sdk._gemini import Setup, error_code, install

__all__ = ["error_code", "instrument_gemini"]


def instrument_gemini(
    client: genai.Client,
    *,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | None = None,
    context_type: str = "",
) -> genai.Client:
    """Meter ``client`` in place, so that each request Google bills records one event, and
    return it.

    ``telemetry`` defaults to the SDK's configured client. Attribution comes from
    ``user_ctx`` when given, else from the ``UserContext`` current when each request
    starts; requests made inside ``cached_insight`` carry its insight key. ``context_type``
    says what the calls are for (``summary``, ``chat``, ...); empty takes the user
    context's, then ``insight`` inside ``cached_insight``, else ``general``. Calling it
    again on the same client changes these settings and meters nothing twice.
    """
    if not isinstance(client, genai.Client):
        raise TypeError(f"instrument_gemini takes a google.genai.Client, not {type(client)!r}")
    install(
        client.models,
        client.aio.models,
        client._api_client,
        Setup(telemetry, user_ctx, context_type),
    )
    return client
