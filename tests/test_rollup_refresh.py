"""Near-live refresh: only the events above a day's watermark, and equal to a full rollup."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costguard.common.db import Connection
from costguard.common.watermark import INGEST_LOCK, hold_for_ingest
from tests.processes import poll_until
from tests.test_rollup import DAY, NOON, cloud, job, rollup

MIDNIGHT = datetime(2026, 11, 20, tzinfo=UTC)

_TRUNCATE = """
TRUNCATE telemetry_job_events, telemetry_llm_events, cost_events, cost_user_daily,
    cost_global_daily, cost_breakdown_daily, entity_costs, entity_costs_daily,
    cost_monthly_summary, price_sheets, price_sheet_days, rollup_dirty_dates,
    rollup_day_groups, rollup_day_watermarks, s3_objects
RESTART IDENTITY
"""

# Every aggregate a rollup writes, without the moments rows were written.
_AGGREGATES = {
    "cost_user_daily": "SELECT * FROM cost_user_daily ORDER BY user_id, date",
    "cost_global_daily": "SELECT * FROM cost_global_daily ORDER BY date",
    "entity_costs_daily": "SELECT * FROM entity_costs_daily ORDER BY 1, 2, 3",
    "entity_costs": "SELECT * FROM entity_costs ORDER BY 1, 2",
    "cost_monthly_summary": "SELECT * FROM cost_monthly_summary ORDER BY year, month",
    "cost_breakdown_daily": "SELECT * FROM cost_breakdown_daily ORDER BY date, dimension, key",
    "rollup_day_groups": (
        "SELECT * FROM rollup_day_groups ORDER BY date, user_id, tier, episode_id, podcast_id, "
        "service, category, unpriced, reason, source"
    ),
}
_MOMENTS = {"updated_at", "calculated_at"}


async def aggregates(db: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [
            {k: v for k, v in dict(row).items() if k not in _MOMENTS}
            for row in await db.fetch(query)
        ]
        for table, query in _AGGREGATES.items()
    }


async def by_user(db: asyncpg.Pool, column: str) -> dict[str, Any]:
    return {row["user_id"]: row[column] for row in await db.fetch(_USER_DAYS)}


_USER_DAYS = "SELECT * FROM cost_user_daily"


async def llm_call(db: asyncpg.Pool, event: dict[str, Any]) -> None:
    await db.execute(
        "INSERT INTO telemetry_llm_events (event_id, user_id, tier, llm_model, context_type, "
        "input_tokens, cached_input_tokens, output_tokens, cache_hit, usage_reported, created_at, "
        "episode_id, podcast_id) "
        "VALUES ($1, $2, $3, $4, 'chat', $5, $6, $7, $8, $9, $10, $11, $12)",
        uuid.uuid4(), event["user"], event["tier"], event["model"], event["input"],
        min(event["cached"], event["input"]), event["output"], event["cache_hit"],
        event["reported"], event["at"], event["episode"], event["podcast"],
    )  # fmt: skip


_USERS = st.sampled_from(["u1", "u2", "u3", "u4"])
_TIERS = st.sampled_from(["free", "pro", "enterprise"])
_EPISODES = st.sampled_from([None, "ep1", "ep2", "ep3"])
_PODCASTS = st.sampled_from([None, "pod1", "pod2"])
_AT = st.integers(0, 86_399).map(lambda s: MIDNIGHT + timedelta(seconds=s))

_JOB = st.fixed_dictionaries(
    {
        "kind": st.just("job"),
        "user": _USERS,
        "tier": _TIERS,
        "cpu_ms": st.one_of(st.integers(0, 10**6), st.just(-5)),
        "rows": st.integers(0, 5000),
        "at": _AT,
        "episode": _EPISODES,
        "podcast": _PODCASTS,
    }
)
_LLM = st.fixed_dictionaries(
    {
        "kind": st.just("llm"),
        "user": _USERS,
        "tier": _TIERS,
        "model": st.sampled_from(["gpt-4o-mini", "gpt-4o", "house-model"]),
        "input": st.integers(0, 50_000),
        "cached": st.integers(0, 10_000),
        "output": st.integers(0, 5_000),
        "cache_hit": st.booleans(),
        "reported": st.booleans(),
        "at": _AT,
        "episode": _EPISODES,
        "podcast": _PODCASTS,
    }
)
_CLOUD = st.fixed_dictionaries(
    {
        "kind": st.just("cloud"),
        "what": st.sampled_from(
            [
                ("ses_email", "ses", "3", "emails"),
                ("ai_api_call", "gemini_txt", "10", "tokens"),  # not priced, and says why
                ("sqs_message", "sqs", "7", "requests"),
                ("s3_operation", "s3_put", "1", "requests"),  # an upload: its size is usage
            ]
        ),
        "size_bytes": st.integers(0, 10**9),
        "user": st.one_of(st.none(), _USERS),
        "tier": st.one_of(st.none(), _TIERS),
        "episode": _EPISODES,
        "podcast": _PODCASTS,
    }
)
_BATCH = st.lists(st.one_of(_JOB, _LLM, _CLOUD), max_size=10)


async def store(db: asyncpg.Pool, events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["kind"] == "job":
            await job(
                db, event["user"], event["tier"], event["cpu_ms"], at=event["at"],
                rows_read=event["rows"], episode_id=event["episode"], podcast_id=event["podcast"],
            )  # fmt: skip
        elif event["kind"] == "llm":
            await llm_call(db, event)
        else:
            await cloud(
                db, *event["what"], user_id=event["user"], tier=event["tier"],
                episode_id=event["episode"], podcast_id=event["podcast"],
                metadata={"size_bytes": event["size_bytes"], "s3_key": "k", "bucket": "b"},
            )  # fmt: skip


@settings(
    max_examples=15,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=_BATCH, later=st.lists(_BATCH, min_size=1, max_size=2))
async def test_refreshing_with_new_events_equals_a_full_rollup(
    db: asyncpg.Pool, first: list[dict[str, Any]], later: list[list[dict[str, Any]]]
) -> None:
    await db.execute(_TRUNCATE)
    await store(db, first)
    last = await rollup(db, refresh=True)
    assert not last.incremental  # nothing to start from
    for batch in later:
        await store(db, batch)
        refreshed = await rollup(db, refresh=True)
        # A model new to the day extends its sheet: then the day is rolled up in full.
        assert refreshed.incremental == (refreshed.price_sheet_id == last.price_sheet_id)
        last = refreshed
    refreshed = await aggregates(db)
    assert not (await rollup(db)).incremental
    assert await aggregates(db) == refreshed


async def test_a_refresh_reads_only_the_events_above_the_watermark(db: asyncpg.Pool) -> None:
    for i in range(3):
        await job(db, f"u{i}", "free", 1000, episode_id="ep1", podcast_id="pod1")
    await rollup(db)
    # A row below the watermark changed behind the rollup's back is not read again by a
    # refresh (which is what makes it cheap); the next full rollup reads it.
    await db.execute("UPDATE telemetry_job_events SET cpu_ms = 5000 WHERE user_id = 'u0'")
    await job(db, "u9", "pro", 10, at=NOON + timedelta(hours=1), podcast_id="pod1")
    refreshed = await rollup(db, refresh=True)
    assert refreshed.incremental
    cpu = await by_user(db, "cpu_ms")
    assert cpu == {"u0": 1000, "u1": 1000, "u2": 1000, "u9": 10}
    podcast = await db.fetchrow(
        "SELECT event_count, usage_metrics FROM entity_costs WHERE entity_id = 'pod1'"
    )
    assert podcast is not None
    assert podcast["event_count"] == 4
    full = await rollup(db)
    assert not full.incremental
    cpu = await by_user(db, "cpu_ms")
    assert cpu["u0"] == 5000


async def test_a_new_event_moves_a_user_to_the_tier_of_their_latest_event(
    db: asyncpg.Pool,
) -> None:
    await job(db, "u1", "free", 100)
    await job(db, "u2", "free", 100)
    await rollup(db)
    await job(db, "u1", "pro", 100, at=NOON + timedelta(hours=2))
    assert (await rollup(db, refresh=True)).incremental
    tiers = await by_user(db, "tier")
    assert tiers == {"u1": "pro", "u2": "free"}
    breakdown = await db.fetchval("SELECT tier_breakdown_json FROM cost_global_daily")
    assert {tier: figures["jobs"] for tier, figures in breakdown.items()} == {"pro": 2, "free": 1}


async def test_a_reprice_or_a_new_sheet_rolls_the_day_up_in_full(db: asyncpg.Pool) -> None:
    await job(db, "u1", "free", 100)
    await rollup(db)
    await job(db, "u1", "free", 100, at=NOON + timedelta(minutes=1))
    assert not (await rollup(db, refresh=True, reprice=True)).incremental
    await db.execute("UPDATE rollup_day_watermarks SET price_sheet_id = price_sheet_id + 1000")
    await job(db, "u1", "free", 100, at=NOON + timedelta(minutes=2))
    again = await rollup(db, refresh=True)
    assert not again.incremental
    assert again.events == 3


async def test_a_watermark_never_passes_a_batch_still_being_stored(db: asyncpg.Pool) -> None:
    await job(db, "u1", "free", 1)
    await rollup(db)
    async with db.acquire() as slow, db.acquire() as quick:
        # The slow batch takes its id first and commits last.
        slow_tx = slow.transaction()
        await slow_tx.start()
        await hold_for_ingest(slow)
        await _job_on(slow, "u-slow", 10)
        async with quick.transaction():
            await hold_for_ingest(quick)
            await _job_on(quick, "u-quick", 100)
        refreshing = asyncio.ensure_future(rollup(db, refresh=True))
        await _until_waiting_for_the_ingest_lock(db)
        assert not refreshing.done()
        await slow_tx.commit()
        refreshed = await refreshing
    assert refreshed.incremental
    cpu = await by_user(db, "cpu_ms")
    assert cpu == {"u1": 1, "u-slow": 10, "u-quick": 100}


async def _job_on(conn: Connection, user: str, cpu_ms: int) -> None:
    await conn.execute(
        "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, "
        "success, started_at, created_at) VALUES ($1, 'j', $2, 'free', 'audio', $3, true, $4, $4)",
        uuid.uuid4(),
        user,
        cpu_ms,
        NOON,
    )


async def _until_waiting_for_the_ingest_lock(db: asyncpg.Pool) -> None:
    """Until a session waits for the ingest lock exclusively (what the rollup takes)."""

    async def waiting() -> bool:
        return bool(
            await db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND NOT granted AND mode = 'ExclusiveLock' "
                "AND ((classid::bigint << 32) | objid::bigint) = $1)",
                INGEST_LOCK,
            )
        )

    await poll_until(waiting)


async def test_a_failed_refresh_keeps_the_day_dirty(db: asyncpg.Pool) -> None:
    await job(db, "u1", "free", 1)
    await rollup(db)
    await job(db, "u1", "free", 5000, at=NOON + timedelta(minutes=1))
    await db.execute("INSERT INTO rollup_dirty_dates (date) VALUES ($1)", DAY)
    # A fault in the middle of the refresh: the user's new row breaks a constraint.
    await db.execute(
        "ALTER TABLE cost_user_daily ADD CONSTRAINT refresh_fault CHECK (cpu_ms < 1000) NOT VALID"
    )
    try:
        try:
            await rollup(db, refresh=True)
        except asyncpg.CheckViolationError:
            pass
        else:
            raise AssertionError("the refresh should have failed")
    finally:
        await db.execute("ALTER TABLE cost_user_daily DROP CONSTRAINT refresh_fault")
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty_dates WHERE date = $1", DAY) == 1
    refreshed = await rollup(db, refresh=True)
    assert (refreshed.incremental, refreshed.events) == (True, 2)


async def test_a_refresh_without_the_days_global_row_derives_the_day_again(
    db: asyncpg.Pool,
) -> None:
    await job(db, "u1", "free", 100, episode_id="ep1")
    await rollup(db)
    await db.execute("DELETE FROM cost_global_daily WHERE date = $1", DAY)
    await job(db, "u2", "pro", 50, at=NOON + timedelta(minutes=5), episode_id="ep1")
    refreshed = await rollup(db, refresh=True)
    assert refreshed.incremental
    assert refreshed.events == 2
    after_refresh = await aggregates(db)
    await rollup(db)
    assert await aggregates(db) == after_refresh
