"""``rollup_costs_for_date``: one local day of raw events into every cost table.

One transaction per date, all in Postgres: the raw events are priced and grouped once
into a temporary table, from which the per-user and global rows, the per-entity daily
costs (and the entity totals they add up to) and the month's summary are upserted. It is
idempotent: rows a re-run would not produce are deleted. One rollup runs at a time (a
session advisory lock), so two rollups of the same date never overlap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.days import day_bounds
from costguard.common.pricing import (
    EVENT_RATE_COLUMNS,
    LLM_RATE_COLUMNS,
    OVERLAY_RATE_COLUMNS,
    AwsPrices,
    SeedPrices,
    event_rate_rows,
    llm_rate_rows,
    overlay_rate_rows,
)
from costguard.rollup import metrics, sql
from costguard.rollup.sheets import sheet_for_date

log = logging.getLogger(__name__)

# Held by a rollup for a whole date, and by each retention batch (``retention``).
ROLLUP_LOCK = 7_310_000_003


@dataclass(frozen=True)
class DateRollup:
    date: date
    users: int
    events: int
    cost_usd: Decimal
    price_sheet_id: int
    seconds: float
    previous_cost_usd: Decimal | None = None  # before this run: a reprice reports the change


@dataclass(frozen=True)
class Pricing:
    seed: SeedPrices
    aws: AwsPrices


def _month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


async def rollup_costs_for_date(
    pool: asyncpg.Pool, day: date, *, tz: ZoneInfo, pricing: Pricing, reprice: bool = False
) -> DateRollup:
    """Aggregate ``day`` (local to ``tz``) into the cost tables; see the module docstring."""
    started = time.perf_counter()
    bounds = day_bounds(day, tz)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK)
        try:
            async with conn.transaction():
                # First: an event committed from here on marks the date dirty again.
                await conn.execute("DELETE FROM rollup_dirty_dates WHERE date = $1", day)
                previous = await conn.fetchval(
                    "SELECT cost_usd FROM cost_global_daily WHERE date = $1", day
                )
                sheet, sheet_id = await sheet_for_date(
                    conn, day, bounds, seed=pricing.seed, aws=pricing.aws, reprice=reprice
                )
                await conn.execute(sql.SESSION_SETTINGS)
                await conn.execute(sql.CREATE_RATE_TABLES)
                await conn.copy_records_to_table(
                    "rollup_llm_rates", records=llm_rate_rows(sheet), columns=LLM_RATE_COLUMNS
                )
                await conn.copy_records_to_table(
                    "rollup_event_rates",
                    records=event_rate_rows(sheet),
                    columns=EVENT_RATE_COLUMNS,
                )
                await conn.copy_records_to_table(
                    "rollup_overlay_rates",
                    records=overlay_rate_rows(sheet),
                    columns=OVERLAY_RATE_COLUMNS,
                )
                await conn.execute(
                    sql.GROUP_EVENTS,
                    *bounds,
                    sheet.seed.cpu_ms,
                    sheet.seed.db_row_1k,
                    sheet.aws.s3_storage_per_byte_second,
                )
                await conn.execute(sql.UPSERT_USERS, day, sheet_id)
                await conn.execute(sql.DELETE_STALE_USERS, day)
                totals = await conn.fetchrow(sql.UPSERT_GLOBAL, day, sheet_id)
                await conn.execute(sql.UPSERT_ENTITY_DAYS, day, sheet_id)
                stale = await conn.fetch(sql.DELETE_STALE_ENTITY_DAYS, day)
                touched = await conn.fetch(sql.TOUCHED_ENTITIES)
                entities = {(r["entity_type"], r["entity_id"]) for r in [*stale, *touched]}
                await conn.execute(
                    sql.REFRESH_ENTITIES, [t for t, _ in entities], [i for _, i in entities]
                )
                await conn.execute(sql.UPSERT_MONTH, day, *_month_bounds(day))
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK)
    assert totals is not None
    result = DateRollup(
        date=day,
        users=totals["users"],
        events=totals["events"],
        cost_usd=totals["cost_usd"],
        price_sheet_id=sheet_id,
        seconds=time.perf_counter() - started,
        previous_cost_usd=previous,
    )
    metrics.DATE_SECONDS.observe(result.seconds)
    log.info(
        "rolled up",
        extra={
            "date": day.isoformat(),
            "events": result.events,
            "cost_usd": str(result.cost_usd),
            "seconds": round(result.seconds, 3),
        },
    )
    return result
