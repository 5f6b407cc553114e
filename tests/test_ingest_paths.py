"""Ingest's two ways into the event tables, and what the counters make of what they stored.

A batch's events are COPYed in (``copy_in``); when one of them is stored already, or by
another transaction meanwhile, the batch is stored again row by row
(``insert_each_once``). Either way each event id is stored once, with every column exactly
as built, and counted once: the live counters equal their rebuild from Postgres.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from costguard.common.counters import LiveCounters, global_key, user_key
from costguard.common.event_ranges import MAXIMUM
from costguard.common.pricing import AwsPrices
from costguard.common.rebuild import totals_for_day
from costguard.telemetry.checks import MAX_LENGTH
from costguard.telemetry.columns import BUILDERS
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.event_tables import TABLES, Conflict, copy_in, insert_each_once
from costguard.telemetry.rows import Rejected, Row, RowBuilder
from costguard.telemetry.server import Telemetry, build
from costguard.v1 import telemetry_pb2
from tests.events import cost, job, llm, ts
from tests.processes import poll_until

UTC_ZONE = ZoneInfo("UTC")
TIERS = ("free", "pro", "enterprise")


@pytest.fixture
async def telemetry(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Telemetry]:
    built = await build(TelemetryConfig.from_env(service_env))
    yield built
    await built.server.stop()


async def _counted(redis: Redis, key: str) -> dict[str, int]:
    return await LiveCounters(redis).read(key)


async def _counters_equal_their_rebuild(db: asyncpg.Pool, redis: Redis) -> None:
    """Every counter of today in Redis is what a rebuild from Postgres would write."""
    day = datetime.now(UTC_ZONE).date()
    async with db.acquire() as conn:
        truth = await totals_for_day(conn, day, UTC_ZONE, AwsPrices.from_env({}))
    prefix = f"cg:{{{day.isoformat()}}}:"
    keys = {
        str(key)
        for key in await redis.keys(f"{prefix}*")
        if str(key).removeprefix(prefix).startswith(("g", "t:", "u:"))
    }
    zero = dict.fromkeys(("jobs", "cpu_ms", "tokens_in", "tokens_out", "ai_calls", "cost_nusd"), 0)
    for key in keys | set(truth.figures):
        assert await _counted(redis, key) == {**zero, **truth.figures.get(key, {})}, key
    for key, (tier, vote) in truth.user_tiers.items():
        assert await redis.hmget(key, "tier", "tier_at") == [tier, str(vote)], key


def _stored_ids(rows: list[asyncpg.Record]) -> list[str]:
    return [str(row["event_id"]) for row in rows]


async def test_repeats_in_the_batch_and_events_already_stored_are_stored_and_counted_once(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis
) -> None:
    first = [job(user_id="ann", cpu_ms=10), llm(user_id="ann"), cost(user_id="ann")]
    assert (await telemetry.ingestor.store(first)).accepted == 3
    again = job(user_id="bob", cpu_ms=20)
    later_copy = telemetry_pb2.TelemetryEvent()
    later_copy.CopyFrom(again)
    later_copy.job.cpu_ms = 999  # the same event id: the batch's first copy is the one stored
    new_llm, new_cost = llm(user_id="bob", tier="pro"), cost(user_id="bob", tier="pro")
    batch = [*first, again, later_copy, new_llm, new_cost, new_cost, job(cpu_ms=-1)]
    result = await telemetry.ingestor.store(batch)
    assert (result.accepted, result.duplicate, len(result.rejections)) == (3, 5, 1)
    assert result.rejections[0].index == len(batch) - 1
    for table, count in (("telemetry_job_events", 2), ("telemetry_llm_events", 2)):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == count
    assert await db.fetchval("SELECT count(*) FROM cost_events") == 2
    assert (
        await db.fetchval(
            "SELECT cpu_ms FROM telemetry_job_events WHERE event_id = $1",
            uuid.UUID(again.job.event_id),
        )
        == 20
    )
    day = datetime.now(UTC).date()
    total = await _counted(redis_client, global_key(day))
    assert (total["jobs"], total["cpu_ms"], total["ai_calls"]) == (2, 30, 2)
    await _counters_equal_their_rebuild(db, redis_client)


async def test_spellings_of_one_uuid_are_one_event(telemetry: Telemetry, db: asyncpg.Pool) -> None:
    event_id = uuid.uuid4()
    spellings = [str(event_id), str(event_id).upper(), f"{{{event_id}}}", event_id.hex]
    result = await telemetry.ingestor.store([job(event_id=text) for text in spellings])
    assert (result.accepted, result.duplicate) == (1, 3)
    assert _stored_ids(await db.fetch("SELECT event_id FROM telemetry_job_events")) == [
        str(event_id)
    ]


async def test_a_user_beyond_ascii_is_counted_under_their_own_key(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    await telemetry.ingestor.store([job(user_id="zoë-🚀", cpu_ms=7), job(user_id="zoë", cpu_ms=1)])
    day = datetime.now(UTC).date()
    assert (await _counted(redis_client, user_key(day, "zoë-🚀")))["cpu_ms"] == 7
    assert (await _counted(redis_client, user_key(day, "zoë")))["cpu_ms"] == 1


async def test_a_copy_that_races_another_transaction_is_stored_again_row_by_row(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis
) -> None:
    events = [job(user_id="ann", cpu_ms=i) for i in range(1, 6)]
    raced = uuid.UUID(events[2].job.event_id)
    async with db.acquire() as other:
        copy = other.transaction()
        await copy.start()
        # The same event, stored by another transaction that has not committed yet: this
        # batch's look-up cannot see it, and its COPY waits on the unique index.
        await other.execute(
            "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain,"
            " success, cpu_ms) VALUES ($1, 'other', 'ann', 'free', 'default', true, 1000)",
            raced,
        )
        storing = asyncio.create_task(telemetry.ingestor.store(events))

        async def waiting() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
                )
            )

        await poll_until(waiting)  # nothing announces a lock wait
        await copy.commit()
    result = await storing
    assert (result.accepted, result.duplicate) == (4, 1)
    stored = await db.fetch("SELECT event_id, job_name FROM telemetry_job_events ORDER BY id")
    assert sorted(_stored_ids(stored)) == sorted(e.job.event_id for e in events)
    assert [row["job_name"] for row in stored if row["event_id"] == raced] == ["other"]
    day = datetime.now(UTC).date()
    # Counted: the four this batch stored, not the one the other transaction did.
    assert (await _counted(redis_client, global_key(day)))["cpu_ms"] == 1 + 2 + 4 + 5


NOW = datetime.now(UTC)


def _metadata() -> Struct:
    metadata = Struct()
    metadata.update({"bucket": "média", "s3_key": "k/ü", "size_bytes": 5 * 2**40, "nested": [1]})
    return metadata


def _built(kind: str, events: list[telemetry_pb2.TelemetryEvent]) -> list[Row]:
    builder = RowBuilder(TIERS, datetime.now(UTC))
    rows = [
        row
        for row in BUILDERS[kind](builder, [getattr(event, kind) for event in events])
        if not isinstance(row, Rejected)
    ]
    assert len(rows) == len(events)
    return rows


def _extremes() -> dict[str, list[Row]]:
    """Rows with the largest values of each range, NULLs where a column takes them, text
    beyond ASCII, and price (and origin) columns as ingest appends them."""
    price = Decimal("250000.123456789012345678901234")
    largest_job = {name: MAXIMUM[name] for name in ("duration_ms", "cpu_ms", "mem_mb_peak")}
    jobs = _built(
        "job",
        [
            job(**largest_job, rows_read=MAXIMUM["rows_read"], attempt=MAXIMUM["attempt"],
                job_name="é" * MAX_LENGTH["job_name"], queued_at=ts(NOW - timedelta(hours=1)),
                started_at=ts(NOW), finished_at=ts(NOW), episode_id="ep", podcast_id="pod",
                reservation_id="r-1", job_id="j-1", error_code="E"),
            telemetry_pb2.TelemetryEvent(job=telemetry_pb2.JobEvent(
                event_id=str(uuid.uuid4()), job_name="bare", user_id="u", tier="pro")),
        ],
    )  # fmt: skip
    most = MAXIMUM["input_tokens"]
    calls = _built(
        "llm",
        [
            llm(input_tokens=most, cached_input_tokens=most, output_tokens=most,
                reasoning_tokens=most, output_image_tokens=most, cache_hit=True,
                insight_key="i" * MAX_LENGTH["insight_key"], llm_model="m-ü"),
            llm(usage_reported=False, input_tokens=0, output_tokens=0),
        ],
    )  # fmt: skip
    costs = _built(
        "cost",
        [
            cost(quantity=float(MAXIMUM["quantity"]), metadata=_metadata(), entities={"show": "ü"},
                 user_id="u", tier="free", episode_id="ep", podcast_id="pod"),
            cost(quantity=0.0000005),  # rounds to the column's six places as Postgres does
        ],
    )  # fmt: skip
    return {
        "job": [(*row, price, None) for row in jobs],
        "llm": [  # then the origin: a span's reported cost, and an SDK call's none
            (*calls[0], price, None, "unknown_model", "otlp", Decimal("1.000000000000000001")),
            (*calls[1], price, None, "unknown_model", "sdk", None),
        ],
        "cost": [(*row, price, None, "unpriced", "no price", "item") for row in costs],
    }


@pytest.mark.parametrize("insert", [copy_in, insert_each_once], ids=["copy", "row by row"])
async def test_each_insert_stores_every_column_exactly(
    db: asyncpg.Pool, insert: Callable[..., Awaitable[list[int]]]
) -> None:
    for kind, rows in _extremes().items():
        table = TABLES[kind]
        async with db.acquire() as conn, conn.transaction():
            assert await insert(conn, kind, rows) == [0, 1]
        stored = await db.fetch(f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY id")
        expected = [(uuid.UUID(str(row[0])), *row[1:]) for row in rows]
        assert [tuple(record) for record in stored] == expected, kind
        async with db.acquire() as conn, conn.transaction():
            if insert is copy_in:  # stored already: the COPY refuses them all
                with pytest.raises(Conflict):
                    await insert(conn, kind, rows)
            else:  # stored already: nothing inserted
                assert await insert(conn, kind, rows) == []


async def test_postgres_rounds_a_quantity_as_the_row_was_priced(db: asyncpg.Pool) -> None:
    rows = _extremes()["cost"]
    async with db.acquire() as conn, conn.transaction():
        await copy_in(conn, "cost", rows)
    quantities = [r["quantity"] for r in await db.fetch("SELECT quantity FROM cost_events")]
    assert quantities == [row[3] for row in rows] == [Decimal(MAXIMUM["quantity"]), Decimal("1E-6")]


USERS = st.sampled_from(["ann", "bob", "cy"])
MOMENTS = st.integers(-3 * 3600, 600).map(lambda s: ts(datetime.now(UTC) + timedelta(seconds=s)))
EVENTS = st.one_of(
    st.builds(job, user_id=USERS, tier=st.sampled_from(TIERS), cpu_ms=st.integers(0, 10**6),
              rows_read=st.integers(0, 10**6), created_at=MOMENTS),
    st.builds(job, user_id=USERS, tier=st.sampled_from(TIERS), started_at=MOMENTS,
              created_at=MOMENTS),  # counted on the day it started, by its start
    st.builds(llm, user_id=USERS, tier=st.sampled_from(TIERS), created_at=MOMENTS,
              input_tokens=st.integers(10**3, 10**6), output_tokens=st.integers(200, 10**5),
              llm_model=st.sampled_from(["gpt-4o-mini", "house-model"])),
    st.builds(cost, user_id=st.just("") | USERS, tier=st.just("") | st.sampled_from(TIERS),
              created_at=MOMENTS, quantity=st.floats(0, 10**4)),
)  # fmt: skip


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(EVENTS, min_size=1, max_size=8), min_size=1, max_size=3))
async def test_the_counters_of_mixed_batches_equal_their_rebuild_from_postgres(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis, batches: list[list[Any]]
) -> None:
    await db.execute("TRUNCATE telemetry_job_events, telemetry_llm_events, cost_events")
    await redis_client.flushdb()
    sent = [event for events in batches for event in events]
    for events in batches:
        # every batch again, with an event of the one before: repeats count once
        await telemetry.ingestor.store([*events, sent[0]])
    await _counters_equal_their_rebuild(db, redis_client)


async def test_a_user_total_beyond_what_a_double_holds_is_still_added_exactly(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    day = datetime.now(UTC).date()
    ann, bob = user_key(day, "ann"), user_key(day, "bob")
    # Totals of earlier batches: one a double holds exactly, one it does not.
    await redis_client.hset(ann, mapping={"cpu_ms": 2**53 - 10, "jobs": 1})
    await redis_client.hset(bob, mapping={"cpu_ms": 2**62 + 1, "jobs": 1})
    await telemetry.ingestor.store([job(user_id="ann", cpu_ms=9), job(user_id="bob", cpu_ms=7)])
    ann_now, bob_now = await _counted(redis_client, ann), await _counted(redis_client, bob)
    assert (ann_now["cpu_ms"], ann_now["jobs"]) == (2**53 - 1, 2)
    assert (bob_now["cpu_ms"], bob_now["jobs"]) == (2**62 + 8, 2)
    await telemetry.ingestor.store([job(user_id="ann", cpu_ms=3)])  # past 2**53: HINCRBY
    assert (await _counted(redis_client, ann))["cpu_ms"] == 2**53 + 2
