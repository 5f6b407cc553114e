"""``rollup_costs_for_date``: one local day of raw events into every cost table.

One transaction per date, all in Postgres: the raw events are priced and grouped once into
the day's groups (``rollup_day_groups``, see ``groups_sql``), from which the per-user and
global rows, the per-entity daily costs (and the entity totals they add up to) and the
month's summary are upserted. It is idempotent: rows a re-run would not produce are
deleted. One rollup runs at a time (a session advisory lock), so two rollups of the same
date never overlap.

A near-live refresh (``refresh=True``) reads only the events above the day's watermark
(``costguard.common.watermark``: no in-flight ingest is ever skipped), adds them to the
day's groups and derives again only the users and entities they touched, so it costs in
proportion to the events added, not to the day.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.counters import UNATTRIBUTED
from costguard.common.day_sheets import DaySheet, DaySheets, finish_reprice, reprice_pending
from costguard.common.days import day_bounds
from costguard.common.db import Connection
from costguard.common.event_ranges import MAXIMUM, SUMMED
from costguard.common.partitions import DayPartition
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
from costguard.common.watermark import Watermark, read_watermark
from costguard.rollup import groups_sql, metrics, sql

log = logging.getLogger(__name__)

# Held by a rollup for a whole date, and by each retention batch (``retention``).
ROLLUP_LOCK = 7_310_000_003
# A rollup that priced at least this many rows of a table analyzes the day's partition.
ANALYZE_AFTER_PRICED = 10_000


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
    incremental: bool = False  # a refresh that added the events above the watermark
    # Seconds each step took, in order (``Phases``): where a rollup's time goes.
    phases: tuple[tuple[str, float], ...] = ()


class Phases:
    """The seconds of each step of one rollup: ``done(name)`` ends the step begun by the
    previous one (or at creation)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: list[tuple[str, float]] = []

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds.append((name, now - self._last))
        self._last = now


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
    refresh: bool = False,
) -> DateRollup:
    """Aggregate ``day`` (local to ``tz``) into the cost tables; see the module docstring.

    ``reprice`` puts a fresh sheet (today's library, overlay and environment) in force for
    the day and prices every event of the day again with it; otherwise the day keeps its
    sheet, and only rows stored without a price are priced, with it (or every row, when a
    reprice of the day did not finish).

    ``refresh`` (near-live): when the day was rolled up before with the sheet still in
    force, only the events stored since (above the day's watermark) are grouped and added
    to its groups, and only the users and entities they touched are derived again; the
    result equals a full rollup. Otherwise the day is rolled up in full.
    """
    started = time.perf_counter()
    sheets = sheets or DaySheets(seed=pricing.seed, aws=pricing.aws, tz=tz)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK)
        try:
            # First: an event stored from here on marks the date dirty again. Taken before
            # the watermark is read, so every event the rollup leaves out (above it) marks
            # the date for the next one; a failed rollup puts the mark back.
            await conn.execute("DELETE FROM rollup_dirty_dates WHERE date = $1", day)
            try:
                phases = Phases()
                rolled = await _roll(
                    conn, day, tz, sheets, reprice=reprice, refresh=refresh, phases=phases
                )
            except BaseException:
                await _mark_dirty_again(pool, day)
                raise
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK)
    totals, previous, out_of_range, in_force, incremental = rolled
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
        incremental=incremental,
        phases=tuple(phases.seconds),
    )
    metrics.DATE_SECONDS.observe(result.seconds)
    log.info(
        "rolled up",
        extra={
            "date": day.isoformat(),
            "events": result.events,
            "cost_usd": str(result.cost_usd),
            "seconds": round(result.seconds, 3),
            "incremental": incremental,
            "phases": {name: round(seconds, 3) for name, seconds in result.phases},
        },
    )
    return result


_Rolled = tuple[asyncpg.Record, Decimal | None, int, DaySheet, bool]


async def _roll(
    conn: Connection,
    day: date,
    tz: ZoneInfo,
    sheets: DaySheets,
    *,
    reprice: bool,
    refresh: bool,
    phases: Phases,
) -> _Rolled:
    bounds = day_bounds(day, tz)
    watermark = await read_watermark(conn)
    # Every event is priced again after a reprice (this one, or one that did not finish);
    # otherwise only the rows stored without a price.
    again = reprice or await reprice_pending(conn, day)
    pricing_sql = sql.PRICE_ALL if again else sql.PRICE_PENDING
    models = {(r["model"], r["provider"]) for r in await conn.fetch(pricing_sql.models, *bounds)}
    if reprice:
        await sheets.replace(conn, day, models)
    in_force = await sheets.extend(conn, day, models)
    sheet_id = in_force.sheet_id
    reached = await conn.fetchrow(groups_sql.WATERMARK, day)
    incremental = (
        refresh
        and not again
        and reached is not None
        and reached["price_sheet_id"] == sheet_id
        # Ids only grow, unless the tables were emptied and restarted: then start afresh.
        and reached["job_event_id"] <= watermark.job
        and reached["llm_event_id"] <= watermark.llm
        and reached["cost_event_id"] <= watermark.cost
    )
    async with conn.transaction():
        previous = await conn.fetchval(
            "SELECT cost_usd FROM cost_global_daily WHERE date = $1", day
        )
        await conn.execute(sql.SESSION_SETTINGS)
        phases.done("sheet and watermark")
        priced = await _price_events(conn, bounds, in_force, pricing_sql)
        phases.done("price unpriced events")
        if incremental:
            assert reached is not None
            touched = await _add_new_events(
                conn, day, bounds=bounds, in_force=in_force, reached=reached, watermark=watermark
            )
            out_of_range = touched.out_of_range
        else:
            await _group_day(conn, day, bounds, in_force, watermark)
            touched = _Touched()
            out_of_range = int(await conn.fetchval(groups_sql.OUT_OF_RANGE, day))
        phases.done("group and merge new events" if incremental else "group events")
        if touched.users is None:
            totals, entities = await _derive_everyone(conn, day, sheet_id, phases)
        else:
            totals, entities = await _add_to_aggregates(conn, day, sheet_id, touched, phases)
        await conn.execute(sql.REFRESH_ENTITIES, [t for t, _ in entities], [i for _, i in entities])
        phases.done("entity totals")
        await conn.execute(sql.UPSERT_MONTH, day, *_month_bounds(day))
        await conn.execute(
            groups_sql.SET_WATERMARK, day, watermark.job, watermark.llm, watermark.cost, sheet_id
        )
        if again:
            await finish_reprice(conn, day)
            # Delivered at commit: telemetry rebuilds today's counters at the new
            # prices (its reconciler listens).
            await conn.execute("SELECT pg_notify($1, $2)", REPRICED, day.isoformat())
    phases.done("month and commit")
    await _analyze_priced(conn, day, priced)
    phases.done("statistics")
    assert totals is not None
    return totals, previous, out_of_range, in_force, incremental


@dataclass(frozen=True)
class _Touched:
    """Whom the new events of a refresh touched; None: everyone of the day is derived again
    from its groups (a full rollup, or a refresh that recomputed the day's storage)."""

    users: list[str] | None = None
    episodes: list[str] = field(default_factory=list)
    podcasts: list[str] = field(default_factory=list)
    # Entities whose uploads' size changed: derived again from their groups.
    uploading_episodes: list[str] = field(default_factory=list)
    uploading_podcasts: list[str] = field(default_factory=list)
    out_of_range: int = 0

    def entities(self) -> set[tuple[str, str]]:
        return {("episode", e) for e in self.episodes} | {("podcast", p) for p in self.podcasts}


_Entities = set[tuple[str, str]]


async def _derive_everyone(
    conn: Connection, day: date, sheet_id: int, phases: Phases
) -> tuple[asyncpg.Record, _Entities]:
    """Every aggregate of the day from its groups; rows of users and entities with none
    left are deleted."""
    await conn.execute(sql.UPSERT_USERS, day, sheet_id, None)
    await conn.execute(sql.DELETE_STALE_USERS, day)
    phases.done("users")
    totals = await conn.fetchrow(sql.UPSERT_GLOBAL, day, sheet_id)
    phases.done("global")
    await conn.execute(sql.UPSERT_ENTITY_DAYS, day, sheet_id, None, None)
    stale = await conn.fetch(sql.DELETE_STALE_ENTITY_DAYS, day)
    current = await conn.fetch(sql.TOUCHED_ENTITIES, day)
    phases.done("entity days")
    assert totals is not None
    return totals, {(r["entity_type"], r["entity_id"]) for r in [*stale, *current]}


async def _add_to_aggregates(
    conn: Connection, day: date, sheet_id: int, touched: _Touched, phases: Phases
) -> tuple[asyncpg.Record, _Entities]:
    """The new events (``rollup_delta``) added to the day's aggregates: the users they
    touched derived again from their groups, the global row and the entities' days added to."""
    await conn.execute(sql.UPSERT_USERS, day, sheet_id, touched.users)
    phases.done("users")
    totals = await conn.fetchrow(groups_sql.UPSERT_GLOBAL_ADDED, day, sheet_id)
    if totals is None:
        # The day's global row is gone (deleted by hand): nothing to add to, so every
        # aggregate of the day is derived again from its groups.
        return await _derive_everyone(conn, day, sheet_id, phases)
    phases.done("global")
    await conn.execute(sql.UPSERT_ENTITY_DAYS_ADDED, day, sheet_id)
    if touched.uploading_episodes or touched.uploading_podcasts:
        await conn.execute(
            sql.UPSERT_ENTITY_DAYS,
            day,
            sheet_id,
            touched.uploading_episodes,
            touched.uploading_podcasts,
        )
    phases.done("entity days")
    return totals, touched.entities()


async def _group_day(
    conn: Connection,
    day: date,
    bounds: tuple[datetime, datetime],
    in_force: DaySheet,
    watermark: Watermark,
) -> None:
    """The day's groups, rebuilt from every event of the day up to the watermark."""
    await conn.execute(groups_sql.CLEAR_DAY, day)
    await conn.execute(
        groups_sql.EVENT_GROUPS,
        *bounds,
        UNATTRIBUTED,
        *(MAXIMUM[name] for name in SUMMED),
        day,
        0,
        watermark.job,
        0,
        watermark.llm,
        0,
        watermark.cost,
    )
    await conn.execute(
        groups_sql.STORAGE_GROUPS,
        *bounds,
        UNATTRIBUTED,
        in_force.sheet.aws.s3_storage_per_byte_second,
        day,
    )
    await conn.execute(groups_sql.CLEAR_BREAKDOWN, day)
    await _add_breakdown(conn, day, bounds, (0, watermark.job, 0, watermark.llm, 0, watermark.cost))


async def _add_breakdown(
    conn: Connection,
    day: date,
    bounds: tuple[datetime, datetime],
    ranges: tuple[int, int, int, int, int, int],
) -> None:
    """Add the events of ``ranges`` (after, up to: jobs, LLM calls, cost events) to the
    day's ``cost_breakdown_daily`` rows."""
    await conn.execute(
        groups_sql.ADD_BREAKDOWN,
        *bounds,
        day,
        MAXIMUM["input_tokens"],
        MAXIMUM["output_tokens"],
        *ranges,
    )


async def _add_new_events(
    conn: Connection,
    day: date,
    *,
    bounds: tuple[datetime, datetime],
    in_force: DaySheet,
    reached: asyncpg.Record,
    watermark: Watermark,
) -> _Touched:
    """Group the day's events above its watermark and add them to the day's groups; the
    storage held during the day is recomputed when an S3 object changed since."""
    # The ids above the watermark, per event table: (above, up to) for jobs, LLM calls, costs.
    ids = (
        reached["job_event_id"],
        watermark.job,
        reached["llm_event_id"],
        watermark.llm,
        reached["cost_event_id"],
        watermark.cost,
    )
    await conn.execute(groups_sql.CREATE_DELTA)
    await conn.execute(
        groups_sql.DELTA_GROUPS,
        *bounds,
        UNATTRIBUTED,
        *(MAXIMUM[name] for name in SUMMED),
        day,
        *ids,
    )
    await _add_breakdown(conn, day, bounds, ids)
    new = await conn.fetchrow(groups_sql.DELTA_TOUCHED)
    assert new is not None
    await conn.execute(groups_sql.MERGE_DELTA)
    if await conn.fetchval(groups_sql.OBJECTS_CHANGED, reached["cost_event_id"], watermark.cost):
        # The storage held during the day may have changed: recomputed, and every
        # aggregate derived again from the groups (raw events are still not read again).
        await conn.execute(groups_sql.CLEAR_STORAGE, day)
        await conn.execute(
            groups_sql.STORAGE_GROUPS,
            *bounds,
            UNATTRIBUTED,
            in_force.sheet.aws.s3_storage_per_byte_second,
            day,
        )
        return _Touched(out_of_range=int(new["out_of_range"]))
    return _Touched(
        users=list(new["users"] or []),
        episodes=list(new["episodes"] or []),
        podcasts=list(new["podcasts"] or []),
        uploading_episodes=list(new["uploading_episodes"] or []),
        uploading_podcasts=list(new["uploading_podcasts"] or []),
        out_of_range=int(new["out_of_range"]),
    )


async def _mark_dirty_again(pool: asyncpg.Pool, day: date) -> None:
    try:
        await pool.execute(
            "INSERT INTO rollup_dirty_dates (date) VALUES ($1) ON CONFLICT (date) DO NOTHING", day
        )
    except (asyncpg.PostgresError, OSError):
        log.exception("could not mark the date dirty again", extra={"date": day.isoformat()})


async def _price_events(
    conn: Connection, bounds: tuple[datetime, datetime], in_force: DaySheet, pricing: sql.Pricing
) -> dict[str, int]:
    """Price the day's rows stored without a price (every row, for a reprice) with the
    day's sheet, loaded into temporary tables for the length of the transaction; how many
    rows of each table were priced."""
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
    statuses = {
        "telemetry_job_events": await conn.execute(
            pricing.jobs, *common, sheet.seed.cpu_ms, sheet.seed.db_row_1k
        ),
        "telemetry_llm_events": await conn.execute(pricing.llm, *common),
        "cost_events": await conn.execute(pricing.cost_events, *common),
    }
    return {table: int(status.split()[-1]) for table, status in statuses.items()}


async def _analyze_priced(conn: Connection, day: date, priced: dict[str, int]) -> None:
    """After the commit that priced many of a table's rows of the day: analyze the
    partition holding them. Its statistics still say the rows have no price, which would
    have every later rollup of the day scan the whole partition for rows to price instead
    of reading the small index of those without one."""
    for table, count in priced.items():
        if count < ANALYZE_AFTER_PRICED:
            continue
        name = DayPartition(table, day).name
        if await conn.fetchval("SELECT to_regclass($1)", name) is None:
            name = f"{table}_default"
        await conn.execute(f'ANALYZE "{name}"')
