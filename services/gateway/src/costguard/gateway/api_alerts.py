"""GET alerts: the threshold alerts of a range of days and how their delivery went.

An alert is sent once delivered, pending while the dispatcher still retries it, failed once
it has given up (``dispatch.GIVE_UP_ATTEMPTS``: the one figure both read).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway import params, queries
from costguard.gateway.auth import admin_only
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources

STATUSES = ("sent", "failed", "pending")


def _plain(value: Decimal) -> str:
    """A threshold, a use or a cap as the figure it is, without the column's padding zeros."""
    return f"{value.normalize():f}" if value else "0"


def _alert(row: Any) -> dict[str, Any]:
    delivered = row["delivered_at"]
    return {
        "id": row["id"],
        "day": row["day"].isoformat(),
        "scope": row["apply_scope"],
        "metric": row["metric"],
        "threshold": _plain(row["threshold"]),
        "kind": row["kind"],
        "used": _plain(row["used"]),
        "cap": _plain(row["cap"]),
        "status": row["status"],
        "created_at": row["created_at"].isoformat(),
        "delivered_at": None if delivered is None else delivered.isoformat(),
        "attempts": row["delivery_attempts"],
        "last_error": row["last_error"],
    }


async def alerts_body(request: Request) -> dict[str, Any]:
    """The alerts' JSON body (the CSV export writes the same figures from it): the counts
    over the whole range whatever ``status`` asks for, the alerts newest first."""
    res = resources(request)
    span = params.date_range(request, res.now().date())
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise BadInput("status", f"status must be one of {', '.join(STATUSES)}")
    limit = params.integer(request, "limit", 200, 1, 500)
    counts = await res.pool.fetchrow(queries.ALERT_COUNTS, span.first, span.last, GIVE_UP_ATTEMPTS)
    assert counts is not None  # an aggregate without GROUP BY is always one row
    rows = await res.pool.fetch(
        queries.ALERTS, span.first, span.last, GIVE_UP_ATTEMPTS, status, limit
    )
    return {
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "counts": {name: int(counts[name]) for name in (*STATUSES, "resolved")},
        "alerts": [_alert(r) for r in rows],
    }


@admin_only
async def alerts(request: Request) -> Response:
    return JSONResponse(await alerts_body(request))
