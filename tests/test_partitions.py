"""The raw event tables by day: each day's events in its partition, a rollup reading only
it, rows moving out of the default partition, retention dropping whole days, and an event
without a time of its own stored once whatever day it comes again."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct

from costguard.common.day_sheets import DaySheets
from costguard.common.days import day_bounds
from costguard.common.db import Connection
from costguard.common.event_ranges import MAXIMUM, SUMMED
from costguard.common.partitions import (
    AHEAD_DAYS,
    EVENT_TABLES,
    DayPartition,
    add_day_partitions,
    day_partitions,
)
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.common.storage import INSERT_OBJECTS
from costguard.rollup.groups_sql import EVENT_GROUPS
from costguard.rollup.retention import prune_raw_events
from costguard.rollup.rollup import ANALYZE_AFTER_PRICED, Pricing, rollup_costs_for_date
from costguard.rollup.runs import Rollups
from costguard.rollup.sql import CREATE_RATE_TABLES, PRICE_ALL
from costguard.telemetry.ingest import Ingestor
from costguard.v1 import telemetry_pb2
from tests.events import cost, job, llm, ts

# Local days that are not UTC days, one of them 23 hours long (DST starts 2025-03-09).
TZ = ZoneInfo("America/New_York")
DST_DAY = date(2025, 3, 9)
PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
_EVERY_ID = (0, 2**62)


def _ingestor(db: asyncpg.Pool, tz: ZoneInfo = TZ) -> Ingestor:
    sheets = DaySheets(seed=SeedPrices.from_env({}), aws=AwsPrices.from_env({}), tz=tz)
    return Ingestor(db, None, tiers=("free", "pro"), timezone=tz, sheets=sheets)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TZ)


def _events(day: date, *, jobs: int = 3, upload: bool = True) -> list[telemetry_pb2.TelemetryEvent]:
    """Jobs at noon and just before midnight (the next UTC day), an LLM call, and an upload
    (whose object, held until today, changes every later day's storage) or an email."""
    noon, late = ts(_at(day, 12)), ts(_at(day, 23, 30))
    other = (
        cost(created_at=late, metadata=_upload(day))
        if upload
        else cost(created_at=late, event_type="ses_email", service="ses", unit="emails")
    )
    return (
        [job(started_at=noon, finished_at=noon, created_at=noon) for _ in range(jobs - 1)]
        + [job(started_at=late, finished_at=late, created_at=late)]
        + [llm(created_at=noon), other]
    )


def _upload(day: date) -> Struct:
    metadata = Struct()
    metadata.update({"bucket": "media", "s3_key": f"{day}/a.mp3", "size_bytes": 2**20})
    return metadata


async def _homes(db: asyncpg.Pool, table: str) -> dict[str, int]:
    """Where the table's rows are: partition name -> rows."""
    rows = await db.fetch(
        f"SELECT tableoid::regclass::text AS home, count(*) FROM {table} GROUP BY 1"
    )
    return {row["home"]: row["count"] for row in rows}


def _relations(plan: Any) -> set[str]:
    """Every relation an EXPLAIN (FORMAT JSON) plan names (an UPDATE's, its target too)."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _relations(value)
    return found


async def _read_by(conn: Connection, statement: str, *args: Any) -> set[str]:
    """The raw event relations ``statement`` reads, planned for ``args``, as it runs."""
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *args)  # decoded
    # A partitioned table holds no rows: the partitions named are those read.
    names = _relations(plan) - set(EVENT_TABLES)
    return {name for name in names if name.startswith(EVENT_TABLES)}


def _names(day: date) -> set[str]:
    return {DayPartition(table, day).name for table in EVENT_TABLES}


@pytest.fixture
async def made(db: asyncpg.Pool) -> AsyncIterator[None]:
    """Drops the day partitions a test made, so the suite's later tests never meet them."""
    before = {p.name for p in await day_partitions(db)}
    yield
    for partition in await day_partitions(db):
        if partition.name not in before:
            await db.execute(f'DROP TABLE "{partition.name}"')


async def test_a_days_events_land_in_its_partition_and_its_rollup_reads_only_that(
    db: asyncpg.Pool, made: None
) -> None:
    days = [DST_DAY - timedelta(days=1), DST_DAY, DST_DAY + timedelta(days=1)]
    created = await add_day_partitions(db, days, tz=TZ)
    assert {p.name for p in created} == set().union(*map(_names, days))
    assert await add_day_partitions(db, days, tz=TZ) == []  # there already

    for day in days:
        assert (await _ingestor(db).store(_events(day))).accepted == 5
    for table in EVENT_TABLES:
        homes = await _homes(db, table)
        expected = 3 if table == "telemetry_job_events" else 1
        assert homes == {DayPartition(table, day).name: expected for day in days}, table

    lo, hi = day_bounds(DST_DAY, TZ)
    assert hi - lo == timedelta(hours=23)
    async with db.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        maxima = [MAXIMUM[name] for name in SUMMED]
        groups = await _read_by(conn, EVENT_GROUPS, lo, hi, "x", *maxima, DST_DAY, *_EVERY_ID * 3)
        assert groups == _names(DST_DAY)
        # The hot statements beside it prune too: ingest's S3 objects, a reprice.
        objects = await _read_by(
            conn, INSERT_OBJECTS, [uuid.uuid4()], lo, hi - timedelta(microseconds=1)
        )
        assert objects == {DayPartition("cost_events", DST_DAY).name}
        async with conn.transaction():
            await conn.execute(CREATE_RATE_TABLES)
            for statement in (PRICE_ALL.jobs, PRICE_ALL.llm, PRICE_ALL.cost_events):
                count = max(int(n) for n in re.findall(r"\$(\d+)", statement))
                read = await _read_by(conn, statement, *[lo, hi, 1, 0, 0][:count])
                assert read, statement
                assert read <= _names(DST_DAY), statement

    result = await rollup_costs_for_date(db, DST_DAY, tz=TZ, pricing=PRICING)
    assert result.events == 5
    figures = await db.fetchrow(
        "SELECT jobs, ai_calls FROM cost_global_daily WHERE date = $1", DST_DAY
    )
    assert figures is not None
    assert tuple(figures) == (3, 1)


async def test_rows_waiting_in_the_default_partition_move_into_their_day_and_stay_unique(
    db: asyncpg.Pool, made: None
) -> None:
    day = date(2025, 6, 1)
    events = _events(day)
    assert (await _ingestor(db).store(events)).accepted == 5
    ids = "SELECT id, event_id FROM {} ORDER BY id"
    ids_before = {table: await db.fetch(ids.format(table)) for table in EVENT_TABLES}
    for table in EVENT_TABLES:
        assert set(await _homes(db, table)) == {f"{table}_default"}

    assert {p.name for p in await add_day_partitions(db, [day], tz=TZ)} == _names(day)

    for table in EVENT_TABLES:
        assert set(await _homes(db, table)) == {DayPartition(table, day).name}
        assert await db.fetch(ids.format(table)) == ids_before[table]
    again = await _ingestor(db).store(events)
    assert (again.accepted, again.duplicate) == (0, 5)


async def test_the_rollup_service_keeps_the_days_ahead(db: asyncpg.Pool, made: None) -> None:
    rollups = Rollups(db, tz=TZ, pricing=PRICING)
    await rollups.keep_partitions()
    today = datetime.now(TZ).date()
    wanted = {today + timedelta(days=n) for n in range(-1, AHEAD_DAYS + 1)}
    kept = {(p.table, p.day) for p in await day_partitions(db)}
    assert {(table, day) for table in EVENT_TABLES for day in wanted} <= kept
    assert await rollups.keep_partitions() == []


async def test_retention_drops_settled_days_whole_and_keeps_every_aggregate(
    db: asyncpg.Pool, made: None
) -> None:
    today = datetime.now(TZ).date()
    rolled, dirty, unpartitioned = (today - timedelta(days=n) for n in (500, 420, 480))
    await add_day_partitions(db, [rolled, dirty], tz=TZ)
    for day in (rolled, dirty, unpartitioned):
        assert (await _ingestor(db).store(_events(day, jobs=4, upload=False))).accepted == 6
        await rollup_costs_for_date(db, day, tz=TZ, pricing=PRICING)
    await db.execute("INSERT INTO rollup_dirty_dates (date) VALUES ($1)", dirty)
    await db.execute(
        "INSERT INTO telemetry_unstamped_events (kind, event_id, received_at) VALUES"
        " ('llm', gen_random_uuid(), $1), ('llm', gen_random_uuid(), now())",
        _at(rolled, 12),
    )
    aggregates = """
        SELECT (SELECT json_agg(d ORDER BY date) FROM (
                    SELECT date, jobs, ai_calls, cost_usd FROM cost_global_daily) d)::text,
               (SELECT json_agg(u ORDER BY user_id, date) FROM (
                    SELECT user_id, date, jobs, cost_usd FROM cost_user_daily) u)::text,
               (SELECT json_agg(m ORDER BY year, month) FROM (
                    SELECT year, month, jobs, cost_usd, cost_by_service
                    FROM cost_monthly_summary) m)::text
    """
    before = await db.fetchrow(aggregates)

    pruned = await prune_raw_events(db, retention_days=400, tz=TZ, batch_size=2, pause_s=0)

    assert pruned is not None
    # The rolled-up day's partitions went whole; the unpartitioned day's rows, in batches.
    assert pruned.deleted == {
        "telemetry_job_events": 8,
        "telemetry_llm_events": 2,
        "cost_events": 2,
    }
    assert pruned.kept == {"telemetry_job_events": 4, "telemetry_llm_events": 1, "cost_events": 1}
    left = {p.name for p in await day_partitions(db)}
    assert not _names(rolled) & left
    assert _names(dirty) <= left
    assert await db.fetchrow(aggregates) == before
    # The ids of events without their own time go at the horizon too.
    assert await db.fetchval("SELECT count(*) FROM telemetry_unstamped_events") == 1


async def test_an_event_without_a_time_of_its_own_is_stored_once_whatever_day_it_comes(
    db: asyncpg.Pool, made: None
) -> None:
    today = datetime.now(UTC).date()
    await add_day_partitions(db, [today - timedelta(days=1), today], tz=ZoneInfo("UTC"))
    unstamped = telemetry_pb2.TelemetryEvent()
    unstamped.CopyFrom(llm())
    unstamped.llm.ClearField("created_at")
    ingestor = _ingestor(db, ZoneInfo("UTC"))
    assert (await ingestor.store([unstamped])).accepted == 1
    # As if it had arrived yesterday: its row moves to yesterday's partition.
    await db.execute("UPDATE telemetry_llm_events SET created_at = created_at - interval '1 day'")
    again = await ingestor.store([unstamped])
    assert (again.accepted, again.duplicate) == (0, 1)
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1

    # The ledger is what caught it: without its entry the repeat lands in today's partition.
    await db.execute("DELETE FROM telemetry_unstamped_events")
    assert (await ingestor.store([unstamped])).accepted == 1
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 2
    # An id claimed whose event was deleted since (a table emptied by hand) is stored again.
    await db.execute("TRUNCATE telemetry_llm_events")
    assert (await ingestor.store([unstamped])).accepted == 1


async def test_a_rollup_that_priced_many_rows_analyzes_their_partition(
    db: asyncpg.Pool, made: None
) -> None:
    """Statistics saying the rows have no price would have every later rollup of the day
    scan its partition for rows to price."""
    day = date(2025, 7, 1)
    await add_day_partitions(db, [day], tz=TZ)
    await db.execute(
        "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms,"
        " success, started_at) SELECT gen_random_uuid(), 'job', 'u' || i % 50, 'free', 'audio',"
        " i, true, $1 FROM generate_series(1, $2) AS i",
        _at(day, 12),
        ANALYZE_AFTER_PRICED,
    )
    analyzed = "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = $1"
    job_partition = DayPartition("telemetry_job_events", day).name
    assert await db.fetchval(analyzed, job_partition) is None

    await rollup_costs_for_date(db, day, tz=TZ, pricing=PRICING)

    assert await db.fetchval(analyzed, job_partition) is not None
    # Too few of the others were priced to be worth it.
    assert await db.fetchval(analyzed, DayPartition("cost_events", day).name) is None
    unpriced = await db.fetchval(
        "SELECT null_frac FROM pg_stats WHERE tablename = $1 AND attname = 'cost_usd'",
        job_partition,
    )
    assert unpriced == 0
