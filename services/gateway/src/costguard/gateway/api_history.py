"""GET decisions: what the throttle answered, by day and tier (``throttle_decisions_daily``,
which the throttle adds its in-memory counts to every few seconds)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway import params, queries
from costguard.gateway.auth import admin_only
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources

ACTIONS = ("ALLOW", "DOWNGRADE", "DEFER", "DENY")


async def decisions_body(request: Request) -> dict[str, Any]:
    """The decisions' JSON body (the CSV export writes the same figures from it)."""
    res = resources(request)
    today = res.now().date()
    span = params.date_range(request, today)
    tier = request.query_params.get("tier")
    tiers = res.config.core.tiers
    if tier is not None and tier not in tiers:
        raise BadInput("tier", f"tier must be one of {', '.join(tiers)}")
    rows = await res.pool.fetch(queries.DECISIONS, span.first, span.last, tier)
    totals: dict[str, dict[str, Any]] = {}
    by_date: dict[str, dict[str, int]] = {}
    for row in rows:
        action = row["action"]
        if action not in ACTIONS:
            continue  # an action this gateway does not know of: not counted under another
        counts = totals.setdefault(row["tier"], dict.fromkeys(ACTIONS, 0))
        counts[action] += row["decisions"]
        day = by_date.setdefault(row["date"].isoformat(), dict.fromkeys(ACTIONS, 0))
        day[action] += row["decisions"]
    return {
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "days": span.days,
        "timezone": res.config.core.timezone.key,
        "partial_date": span.partial_date(today),
        "actions": list(ACTIONS),
        "totals": [
            {"tier": name, **counts, "total": sum(counts.values())}
            for name, counts in sorted(totals.items())
        ],
        # Every date of the range, zeros where the throttle decided nothing.
        "series": [
            {"date": day.isoformat(), **by_date.get(day.isoformat(), dict.fromkeys(ACTIONS, 0))}
            for day in span.dates
        ],
    }


@admin_only
async def decisions(request: Request) -> Response:
    return JSONResponse(await decisions_body(request))
