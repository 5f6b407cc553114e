"""Money the gateway shows: summed exactly from the stored days, rounded once.

Events go through the real telemetry service (gRPC) and the real rollup; the figures are
read back through the routes. The amount is half a unit of the 8th place, the worst case
for rounding early: an ``ai_api_call``/``gemini_text`` call of ``gemini-2.0-flash`` (at
provider google, genai-prices: $0.10 per 1M input tokens, $0.025 per 1M cached) with 2
input tokens of which 1 cached costs $0.0000001 + $0.000000025 = $0.000000125.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, Inexact
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc import aio
from starlette.applications import Starlette

from costguard.common.money import EXACT_DIGITS, exact_sum
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.money import mean_usd, usd
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.events import batch, cost, ts

ADMIN = "money-admin-token"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
HALF = Decimal("0.000000125")
JUNE_3 = datetime(2025, 6, 3, 12, tzinfo=UTC)
JUNE_4 = datetime(2025, 6, 4, 12, tzinfo=UTC)


@pytest.fixture
async def gateway_app(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Starlette]:
    env = {**service_env, "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}"}
    app = create_app(GatewayConfig.from_env(env))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def gateway(gateway_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def _half_unit_call(at: datetime, episode: str = "ep-half") -> telemetry_pb2.TelemetryEvent:
    metadata = Struct()
    metadata.update(
        {"model": "gemini-2.0-flash", "input_tokens": 2, "cached_input_tokens": 1,
         "output_tokens": 0, "operation": "generateText"}
    )  # fmt: skip
    return cost(
        event_type="ai_api_call", service="gemini_text", quantity=2, unit="tokens",
        metadata=metadata, episode_id=episode, podcast_id="pod-half", created_at=ts(at),
        user_id="u-half", tier="pro",
    )  # fmt: skip


async def _recorded_and_rolled_up(telemetry_addr: str, db: asyncpg.Pool, *days: datetime) -> None:
    """One half-unit call on each of ``days``, through the telemetry service, rolled up."""
    async with aio.insecure_channel(telemetry_addr) as channel:
        reply = await telemetry_pb2_grpc.TelemetryServiceStub(channel).Record(
            batch(*(_half_unit_call(day) for day in days))
        )
    assert (reply.accepted, reply.rejected) == (len(days), 0)
    for day in sorted({d.date() for d in days}):
        await rollup_costs_for_date(db, day, tz=ZoneInfo("UTC"), pricing=PRICING)


async def _get(gateway: httpx.AsyncClient, path: str) -> dict[str, Any]:
    reply = await gateway.get(path, headers=AS_ADMIN)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_two_days_of_half_a_unit_total_a_unit_in_every_figure(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, telemetry_addr: str
) -> None:
    await _recorded_and_rolled_up(telemetry_addr, db, JUNE_3, JUNE_4)

    # Stored exact: each day is half a unit, and what adds the days up is one unit.
    days = await db.fetch("SELECT date, cost_usd FROM cost_global_daily ORDER BY date")
    assert [(r["date"], r["cost_usd"]) for r in days] == [
        (JUNE_3.date(), HALF),
        (JUNE_4.date(), HALF),
    ]
    month = await db.fetchval(
        "SELECT cost_usd FROM cost_monthly_summary WHERE year = 2025 AND month = 6"
    )
    assert month == 2 * HALF
    entities = {
        (r["entity_type"], r["entity_id"]): r["total_cost_usd"]
        for r in await db.fetch("SELECT * FROM entity_costs")
    }
    assert entities == {("episode", "ep-half"): 2 * HALF, ("podcast", "pod-half"): 2 * HALF}

    # Shown rounded once: 0.00000025, where rounding each day first would say 0.00000026.
    unit = "0.00000025"
    daily = await _get(gateway, "/api/admin/cost/daily?from=2025-06-01&to=2025-06-30")
    assert [d["cost_usd"] for d in daily["days"]] == ["0.00000013", "0.00000013"]
    assert daily["totals"]["cost_usd"] == unit
    one = await _get(gateway, "/api/admin/cost/monthly?year=2025&month=6")
    assert (one["cost_usd"], one["cost_by_service"], one["podcast_breakdown"]) == (
        unit,
        {"gemini_text": unit},
        {"pod-half": unit},
    )
    year = await _get(gateway, "/api/admin/cost/monthly?year=2025")
    assert (year["totals"]["cost_usd"], year["totals"]["podcast_breakdown"]) == (
        unit,
        {"pod-half": unit},
    )
    episode = await _get(gateway, "/api/admin/cost/episodes/ep-half")
    assert (episode["total_cost_usd"], episode["cost_by_category"]) == (unit, {"ai": unit})
    podcast = await _get(gateway, "/api/admin/cost/podcasts/pod-half/episodes")
    assert {
        k: podcast[k] for k in ("total_cost_usd", "average_cost_usd", "max_cost_usd", "ai_cost_usd")
    } == dict.fromkeys(("total_cost_usd", "average_cost_usd", "max_cost_usd", "ai_cost_usd"), unit)
    assert [(e["total_cost_usd"], e["ai_cost_usd"]) for e in podcast["episodes"]] == [(unit, unit)]


async def test_a_window_of_days_and_its_top_users_are_summed_before_rounding(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, telemetry_addr: str
) -> None:
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    await _recorded_and_rolled_up(
        telemetry_addr, db, noon - timedelta(days=2), noon - timedelta(days=3)
    )
    summary = await _get(gateway, "/api/admin/cost/summary?days=7")
    assert summary["cards"]["cost_usd"] == "0.00000025"
    assert [p["value"] for p in summary["sparklines"]["cost_usd"]].count("0.00000013") == 2
    users = await _get(gateway, "/api/admin/cost/users?days=7")
    assert [(u["user_id"], u["cost_usd"]) for u in users["users"]] == [("u-half", "0.00000025")]


async def test_a_single_stored_day_is_shown_rounded_once_half_away_from_zero(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, telemetry_addr: str
) -> None:
    await _recorded_and_rolled_up(telemetry_addr, db, JUNE_3)
    assert await db.fetchval("SELECT cost_usd FROM cost_global_daily") == HALF  # stored exact
    shown = "0.00000013"
    daily = await _get(gateway, "/api/admin/cost/daily?from=2025-06-03&to=2025-06-03")
    assert (daily["days"][0]["cost_usd"], daily["totals"]["cost_usd"]) == (shown, shown)
    assert daily["days"][0]["cost_by_service_json"] == {"gemini_text": shown}
    assert daily["days"][0]["tier_breakdown_json"]["pro"]["cost_usd"] == shown
    month = await _get(gateway, "/api/admin/cost/monthly?year=2025&month=6")
    assert (month["cost_usd"], month["podcast_breakdown"]) == (shown, {"pod-half": shown})
    episode = await _get(gateway, "/api/admin/cost/episodes/ep-half")
    assert (episode["total_cost_usd"], episode["cost_by_service"]) == (
        shown,
        {"gemini_text": shown},
    )
    podcast = await _get(gateway, "/api/admin/cost/podcasts/pod-half/episodes")
    assert (podcast["total_cost_usd"], podcast["average_cost_usd"]) == (shown, shown)


def test_the_shown_figure_is_rounded_half_away_from_zero_and_zero_is_0() -> None:
    assert usd(Decimal("0.000000125")) == "0.00000013"
    assert usd(Decimal("0.000000124999")) == "0.00000012"
    assert usd(Decimal("-0.000000125")) == "-0.00000013"
    assert usd(Decimal("2.5")) == "2.50000000"
    assert usd(Decimal("0.000000004")) == usd(0) == usd(None) == "0"
    assert usd(Decimal("12345678901234567890.123456785")) == "12345678901234567890.12345679"
    # The mean of exact totals, rounded once from the quotient: 0.00000025 / 3.
    assert mean_usd(Decimal("0.00000025"), 3) == "0.00000008"
    assert mean_usd(Decimal("0.000000375"), 3) == "0.00000013"
    assert mean_usd(Decimal(0), 0) == "0"


def test_sums_of_stored_figures_keep_every_digit() -> None:
    # A day's exact sum can carry 24 places (S3 storage per byte): 29 digits here, beyond
    # the 28 that Python's default context keeps.
    days = [Decimal("12345.678901234567890123456781"), Decimal("0.000000000000000000000001")]
    exact = Decimal("12345.678901234567890123456782")
    assert sum(days, Decimal(0)) != exact  # what a plain sum would have stored
    assert exact_sum(days) == exact
    with pytest.raises(Inexact):
        # never rounds silently, even past the digits it keeps
        exact_sum([Decimal(10) ** EXACT_DIGITS, Decimal("0.1")])
