"""Live counters: exact per tier, user and day; rebuilt from Postgres after any loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from redis.asyncio import Redis

from costguard.common.counters import (
    TTL_SECONDS,
    LiveCounters,
    Usage,
    global_key,
    tier_key,
    user_key,
)
from costguard.common.day_sheets import DaySheets
from costguard.common.days import today
from costguard.common.pricing import AwsPrices, SeedPrices, to_nano_usd
from costguard.devstack import free_port
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.server import Telemetry, build
from tests.events import job, llm, ts

PRICES = SeedPrices.from_env({})
UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
async def telemetry(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Telemetry]:
    built = await build(TelemetryConfig.from_env({**service_env, "COUNTER_RECONCILE_SECONDS": "1"}))
    yield built
    await built.server.stop()


def _expected_job_nusd(cpu_ms: int, rows: int) -> int:
    # By hand from the seed constants: 2e-8 $/cpu-ms and 0.0005 $ per 1,000 rows.
    return int(
        (Decimal(cpu_ms) * Decimal("0.00000002") + Decimal(rows) / 1000 * Decimal("0.0005")) * 10**9
    )


async def _figures(redis: Redis, key: str) -> dict[str, int]:
    return await LiveCounters(redis).read(key)


async def test_stored_events_add_to_today_per_tier_user_and_global(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    events = [
        job(user_id="ann", tier="free", cpu_ms=1500, rows_read=300, rows_written=100),
        job(user_id="ann", tier="free", cpu_ms=500),
        job(user_id="bob", tier="pro", cpu_ms=250),
        llm(user_id="ann", tier="free", input_tokens=1000, output_tokens=200),
        llm(user_id="bob", tier="pro", input_tokens=50, output_tokens=5, cache_hit=True),
    ]
    duplicate = events[0]
    result = await telemetry.ingestor.store([*events, duplicate])
    assert (result.accepted, result.duplicate) == (5, 1)

    day = datetime.now(UTC).date()  # the default time zone is UTC
    llm_nusd = 1000 * 150 + 200 * 600  # 1.5e-7 and 6e-7 $/token in nano-dollars
    ann = await _figures(redis_client, user_key(day, "ann"))
    assert ann == {
        "jobs": 2,
        "cpu_ms": 2000,
        "tokens_in": 1000,
        "tokens_out": 200,
        "ai_calls": 1,
        "cost_nusd": _expected_job_nusd(1500, 400) + _expected_job_nusd(500, 0) + llm_nusd,
    }
    pro = await _figures(redis_client, tier_key(day, "pro"))
    assert (pro["jobs"], pro["ai_calls"], pro["tokens_in"]) == (1, 1, 50)
    assert pro["cost_nusd"] == _expected_job_nusd(250, 0)  # a cache hit costs nothing
    total = await _figures(redis_client, global_key(day))
    assert total["jobs"] == 3
    assert total["cost_nusd"] == ann["cost_nusd"] + pro["cost_nusd"]
    assert 0 < await redis_client.ttl(global_key(day)) <= TTL_SECONDS


async def test_a_late_event_does_not_touch_today(telemetry: Telemetry, redis_client: Redis) -> None:
    old = datetime.now(UTC) - timedelta(days=5)
    await telemetry.ingestor.store([job(created_at=ts(old), started_at=ts(old))])
    assert await redis_client.keys("cg:*") == []


async def test_counters_are_rebuilt_from_postgres_after_flushdb(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    await telemetry.ingestor.store([job(user_id=f"u{i % 7}", cpu_ms=10 * i) for i in range(40)])
    await telemetry.ingestor.store([llm(user_id=f"u{i % 5}", tier="pro") for i in range(30)])
    day = today(UTC_ZONE)
    keys = sorted(str(k) for k in await redis_client.keys("cg:*") if not str(k).endswith(":keys"))
    before = {key: await _figures(redis_client, key) for key in keys}

    await redis_client.flushdb()
    assert await telemetry.reconciler.rebuild_today()
    after = {key: await _figures(redis_client, key) for key in keys}
    assert after == before
    assert after[global_key(day)]["jobs"] == 40


async def test_a_rebuild_corrects_an_over_count_and_zeroes_unsupported_keys(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    await telemetry.ingestor.store([job(user_id="ann", cpu_ms=100)])
    day = today(UTC_ZONE)
    # What a crash between the counter bump and COMMIT leaves behind.
    await redis_client.hincrby(user_key(day, "ann"), "cpu_ms", 999)
    await redis_client.hincrby(user_key(day, "ghost"), "jobs", 3)
    await redis_client.sadd(f"cg:{{{day.isoformat()}}}:keys", user_key(day, "ghost"))
    await redis_client.hset(user_key(day, "ann"), "reserved_cpu_ms", 42)  # not a usage field

    assert await telemetry.reconciler.rebuild_today()
    assert (await _figures(redis_client, user_key(day, "ann")))["cpu_ms"] == 100
    assert (await _figures(redis_client, user_key(day, "ghost")))["jobs"] == 0
    assert await redis_client.hget(user_key(day, "ann"), "reserved_cpu_ms") == "42"


async def test_the_service_rebuilds_on_its_interval(
    telemetry: Telemetry, redis_client: Redis
) -> None:
    await telemetry.ingestor.store([job(cpu_ms=77)])
    telemetry.reconciler.start()
    await telemetry.reconciler.wait_for_passes(1)
    await redis_client.flushdb()
    await telemetry.reconciler.wait_for_passes(3)  # at least one full pass after the flush
    day = today(UTC_ZONE)
    assert (await _figures(redis_client, global_key(day)))["cpu_ms"] == 77


async def test_events_are_stored_when_redis_is_down(db: asyncpg.Pool) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    failures: list[str] = []
    ingestor = Ingestor(
        db,
        LiveCounters(dead),
        tiers=("free", "pro", "enterprise"),
        timezone=UTC_ZONE,
        sheets=DaySheets(seed=PRICES, aws=AwsPrices.from_env({}), tz=UTC_ZONE),
        on_counters_failed=lambda: failures.append("rebuild requested"),
    )
    result = await ingestor.store([job(), llm()])
    await dead.aclose()
    assert result.accepted == 2
    assert failures == ["rebuild requested"]
    assert await db.fetchval("SELECT count(*) FROM telemetry_job_events") == 1


def test_nano_dollars_round_down() -> None:
    assert to_nano_usd(Decimal("0.0000000019")) == 1
    assert to_nano_usd(PRICES.job_cost(1, 0, 0)) == 20


async def test_a_batch_whose_caller_is_cancelled_mid_store_still_commits_once(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client that goes away cancels its RPC. Cancelled between the counter bump and the
    # commit, the batch would leave the counters ahead of Postgres, and the client's
    # retry would count it again.
    counters = LiveCounters(redis_client)
    bumped = asyncio.Event()
    release = asyncio.Event()

    async def add_then_wait(usages: list[Usage]) -> None:
        await counters.add(usages)
        bumped.set()
        await release.wait()

    monkeypatch.setattr(telemetry.ingestor._counters, "add", add_then_wait)
    events = [job(user_id="ann", cpu_ms=100) for _ in range(3)]
    caller = asyncio.create_task(telemetry.ingestor.store(events))
    await bumped.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await telemetry.ingestor.drain()

    retry = await telemetry.ingestor.store(events)  # the client sends the batch again
    assert (retry.accepted, retry.duplicate) == (0, 3)
    assert await db.fetchval("SELECT count(*) FROM telemetry_job_events") == 3
    assert (await _figures(redis_client, global_key(today(UTC_ZONE))))["jobs"] == 3
