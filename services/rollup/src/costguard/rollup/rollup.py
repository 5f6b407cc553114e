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
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.counters import UNATTRIBUTED
from costguard.common.day_sheets import DaySheet, DaySheets, finish_reprice, reprice_pending
from costguard.common.days import day_bounds
from costguard.common.db import Connection
from costguard.common.event_ranges import MAXIMUM, SUMMED
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
from costguard.common.rebuild import REPRICED
from costguard.rollup import metrics, sql

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
    out_of_range: int = 0  # rows counted at the end of a range (costguard.common.event_ranges)


@dataclass(frozen=True)
class Pricing:
    seed: SeedPrices
    aws: AwsPrices


def _month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


async def rollup_costs_for_date(
    pool: asyncpg.Pool,
    day: date,
    *,
    tz: ZoneInfo,
    pricing: Pricing,
    reprice: bool = False,
    sheets: DaySheets | None = None,
) -> DateRollup:
    """Aggregate ``day`` (local to ``tz``) into the cost tables; see the module docstring.

    ``reprice`` puts a fresh sheet (today's library, overlay and environment) in force for
    the day and prices every event of the day again with it; otherwise the day keeps its
    sheet, and only rows stored without a price are priced, with it (or every row, when a
    reprice of the day did not finish).
    """
    started = time.perf_counter()
    bounds = day_bounds(day, tz)
    sheets = sheets or DaySheets(seed=pricing.seed, aws=pricing.aws, tz=tz)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK)
        try:
            # Every event is priced again after a reprice (this one, or one that did not finish);
            # otherwise only the rows stored without a price.
            again = reprice or await reprice_pending(conn, day)
            pricing_sql = sql.PRICE_ALL if again else sql.PRICE_PENDING
            models = {
                (r["model"], r["provider"]) for r in await conn.fetch(pricing_sql.models, *bounds)
            }
            if reprice:
                await sheets.replace(conn, day, models)
            in_force = await sheets.extend(conn, day, models)
            async with conn.transaction():
                # First: an event committed from here on marks the date dirty again.
                await conn.execute("DELETE FROM rollup_dirty_dates WHERE date = $1", day)
                previous = await conn.fetchval(
                    "SELECT cost_usd FROM cost_global_daily WHERE date = $1", day
                )
                await conn.execute(sql.SESSION_SETTINGS)
                await _price_events(conn, bounds, in_force, pricing_sql)
                await conn.execute(
                    sql.GROUP_EVENTS,
                    *bounds,
                    UNATTRIBUTED,
                    in_force.sheet.aws.s3_storage_per_byte_second,
                    *(MAXIMUM[name] for name in SUMMED),
                )
                out_of_range = int(await conn.fetchval(sql.OUT_OF_RANGE))
                sheet_id = in_force.sheet_id
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
                if again:
                    await finish_reprice(conn, day)
                    # Delivered at commit: telemetry rebuilds today's counters at the new
                    # prices (its reconciler listens).
                    await conn.execute("SELECT pg_notify($1, $2)", REPRICED, day.isoformat())
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK)
    assert totals is not None
    if out_of_range:
        log.warning(
            "rows outside the event ranges counted at their ends",
            extra={"date": day.isoformat(), "rows": out_of_range},
        )
    result = DateRollup(
        date=day,
        users=totals["users"],
        events=totals["events"],
        cost_usd=totals["cost_usd"],
        price_sheet_id=in_force.sheet_id,
        seconds=time.perf_counter() - started,
        previous_cost_usd=previous,
        out_of_range=out_of_range,
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


async def _price_events(
    conn: Connection, bounds: tuple[datetime, datetime], in_force: DaySheet, pricing: sql.Pricing
) -> None:
    """Price the day's rows stored without a price (every row, for a reprice) with the
    day's sheet, loaded into temporary tables for the length of the transaction."""
    sheet = in_force.sheet
    await conn.execute(sql.CREATE_RATE_TABLES)
    await conn.copy_records_to_table(
        "rollup_llm_rates", records=llm_rate_rows(sheet), columns=LLM_RATE_COLUMNS
    )
    await conn.copy_records_to_table(
        "rollup_event_rates", records=event_rate_rows(sheet), columns=EVENT_RATE_COLUMNS
    )
    await conn.copy_records_to_table(
        "rollup_overlay_rates", records=overlay_rate_rows(sheet), columns=OVERLAY_RATE_COLUMNS
    )
    common = (*bounds, in_force.sheet_id)
    await conn.execute(pricing.jobs, *common, sheet.seed.cpu_ms, sheet.seed.db_row_1k)
    await conn.execute(pricing.llm, *common)
    await conn.execute(pricing.cost_events, *common)
