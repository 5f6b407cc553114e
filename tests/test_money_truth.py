"""One price per event, wherever it is counted: live counters, rollup and the gateway agree.

Events go through the real telemetry ingest (priced there, once, with the day's sheet),
the counters are read from the real Redis, the day is rolled up in the real Postgres and
the summary is read through the real gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from google.protobuf.struct_pb2 import Struct
from redis.asyncio import Redis
from starlette.applications import Starlette

from costguard.common.counters import UNATTRIBUTED, LiveCounters, global_key, tier_key, user_key
from costguard.common.day_sheets import DaySheets
from costguard.common.pricing import NANO, AwsPrices, SeedPrices
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import Telemetry, build
from tests.events import cost, job, llm, ts

ADMIN = "admin-token-1"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
MILLION = Decimal(1_000_000)
UTC_ZONE = ZoneInfo("UTC")  # the services' default time zone


@pytest.fixture
async def telemetry(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Telemetry]:
    built = await build(TelemetryConfig.from_env(service_env))
    yield built
    await built.server.stop()


@pytest.fixture
async def gateway(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "ALERT_DISPATCH_SECONDS": "3600",
        "GATEWAY_SESSION_SECRET": "session-secret",
    }
    app: Starlette = create_app(GatewayConfig.from_env(env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def _meta(**values: Any) -> Struct:
    struct = Struct()
    struct.update(values)
    return struct


def _mix(now: datetime) -> list[Any]:
    at = ts(now)
    return [
        # A known model with cached and reasoning tokens: gpt-4o.
        llm(user_id="ann", tier="free", llm_model="gpt-4o", input_tokens=10_000,
            cached_input_tokens=4_000, output_tokens=1_500, reasoning_tokens=300, created_at=at),
        llm(user_id="ann", tier="free", llm_model="gpt-4o-mini", input_tokens=2_000,
            cached_input_tokens=1_024, output_tokens=100, created_at=at),
        # A model the price library does not know: the seed constants, flagged.
        llm(user_id="bob", tier="pro", llm_model="house-model", input_tokens=1_000,
            output_tokens=200, created_at=at),
        # A long prompt: gemini-2.5-pro bills every token higher past 200k input tokens.
        llm(user_id="cy", tier="enterprise", provider="google", llm_model="gemini-2.5-pro",
            input_tokens=250_000, output_tokens=2_000, created_at=at),
        # Usage that never arrived, priced at its estimate.
        llm(user_id="cy", tier="enterprise", llm_model="gpt-4o-mini", input_tokens=900,
            output_tokens=50, usage_reported=False, created_at=at),
        job(user_id="bob", tier="pro", cpu_ms=12_345, rows_read=700, rows_written=300,
            created_at=at),
        # S3: an object held from noon to the end of the day, one deleted a minute after it
        # was put (its request and a minute of storage).
        cost(user_id="ann", tier="free", service="s3_put",
             metadata=_meta(size_bytes=5 * 2**20, bucket="b", s3_key="a.mp3"), created_at=at),
        cost(user_id="bob", tier="pro", service="s3_put",
             metadata=_meta(size_bytes=2**30, bucket="b", s3_key="tmp.wav"),
             created_at=ts(now - timedelta(minutes=1))),
        cost(user_id="bob", tier="pro", service="s3_delete",
             metadata=_meta(bucket="b", s3_key="tmp.wav"), created_at=at),
        cost(user_id="bob", tier="pro", event_type="ses_email", service="ses", quantity=3,
             unit="emails", created_at=at),
        cost(user_id="bob", tier="pro", event_type="sqs_message", service="sqs", quantity=12,
             unit="messages", metadata=_meta(operation="SendMessageBatch"), created_at=at),
        cost(user_id="cy", tier="enterprise", event_type="lambda_invocation", service="lambda",
             unit="requests", metadata=_meta(duration_seconds=1.5, memory_mb=512), created_at=at),
        # A cost event without a user: unattributed.
        cost(event_type="ses_email", service="ses", quantity=7, unit="emails", created_at=at),
        cost(service="s3_get", created_at=at),
    ]  # fmt: skip


async def _live(redis: Redis, key: str) -> Decimal:
    return Decimal((await LiveCounters(redis).read(key))["cost_nusd"]) * NANO


async def test_live_counters_equal_the_rollup_per_global_tier_and_user(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis, gateway: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = _mix(now)
    result = await telemetry.ingestor.store(events)
    assert (result.accepted, result.rejections) == (len(events), ())
    day = now.date()
    rolled = await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=PRICING)
    tolerance = Decimal("1e-8") * len(events)

    g = await db.fetchrow("SELECT * FROM cost_global_daily WHERE date = $1", day)
    assert g is not None
    assert abs(await _live(redis_client, global_key(day)) - g["cost_usd"]) <= tolerance
    breakdown = g["tier_breakdown_json"]
    assert set(breakdown) == {"free", "pro", "enterprise", UNATTRIBUTED}
    for tier, figures in breakdown.items():
        live = await _live(redis_client, tier_key(day, tier))
        assert abs(live - Decimal(figures["cost_usd"])) <= tolerance, tier
    users = await db.fetch(
        "SELECT user_id, tier, cost_usd FROM cost_user_daily WHERE date = $1", day
    )
    assert {u["user_id"] for u in users} == {"ann", "bob", "cy"}
    for user in users:
        live = await _live(redis_client, user_key(day, user["user_id"]))
        assert abs(live - user["cost_usd"]) <= tolerance, user["user_id"]
    # Users grouped by their tier, plus the unattributed events, are the breakdown.
    for tier in ("free", "pro", "enterprise"):
        grouped = sum((u["cost_usd"] for u in users if u["tier"] == tier), Decimal(0))
        assert abs(grouped - Decimal(breakdown[tier]["cost_usd"])) <= tolerance, tier
    assert Decimal(breakdown[UNATTRIBUTED]["cost_usd"]) > 0

    # gpt-4o at its own price ($2.50 / $1.25 cached / $10 per 1M tokens), live as stored.
    gpt4o = (6_000 * Decimal("2.5") + 4_000 * Decimal("1.25") + 1_500 * Decimal(10)) / MILLION
    stored = await db.fetchval(
        "SELECT cost_usd FROM telemetry_llm_events WHERE llm_model = 'gpt-4o'"
    )
    assert stored == gpt4o
    # Every call has a price; none is $0 without a flag saying why.
    unflagged = await db.fetchval(
        "SELECT count(*) FROM telemetry_llm_events "
        "WHERE cost_usd = 0 AND NOT cache_hit AND unpriced_reason IS NULL"
    )
    assert unflagged == 0
    # Past 200k input tokens every gemini-2.5-pro token costs more: $2.50 in, $15 out per 1M.
    long_prompt = await db.fetchval(
        "SELECT cost_usd FROM telemetry_llm_events WHERE llm_model = 'gemini-2.5-pro'"
    )
    assert long_prompt == (250_000 * Decimal("2.5") + 2_000 * Decimal(15)) / MILLION
    # The call without usage, at its estimate: gpt-4o-mini at $0.15 / $0.60 per 1M tokens.
    assert g["estimated_events"] == 1
    assert g["estimated_cost_usd"] == (900 * Decimal("0.15") + 50 * Decimal("0.6")) / MILLION
    assert rolled.cost_usd == g["cost_usd"]
    # A GiB held one minute: $0.023 per GiB-month of 30 days.
    minute = Decimal("0.023") * 60 / 2_592_000
    storage = Decimal(g["cost_by_service_json"]["s3_storage"])
    held = Decimal("0.023") * 5 / 1024 * 12 * 3600 / 2_592_000 + minute
    assert abs(storage - held) <= Decimal("1e-8")

    # The gateway: today's figure is the caps figure, and the rollup's, to the same price.
    posted = await gateway.post(
        "/api/admin/cost/budgets",
        headers=AS_ADMIN,
        json={"apply_scope": "global", "daily_cost_usd_cap": "1000"},
    )
    assert posted.status_code == 200, posted.text
    summary = (await gateway.get("/api/admin/cost/summary?days=7", headers=AS_ADMIN)).json()
    (cap,) = [c for c in summary["today"]["caps"] if c["metric"] == "cost_usd"]
    assert Decimal(cap["used"]) == Decimal(summary["today"]["cost_usd"])
    today_point = summary["sparklines"]["cost_usd"][-1]
    assert today_point["date"] == day.isoformat()
    assert abs(Decimal(today_point["value"]) - Decimal(cap["used"])) <= tolerance
    assert summary["estimated"]["events"] == 1


async def test_a_user_who_changes_tier_counts_under_their_latest_tier_everywhere(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis
) -> None:
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    day = noon.date()
    early, late = ts(noon - timedelta(hours=2)), ts(noon + timedelta(hours=2))
    # The later event arrives first: the tier follows event time, not arrival.
    await telemetry.ingestor.store([job(user_id="dee", tier="pro", cpu_ms=3_000, created_at=late)])
    await telemetry.ingestor.store(
        [
            job(user_id="dee", tier="free", cpu_ms=1_000, created_at=early),
            llm(user_id="dee", tier="free", input_tokens=500, output_tokens=50, created_at=early),
            job(user_id="eve", tier="free", cpu_ms=10, created_at=early),
        ]
    )
    counters = LiveCounters(redis_client)
    pro = await counters.read(tier_key(day, "pro"))
    free = await counters.read(tier_key(day, "free"))
    dee = await counters.read(user_key(day, "dee"))
    assert (pro["jobs"], pro["ai_calls"], pro["cpu_ms"]) == (2, 1, 4_000)
    assert pro["cost_nusd"] == dee["cost_nusd"]
    assert (free["jobs"], free["cpu_ms"]) == (1, 10)

    # A later event under another tier moves everything counted so far.
    await telemetry.ingestor.store(
        [job(user_id="dee", tier="enterprise", cpu_ms=1, created_at=ts(noon + timedelta(hours=3)))]
    )
    enterprise = await counters.read(tier_key(day, "enterprise"))
    assert (enterprise["jobs"], enterprise["cpu_ms"]) == (3, 4_001)
    assert (await counters.read(tier_key(day, "pro")))["jobs"] == 0

    await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=PRICING)
    dee_row = await db.fetchrow(
        "SELECT tier, jobs, cost_usd FROM cost_user_daily WHERE user_id = 'dee' AND date = $1",
        day,
    )
    assert dee_row is not None
    assert (dee_row["tier"], dee_row["jobs"]) == ("enterprise", 3)
    breakdown = await db.fetchval(
        "SELECT tier_breakdown_json FROM cost_global_daily WHERE date = $1", day
    )
    assert set(breakdown) == {"enterprise", "free"}
    assert breakdown["enterprise"]["jobs"] == 3
    assert Decimal(breakdown["enterprise"]["cost_usd"]) == dee_row["cost_usd"]
    assert Decimal(enterprise["cost_nusd"]) * NANO == dee_row["cost_usd"]

    # The rebuild from Postgres gives the same counters.
    before = {t: await counters.read(tier_key(day, t)) for t in ("free", "pro", "enterprise")}
    await redis_client.flushdb()
    assert await telemetry.reconciler.rebuild_today(wait=True)
    after = {t: await counters.read(tier_key(day, t)) for t in ("free", "pro", "enterprise")}
    assert after == before
    assert await redis_client.hget(user_key(day, "dee"), "tier") == "enterprise"


async def test_a_reprice_of_today_re_derives_the_counters(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis
) -> None:
    telemetry.reconciler.start()
    await telemetry.reconciler.listening.wait()
    await telemetry.reconciler.wait_for_passes(1)  # then it is idle until told to rebuild
    now = datetime.now(UTC)
    day = now.date()
    await telemetry.ingestor.store(
        [cost(user_id="fay", tier="pro", event_type="ses_email", service="ses", quantity=1000,
              unit="emails", created_at=ts(now))]
    )  # fmt: skip
    counters = LiveCounters(redis_client)
    assert await _live(redis_client, global_key(day)) == Decimal("0.1")  # $0.10 per 1,000
    dearer = Pricing(PRICING.seed, AwsPrices.from_env({"COST_AWS_SES_PER_1K_EMAILS": "0.25"}))
    repriced = await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=dearer, reprice=True)
    assert repriced.cost_usd == Decimal("0.25")
    await telemetry.reconciler.wait_for_passes(2)  # the rebuild the reprice asked for
    assert (await counters.read(user_key(day, "fay")))["cost_nusd"] == 250_000_000
    # And what arrives after the reprice is priced with the new sheet.
    await telemetry.ingestor.store(
        [cost(user_id="fay", tier="pro", event_type="ses_email", service="ses", quantity=1000,
              unit="emails", created_at=ts(now))]
    )  # fmt: skip
    assert await _live(redis_client, global_key(day)) == Decimal("0.5")


async def test_a_reprice_cut_short_after_its_switch_is_finished_by_the_next_rollup(
    telemetry: Telemetry, db: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    day = now.date()
    await telemetry.ingestor.store(
        [cost(user_id="gil", tier="pro", event_type="ses_email", service="ses", quantity=1000,
              unit="emails", created_at=ts(now))]
    )  # fmt: skip
    dearer = Pricing(PRICING.seed, AwsPrices.from_env({"COST_AWS_SES_PER_1K_EMAILS": "0.25"}))
    sheets = DaySheets(seed=dearer.seed, aws=dearer.aws, tz=UTC_ZONE)
    async with db.acquire() as conn:
        await sheets.replace(conn, day, set())  # the switch commits; the reprice dies here
    # What is stored from now on is priced with the new sheet already.
    await telemetry.ingestor.store(
        [cost(user_id="gil", tier="pro", event_type="ses_email", service="ses", quantity=1000,
              unit="emails", created_at=ts(now))]
    )  # fmt: skip
    prices = [r["cost_usd"] for r in await db.fetch("SELECT cost_usd FROM cost_events ORDER BY id")]
    assert prices == [Decimal("0.1"), Decimal("0.25")]
    # A plain rollup (the old prices in its environment) finishes the reprice.
    rolled = await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=PRICING)
    assert rolled.cost_usd == Decimal("0.5")
    assert not await db.fetchval(
        "SELECT reprice_pending FROM price_sheet_days WHERE date = $1", day
    )


async def test_a_quantity_is_priced_as_it_is_stored_to_six_places(
    telemetry: Telemetry, db: asyncpg.Pool, redis_client: Redis
) -> None:
    now = datetime.now(UTC)
    day = now.date()
    sent = [2.0000004, 0.0000005, 0.0000004, 1e-12, 123.4567895]
    result = await telemetry.ingestor.store(
        [cost(user_id="hal", tier="pro", event_type="ses_email", service="ses", quantity=q,
              unit="emails", created_at=ts(now)) for q in sent]
    )  # fmt: skip
    assert result.accepted == len(sent)
    rows = await db.fetch("SELECT quantity, cost_usd FROM cost_events ORDER BY id")
    stored = [Decimal(x) for x in ("2.000000", "0.000001", "0.000000", "0.000000", "123.456790")]
    assert [r["quantity"] for r in rows] == stored
    per_email = PRICING.aws.ses_per_1k_emails / 1000
    # priced at what is stored, not at the double sent (2.0000004 emails was $0.00020000004)
    assert [r["cost_usd"] for r in rows] == [q * per_email for q in stored]
    rolled = await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=PRICING)
    assert rolled.cost_usd == sum(stored) * per_email
    assert await _live(redis_client, user_key(day, "hal")) == round(rolled.cost_usd, 9)
