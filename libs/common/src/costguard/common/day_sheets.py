"""The price sheet in force for each local day, shared by every service that prices.

``price_sheet_days`` names, for each date, the stored sheet (``price_sheets``) its events
are priced with. Telemetry prices each event with it as it stores the event; the throttle
prices its estimates with it; the rollup prices with it the rows stored without a price.
So an event has one price wherever it is counted.

A day's sheet grows and is never changed otherwise: a model first seen on that day is
looked up in the price library (at the library's prices in force when the day starts) and
added, and so are overlay models the sheet lacks; the rates it already has stay. Only a
deliberate reprice (:meth:`DaySheets.replace`) puts a new sheet in force, and it re-prices
the day's events with it.

Locks (two-key advisory locks, class :data:`DAY_LOCK`, key the day): writing a day's sheet
takes the day's lock exclusively; an ingest batch holds it shared (:meth:`DaySheets.in_force`)
from reading the day's sheet id until it commits, so a reprice never misses a batch priced
with the sheet it replaces, and a batch never prices with a sheet that is no longer in force.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.days import day_bounds
from costguard.common.db import Connection
from costguard.common.pricing import (
    AwsPrices,
    OverlayPrices,
    PriceSheet,
    SeedPrices,
    default_overlay,
)
from costguard.common.pricing.catalog import build_price_sheet

DAY_LOCK = 7_310_010
_EPOCH = date(2000, 1, 1)

Model = tuple[str, str]  # (model, provider), as events record them


def day_key(day: date) -> int:
    """The day's key in the two-key advisory locks."""
    return (day - _EPOCH).days


@dataclass(frozen=True)
class DaySheet:
    day: date
    sheet_id: int
    sheet: PriceSheet


def covers(sheet: PriceSheet, models: Iterable[Model]) -> bool:
    """Whether the sheet prices every model, has every overlay model of today's code and
    none of the rates it has retired (``s3_storage_days``, from before storage was priced
    by what is held)."""
    if any(model not in sheet.llm for model in models) or sheet.aws.s3_storage_days is not None:
        return False
    return sheet.overlay is not None and _overlay_models() <= sheet.overlay.keys()


@cache
def _overlay_models() -> frozenset[tuple[str, str]]:
    """The overlay models of today's code (``covers`` runs on every ingest batch)."""
    return frozenset(default_overlay())


async def save_sheet(conn: Connection, sheet: PriceSheet) -> int:
    """Store the sheet (once per digest) and return its id."""
    sheet_id: int = await conn.fetchval(
        "INSERT INTO price_sheets (digest, sheet) VALUES ($1, $2) "
        "ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest RETURNING id",
        sheet.digest,
        sheet.to_json(),
    )
    return sheet_id


_SET_DAY = """
INSERT INTO price_sheet_days (date, price_sheet_id) VALUES ($1, $2)
ON CONFLICT (date) DO UPDATE SET price_sheet_id = EXCLUDED.price_sheet_id, updated_at = now()
"""

# Shared locks in day order, then each day's sheet id (NULL: none yet).
_HOLD = """
SELECT d.day, s.price_sheet_id
FROM (SELECT day, pg_advisory_xact_lock_shared($2, day - date '2000-01-01')
      FROM unnest($1::date[]) AS u(day) ORDER BY day) d
LEFT JOIN price_sheet_days s ON s.date = d.day
"""


async def aws_prices_of_day(conn: Connection, day: date, default: AwsPrices) -> AwsPrices:
    """The AWS prices of the day's sheet in force; ``default`` when the day has none yet."""
    data: dict[str, Any] | None = await conn.fetchval(
        "SELECT s.sheet FROM price_sheet_days d JOIN price_sheets s ON s.id = d.price_sheet_id "
        "WHERE d.date = $1",
        day,
    )
    return default if data is None else PriceSheet.from_json(data).aws


async def reprice_pending(conn: Connection, day: date) -> bool:
    """Whether a reprice put a new sheet in force for the day and its events still wait to
    be priced again with it."""
    pending: bool | None = await conn.fetchval(
        "SELECT reprice_pending FROM price_sheet_days WHERE date = $1", day
    )
    return bool(pending)


async def finish_reprice(conn: Connection, day: date) -> None:
    """The day's events are priced with its sheet again (in the transaction that did it)."""
    await conn.execute("UPDATE price_sheet_days SET reprice_pending = false WHERE date = $1", day)


class DaySheets:
    """Each day's sheet, cached by id (a stored sheet never changes)."""

    def __init__(self, *, seed: SeedPrices, aws: AwsPrices, tz: ZoneInfo) -> None:
        self.seed = seed
        self.aws = aws
        self.tz = tz
        self._sheets: dict[int, PriceSheet] = {}
        self._days: dict[date, int] = {}
        self._checked: dict[date, float] = {}

    async def load(self, conn: Connection, sheet_id: int) -> PriceSheet:
        sheet = self._sheets.get(sheet_id)
        if sheet is None:
            data: dict[str, Any] = await conn.fetchval(
                "SELECT sheet FROM price_sheets WHERE id = $1", sheet_id
            )
            sheet = self._sheets[sheet_id] = PriceSheet.from_json(data)
        return sheet

    def cached(self, day: date) -> DaySheet | None:
        sheet_id = self._days.get(day)
        return None if sheet_id is None else DaySheet(day, sheet_id, self._sheets[sheet_id])

    async def covering(
        self, pool: asyncpg.Pool, needs: Mapping[date, Iterable[Model]]
    ) -> dict[date, DaySheet]:
        """For each day, its sheet in force, first extended with the models it lacks."""
        out: dict[date, DaySheet] = {}
        for day, wanted in needs.items():
            models = set(wanted)
            known = self.cached(day)
            if known is not None and covers(known.sheet, models):
                out[day] = known
                continue
            async with pool.acquire() as conn:
                out[day] = await self.extend(conn, day, models)
        return out

    async def current(
        self, pool: asyncpg.Pool, day: date, models: Iterable[Model], *, max_age_s: float
    ) -> DaySheet:
        """The day's sheet covering ``models``, for a reader outside any ingest transaction
        (the throttle): from the cache when it was read from Postgres less than
        ``max_age_s`` ago, else read again (a reprice elsewhere is seen within that time)."""
        wanted = set(models)
        known = self.cached(day)
        fresh = time.monotonic() - self._checked.get(day, -math.inf) < max_age_s
        if known is not None and fresh and covers(known.sheet, wanted):
            return known
        async with pool.acquire() as conn:
            found = await self.extend(conn, day, wanted)
        self._checked[day] = time.monotonic()
        return found

    async def extend(self, conn: Connection, day: date, models: set[Model]) -> DaySheet:
        """The day's sheet, extended with ``models`` when it lacks them (its own transaction
        when one is needed; call it outside a transaction that holds the day shared)."""
        sheet_id = await conn.fetchval(
            "SELECT price_sheet_id FROM price_sheet_days WHERE date = $1", day
        )
        if sheet_id is not None and covers(await self.load(conn, sheet_id), models):
            return self._remember(day, sheet_id)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", DAY_LOCK, day_key(day))
            sheet_id = await conn.fetchval(
                "SELECT price_sheet_id FROM price_sheet_days WHERE date = $1", day
            )
            if sheet_id is None:
                sheet = self._build(day, models, seed=self.seed, aws=self.aws)
            else:
                stored = await self.load(conn, sheet_id)
                if covers(stored, models):
                    return self._remember(day, sheet_id)
                # Storage is priced by what is held: a retired s3_storage_days goes.
                aws = dataclasses.replace(stored.aws, s3_storage_days=None)
                overlay = {**default_overlay(), **(stored.overlay or {})}
                added = self._build(
                    day, models - set(stored.llm), seed=stored.seed, aws=aws, overlay=overlay
                )
                sheet = dataclasses.replace(
                    stored, aws=aws, llm={**stored.llm, **added.llm}, overlay=overlay
                )
            sheet_id = await save_sheet(conn, sheet)
            await conn.execute(_SET_DAY, day, sheet_id)
        self._sheets[sheet_id] = sheet
        return self._remember(day, sheet_id)

    async def replace(self, conn: Connection, day: date, models: set[Model]) -> DaySheet:
        """A deliberate reprice: a fresh sheet from today's library, overlay and environment
        is put in force for the day, in a short transaction of its own (ingest of the day
        waits only for it; what it stores from then on is priced with the new sheet). The
        day is marked ``reprice_pending`` until the caller has priced the day's events
        again (:func:`finish_reprice`, in the transaction that does)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", DAY_LOCK, day_key(day))
            sheet = self._build(day, models, seed=self.seed, aws=self.aws)
            sheet_id = await save_sheet(conn, sheet)
            await conn.execute(_SET_DAY, day, sheet_id)
            await conn.execute(
                "UPDATE price_sheet_days SET reprice_pending = true WHERE date = $1", day
            )
        self._sheets[sheet_id] = sheet
        return self._remember(day, sheet_id)

    async def in_force(
        self, conn: Connection, needs: Mapping[date, Iterable[Model]]
    ) -> dict[date, DaySheet] | None:
        """Inside the caller's transaction: hold each day shared until it commits (a reprice
        of the day waits) and return each day's sheet in force, or ``None`` when one of
        them lacks a model (call :meth:`covering` outside the transaction, then try again)."""
        rows = await conn.fetch(_HOLD, sorted(needs), DAY_LOCK)
        out: dict[date, DaySheet] = {}
        for row in rows:
            day, sheet_id = row["day"], row["price_sheet_id"]
            if sheet_id is None or not covers(await self.load(conn, sheet_id), needs[day]):
                self._days.pop(day, None)
                return None
            out[day] = self._remember(day, sheet_id)
        return out

    def _remember(self, day: date, sheet_id: int) -> DaySheet:
        self._days[day] = sheet_id
        # Keep a few days: events arrive for today, yesterday and now and then an older day.
        if len(self._days) > 64:
            del self._days[min(self._days)]
        return DaySheet(day, sheet_id, self._sheets[sheet_id])

    def _build(
        self,
        day: date,
        models: Iterable[Model],
        *,
        seed: SeedPrices,
        aws: AwsPrices,
        overlay: OverlayPrices | None = None,
    ) -> PriceSheet:
        """A sheet for ``models`` at the day's start; ``overlay`` (default: the one in
        code) prices text-to-speech models, so an extension prices them with the day's."""
        return build_price_sheet(
            sorted(models), seed=seed, aws=aws, at=day_bounds(day, self.tz)[0], overlay=overlay
        )
