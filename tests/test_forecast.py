"""The month forecast: month to date + the rest of the month at the last full days' pace.

The gateway runs with a fixed clock: 18:00 UTC on Friday 20 November 2026, a 30-day month,
so a quarter of today and 10 days after it remain: 10.25 days. Daily rows are written by
hand, as the rollup would write them, and read back through the summary route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import jsonschema
import pytest

from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.forecast import remaining_days
from costguard.gateway.openapi import document

ADMIN = "forecast-admin-token"
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
TODAY = NOW.date()


@pytest.fixture
async def gateway(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    env = {**service_env, "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}"}
    app = create_app(GatewayConfig.from_env(env), clock=lambda: NOW)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def _days(db: asyncpg.Pool, costs: dict[date, str]) -> None:
    await db.executemany(
        "INSERT INTO cost_global_daily (date, cost_usd, tier_breakdown_json) VALUES ($1, $2, $3)",
        [(day, Decimal(cost), {"pro": {"cost_usd": cost}}) for day, cost in costs.items()],
    )


async def _summary(gateway: httpx.AsyncClient) -> dict[str, Any]:
    reply = await gateway.get(
        "/api/admin/cost/summary?days=7", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    # What the OpenAPI document promises (schemathesis only ever sees empty tables).
    root = {"$ref": "#/components/schemas/Summary", "components": document()["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)
    return body


def _before(days: int) -> date:
    return TODAY - timedelta(days=days)


async def test_the_month_is_projected_at_the_last_7_full_days_average(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _days(
        db,
        {
            date(2026, 10, 31): "100",  # last month: in neither figure
            **{date(2026, 11, d): "2" for d in range(1, 13)},  # this month, before the 7
            **{_before(n): "1.03" for n in range(1, 8)},  # 13 to 19 November: the pace
            TODAY: "0.48",  # today so far, never averaged
        },
    )
    forecast = (await _summary(gateway))["forecast"]
    month_to_date = 12 * Decimal(2) + 7 * Decimal("1.03") + Decimal("0.48")
    assert month_to_date == Decimal("31.69")
    projected = month_to_date + Decimal("10.25") * Decimal("1.03")
    assert projected == Decimal("42.2475")
    assert forecast == {
        "month_to_date_cost_usd": "31.69000000",
        "month_projected_cost_usd": "42.24750000",
        "method": "month to date + 10.25 days x $1.0300/day, the average of the last 7 full days",
        "daily_average_usd": "1.03000000",
        "days_averaged": 7,
        "remaining_days": "10.2500",
    }
    # The old rule, month to date / 20 x 30, would have said 47.535: today's partial day
    # counted as a whole one.
    assert Decimal(forecast["month_projected_cost_usd"]) != month_to_date / 20 * 30


async def test_fewer_full_days_when_the_data_starts_later_and_the_method_says_so(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _days(db, {_before(3): "1", _before(2): "2", _before(1): "3", TODAY: "0.5"})
    forecast = (await _summary(gateway))["forecast"]
    assert (forecast["days_averaged"], forecast["daily_average_usd"]) == (3, "2.00000000")
    assert forecast["month_projected_cost_usd"] == f"{Decimal('6.5') + Decimal('10.25') * 2:.8f}"
    assert forecast["method"] == (
        "month to date + 10.25 days x $2.0000/day, "
        "the average of the 3 full days with data among the last 7"
    )


async def test_with_no_full_day_nothing_is_projected_beyond_the_month_to_date(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _days(db, {_before(8): "5", TODAY: "0.48"})  # 8 days ago: not among the 7
    summary = await _summary(gateway)
    assert summary["forecast"] == {
        "month_to_date_cost_usd": "5.48000000",
        "month_projected_cost_usd": "5.48000000",
        "method": "month to date only: no full day of data in the 7 days before today "
        "to project the remaining 10.25 days from",
        "daily_average_usd": None,
        "days_averaged": 0,
        "remaining_days": "10.2500",
    }
    assert summary["partial_date"] == TODAY.isoformat()
    assert summary["to"] == TODAY.isoformat()


def test_what_remains_of_a_23_hour_day_is_a_fraction_of_23_hours() -> None:
    new_york = ZoneInfo("America/New_York")
    noon = datetime(2026, 3, 8, 12, 0, tzinfo=new_york)  # clocks went forward at 02:00
    last_minute = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    with localcontext(Context(prec=80)):  # the precision the forecast divides at
        assert remaining_days(noon, new_york) == Decimal(12) / 23 + 23  # 9 to 31 March
        assert remaining_days(last_minute, ZoneInfo("UTC")) == Decimal(1) / 1440
