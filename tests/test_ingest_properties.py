"""Whatever events a client sends, ingest answers for each one and the day still rolls up.

Arbitrary events (any field values: the whole int64 and int32 ranges, huge, negative and
non-finite doubles, any text protobuf can carry, NUL included, any timestamps, any metadata)
go in batches through the real telemetry service. The call never fails as a whole; each
event is stored or rejected with its field named; accepted + duplicate + rejected is what
was sent; and every day the events touched rolls up, as does the rebuild of today's live
counters.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costguard.common.event_ranges import MAXIMUM
from costguard.common.pricing import AwsPrices, vocabulary
from costguard.common.rebuild import totals_for_day
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.test_rollup import rollup

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime.now(UTC)
TABLES = {"job": "telemetry_job_events", "llm": "telemetry_llm_events", "cost": "cost_events"}
# What one example leaves behind; price sheets stay, as the running service caches them.
_TRUNCATE = (
    "TRUNCATE telemetry_job_events, telemetry_llm_events, cost_events, s3_objects, "
    "cost_user_daily, cost_global_daily, entity_costs, entity_costs_daily, "
    "cost_monthly_summary, rollup_dirty_dates"
)

# Any text protobuf carries: every code point but the surrogates, which have no UTF-8.
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
LONG_TEXT = st.text(st.characters(codec="utf-8"), min_size=60, max_size=300)
# Large ones as often as not: where columns and sums overflow.
INT64 = (
    st.integers(-(2**63), 2**63 - 1)
    | st.integers(2**31, 2**63 - 1)
    | st.sampled_from([2**63 - 1, 2**62, 10**18, 2**31])
)
INT32 = st.integers(-(2**31), 2**31 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)

NAMES = st.sampled_from(["u1", "u2", "transcribe", "ep-1", "pod-1"])
TIERS = st.sampled_from(["free", "pro", "enterprise"])
WILD_TEXT = st.one_of(st.just(""), ANY_TEXT, LONG_TEXT)
# A few ids shared by every example's events, so that some repeat one another.
EVENT_ID = st.uuids().map(str) | st.sampled_from([str(uuid.UUID(int=n)) for n in (1, 2, 3)])
RECENT = st.integers(-3 * 86400, 3600).map(lambda s: int(NOW.timestamp()) + s)
PAST = st.integers(946_684_800, int(NOW.timestamp()))  # any day since 2000: a rollup each
VALID_MOMENT = st.builds(
    Timestamp, seconds=st.one_of(RECENT, RECENT, RECENT, PAST), nanos=st.integers(0, 10**9 - 1)
)
WILD_MOMENT = st.builds(Timestamp, seconds=INT64, nanos=INT32)

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), DOUBLES, st.integers(-(2**53), 2**53), ANY_TEXT, LONG_TEXT
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
METADATA_KEYS = [name.removeprefix("metadata.") for name in MAXIMUM if name.startswith("metadata.")]
WILD_METADATA = st.dictionaries(
    st.sampled_from([*METADATA_KEYS, "model", "bucket", "s3_key", "keys"]) | ANY_TEXT,
    JSON,
    max_size=6,
)
VALID_METADATA = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gemini-2.5-pro", "gpt-image-1", "tts-1", "whisper-1"]),
        "quality": st.just("high"),
        "size": st.just("1024x1024"),
        "bucket": st.just("media"),
        "s3_key": NAMES,
        "operation": st.just("SendMessageBatch"),
        **{
            key: st.integers(0, MAXIMUM[f"metadata.{key}"]).map(float)
            for key in METADATA_KEYS
            if key != "cached_input_tokens"
        },
    },
)


def _count(name: str) -> st.SearchStrategy[int]:
    return st.integers(0, MAXIMUM[name])


@st.composite
def _fields(
    draw: st.DrawFn,
    valid: dict[str, st.SearchStrategy[Any]],
    wild: dict[str, Any],
    numbers: tuple[str, ...],
) -> dict[str, Any]:
    """Every field valid, or (half the events) all but one or two, drawn at random (a number
    as often as not), which take any value at all: so many events are stored, and each
    check meets everything."""
    names = st.sampled_from(numbers) | st.sampled_from(sorted(valid))
    odd = draw(st.just(set()) | st.sets(names, min_size=1, max_size=2))
    return {name: draw(wild[name] if name in odd else valid[name]) for name in valid}


def _wild(valid: dict[str, st.SearchStrategy[Any]], **types: Any) -> dict[str, Any]:
    """Any value of each field's type: text unless ``types`` says otherwise."""
    return {name: types.get(name, WILD_TEXT) for name in valid}


def _with(message: Any, moments: dict[str, Timestamp | None]) -> Any:
    for name, moment in moments.items():
        if moment is not None:
            getattr(message, name).CopyFrom(moment)
    return message


_JOB_COUNTS = ("duration_ms", "queue_wait_ms", "cpu_ms", "mem_mb_peak", "rows_read", "rows_written")
_JOB = {
    "event_id": EVENT_ID,
    "job_name": NAMES,
    "user_id": NAMES,
    "tier": TIERS,
    "domain": st.just("") | NAMES,
    "job_type": st.just("") | NAMES,
    "attempt": st.integers(0, 5),
    "error_code": st.just(""),
    "episode_id": st.just("") | NAMES,
    "podcast_id": st.just("") | NAMES,
    "reservation_id": st.just(""),
    "job_id": st.just("") | NAMES,
    **{name: _count(name) for name in _JOB_COUNTS},
    "queued_at": st.none(),
    "started_at": st.none() | VALID_MOMENT,
    "finished_at": st.none(),
    "created_at": st.none() | VALID_MOMENT,
}
_MOMENTS = ("queued_at", "started_at", "finished_at", "created_at")
_JOB_WILD = _wild(
    _JOB,
    attempt=INT32,
    **dict.fromkeys(_JOB_COUNTS, INT64),
    **dict.fromkeys(_MOMENTS, WILD_MOMENT),
)


@st.composite
def job_events(draw: st.DrawFn) -> telemetry_pb2.TelemetryEvent:
    fields = draw(_fields(_JOB, _JOB_WILD, (*_JOB_COUNTS, "attempt")))
    moments = {name: fields.pop(name) for name in _MOMENTS}
    event = telemetry_pb2.JobEvent(success=draw(st.booleans()), **fields)
    return telemetry_pb2.TelemetryEvent(job=_with(event, moments))


_TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
_PARTS = (
    ("cached_input_tokens", "input_tokens"),
    ("reasoning_tokens", "output_tokens"),
    ("output_image_tokens", "output_tokens"),
)
_LLM = {
    "event_id": EVENT_ID,
    "user_id": NAMES,
    "tier": TIERS,
    "domain": st.just("") | NAMES,
    "job_name": st.just("") | NAMES,
    "provider": st.sampled_from(["", "openai", "google"]),
    "llm_model": st.sampled_from(["gpt-4o-mini", "o1-pro", "gemini-2.5-pro", "house-model"]),
    "operation": st.just(""),
    "duration_ms": _count("duration_ms"),
    "insight_key": st.just("") | NAMES,
    "context_type": st.just("") | NAMES,
    **{name: _count(name) for name in _TOKENS},
    "output_image_tokens": st.just(0) | _count("output_image_tokens"),
    "created_at": st.none() | VALID_MOMENT,
}
_LLM_WILD = _wild(
    _LLM,
    duration_ms=INT64,
    created_at=WILD_MOMENT,
    **dict.fromkeys((*_TOKENS, "output_image_tokens"), INT64),
)


@st.composite
def llm_events(draw: st.DrawFn) -> telemetry_pb2.TelemetryEvent:
    fields = draw(_fields(_LLM, _LLM_WILD, (*_TOKENS, "output_image_tokens", "duration_ms")))
    created_at = fields.pop("created_at")
    # A part drawn valid is no larger than its whole.
    for part, whole in _PARTS:
        if 0 <= fields[part] <= MAXIMUM[part] and 0 <= fields[whole] < fields[part]:
            fields[part] = fields[whole]
    event = telemetry_pb2.LlmEvent(
        usage_reported=draw(st.booleans()),
        cache_hit=draw(st.booleans()),
        success=draw(st.booleans()),
        **fields,
    )
    return telemetry_pb2.TelemetryEvent(llm=_with(event, {"created_at": created_at}))


_COST = {
    "event_id": EVENT_ID,
    "name": st.sampled_from(sorted(vocabulary())),
    "quantity": st.floats(0, float(MAXIMUM["quantity"])),
    "metadata": VALID_METADATA,
    "user_id": st.just("") | NAMES,
    "tier": st.just("") | TIERS,
    "episode_id": st.just("") | NAMES,
    "podcast_id": st.just("") | NAMES,
    "entities": st.dictionaries(NAMES, NAMES, max_size=2),
    "created_at": st.none() | VALID_MOMENT,
}
_COST_WILD = _wild(
    _COST,
    name=st.tuples(WILD_TEXT, WILD_TEXT, WILD_TEXT),
    quantity=DOUBLES,
    metadata=WILD_METADATA,
    entities=st.dictionaries(WILD_TEXT, ANY_TEXT, max_size=3),
    created_at=WILD_MOMENT,
)


@st.composite
def cost_events(draw: st.DrawFn) -> telemetry_pb2.TelemetryEvent:
    fields = draw(_fields(_COST, _COST_WILD, ("quantity", "metadata")))
    created_at = fields.pop("created_at")
    fields["event_type"], fields["service"], fields["unit"] = fields.pop("name")
    metadata = Struct()
    metadata.update(fields.pop("metadata"))
    event = telemetry_pb2.CostEvent(metadata=metadata, **fields)
    return telemetry_pb2.TelemetryEvent(cost=_with(event, {"created_at": created_at}))


# Now and then an event of no kind at all.
EVENTS = st.one_of(
    *(job_events(), llm_events(), cost_events()) * 3, st.just(telemetry_pb2.TelemetryEvent())
)
BATCHES = st.lists(st.lists(EVENTS, min_size=1, max_size=6), min_size=1, max_size=3)


@pytest.fixture
async def stub(telemetry_addr: str) -> AsyncIterator[telemetry_pb2_grpc.TelemetryServiceStub]:
    async with aio.insecure_channel(telemetry_addr) as channel:
        yield telemetry_pb2_grpc.TelemetryServiceStub(channel)


async def _stored(db: asyncpg.Pool, kind: str, event_id: str) -> bool:
    query = "SELECT EXISTS (SELECT 1 FROM TABLE WHERE event_id = $1)".replace("TABLE", TABLES[kind])
    return bool(await db.fetchval(query, uuid.UUID(event_id)))


def _rejected(reply: Any, batch: int) -> set[int]:
    """The indices of the batch's rejected events; each rejection names a field."""
    mine = [r for r in reply.rejections if r.batch == batch]
    for rejection in mine:
        assert rejection.field, rejection
        assert rejection.reason, rejection
    indices = {r.index for r in mine}
    assert len(indices) == len(mine)
    return indices


async def _check_stored(
    db: asyncpg.Pool, events: list[telemetry_pb2.TelemetryEvent], rejected: set[int]
) -> None:
    for index, event in enumerate(events):
        if index not in rejected:
            kind = event.WhichOneof("kind")
            assert kind is not None
            assert await _stored(db, kind, getattr(event, kind).event_id), event


# The dirty days that hold an event, the first and last of the others, and today. An S3
# object put years ago dirties every day it has been held since (each one's storage cost
# changed): those days run the same code, and rolling up all of them, 1,600 since a 2022 put
# at 20 ms each, made one example take a minute and the test its timeout.
_DAYS_TO_ROLL_UP = """
WITH dirty AS (SELECT date FROM rollup_dirty_dates),
held AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS date FROM telemetry_job_events
    UNION SELECT (created_at AT TIME ZONE 'UTC')::date FROM telemetry_llm_events
    UNION SELECT (created_at AT TIME ZONE 'UTC')::date FROM cost_events
)
SELECT date FROM dirty WHERE date IN (SELECT date FROM held)
UNION SELECT min(date) FROM dirty UNION SELECT max(date) FROM dirty
UNION SELECT $1::date
"""


async def _days_to_roll_up(db: asyncpg.Pool) -> list[date]:
    rows = await db.fetch(_DAYS_TO_ROLL_UP, NOW.date())
    return sorted(row["date"] for row in rows if row["date"] is not None)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=BATCHES, streamed=st.booleans())
async def test_every_event_is_answered_for_and_every_day_still_rolls_up(
    stub: Any, db: asyncpg.Pool, batches: list[list[telemetry_pb2.TelemetryEvent]], streamed: bool
) -> None:
    await db.execute(_TRUNCATE)
    requests = [telemetry_pb2.RecordRequest(events=events) for events in batches]
    if streamed:
        replies = [await stub.RecordStream(iter(requests))]
    else:
        replies = [await stub.Record(request) for request in requests]
    sent = sum(map(len, batches))
    assert sum(r.accepted + r.duplicate + r.rejected for r in replies) == sent
    assert all(r.rejected == len(r.rejections) for r in replies)
    for batch, events in enumerate(batches):
        reply, number = (replies[0], batch) if streamed else (replies[batch], 0)
        await _check_stored(db, events, _rejected(reply, number))
    for day in await _days_to_roll_up(db):
        await rollup(db, day)
    async with db.acquire() as conn:
        await totals_for_day(conn, NOW.date(), UTC_ZONE, AwsPrices.from_env({}))
