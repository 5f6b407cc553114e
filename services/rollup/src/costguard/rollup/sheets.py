"""Which prices a date is rolled up with, kept in ``price_sheets`` so re-runs agree.

A date keeps the sheet it was first priced with: a re-run months later prices the same
events the same way. Models that first appear in a late event are added to that sheet at
the library's prices for the date, and overlay models (Gemini text to speech and images)
the sheet lacks at today's overlay prices, a sheet stored before the overlay existed
getting all of them; the rates it has stay. A sheet stored while an upload was charged
``s3_storage_days`` of storage loses that retired rate when its date is rolled up again,
since storage is now priced by what is held: the new sheet says so. A deliberate reprice
builds a fresh sheet from today's library, overlay and environment instead.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from costguard.common.db import Connection
from costguard.common.pricing import (
    AwsPrices,
    PriceSheet,
    SeedPrices,
    build_price_sheet,
    default_overlay,
)
from costguard.rollup.sql import AI_EVENT_MODELS_OF_DAY, LLM_MODELS_OF_DAY


async def _stored(conn: Connection, sheet_id: int) -> PriceSheet:
    data: dict[str, Any] = await conn.fetchval(
        "SELECT sheet FROM price_sheets WHERE id = $1", sheet_id
    )
    return PriceSheet.from_json(data)


async def save_sheet(conn: Connection, sheet: PriceSheet) -> int:
    sheet_id: int = await conn.fetchval(
        "INSERT INTO price_sheets (digest, sheet) VALUES ($1, $2) "
        "ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest RETURNING id",
        sheet.digest,
        sheet.to_json(),
    )
    return sheet_id


async def sheet_for_date(
    conn: Connection,
    day: date,
    bounds: tuple[datetime, datetime],
    *,
    seed: SeedPrices,
    aws: AwsPrices,
    reprice: bool = False,
) -> tuple[PriceSheet, int]:
    """The sheet to roll ``day`` up with, saved, and its id."""
    models = {
        (row["model"], row["provider"]) for row in await conn.fetch(LLM_MODELS_OF_DAY, *bounds)
    }
    models |= {
        (r["model"], r["provider"]) for r in await conn.fetch(AI_EVENT_MODELS_OF_DAY, *bounds)
    }
    previous_id = await conn.fetchval(
        "SELECT price_sheet_id FROM cost_global_daily WHERE date = $1", day
    )
    if previous_id is None or reprice:
        sheet = build_price_sheet(sorted(models), seed=seed, aws=aws, at=bounds[0])
    else:
        sheet = await _stored(conn, previous_id)
        missing = sorted(models - set(sheet.llm))
        overlay = {**default_overlay(), **(sheet.overlay or {})}
        aws_now = dataclasses.replace(sheet.aws, s3_storage_days=None)
        if not missing and overlay == sheet.overlay and aws_now == sheet.aws:
            return sheet, previous_id
        added = build_price_sheet(missing, seed=sheet.seed, aws=aws_now, at=bounds[0])
        sheet = dataclasses.replace(
            sheet, aws=aws_now, llm={**sheet.llm, **added.llm}, overlay=overlay
        )
    return sheet, await save_sheet(conn, sheet)
