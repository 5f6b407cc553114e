"""Each event priced once, as it is stored, with the sheet in force for its local day.

The price goes into the event's row (``cost_usd``, exact, and ``price_sheet_id``), and
everything that counts money adds up that stored figure: the live counters, the throttle's
settlements, the rollup and the gateway. An LLM call whose price is not its model's own
says why in ``unpriced_reason``; a cost event that cannot be priced costs 0 in category
``unpriced``, with the reason, under its item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from costguard.common.day_sheets import DaySheet, Model
from costguard.common.pricing import (
    GEMINI_PROVIDER,
    LLM_NO_TOKENS,
    LLM_UNKNOWN_MODEL,
    cost_event_cost,
    llm_call_cost,
)
from costguard.telemetry.rows import COST_COLUMNS, JOB_COLUMNS, LLM_COLUMNS, Row

# What ingest appends to each kind's row, in order.
PRICE_COLUMNS = {
    "job": ("cost_usd", "price_sheet_id"),
    "llm": ("cost_usd", "price_sheet_id", "unpriced_reason"),
    "cost": ("cost_usd", "price_sheet_id", "cost_category", "unpriced_reason", "unpriced_item"),
}

_JOB = {name: i for i, name in enumerate(JOB_COLUMNS)}
_LLM = {name: i for i, name in enumerate(LLM_COLUMNS)}
_COST = {name: i for i, name in enumerate(COST_COLUMNS)}


def event_instant(kind: str, row: Row) -> datetime:
    """The instant an event counts on (its table's partition key): a job's start (else its
    creation), otherwise its creation."""
    if kind == "job":
        at: datetime = row[_JOB["started_at"]] or row[_JOB["created_at"]]
        return at
    created: datetime = row[(_LLM if kind == "llm" else _COST)["created_at"]]
    return created


def event_day(kind: str, row: Row, tz: ZoneInfo) -> date:
    """The local day an event counts on (see ``event_instant``)."""
    return event_instant(kind, row).astimezone(tz).date()


def models_of(kind: str, row: Row) -> set[Model]:
    """The ``(model, provider)`` the sheet must price for this event."""
    if kind == "llm":
        return {(row[_LLM["llm_model"]], row[_LLM["provider"]])}
    if kind == "cost" and (row[_COST["event_type"]], row[_COST["service"]]) == (
        "ai_api_call",
        "gemini_text",
    ):
        model = row[_COST["metadata"]].get("model")
        if isinstance(model, str) and model:
            return {(model, GEMINI_PROVIDER)}
    return set()


def models_by_day(kind: str, rows: Sequence[Row], days: Sequence[date]) -> dict[date, set[Model]]:
    """Each day the events count on, with the models its sheet must price for them (a job
    is priced by the seed formula: it needs none)."""
    needs: dict[date, set[Model]] = {day: set() for day in set(days)}
    if kind != "job":
        for day, row in zip(days, rows, strict=True):
            needs[day].update(models_of(kind, row))
    return needs


def priced(kind: str, row: Row, day: DaySheet) -> Row:
    """The row with its price columns (:data:`PRICE_COLUMNS`) appended."""
    sheet = day.sheet
    if kind == "job":
        rows_touched = (row[_JOB["rows_read"]] or 0) + (row[_JOB["rows_written"]] or 0)
        cost = sheet.seed.job_cost(row[_JOB["cpu_ms"]] or 0, rows_touched, 0)
        return (*row, cost, day.sheet_id)
    if kind == "llm":
        cost, reason = _llm_price(row, day)
        return (*row, cost, day.sheet_id, reason)
    meta: dict[str, Any] = row[_COST["metadata"]]
    found = cost_event_cost(
        sheet,
        row[_COST["event_type"]],
        row[_COST["service"]],
        row[_COST["quantity"]],
        row[_COST["unit"]],
        metadata=meta,
    )
    return (
        *row,
        found.cost,
        day.sheet_id,
        found.category,
        found.reason or None,
        found.item if not found.priced else None,
    )


def _llm_price(row: Row, day: DaySheet) -> tuple[Decimal, str | None]:
    rate = day.sheet.llm_rate(row[_LLM["llm_model"]], row[_LLM["provider"]])
    cache_hit = bool(row[_LLM["cache_hit"]])
    cost = llm_call_cost(
        rate,
        row[_LLM["input_tokens"]],
        row[_LLM["cached_input_tokens"]],
        row[_LLM["output_tokens"]],
        output_image_tokens=row[_LLM["output_image_tokens"]],
        cache_hit=cache_hit,
    )
    if cache_hit:
        return cost, None  # costguard's own cache answered: no call, no cost, no flag
    if not rate.priced:
        return cost, LLM_UNKNOWN_MODEL
    return cost, LLM_NO_TOKENS if cost == 0 else None
