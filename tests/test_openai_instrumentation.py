"""The instrumented OpenAI client and the insight cache, through the real wire end to end:
the real ``openai.AsyncOpenAI`` against a fake OpenAI server on loopback, the real
telemetry gRPC service, rows read back from Postgres and insights kept in real Redis."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam
from redis.asyncio import Redis

from costguard.sdk import (
    InsightStore,
    MemoryInsightStore,
    RedisInsightStore,
    StoredInsight,
    TelemetryClient,
    UserContext,
    cached_insight,
    insight_input_hash,
    user_context,
)
from costguard.sdk.openai import InstrumentedOpenAI, instrument_openai
from costguard.v1 import telemetry_pb2
from tests.fake_openai import FakeOpenAI, serve_fake_openai

ALICE = UserContext("user-7", "pro", domain="insights", episode_id="ep-1")
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How did spend change this week?"}
]
REQUESTED = "gpt-4o-mini"  # the fake reports "gpt-4o-mini-2024-07-18"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with serve_fake_openai() as server:
        yield server


@pytest.fixture
async def bare(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def llm(bare: AsyncOpenAI, telemetry: TelemetryClient) -> InstrumentedOpenAI:
    return instrument_openai(bare, telemetry=telemetry, user_ctx=ALICE)


@dataclass(frozen=True)
class RecordedEvents:
    """The LLM events as the telemetry service stored them."""

    telemetry: TelemetryClient
    db: asyncpg.Pool

    async def rows(self) -> list[asyncpg.Record]:
        await self.telemetry.flush()
        return list(await self.db.fetch("SELECT * FROM telemetry_llm_events ORDER BY id"))


@pytest.fixture
def events(telemetry: TelemetryClient, db: asyncpg.Pool) -> RecordedEvents:
    return RecordedEvents(telemetry, db)


def tokens(row: asyncpg.Record) -> tuple[int, int, int, int, bool]:
    return (
        row["input_tokens"],
        row["cached_input_tokens"],
        row["output_tokens"],
        row["reasoning_tokens"],
        row["usage_reported"],
    )


async def test_chat_completion_records_reported_model_and_tokens_once(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    started = time.perf_counter()
    reply = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES)
    wall_ms = (time.perf_counter() - started) * 1000

    assert reply.choices[0].message.content == fake.text
    assert [r.body.get("stream_options") for r in fake.requests] == [None]
    [row] = await events.rows()
    assert (row["llm_model"], row["operation"], row["provider"]) == (
        "gpt-4o-mini-2024-07-18",
        "chat.completions",
        "openai",
    )
    # GenAI conventions: cached inside input, reasoning inside output, each counted once.
    assert tokens(row) == (1200, 1024, 300, 128, True)
    assert (row["success"], row["error_code"], row["cache_hit"]) == (True, None, False)
    assert (row["user_id"], row["tier"], row["domain"], row["episode_id"]) == (
        "user-7",
        "pro",
        "insights",
        "ep-1",
    )
    assert 0 <= row["duration_ms"] <= wall_ms
    assert row["insight_key"] is None


async def test_chat_stream_asks_for_usage_on_the_wire_and_records_it(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    fake.usage.input_tokens, fake.usage.cached_input_tokens = 900, 0
    stream = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]

    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.text
    # The usage-only chunk was our idea, so the caller does not see it.
    assert all(c.choices for c in chunks)
    [row] = await events.rows()
    assert (row["llm_model"], row["operation"], row["success"]) == (
        "gpt-4o-mini-2024-07-18",
        "chat.completions",
        True,
    )
    assert tokens(row) == (900, 0, 300, 128, True)


async def test_chat_stream_merges_the_callers_stream_options(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    own_options: ChatCompletionStreamOptionsParam = {"include_obfuscation": False}
    quiet = await llm.chat.completions.create(
        model=REQUESTED, messages=MESSAGES, stream=True, stream_options=own_options
    )
    quiet_chunks = [chunk async for chunk in quiet]
    asked = await llm.chat.completions.create(
        model=REQUESTED, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    asked_chunks = [chunk async for chunk in asked]

    assert [r.body["stream_options"] for r in fake.requests] == [
        {"include_obfuscation": False, "include_usage": True},
        {"include_usage": True},
    ]
    assert own_options == {"include_obfuscation": False}  # the caller's dict is untouched
    assert all(c.choices for c in quiet_chunks)
    # A caller who asked for usage gets the usage chunk, as from the bare client.
    last = asked_chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 1200
    rows = await events.rows()
    assert [tokens(r) for r in rows] == [(1200, 1024, 300, 128, True)] * 2


async def test_instrumented_stream_yields_what_the_bare_client_yields(
    fake: FakeOpenAI, bare: AsyncOpenAI, llm: InstrumentedOpenAI
) -> None:
    plain = await bare.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True)
    plain_chunks = [chunk.model_dump() async for chunk in plain]
    wrapped = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True)
    wrapped_chunks = [chunk.model_dump() async for chunk in wrapped]

    assert len(plain_chunks) == len(fake.pieces()) + 2
    assert wrapped_chunks == plain_chunks
    assert wrapped.response.status_code == plain.response.status_code == 200


async def test_chat_stream_in_async_with_and_closed_early_is_recorded_once(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    async with await llm.chat.completions.create(
        model=REQUESTED, messages=MESSAGES, stream=True
    ) as stream:
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    async with await llm.chat.completions.create(
        model=REQUESTED, messages=MESSAGES, stream=True
    ) as abandoned:
        first = await abandoned.__anext__()
    await abandoned.close()  # closing again records nothing more

    assert "".join(pieces) == fake.text
    assert first.choices[0].delta.role == "assistant"
    rows = await events.rows()
    assert [(r["success"], tokens(r)) for r in rows] == [
        (True, (1200, 1024, 300, 128, True)),
        # Closed before the usage chunk arrived: estimated, and flagged so. In: 3 for the
        # message, "user" (1 o200k token), the question (7), 3 for the reply's priming;
        # out: the empty first delta.
        (True, (14, 0, 0, 0, False)),
    ]
    assert rows[1]["llm_model"] == "gpt-4o-mini-2024-07-18"


async def test_chat_stream_ending_without_usage_is_flagged_not_zero(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    fake.stream_usage = False
    stream = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])

    assert text == fake.text
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    [row] = await events.rows()
    # estimated: 14 in (as above), the 8 o200k tokens of the text received out
    assert tokens(row) == (14, 0, 8, 0, False)
    assert (row["success"], row["llm_model"]) == (True, "gpt-4o-mini-2024-07-18")


async def test_responses_create_records_reported_model_and_tokens_once(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    fake.usage.input_tokens, fake.usage.cached_input_tokens = 2000, 1536
    fake.usage.output_tokens, fake.usage.reasoning_tokens = 500, 320
    response = await llm.responses.create(model=REQUESTED, input="Summarise my week")

    assert response.output_text == fake.text
    assert fake.requests[0].path == "/v1/responses"
    [row] = await events.rows()
    assert (row["llm_model"], row["operation"], row["success"]) == (
        "gpt-4o-mini-2024-07-18",
        "responses",
        True,
    )
    assert tokens(row) == (2000, 1536, 500, 320, True)


async def test_responses_stream_takes_usage_from_response_completed(
    fake: FakeOpenAI, llm: InstrumentedOpenAI, events: RecordedEvents
) -> None:
    fake.usage.reasoning_tokens = 0
    fake.chunk_interval_s = 0.05  # a model that takes its time; latency must cover it all
    started = time.perf_counter()
    stream = await llm.responses.create(model=REQUESTED, input="Summarise my week", stream=True)
    created_ms = (time.perf_counter() - started) * 1000
    async with stream:
        seen = [event async for event in stream]
    wall_ms = (time.perf_counter() - started) * 1000

    kinds = [event.type for event in seen]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in seen if e.type == "response.output_text.delta"]
    assert "".join(deltas) == fake.text
    [row] = await events.rows()
    assert (row["llm_model"], row["operation"]) == ("gpt-4o-mini-2024-07-18", "responses")
    assert tokens(row) == (1200, 1024, 300, 0, True)
    streamed_ms = 0.05 * 1000 * (len(seen) - 1)
    assert created_ms < streamed_ms * 0.9 <= row["duration_ms"] <= wall_ms


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError)],
)
async def test_http_errors_are_recorded_as_failures_and_reraised_unchanged(
    fake: FakeOpenAI,
    llm: InstrumentedOpenAI,
    events: RecordedEvents,
    status: int,
    error_type: type[openai.APIStatusError],
) -> None:
    fake.fail_next(status, times=4)
    with pytest.raises(openai.APIStatusError) as from_bare:
        await llm.unwrapped.chat.completions.create(model=REQUESTED, messages=MESSAGES)
    raised: list[openai.APIStatusError] = []
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: llm.chat.completions.create(model=REQUESTED, messages=MESSAGES),
        lambda: llm.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True),
        lambda: llm.responses.create(model=REQUESTED, input="hi"),
    ]
    for call in calls:
        with pytest.raises(openai.APIStatusError) as caught:
            await call()
        raised.append(caught.value)

    assert type(from_bare.value) is error_type
    assert [type(exc) for exc in raised] == [error_type] * 3
    assert {(exc.status_code, exc.message) for exc in raised} == {
        (from_bare.value.status_code, from_bare.value.message)
    }
    assert len(fake.requests) == 4  # max_retries=0: no hidden retries
    rows = await events.rows()
    assert [(r["operation"], r["success"], r["error_code"]) for r in rows] == [
        ("chat.completions", False, f"http_{status}"),
        ("chat.completions", False, f"http_{status}"),
        ("responses", False, f"http_{status}"),
    ]
    assert {(r["llm_model"], tokens(r)) for r in rows} == {(REQUESTED, (0, 0, 0, 0, False))}


async def test_connection_errors_and_timeouts_are_recorded_and_reraised(
    fake: FakeOpenAI, events: RecordedEvents
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = AsyncOpenAI(base_url=f"http://127.0.0.1:{dead_port}/v1", api_key="test", max_retries=0)
    slow = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=0.3)
    fake.hang = True
    try:
        with pytest.raises(openai.APIConnectionError) as refused:
            await instrument_openai(
                dead, telemetry=events.telemetry, user_ctx=ALICE
            ).responses.create(model=REQUESTED, input="hi")
        with pytest.raises(openai.APITimeoutError):
            await instrument_openai(
                slow, telemetry=events.telemetry, user_ctx=ALICE
            ).chat.completions.create(model=REQUESTED, messages=MESSAGES)
    finally:
        await dead.close()
        await slow.close()

    assert type(refused.value) is openai.APIConnectionError
    rows = await events.rows()
    assert [(r["operation"], r["success"], r["error_code"]) for r in rows] == [
        ("responses", False, "connection_error"),
        ("chat.completions", False, "timeout"),
    ]
    assert rows[1]["duration_ms"] >= 250  # the client gave up after its 0.3 s timeout


async def test_attribution_follows_the_user_context_where_the_call_started(
    fake: FakeOpenAI, bare: AsyncOpenAI, events: RecordedEvents
) -> None:
    llm = instrument_openai(bare, telemetry=events.telemetry)
    bob = UserContext("user-9", "free", domain="digest", episode_id="ep-3", podcast_id="pod-2")
    with user_context(bob):
        stream = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES, stream=True)
    with user_context(ALICE):
        await llm.responses.create(model=REQUESTED, input="hi")
        async for _ in stream:  # consumed under another context: still Bob's call
            pass

    rows = await events.rows()
    assert [(r["operation"], r["user_id"], r["tier"], r["episode_id"]) for r in rows] == [
        ("responses", "user-7", "pro", "ep-1"),
        ("chat.completions", "user-9", "free", "ep-3"),
    ]
    assert rows[1]["podcast_id"] == "pod-2"


class ExplodingTelemetry(TelemetryClient):
    """A telemetry client whose every emit fails."""

    def __init__(self) -> None:  # no channel and no buffer: nothing is ever sent
        self.attempts = 0

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        self.attempts += 1
        raise RuntimeError("telemetry is down")


async def test_a_telemetry_failure_never_breaks_the_call(
    fake: FakeOpenAI, bare: AsyncOpenAI
) -> None:
    broken = ExplodingTelemetry()
    llm = instrument_openai(bare, telemetry=broken, user_ctx=ALICE)
    reply = await llm.chat.completions.create(model=REQUESTED, messages=MESSAGES)
    stream = await llm.responses.create(model=REQUESTED, input="hi", stream=True)
    kinds = [event.type async for event in stream]

    assert reply.choices[0].message.content == fake.text
    assert kinds[-1] == "response.completed"
    assert broken.attempts == 2  # both calls tried to record, and neither noticed the failure


async def ask_for_insight(llm: InstrumentedOpenAI, week: dict[str, Any]) -> str:
    reply = await llm.chat.completions.create(
        model=REQUESTED, messages=[{"role": "user", "content": f"Summarise {week}"}]
    )
    return reply.choices[0].message.content or ""


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, redis_client: Redis) -> InsightStore:
    return RedisInsightStore(redis_client) if request.param == "redis" else MemoryInsightStore()


async def test_insight_cache_hit_skips_the_call_and_records_a_cache_hit(
    fake: FakeOpenAI,
    llm: InstrumentedOpenAI,
    events: RecordedEvents,
    store: InsightStore,
) -> None:
    key = "weekly-digest:user-7"
    week = {"user": "user-7", "jobs": 41, "spend_usd": 3.5}
    first = await cached_insight(key, week, lambda: ask_for_insight(llm, week), store=store)
    fake.text = "A different answer that must not be fetched."
    same_week_reordered = {"spend_usd": 3.5, "jobs": 41, "user": "user-7"}
    with user_context(ALICE):
        second = await cached_insight(
            key,
            same_week_reordered,
            lambda: ask_for_insight(llm, week),
            store=store,
            telemetry=events.telemetry,
        )

    assert first == second == "Spend is down twelve percent this week."
    assert len(fake.requests) == 1  # the hit made no HTTP request
    rows = await events.rows()
    assert [(r["cache_hit"], r["insight_key"], r["llm_model"]) for r in rows] == [
        (False, key, "gpt-4o-mini-2024-07-18"),
        (True, key, "gpt-4o-mini-2024-07-18"),
    ]
    assert tokens(rows[0]) == (1200, 1024, 300, 128, True)
    assert tokens(rows[1]) == (0, 0, 0, 0, True)
    assert (rows[1]["user_id"], rows[1]["success"]) == ("user-7", True)
    saved = await store.load(key)
    assert saved is not None
    assert (saved.input_hash, saved.answer) == (insight_input_hash(week), first)


async def test_insight_cache_misses_after_the_input_changes(
    fake: FakeOpenAI,
    llm: InstrumentedOpenAI,
    events: RecordedEvents,
    store: InsightStore,
) -> None:
    key = "weekly-digest:user-7"
    week = {"user": "user-7", "jobs": 41}
    await cached_insight(key, week, lambda: ask_for_insight(llm, week), store=store)
    fake.text = "Spend is up after the new podcast launched."
    next_week = {"user": "user-7", "jobs": 42}
    fresh = await cached_insight(
        key, next_week, lambda: ask_for_insight(llm, next_week), store=store
    )

    assert fresh == "Spend is up after the new podcast launched."
    assert len(fake.requests) == 2
    assert "'jobs': 42" in fake.requests[1].body["messages"][0]["content"]
    rows = await events.rows()
    assert [(r["cache_hit"], r["insight_key"]) for r in rows] == [(False, key), (False, key)]
    saved = await store.load(key)
    assert saved is not None
    assert (saved.input_hash, saved.answer) == (insight_input_hash(next_week), fresh)


async def test_redis_insight_store_keys_and_round_trips(
    redis_client: Redis, db: asyncpg.Pool
) -> None:
    store = RedisInsightStore(redis_client, ttl_s=3600)
    insight = StoredInsight(insight_input_hash([1, "a"]), "answer", "gpt-4o", "responses")
    await store.save("episode:ep-1", insight)

    assert await redis_client.keys("*") == ["costguard:insight:episode:ep-1"]
    assert 0 < await redis_client.ttl("costguard:insight:episode:ep-1") <= 3600
    assert await store.load("episode:ep-1") == insight
    assert await store.load("episode:ep-2") is None


class UnreachableStore:
    async def load(self, key: str) -> StoredInsight | None:
        raise ConnectionError("redis is down")

    async def save(self, key: str, insight: StoredInsight) -> None:
        raise ConnectionError("redis is down")


async def test_a_broken_insight_store_costs_a_call_not_the_answer(
    fake: FakeOpenAI, llm: InstrumentedOpenAI
) -> None:
    week = {"jobs": 1}
    answers = [
        await cached_insight(
            "k", week, lambda: ask_for_insight(llm, week), store=UnreachableStore()
        )
        for _ in range(2)
    ]

    assert answers == [fake.text, fake.text]
    assert len(fake.requests) == 2


def test_insight_input_hash_is_canonical_json() -> None:
    assert insight_input_hash({"b": [1, 2], "a": "é"}) == insight_input_hash(
        {"a": "é", "b": [1, 2]}
    )
    assert insight_input_hash({"a": 1}) != insight_input_hash({"a": "1"})
    # sha256 of the canonical text, so other languages can compute the same hash
    assert insight_input_hash({"a": 1}) == (
        "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    )
    with pytest.raises(ValueError, match="Out of range"):
        insight_input_hash({"a": float("nan")})


async def test_context_type_from_the_client_the_context_the_insight_or_the_default(
    bare: AsyncOpenAI, telemetry: TelemetryClient, events: RecordedEvents
) -> None:
    summaries = instrument_openai(bare, telemetry=telemetry, context_type="summary")
    plain = instrument_openai(bare, telemetry=telemetry)
    with user_context(UserContext("user-8", "free", context_type="chat")):
        await plain.chat.completions.create(model=REQUESTED, messages=MESSAGES)
        await summaries.responses.create(model=REQUESTED, input="hi")
    with user_context(UserContext("user-9", "free")):
        await plain.chat.completions.create(model=REQUESTED, messages=MESSAGES)
        store = MemoryInsightStore()
        for _ in range(2):  # a miss, then a hit: both are the insight's
            await cached_insight(
                "week", {"w": 1}, lambda: _answer(plain), store=store, telemetry=telemetry
            )
    rows = await events.rows()
    assert [(r["user_id"], r["context_type"], r["cache_hit"]) for r in rows] == [
        ("user-8", "chat", False),
        ("user-8", "summary", False),  # the client's purpose is more specific than the context's
        ("user-9", "general", False),
        ("user-9", "insight", False),
        ("user-9", "insight", True),
    ]


async def _answer(client: InstrumentedOpenAI) -> str:
    reply = await client.chat.completions.create(model=REQUESTED, messages=MESSAGES)
    return reply.choices[0].message.content or ""
