"""rollup_costs_for_date: exact, reproducible, idempotent, DST-safe, per entity."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costguard.common.pricing import (
    AwsPrices,
    PriceChange,
    PriceSheet,
    SeedPrices,
    default_overlay,
    price_changes,
)
from costguard.rollup.rollup import Pricing, rollup_costs_for_date

UTC_ZONE = ZoneInfo("UTC")
PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
DAY = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def job(
    db: asyncpg.Pool, user: str, tier: str, cpu_ms: int, at: datetime = NOON, **more: Any
) -> None:
    await db.execute(
        "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, "
        "rows_read, rows_written, success, started_at, created_at, episode_id, podcast_id) "
        "VALUES ($1, 'j', $2, $3, 'audio', $4, $5, $6, true, $7, $7, $8, $9)",
        uuid.uuid4(), user, tier, cpu_ms, more.get("rows_read", 0), more.get("rows_written", 0), at,
        more.get("episode_id"), more.get("podcast_id"),
    )  # fmt: skip


async def llm(
    db: asyncpg.Pool, user: str, tier: str, model: str, tokens: tuple[int, int, int], **more: Any
) -> None:
    inp, cached, out = tokens
    at = more.get("at", NOON)
    await db.execute(
        "INSERT INTO telemetry_llm_events (event_id, user_id, tier, llm_model, context_type, "
        "input_tokens, cached_input_tokens, output_tokens, cache_hit, created_at, episode_id, "
        "podcast_id) VALUES ($1, $2, $3, $4, 'insight', $5, $6, $7, $8, $9, $10, $11)",
        uuid.uuid4(), user, tier, model, inp, cached, out, more.get("cache_hit", False), at,
        more.get("episode_id"), more.get("podcast_id"),
    )  # fmt: skip


async def cloud(
    db: asyncpg.Pool, event_type: str, service: str, quantity: str, unit: str, **more: Any
) -> None:
    await db.execute(
        "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, metadata, "
        "user_id, tier, episode_id, podcast_id, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        uuid.uuid4(), event_type, service, Decimal(quantity), unit, more.get("metadata", {}),
        more.get("user_id"), more.get("tier"), more.get("episode_id"), more.get("podcast_id"), NOON,
    )  # fmt: skip


async def rollup(db: asyncpg.Pool, day: date = DAY, tz: ZoneInfo = UTC_ZONE, **kw: Any) -> Any:
    return await rollup_costs_for_date(db, day, tz=tz, pricing=PRICING, **kw)


async def test_rollup_aggregates_synthetic_events_as_computed_by_hand(db: asyncpg.Pool) -> None:
    await job(db, "u1", "free", 1000, rows_read=1500, rows_written=500)
    await job(db, "u1", "free", 0, at=NOON + timedelta(hours=1))
    await llm(db, "u1", "pro", "house-model", (1000, 0, 200), at=NOON + timedelta(hours=2))
    await job(db, "u2", "pro", 500)
    await llm(db, "u2", "pro", "house-model", (999, 0, 999), cache_hit=True)
    await job(db, "u3", "free", 7, at=NOON - timedelta(days=1))  # another day
    result = await rollup(db)

    # By hand from the seed constants (2e-8 $/cpu ms, 0.0005 $/1k rows, 1.5e-7 and 6e-7 $/token):
    u1_jobs = Decimal(1000) * Decimal("0.00000002") + Decimal(2000) / 1000 * Decimal("0.0005")
    u1_llm = 1000 * Decimal("0.00000015") + 200 * Decimal("0.0000006")  # unknown model
    u2 = Decimal(500) * Decimal("0.00000002")  # its cache hit costs nothing
    users = {
        r["user_id"]: r
        for r in await db.fetch("SELECT * FROM cost_user_daily WHERE date = $1", DAY)
    }
    assert set(users) == {"u1", "u2"}
    u1 = users["u1"]
    figures = ("tier", "jobs", "ai_calls", "cpu_ms", "tokens_in", "tokens_out")
    assert tuple(u1[f] for f in figures) == ("pro", 2, 1, 1000, 1000, 200)
    assert u1["cost_usd"] == u1_jobs + u1_llm
    assert (users["u2"]["ai_calls"], users["u2"]["cost_usd"]) == (1, u2)

    g = await db.fetchrow("SELECT * FROM cost_global_daily WHERE date = $1", DAY)
    assert g is not None
    assert (g["jobs"], g["ai_calls"], g["cpu_ms"], g["events"]) == (3, 2, 1500, 5)
    assert g["cost_usd"] == u1_jobs + u1_llm + u2 == result.cost_usd
    # u1's day counts under their latest event's tier (pro), free jobs included: the
    # breakdown is the users grouped by their tier.
    assert set(g["tier_breakdown_json"]) == {"pro"}
    assert g["tier_breakdown_json"]["pro"]["jobs"] == 3
    assert Decimal(g["tier_breakdown_json"]["pro"]["cost_usd"]) == u1_jobs + u1_llm + u2
    assert Decimal(g["unpriced_cost_usd"]) == u1_llm
    assert g["unpriced_json"] == {
        "llm:openai/house-model": {
            "cost_usd": str(u1_llm.quantize(Decimal("0.00000001"))),
            "events": 1,  # its cache hit cost nothing, so is not flagged
            "reason": "model unknown to the price library: billed at the seed constants",
        }
    }


async def test_per_model_price_with_cached_tokens_matches_the_library(db: asyncpg.Pool) -> None:
    await llm(db, "u1", "pro", "gpt-4o", (10_000, 4_000, 1_500))
    await rollup(db)
    expected = calc_price(
        Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=1_500),
        model_ref="gpt-4o", provider_id="openai", genai_request_timestamp=NOON,
    ).total_price  # fmt: skip
    g = await db.fetchrow(
        "SELECT cost_usd, unpriced_json FROM cost_global_daily WHERE date = $1", DAY
    )
    assert g is not None
    assert g["cost_usd"] == round(expected, 8)
    assert g["unpriced_json"] == {}


async def _snapshot(db: asyncpg.Pool) -> list[Any]:
    tables = (
        "cost_user_daily",
        "cost_global_daily",
        "entity_costs_daily",
        "entity_costs",
        "cost_monthly_summary",
    )
    out = []
    for table in tables:
        rows = await db.fetch(f"SELECT * FROM {table}")
        moving = ("updated_at", "calculated_at")
        out.append(
            sorted(tuple((k, v) for k, v in dict(r).items() if k not in moving) for r in rows)
        )
    return out


async def test_rolling_up_twice_gives_identical_rows(db: asyncpg.Pool) -> None:
    await job(db, "u1", "free", 1000, episode_id="ep1", podcast_id="pod1")
    await llm(db, "u2", "pro", "gpt-4o-mini", (500, 100, 50), podcast_id="pod1")
    await cloud(db, "ses_email", "ses", "3", "emails", episode_id="ep1", podcast_id="pod1")
    await cloud(db, "ai_api_call", "gemini_txt", "10", "tokens", episode_id="ep1")  # unpriced
    await rollup(db)
    first = await _snapshot(db)
    await rollup(db)
    assert await _snapshot(db) == first
    assert all(first)


async def test_a_re_run_keeps_the_prices_it_used_and_a_reprice_reports_the_change(
    db: asyncpg.Pool,
) -> None:
    await cloud(db, "ses_email", "ses", "1000", "emails", user_id="u1", tier="pro")
    first = await rollup(db)
    assert first.cost_usd == Decimal("0.1")  # $0.10 per 1,000 emails
    dearer = Pricing(PRICING.seed, AwsPrices.from_env({"COST_AWS_SES_PER_1K_EMAILS": "0.25"}))
    again = await rollup_costs_for_date(db, DAY, tz=UTC_ZONE, pricing=dearer)
    assert (again.cost_usd, again.price_sheet_id) == (first.cost_usd, first.price_sheet_id)
    repriced = await rollup_costs_for_date(db, DAY, tz=UTC_ZONE, pricing=dearer, reprice=True)
    assert (repriced.previous_cost_usd, repriced.cost_usd) == (Decimal("0.1"), Decimal("0.25"))
    assert repriced.price_sheet_id != first.price_sheet_id


async def test_a_day_across_a_dst_change_in_a_local_zone(db: asyncpg.Pool) -> None:
    new_york = ZoneInfo("America/New_York")
    spring = date(2026, 3, 8)  # clocks go forward: a 23-hour day
    inside = [
        datetime(2026, 3, 8, 0, 30, tzinfo=new_york),
        datetime(2026, 3, 8, 23, 30, tzinfo=new_york),
    ]
    outside = [
        datetime(2026, 3, 7, 23, 30, tzinfo=new_york),
        datetime(2026, 3, 9, 0, 30, tzinfo=new_york),
    ]
    for at in inside + outside:
        await job(db, "u1", "free", 100 if at in inside else 1, at=at)
    result = await rollup(db, spring, new_york)
    assert result.events == 2
    assert await db.fetchval("SELECT cpu_ms FROM cost_global_daily WHERE date = $1", spring) == 200


async def test_an_episode_costs_the_sum_of_its_events_with_a_breakdown(db: asyncpg.Pool) -> None:
    await job(db, "u1", "pro", 2_000, episode_id="ep1", podcast_id="pod1")
    await llm(db, "u1", "pro", "gpt-4o-mini", (1_000, 0, 100), episode_id="ep1", podcast_id="pod1")
    await cloud(db, "s3_operation", "s3_put", "1", "requests", episode_id="ep1", podcast_id="pod1",
                metadata={"file_size_mb": 5})  # fmt: skip
    await cloud(db, "ses_email", "ses", "2", "emails", episode_id="ep2", podcast_id="pod1")
    await rollup(db)
    ep1 = await db.fetchrow(
        "SELECT * FROM entity_costs WHERE entity_type = 'episode' AND entity_id = 'ep1'"
    )
    assert ep1 is not None
    by_service = {k: Decimal(v) for k, v in ep1["cost_by_service"].items()}
    assert set(by_service) == {"compute", "openai", "s3_put"}
    assert sum(by_service.values()) == ep1["total_cost_usd"]
    assert {k: Decimal(v) for k, v in ep1["cost_by_category"].items()}.keys() == {
        "compute",
        "ai",
        "aws",
    }
    assert ep1["usage_metrics"]["tokens_in"] == 1000
    assert Decimal(str(ep1["usage_metrics"]["storage_mb"])) == 5
    ep2 = await db.fetchrow("SELECT * FROM entity_costs WHERE entity_id = 'ep2'")
    assert ep2 is not None
    assert Decimal(str(ep2["usage_metrics"]["emails"])) == 2
    pod = await db.fetchrow(
        "SELECT * FROM entity_costs WHERE entity_type = 'podcast' AND entity_id = 'pod1'"
    )
    assert pod is not None
    assert pod["total_cost_usd"] == ep1["total_cost_usd"] + ep2["total_cost_usd"]
    month = await db.fetchrow("SELECT * FROM cost_monthly_summary WHERE year = 2026 AND month = 11")
    assert month is not None
    assert Decimal(month["podcast_breakdown"]["pod1"]) == pod["total_cost_usd"]


EVENT = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["free", "pro"]),
    st.sampled_from(["job", "gpt-4o", "gpt-4o-mini", "mystery"]),
    st.integers(0, 50_000),
    st.integers(0, 5_000),
)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=1, max_size=25))
async def test_users_sum_to_global_which_is_the_sum_priced_event_by_event(
    db: asyncpg.Pool, events: list[tuple[str, str, str, int, int]]
) -> None:
    await db.execute(
        "TRUNCATE telemetry_job_events, telemetry_llm_events, cost_user_daily, cost_global_daily"
    )
    expected = Decimal(0)
    for user, tier, kind, a, b in events:
        if kind == "job":
            await job(db, user, tier, a, rows_read=b)
            expected += PRICING.seed.job_cost(a, b, 0)
        else:
            cached = min(b, a)
            await llm(db, user, tier, kind, (a, cached, b))
            if kind == "mystery":
                expected += PRICING.seed.llm_cost(a, b)
            else:
                expected += calc_price(
                    Usage(input_tokens=a, cache_read_tokens=cached, output_tokens=b),
                    model_ref=kind, provider_id="openai", genai_request_timestamp=NOON,
                ).total_price  # fmt: skip
    await rollup(db)
    users = await db.fetch("SELECT cost_usd FROM cost_user_daily WHERE date = $1", DAY)
    total = await db.fetchval("SELECT cost_usd FROM cost_global_daily WHERE date = $1", DAY)
    # Stored exact (rounded only where shown), so the users add up to the global total.
    assert total == expected
    assert sum(r["cost_usd"] for r in users) == total


async def test_rows_written_as_the_seed_writes_them_roll_up(db: asyncpg.Pool) -> None:
    """Only the seed's columns, its NULL-able counts left NULL: counted, never failing."""
    await db.execute(
        "INSERT INTO telemetry_job_events (job_id, job_type, user_id, tier, domain, started_at, "
        "cpu_ms, rows_read, rows_written, success) VALUES "
        "('bull-17', 'transcribe', 'seed-user', 'free', 'audio', $1, NULL, NULL, 2000, NULL)",
        NOON,
    )
    await db.execute(
        "INSERT INTO telemetry_llm_events (user_id, tier, llm_model, context_type, input_tokens, "
        "output_tokens, cache_hit, created_at) "
        "VALUES ('seed-user', 'free', 'gpt-4o-mini', 'insight', 1000, 100, NULL, $1)",
        NOON,
    )
    await rollup(db)
    row = await db.fetchrow("SELECT * FROM cost_user_daily WHERE user_id = 'seed-user'")
    assert row is not None
    assert (row["jobs"], row["ai_calls"], row["cpu_ms"], row["tokens_in"]) == (1, 1, 0, 1000)
    rows_cost = Decimal(2000) / 1000 * Decimal("0.0005")
    llm_cost = calc_price(
        Usage(input_tokens=1000, output_tokens=100),
        model_ref="gpt-4o-mini", provider_id="openai", genai_request_timestamp=NOON,
    ).total_price  # fmt: skip
    assert row["cost_usd"] == (rows_cost + llm_cost).quantize(Decimal("1e-8"))


async def test_a_date_kept_on_a_sheet_from_before_the_overlay_gains_the_overlay_only(
    db: asyncpg.Pool,
) -> None:
    # ... and loses the retired storage days, which priced every upload before storage was
    # priced by what is held.
    # The date was rolled up by the code before the overlay, with its version 1 sheet.
    stored = json.loads((Path(__file__).with_name("data") / "price_sheet_v1.json").read_text())
    old_id = await db.fetchval(
        "INSERT INTO price_sheets (digest, sheet) VALUES ($1, $2) RETURNING id",
        stored["digest"],
        stored,
    )
    await db.execute(
        "INSERT INTO price_sheet_days (date, price_sheet_id) VALUES ($1, $2)", DAY, old_id
    )
    await llm(db, "u1", "pro", "gpt-4o", (10_000, 4_000, 1_500))
    speech = {"model": "gemini-2.5-flash-preview-tts", "input_tokens": 400, "output_tokens": 12_000}
    await cloud(db, "ai_api_call", "gemini_tts", "12400", "tokens", metadata=speech)

    result = await rollup(db)
    # gpt-4o at the stored sheet's rates, $0.035 (tests/test_pricing.py), and the speech at
    # the overlay's $0.50 / $10 per 1M tokens
    assert result.cost_usd == Decimal("0.035") + 400 * Decimal("0.5e-6") + 12_000 * Decimal("1e-5")
    assert result.price_sheet_id != old_id
    old = PriceSheet.from_json(stored)
    new = PriceSheet.from_json(
        await db.fetchval("SELECT sheet FROM price_sheets WHERE id = $1", result.price_sheet_id)
    )
    assert (new.seed, new.llm) == (old.seed, old.llm)
    assert (old.aws.s3_storage_days, new.aws) == (
        Decimal(30),
        replace(old.aws, s3_storage_days=None),
    )
    assert new.overlay == default_overlay()
    changes = price_changes(old, new)
    assert {change.item.split(".")[0] for change in changes} == {"overlay", "aws"}
    assert [c for c in changes if c.item.startswith("aws.")] == [
        PriceChange("aws.s3_storage_days", "30", None)
    ]
    again = await rollup(db)
    assert (again.price_sheet_id, again.cost_usd) == (result.price_sheet_id, result.cost_usd)
