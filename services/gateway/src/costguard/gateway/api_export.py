"""GET export.csv: any of the dashboard's tables as CSV, written from its JSON route's body.

One source of figures: each table is the rows of the body its JSON route answers with, under
the same query (range, limit, by, tier, status, user), so the CSV and the JSON never differ.
The header row is the JSON field names; a money cell is the JSON's decimal string verbatim,
a number as JSON writes it, null an empty cell, a boolean true or false. A text cell that a
spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return; OWASP
"CSV injection") gets a leading ' so that it is shown, not run; numbers are never altered.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from costguard.gateway import params
from costguard.gateway.api_alerts import alerts_body
from costguard.gateway.api_breakdown import breakdown_body
from costguard.gateway.api_cost import summary_body, top_users_body
from costguard.gateway.api_history import ACTIONS, decisions_body
from costguard.gateway.api_users import user_detail_body
from costguard.gateway.auth import admin_only
from costguard.gateway.params import BadInput

Rows = list[dict[str, Any]]
Body = Callable[[Request], Awaitable[dict[str, Any]]]
RowsOf = Callable[[Request, str | None], Awaitable[tuple[dict[str, Any], Rows]]]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Table:
    """A table's columns (the JSON field names, when its rows may be none) and its rows."""

    columns: tuple[str, ...]
    rows: RowsOf
    per_user: bool = False


def _part(body_of: Body, part: str) -> RowsOf:
    """The rows under ``part`` of a JSON route's body."""

    async def rows(request: Request, _: str | None) -> tuple[dict[str, Any], Rows]:
        body = await body_of(request)
        return body, body[part]

    return rows


async def _cost_by_day(request: Request, _: str | None) -> tuple[dict[str, Any], Rows]:
    """The summary's cost by tier of each date, and the date's total (its cost card figure:
    the day's exact cost rounded once, not a sum of the rounded tiers)."""
    body = await summary_body(request)
    totals = {p["date"]: p["value"] for p in body["sparklines"]["cost_usd"]}
    return body, [{**row, "total": totals[row["date"]]} for row in body["series"]["cost_by_tier"]]


def _of_user(part: str) -> RowsOf:
    async def rows(request: Request, user_id: str | None) -> tuple[dict[str, Any], Rows]:
        assert user_id is not None  # the export asks for the user first
        body = await user_detail_body(request, user_id, field="user")
        return body, body[part]

    return rows


def _names(spaced: str) -> tuple[str, ...]:
    return tuple(spaced.split())


_USER_TOTALS = ("cost_usd", "jobs", "ai_calls", "tokens_in", "tokens_out")
TABLES = {
    "top_users": Table(
        ("user_id", "tier", "cost_usd", "jobs", "ai_calls", "tokens_in", "tokens_out"),
        _part(top_users_body, "users"),
    ),
    # The configured tiers' columns come from the rows: every date has each of them.
    "cost_by_day": Table(("date", "total"), _cost_by_day),
    "breakdown": Table(
        _names("key label cost_usd tokens_in tokens_out calls share previous_cost_usd change"),
        _part(breakdown_body, "rows"),
    ),
    "decisions": Table(("date", *ACTIONS), _part(decisions_body, "series")),
    "alerts": Table(
        _names(
            "id day scope metric threshold kind used cap status created_at delivered_at "
            "attempts last_error"
        ),
        _part(alerts_body, "alerts"),
    ),
    "unpriced": Table(
        ("item", "cost_usd", "share", "events", "reason"), _part(summary_body, "unpriced")
    ),
    "user_days": Table(("date", *_USER_TOTALS), _of_user("days_series"), per_user=True),
    "user_models": Table(
        ("key", "cost_usd", "tokens_in", "tokens_out", "calls"), _of_user("by_model"), True
    ),
    "user_services": Table(("key", "cost_usd", "events"), _of_user("by_service"), True),
    "user_events": Table(
        ("kind", "event_id", "at", "name", "cost_usd", "detail", "success", "price_note"),
        _of_user("recent_events"),
        per_user=True,
    ),
}


def cell(value: Any) -> str:
    """One JSON value as a CSV cell (the module's docstring says how)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_csv(columns: tuple[str, ...], rows: Rows) -> str:
    header = list(rows[0]) if rows else list(columns)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(name) for name in header])
    writer.writerows([cell(row.get(name)) for name in header] for row in rows)
    return out.getvalue()


@admin_only
async def export_csv(request: Request) -> Response:
    name = request.query_params.get("table", "")
    table = TABLES.get(name)
    if table is None:
        raise BadInput("table", f"table must be one of {', '.join(TABLES)}")
    user_id = params.query_id(request, "user")
    if table.per_user and user_id is None:
        raise BadInput("user", f"user is required for the table {name}")
    body, rows = await table.rows(request, user_id)
    filename = f"costguard-{name}-{body['from']}-{body['to']}.csv"
    return Response(
        to_csv(table.columns, rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
