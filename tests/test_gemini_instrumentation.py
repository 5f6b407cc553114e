"""The instrumented Gemini client through the real wire end to end: the real
``google.genai.Client`` (Developer API and Vertex AI, sync and async) against a fake Gemini
server on loopback, the real telemetry gRPC service, rows read back from Postgres with the
price the service stored at ingest, checked against costs computed here by hand from the
rates below (genai-prices 0.2.3, and the overlay table of docs/cost-events.md)."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import asyncpg
import google.auth.credentials
import google.oauth2.credentials
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from costguard.sdk import (
    MemoryInsightStore,
    TelemetryClient,
    UserContext,
    cached_insight,
    insight_input_hash,
    user_context,
)
from costguard.sdk.gemini import instrument_gemini
from costguard.v1 import telemetry_pb2
from tests.fake_gemini import FakeGemini, serve_fake_gemini

# google-genai's async client (aiohttp, when installed) subclasses aiohttp's ClientSession
# for each session it makes, which aiohttp warns against; the warning is google-genai's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning"
)

ALICE = UserContext("user-7", "pro", domain="insights", episode_id="ep-1")
BOB = UserContext("user-9", "free", domain="digest", episode_id="ep-3", podcast_id="pod-2")
FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
FLASH_IMAGE = "gemini-2.5-flash-image"
TTS = "gemini-2.5-flash-preview-tts"
IMAGEN = "imagen-4.0-generate-001"
EMBEDDING = "gemini-embedding-001"
QUESTION = "How did spend change this week?"  # 31 characters: 8 tokens at 4 a token
ANSWER = "Spend is down twelve percent this week."

M = Decimal(10**6)
# USD per 1M tokens: input / cached input / output (genai-prices 0.2.3).
FLASH_RATES = (Decimal("0.30"), Decimal("0.03"), Decimal("2.50"))
PRO_RATES = (Decimal("1.25"), Decimal("0.125"), Decimal(10))  # up to 200k prompt tokens
PRO_LONG_RATES = (Decimal("2.50"), Decimal("0.25"), Decimal(15))  # above: the whole request
FLASH_IMAGE_IN, FLASH_IMAGE_TEXT_OUT, FLASH_IMAGE_IMAGE_OUT = (
    Decimal("0.30"),
    Decimal("2.50"),
    Decimal(30),
)
EMBEDDING_IN = Decimal("0.15")
# The overlay: TTS per 1M input / output tokens, Imagen per image.
TTS_IN, TTS_OUT = Decimal("0.50"), Decimal("10.00")
IMAGEN_PER_IMAGE = Decimal("0.04")

LLM_ROWS = "SELECT * FROM telemetry_llm_events ORDER BY id"
COST_ROWS = "SELECT * FROM cost_events ORDER BY id"

Mode = Literal["sync", "async"]
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def cost(
    input_tokens: int, cached: int, output: int, rates: tuple[Decimal, Decimal, Decimal]
) -> Decimal:
    rate_in, rate_cached, rate_out = rates
    return ((input_tokens - cached) * rate_in + cached * rate_cached + output * rate_out) / M


# The fake's default usage: a 1,200-token prompt of which 1,024 cached, 300 candidates and
# 128 thoughts: 428 output tokens, 128 of them reasoning.
DEFAULT_TOKENS = (1200, 1024, 428, 128, True)
DEFAULT_FLASH_COST = cost(1200, 1024, 428, FLASH_RATES)  # $0.00115352


class WatchedTelemetry(TelemetryClient):
    """The real telemetry client, which also keeps every event it is given, so that a test
    can wait for one recorded later (an async stream finalized by its event loop)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.emitted: list[telemetry_pb2.TelemetryEvent] = []
        self._arrived = asyncio.Event()

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        self.emitted.append(event)
        super().emit(event)
        self._arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.emitted) < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with serve_fake_gemini() as server:
        yield server


@pytest.fixture
async def telemetry(telemetry_addr: str) -> AsyncIterator[WatchedTelemetry]:
    client = WatchedTelemetry(telemetry_addr)
    yield client
    await client.close()


async def close(client: genai.Client) -> None:
    client.close()
    await client.aio.aclose()


@pytest.fixture
async def bare(fake: FakeGemini) -> AsyncIterator[genai.Client]:
    """A Developer API client of the fake, not instrumented."""
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.base_url))
    yield client
    await close(client)


@pytest.fixture
def gemini(bare: genai.Client, telemetry: WatchedTelemetry) -> genai.Client:
    return instrument_gemini(bare, telemetry=telemetry, user_ctx=ALICE)


def oauth_token(token: str) -> google.auth.credentials.Credentials:
    """An OAuth token that needs no refresh: Vertex AI's authentication, offline."""
    make: Any = google.oauth2.credentials.Credentials  # google-auth leaves it unannotated
    credentials: google.auth.credentials.Credentials = make(token=token)
    return credentials


@pytest.fixture
async def vertex(fake: FakeGemini, telemetry: WatchedTelemetry) -> AsyncIterator[genai.Client]:
    """A Vertex AI client of the fake (project and location, an OAuth token that needs no
    refresh), instrumented."""
    client = genai.Client(
        vertexai=True,
        project="cost-project",
        location="us-central1",
        credentials=oauth_token("test-token"),
        http_options=types.HttpOptions(base_url=fake.base_url),
    )
    yield instrument_gemini(client, telemetry=telemetry, user_ctx=ALICE)
    await close(client)


async def llm_rows(db: asyncpg.Pool, telemetry: TelemetryClient) -> list[asyncpg.Record]:
    assert await telemetry.flush()
    return list(await db.fetch(LLM_ROWS))


async def cost_rows(db: asyncpg.Pool, telemetry: TelemetryClient) -> list[asyncpg.Record]:
    assert await telemetry.flush()
    return list(await db.fetch(COST_ROWS))


def tokens(row: asyncpg.Record) -> tuple[int, int, int, int, bool]:
    return (
        row["input_tokens"],
        row["cached_input_tokens"],
        row["output_tokens"],
        row["reasoning_tokens"],
        row["usage_reported"],
    )


def outcome(row: asyncpg.Record) -> tuple[str, str, str, bool, str | None]:
    return (row["provider"], row["llm_model"], row["operation"], row["success"], row["error_code"])


async def generate(
    client: genai.Client, mode: Mode, **kwargs: Any
) -> types.GenerateContentResponse:
    if mode == "sync":
        return client.models.generate_content(**kwargs)
    return await client.aio.models.generate_content(**kwargs)


async def stream(
    client: genai.Client, mode: Mode, **kwargs: Any
) -> list[types.GenerateContentResponse]:
    if mode == "sync":
        return list(client.models.generate_content_stream(**kwargs))
    return [chunk async for chunk in await client.aio.models.generate_content_stream(**kwargs)]


async def read_into(received: list[str], client: genai.Client, mode: Mode, **kwargs: Any) -> None:
    """Read a stream, keeping each chunk's text as it comes (the stream may fail)."""
    if mode == "sync":
        for chunk in client.models.generate_content_stream(**kwargs):
            received.append(chunk.text or "")
    else:
        async for chunk in await client.aio.models.generate_content_stream(**kwargs):
            received.append(chunk.text or "")


def text_of(chunks: list[types.GenerateContentResponse]) -> str:
    return "".join(chunk.text or "" for chunk in chunks if chunk.candidates)


# --- generate_content -----------------------------------------------------------------------


@MODES
async def test_generate_content_records_cached_and_thinking_tokens_and_their_price(
    mode: Mode, fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    started = time.perf_counter()
    reply = await generate(gemini, mode, model=FLASH, contents=QUESTION)
    wall_ms = (time.perf_counter() - started) * 1000

    assert reply.text == ANSWER
    assert [r.path for r in fake.requests] == [f"/v1/models/{FLASH}:generateContent"]
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", True, None)
    assert tokens(row) == DEFAULT_TOKENS
    assert row["cost_usd"] == DEFAULT_FLASH_COST == Decimal("0.00115352")
    assert row["unpriced_reason"] is None
    assert (row["user_id"], row["tier"], row["domain"], row["episode_id"]) == (
        "user-7",
        "pro",
        "insights",
        "ep-1",
    )
    assert (row["cache_hit"], row["insight_key"], row["context_type"]) == (False, None, "general")
    assert 0 <= row["duration_ms"] <= wall_ms


async def test_tool_use_prompt_tokens_are_input_and_model_prefixes_are_dropped(
    fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.usage.tool_use_prompt_tokens = 150
    await generate(gemini, "sync", model=f"models/{FLASH}", contents=QUESTION)
    await generate(gemini, "async", model=f"models/{FLASH}", contents=QUESTION)

    rows = await llm_rows(db, telemetry)
    assert [(r["llm_model"], tokens(r)) for r in rows] == [
        (FLASH, (1350, 1024, 428, 128, True))
    ] * 2
    assert {r["cost_usd"] for r in rows} == {cost(1350, 1024, 428, FLASH_RATES)}


@MODES
async def test_vertex_ai_calls_are_recorded_like_the_developer_apis(
    mode: Mode, fake: FakeGemini, vertex: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    reply = await generate(
        vertex, mode, model=f"publishers/google/models/{FLASH}", contents=QUESTION
    )
    chunks = await stream(vertex, mode, model=f"google/{FLASH}", contents=QUESTION)

    assert reply.text == text_of(chunks) == ANSWER
    where = "/v1beta1/projects/cost-project/locations/us-central1/publishers/google/models"
    assert [r.path for r in fake.requests] == [
        f"{where}/{FLASH}:generateContent",
        f"{where}/{FLASH}:streamGenerateContent",
    ]
    rows = await llm_rows(db, telemetry)
    assert [(outcome(r), tokens(r)) for r in rows] == [
        (("google", FLASH, "generate_content", True, None), DEFAULT_TOKENS)
    ] * 2
    assert {r["cost_usd"] for r in rows} == {DEFAULT_FLASH_COST}


@MODES
async def test_automatic_function_calling_records_each_request_it_sends(
    mode: Mode, fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    called: list[str] = []

    def weekly_spend() -> str:
        """This week's spend, against last week's."""
        called.append("weekly_spend")
        return "down twelve percent"

    config = types.GenerateContentConfig(tools=[weekly_spend])
    reply = await generate(gemini, mode, model=FLASH, contents=QUESTION, config=config)

    assert reply.text == ANSWER
    assert called == ["weekly_spend"]
    # The question; then the question, the model's call and the function's result.
    assert [len(r.body["contents"]) for r in fake.requests] == [1, 3]
    rows = await llm_rows(db, telemetry)
    assert [tokens(r) for r in rows] == [DEFAULT_TOKENS] * 2  # each request is billed
    assert {r["cost_usd"] for r in rows} == {DEFAULT_FLASH_COST}


async def test_a_raw_http_response_is_read_for_its_usage(
    fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    config = types.GenerateContentConfig(should_return_http_response=True)
    reply = gemini.models.generate_content(model=FLASH, contents=QUESTION, config=config)

    assert reply.candidates is None
    assert reply.sdk_http_response is not None
    assert reply.sdk_http_response.body
    [row] = await llm_rows(db, telemetry)
    assert tokens(row) == DEFAULT_TOKENS
    assert row["cost_usd"] == DEFAULT_FLASH_COST


async def test_a_long_prompt_on_gemini_2_5_pro_is_priced_whole_at_the_higher_rate(
    fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.usage.candidates_tokens, fake.usage.thoughts_tokens = 2_000, 1_000
    fake.usage.prompt_tokens, fake.usage.cached_tokens = 200_000, 50_000
    await generate(gemini, "sync", model=PRO, contents=QUESTION)
    fake.usage.prompt_tokens = 250_000
    await generate(gemini, "async", model=PRO, contents=QUESTION)

    at_limit, above = await llm_rows(db, telemetry)
    assert tokens(at_limit) == (200_000, 50_000, 3_000, 1_000, True)
    assert tokens(above) == (250_000, 50_000, 3_000, 1_000, True)
    assert at_limit["cost_usd"] == cost(200_000, 50_000, 3_000, PRO_RATES) == Decimal("0.22375")
    assert above["cost_usd"] == cost(250_000, 50_000, 3_000, PRO_LONG_RATES)
    assert above["cost_usd"] == Decimal("0.5575")


# --- streams ------------------------------------------------------------------------------


@MODES
async def test_a_stream_records_its_last_usage_reading_once(
    mode: Mode, fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    chunks = await stream(gemini, mode, model=FLASH, contents=QUESTION)

    assert text_of(chunks) == ANSWER
    assert len(chunks) == len(fake.pieces())
    # Cumulative readings: summing them would be several times the truth.
    readings = [c.usage_metadata.candidates_token_count or 0 for c in chunks if c.usage_metadata]
    assert len(readings) == len(chunks)
    assert readings == sorted(readings)
    assert readings[-1] == 300
    assert [r.path for r in fake.requests] == [f"/v1/models/{FLASH}:streamGenerateContent"]
    assert fake.requests[0].query == "alt=sse"
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", True, None)
    assert tokens(row) == DEFAULT_TOKENS
    assert row["cost_usd"] == DEFAULT_FLASH_COST


@MODES
async def test_a_usage_only_last_chunk_is_passed_on_and_recorded(
    mode: Mode, fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.usage_only_final = True
    chunks = await stream(gemini, mode, model=FLASH, contents=QUESTION)

    *text_chunks, last = chunks
    assert len(text_chunks) == len(fake.pieces())
    assert last.candidates is None
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 300
    [row] = await llm_rows(db, telemetry)
    assert tokens(row) == DEFAULT_TOKENS
    assert row["cost_usd"] == DEFAULT_FLASH_COST


async def test_the_instrumented_stream_yields_what_the_bare_client_yields(
    fake: FakeGemini, telemetry: TelemetryClient
) -> None:
    plain = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.base_url))
    wrapped = instrument_gemini(
        genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.base_url)),
        telemetry=telemetry,
        user_ctx=ALICE,
    )
    try:
        fake.usage_only_final = True
        dumps = []
        for client in (plain, wrapped):
            chunks = client.models.generate_content_stream(model=FLASH, contents=QUESTION)
            dumps.append([c.model_dump(exclude={"sdk_http_response"}) for c in chunks])
    finally:
        await close(plain)
        await close(wrapped)

    assert dumps[0] == dumps[1]
    assert len(dumps[0]) == len(fake.pieces()) + 1


@MODES
async def test_a_stream_cut_mid_body_is_estimated_flagged_and_reraised(
    mode: Mode, fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.cut_after = 3  # "Spend", " is", " down", then the connection drops
    received: list[str] = []
    # Each transport says it its own way: httpx2 for the sync client, aiohttp for the async.
    with pytest.raises((httpx2.RemoteProtocolError, aiohttp.ClientPayloadError)) as caught:
        await read_into(received, gemini, mode, model=FLASH, contents=QUESTION)

    assert "".join(received) == "Spend is down"
    assert type(caught.value).__name__ == (
        "RemoteProtocolError" if mode == "sync" else "ClientPayloadError"
    )
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", False, "connection_error")
    # Input: the last reading's prompt count; output: "Spend is down", 13 characters, is
    # ceil(13 / 4) = 4 tokens. Flagged as an estimate; the cached split is not known.
    assert tokens(row) == (1200, 0, 4, 0, False)
    assert row["cost_usd"] == cost(1200, 0, 4, FLASH_RATES) == Decimal("0.00037")


@MODES
async def test_a_stream_that_stalls_times_out_as_an_estimate(
    mode: Mode, fake: FakeGemini, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    slow = instrument_gemini(
        genai.Client(
            api_key="test", http_options=types.HttpOptions(base_url=fake.base_url, timeout=300)
        ),
        telemetry=telemetry,
        user_ctx=ALICE,
    )
    fake.stall_after = 2  # "Spend", " is", then nothing until the client gives up
    received: list[str] = []
    try:
        with pytest.raises((httpx2.ReadTimeout, TimeoutError)):
            await read_into(received, slow, mode, model=FLASH, contents=QUESTION)
    finally:
        fake.stop_hanging()
        await close(slow)

    assert received == ["Spend", " is"]
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", False, "timeout")
    assert tokens(row) == (1200, 0, 2, 0, False)  # "Spend is": 8 characters, 2 tokens
    assert row["cost_usd"] == cost(1200, 0, 2, FLASH_RATES)


async def test_a_stream_left_early_or_dropped_is_recorded_once_as_an_estimate(
    fake: FakeGemini,
    gemini: genai.Client,
    telemetry: WatchedTelemetry,
    db: asyncpg.Pool,
) -> None:
    closed = gemini.models.generate_content_stream(model=FLASH, contents=QUESTION)
    assert isinstance(closed, Generator)
    for _ in closed:
        break  # the caller stops reading after the first chunk
    closed.close()
    closed.close()  # closing again records nothing more
    dropped = gemini.models.generate_content_stream(model=FLASH, contents=QUESTION)
    assert next(dropped).text == "Spend"
    assert next(dropped).text == " is"
    del dropped
    gc.collect()
    left = await gemini.aio.models.generate_content_stream(model=FLASH, contents=QUESTION)
    assert isinstance(left, AsyncGenerator)
    async for _ in left:
        break
    await left.aclose()  # the inner generators are finalized by the loop: wait for the event
    await telemetry.wait_for(3)
    never_read = await gemini.aio.models.generate_content_stream(model=FLASH, contents=QUESTION)
    del never_read  # its request was never sent: nothing to record
    gc.collect()

    assert len(fake.requests) == 3
    rows = await llm_rows(db, telemetry)
    # The last reading's prompt count in; out, the text received: "Spend" (2 tokens), then
    # "Spend is" (8 characters, 2 tokens), then "Spend" again.
    assert [(r["success"], tokens(r)) for r in rows] == [
        (True, (1200, 0, 2, 0, False)),
        (True, (1200, 0, 2, 0, False)),
        (True, (1200, 0, 2, 0, False)),
    ]
    assert {r["cost_usd"] for r in rows} == {cost(1200, 0, 2, FLASH_RATES)}


# --- image output, speech, Imagen ---------------------------------------------------------


async def test_image_output_tokens_are_recorded_and_priced_at_the_image_rate(
    fake: FakeGemini, gemini: genai.Client, telemetry: WatchedTelemetry, db: asyncpg.Pool
) -> None:
    fake.usage.prompt_tokens, fake.usage.cached_tokens, fake.usage.thoughts_tokens = 20, 0, 0
    fake.usage.candidates_tokens, fake.image_tokens = 1_302, 1_290  # 12 of text
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
    reply = await generate(
        gemini, "async", model=FLASH_IMAGE, contents="A chart of spend", config=config
    )

    parts = (
        reply.candidates[0].content.parts
        if reply.candidates and reply.candidates[0].content
        else []
    )
    assert [part.inline_data.mime_type for part in parts or [] if part.inline_data] == ["image/png"]
    [event] = [e.llm for e in telemetry.emitted]
    assert (event.output_tokens, event.output_image_tokens) == (1_302, 1_290)
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH_IMAGE, "generate_content", True, None)
    assert tokens(row) == (20, 0, 1_302, 0, True)
    assert row["output_image_tokens"] == 1_290
    by_hand = (20 * FLASH_IMAGE_IN + 12 * FLASH_IMAGE_TEXT_OUT + 1_290 * FLASH_IMAGE_IMAGE_OUT) / M
    assert by_hand == Decimal("0.038736")
    assert row["cost_usd"] == by_hand


async def test_text_to_speech_is_an_llm_call_of_the_tts_model(
    fake: FakeGemini, gemini: genai.Client, telemetry: WatchedTelemetry, db: asyncpg.Pool
) -> None:
    fake.usage.prompt_tokens, fake.usage.cached_tokens, fake.usage.thoughts_tokens = 12, 0, 0
    fake.usage.candidates_tokens = 600  # audio
    config = types.GenerateContentConfig(
        response_modalities=["AUDIO"],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")
            )
        ),
    )
    reply = gemini.models.generate_content(model=TTS, contents="Say: spend is down", config=config)

    assert reply.candidates
    assert reply.candidates[0].content
    assert reply.candidates[0].content.parts
    audio = reply.candidates[0].content.parts[0].inline_data
    assert audio is not None
    assert audio.mime_type == "audio/L16;codec=pcm;rate=24000"
    assert fake.requests[0].body["generationConfig"]["responseModalities"] == ["AUDIO"]
    [event] = [e.llm for e in telemetry.emitted]
    assert event.output_image_tokens == 0
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", TTS, "generate_content", True, None)
    assert tokens(row) == (12, 0, 600, 0, True)
    by_hand = (12 * TTS_IN + 600 * TTS_OUT) / M
    assert by_hand == Decimal("0.006006")
    assert row["cost_usd"] == by_hand


@pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")
@MODES
async def test_imagen_records_the_images_returned_priced_per_image(
    mode: Mode, fake: FakeGemini, vertex: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.fail_next(429)  # the client's retry (asked for below) makes a second attempt
    retry = types.HttpRetryOptions(attempts=2, initial_delay=0.0, max_delay=0.0, jitter=0.0)
    config = types.GenerateImagesConfig(
        number_of_images=3,
        image_size="2K",
        aspect_ratio="16:9",
        include_safety_attributes=True,  # one more prediction: the prompt's, no image
        http_options=types.HttpOptions(retry_options=retry),
    )
    if mode == "sync":
        made = vertex.models.generate_images(model=IMAGEN, prompt="a cat", config=config)
    else:
        made = await vertex.aio.models.generate_images(model=IMAGEN, prompt="a cat", config=config)

    assert len(made.generated_images or []) == 3
    where = "/v1beta1/projects/cost-project/locations/us-central1"
    path = f"{where}/publishers/google/models/{IMAGEN}:predict"
    assert [r.path for r in fake.requests] == [path, path]
    assert fake.requests[1].headers["authorization"] == "Bearer test-token"
    [row] = await cost_rows(db, telemetry)
    assert (row["event_type"], row["service"], row["unit"], row["quantity"]) == (
        "ai_api_call",
        "gemini_image",
        "images",
        3,
    )
    metadata = dict(row["metadata"])
    assert metadata.pop("duration_ms") >= 0
    assert metadata == {
        "model": IMAGEN,
        "operation": "generate_images",
        "number_of_images": 3,
        "resolution": "2K",
        "aspect_ratio": "16:9",
        "retry_count": 1,
    }
    assert (row["user_id"], row["tier"], row["episode_id"]) == ("user-7", "pro", "ep-1")
    assert row["cost_usd"] == 3 * IMAGEN_PER_IMAGE == Decimal("0.12")
    assert row["cost_category"] == "ai"
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 0


@pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")
async def test_imagen_defaults_and_a_failed_request_which_bills_nothing(
    fake: FakeGemini, vertex: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.fail_next(500)
    with pytest.raises(errors.ServerError):
        vertex.models.generate_images(model=IMAGEN, prompt="a cat")
    made = await vertex.aio.models.generate_images(
        model=f"publishers/google/models/{IMAGEN}", prompt="a cat"
    )

    assert len(made.generated_images or []) == 4  # the fake makes Imagen's default number
    [row] = await cost_rows(db, telemetry)  # the failed request records nothing
    metadata = dict(row["metadata"])
    del metadata["duration_ms"]
    assert metadata == {
        "model": IMAGEN,
        "operation": "generate_images",
        "resolution": "1K",
        "aspect_ratio": "1:1",
        "retry_count": 0,
    }
    assert (row["quantity"], row["cost_usd"]) == (4, 4 * IMAGEN_PER_IMAGE)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "google_status"),
    [(429, errors.ClientError, "RESOURCE_EXHAUSTED"), (500, errors.ServerError, "INTERNAL")],
)
async def test_http_errors_are_recorded_with_no_tokens_and_reraised_unchanged(
    *,
    fake: FakeGemini,
    bare: genai.Client,
    telemetry: TelemetryClient,
    db: asyncpg.Pool,
    status: int,
    error_type: type[errors.APIError],
    google_status: str,
) -> None:
    fake.fail_next(status, times=5)
    with pytest.raises(errors.APIError) as from_bare:
        bare.models.generate_content(model=FLASH, contents=QUESTION)
    gemini = instrument_gemini(bare, telemetry=telemetry, user_ctx=ALICE)
    raised: list[errors.APIError] = []
    for mode in ("sync", "async"):
        with pytest.raises(errors.APIError) as caught:
            await generate(gemini, mode, model=FLASH, contents=QUESTION)
        raised.append(caught.value)
        with pytest.raises(errors.APIError) as caught:
            await stream(gemini, mode, model=FLASH, contents=QUESTION)
        raised.append(caught.value)

    assert type(from_bare.value) is error_type
    assert [type(exc) for exc in raised] == [error_type] * 4
    assert {(e.code, e.status, e.message, str(e)) for e in raised} == {
        (status, google_status, from_bare.value.message, str(from_bare.value))
    }
    assert len(fake.requests) == 5  # no hidden retries
    rows = await llm_rows(db, telemetry)
    assert [outcome(r) for r in rows] == [
        ("google", FLASH, "generate_content", False, f"http_{status}")
    ] * 4
    # Refused: nothing billed, nothing estimated.
    assert {tokens(r) for r in rows} == {(0, 0, 0, 0, False)}
    assert {r["cost_usd"] for r in rows} == {Decimal(0)}


async def test_the_exception_raised_is_the_very_object_the_transport_raised(
    fake: FakeGemini, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    timeout = httpx2.ReadTimeout("the model took too long")

    def answer(request: httpx2.Request) -> httpx2.Response:
        raise timeout

    options = types.HttpOptions(base_url=fake.base_url, httpx_client=httpx2.Client(
        transport=httpx2.MockTransport(answer)
    ))  # fmt: skip
    client = instrument_gemini(
        genai.Client(api_key="test", http_options=options), telemetry=telemetry, user_ctx=ALICE
    )
    try:
        with pytest.raises(httpx2.ReadTimeout) as caught:
            client.models.generate_content(model=FLASH, contents=QUESTION)
    finally:
        await close(client)
        assert options.httpx_client is not None
        options.httpx_client.close()

    assert caught.value is timeout
    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", False, "timeout")
    # Sent and never answered: the question, 31 characters, is ceil(31 / 4) = 8 tokens.
    assert tokens(row) == (8, 0, 0, 0, False)
    assert row["cost_usd"] == cost(8, 0, 0, FLASH_RATES)


@MODES
async def test_a_timeout_is_recorded_as_an_estimate_and_reraised(
    mode: Mode, fake: FakeGemini, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    slow = instrument_gemini(
        genai.Client(
            api_key="test", http_options=types.HttpOptions(base_url=fake.base_url, timeout=300)
        ),
        telemetry=telemetry,
        user_ctx=ALICE,
    )
    fake.hang = True
    config = types.GenerateContentConfig(system_instruction="Answer in one sentence.")  # 6
    try:
        with pytest.raises((httpx2.ReadTimeout, TimeoutError)):
            await generate(slow, mode, model=FLASH, contents=QUESTION, config=config)
    finally:
        fake.stop_hanging()
        await close(slow)

    [row] = await llm_rows(db, telemetry)
    assert outcome(row) == ("google", FLASH, "generate_content", False, "timeout")
    assert tokens(row) == (8 + 6, 0, 0, 0, False)
    assert row["duration_ms"] >= 250  # the client gave up after its 0.3 s timeout
    assert row["cost_usd"] == cost(14, 0, 0, FLASH_RATES)


@MODES
async def test_a_request_that_never_left_is_a_failure_with_no_tokens(
    mode: Mode, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    # One attempt: without retry options, google-genai's aiohttp path waits 1 to 10 s and
    # tries once more on a connection error.
    once = types.HttpRetryOptions(attempts=1)
    options = types.HttpOptions(base_url=f"http://127.0.0.1:{dead_port}/", retry_options=once)
    dead = instrument_gemini(
        genai.Client(api_key="test", http_options=options), telemetry=telemetry, user_ctx=ALICE
    )
    try:
        with pytest.raises((httpx2.ConnectError, aiohttp.ClientConnectorError)) as refused:
            await generate(dead, mode, model=FLASH, contents=QUESTION)
        with pytest.raises(ValueError, match="model is required"):  # refused by the client
            await generate(dead, mode, model="", contents=QUESTION)
    finally:
        await close(dead)

    assert type(refused.value).__name__ == (
        "ConnectError" if mode == "sync" else "ClientConnectorError"
    )
    rows = await llm_rows(db, telemetry)
    assert [(r["success"], r["error_code"], tokens(r)) for r in rows] == [
        (False, "connection_error", (0, 0, 0, 0, False)),
        (False, "ValueError", (0, 0, 0, 0, False)),
    ]
    assert [r["llm_model"] for r in rows] == [FLASH, "unknown"]


# --- embeddings -----------------------------------------------------------------------------


@MODES
async def test_embeddings_use_the_reported_tokens_else_an_estimate(
    *,
    mode: Mode,
    fake: FakeGemini,
    gemini: genai.Client,
    vertex: genai.Client,
    telemetry: TelemetryClient,
    db: asyncpg.Pool,
) -> None:
    texts = ["What is your name?", "What is your favorite color?"]  # 18 and 28 characters
    for client in (gemini, vertex):
        if mode == "sync":
            made = client.models.embed_content(model=EMBEDDING, contents=texts)
        else:
            made = await client.aio.models.embed_content(model=EMBEDDING, contents=texts)
        assert len(made.embeddings or []) == 2

    assert [r.method for r in fake.requests] == ["batchEmbedContents", "predict"]
    developer, on_vertex = await llm_rows(db, telemetry)
    assert (
        outcome(developer)
        == outcome(on_vertex)
        == (
            "google",
            EMBEDDING,
            "embed_content",
            True,
            None,
        )
    )
    # The Developer API reports no tokens: ceil(18 / 4) + ceil(28 / 4) = 5 + 7, estimated.
    assert tokens(developer) == (12, 0, 0, 0, False)
    # Vertex AI reports each embedding's: 7 + 7.
    assert tokens(on_vertex) == (14, 0, 0, 0, True)
    assert developer["cost_usd"] == 12 * EMBEDDING_IN / M
    assert on_vertex["cost_usd"] == 14 * EMBEDDING_IN / M == Decimal("0.0000021")


# --- chats, instrumenting twice, attribution ----------------------------------------------


async def test_a_chats_messages_are_recorded_once_each(
    fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    chat = gemini.chats.create(model=FLASH)
    assert chat.send_message(QUESTION).text == ANSWER
    assert text_of(list(chat.send_message_stream("And last week?"))) == ANSWER
    talk = gemini.aio.chats.create(model=FLASH)
    assert (await talk.send_message(QUESTION)).text == ANSWER
    pieces = [chunk.text or "" async for chunk in await talk.send_message_stream("Why?")]
    assert "".join(pieces) == ANSWER

    # The second message of each chat carries the first and its answer.
    assert [len(r.body["contents"]) for r in fake.requests] == [1, 3, 1, 3]
    rows = await llm_rows(db, telemetry)
    assert [tokens(r) for r in rows] == [DEFAULT_TOKENS] * 4
    assert {r["cost_usd"] for r in rows} == {DEFAULT_FLASH_COST}


async def test_instrumenting_twice_records_each_call_once_with_the_latest_settings(
    fake: FakeGemini, bare: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    first = instrument_gemini(bare, telemetry=telemetry, user_ctx=ALICE)
    again = instrument_gemini(first, telemetry=telemetry, user_ctx=BOB, context_type="summary")
    assert again is first is bare
    await generate(again, "sync", model=FLASH, contents=QUESTION)
    await stream(again, "async", model=FLASH, contents=QUESTION)
    again.chats.create(model=FLASH).send_message(QUESTION)

    assert len(fake.requests) == 3
    rows = await llm_rows(db, telemetry)
    assert [(r["user_id"], r["context_type"], tokens(r)) for r in rows] == [
        ("user-9", "summary", DEFAULT_TOKENS)
    ] * 3


async def test_attribution_follows_the_user_context_when_each_request_starts(
    fake: FakeGemini, bare: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    gemini = instrument_gemini(bare, telemetry=telemetry)
    with user_context(BOB):
        chunks = gemini.models.generate_content_stream(model=FLASH, contents=QUESTION)
        first = next(chunks)  # the request is sent for the first chunk, under Bob
    with user_context(ALICE):
        await generate(gemini, "async", model=FLASH, contents=QUESTION)
        rest = list(chunks)  # read under another context: still Bob's call

    assert text_of([first, *rest]) == ANSWER
    rows = await llm_rows(db, telemetry)
    assert [(r["user_id"], r["tier"], r["episode_id"]) for r in rows] == [
        ("user-7", "pro", "ep-1"),
        ("user-9", "free", "ep-3"),
    ]
    assert rows[1]["podcast_id"] == "pod-2"


class ExplodingTelemetry(TelemetryClient):
    """A telemetry client whose every emit fails."""

    def __init__(self) -> None:  # no channel and no buffer: nothing is ever sent
        self.attempts = 0

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        self.attempts += 1
        raise RuntimeError("telemetry is down")


async def test_a_telemetry_failure_never_breaks_the_call(bare: genai.Client) -> None:
    broken = ExplodingTelemetry()
    gemini = instrument_gemini(bare, telemetry=broken, user_ctx=ALICE)
    reply = gemini.models.generate_content(model=FLASH, contents=QUESTION)
    chunks = await stream(gemini, "async", model=FLASH, contents=QUESTION)

    assert reply.text == text_of(chunks) == ANSWER
    assert broken.attempts == 2  # both calls tried to record, and neither noticed


def test_only_a_genai_client_can_be_instrumented() -> None:
    not_a_client: Any = object()
    with pytest.raises(TypeError, match=re.escape("google.genai.Client")):
        instrument_gemini(not_a_client)


# --- the insight cache ----------------------------------------------------------------------


async def test_an_insight_cache_hit_with_gemini_records_the_stored_model(
    fake: FakeGemini, gemini: genai.Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    store = MemoryInsightStore()
    key = "weekly-digest:user-7"
    week = {"user": "user-7", "jobs": 41}

    async def ask() -> str:
        reply = await gemini.aio.models.generate_content(model=FLASH, contents=f"Summarise {week}")
        return reply.text or ""

    first = await cached_insight(key, week, ask, store=store, telemetry=telemetry)
    fake.text = "A different answer that must not be fetched."
    second = await cached_insight(key, week, ask, store=store, telemetry=telemetry, user_ctx=ALICE)

    assert first == second == ANSWER
    assert len(fake.requests) == 1  # the hit made no request
    miss, hit = await llm_rows(db, telemetry)
    assert [
        (r["cache_hit"], r["insight_key"], r["provider"], r["llm_model"]) for r in (miss, hit)
    ] == [
        (False, key, "google", FLASH),
        (True, key, "google", FLASH),
    ]
    assert (miss["operation"], hit["operation"]) == ("generate_content", "generate_content")
    assert (miss["context_type"], hit["context_type"]) == ("insight", "insight")
    assert tokens(miss) == DEFAULT_TOKENS
    assert miss["cost_usd"] == DEFAULT_FLASH_COST
    assert (tokens(hit), hit["cost_usd"], hit["user_id"]) == ((0, 0, 0, 0, True), 0, "user-7")
    saved = await store.load(key)
    assert saved is not None
    assert (saved.input_hash, saved.answer, saved.model, saved.provider) == (
        insight_input_hash(week),
        ANSWER,
        FLASH,
        "google",
    )
