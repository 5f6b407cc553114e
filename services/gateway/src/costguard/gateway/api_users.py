"""GET one user's page: their cost over a range beside the period before, by day, model and
service, their newest events, today's caps on them and the throttle's decisions.

The figures are the ones the rest of the API adds up: the days are ``cost_user_daily`` (what
the top users rank), the models and services each event's stored price (what the rollup
sums into those days), so the user's models and services never disagree with the rollup.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.counters import UNATTRIBUTED, tier_key, user_key
from costguard.common.days import day_bounds
from costguard.common.event_ranges import MAXIMUM
from costguard.common.money import exact_sum
from costguard.gateway import params, queries
from costguard.gateway.api_cost import caps_today, change
from costguard.gateway.auth import admin_only
from costguard.gateway.money import usd
from costguard.gateway.params import BadInput, DateRange
from costguard.gateway.resources import Resources, resources

RECENT_EVENTS = 50
_COUNTS = ("jobs", "ai_calls", "tokens_in", "tokens_out")


def _totals(rows: Sequence[Any]) -> tuple[Decimal, dict[str, Any]]:
    """Days' exact cost and their totals: the cost shown rounded once, the counts summed."""
    total = exact_sum(r["cost_usd"] for r in rows)
    return total, {"cost_usd": usd(total), **{k: sum(int(r[k]) for r in rows) for k in _COUNTS}}


def _days_series(rows: Sequence[Any], span: DateRange) -> list[dict[str, Any]]:
    """Every date of the range, zeros where the user has no row."""
    by_date = {r["date"]: r for r in rows}
    series = []
    for day in span.dates:
        row = by_date.get(day)
        series.append(
            {
                "date": day.isoformat(),
                "cost_usd": usd(row["cost_usd"] if row else 0),
                **{k: int(row[k]) if row else 0 for k in _COUNTS},
            }
        )
    return series


def _detail(kind: str, a: Decimal, b: Decimal, unit: str) -> str:
    if kind == "llm":
        return f"{int(a):,} in / {int(b):,} out tokens"
    if kind == "job":
        return f"{int(a):,} ms CPU, {int(b):,} ms run"
    return f"{a.normalize():f} {unit}"


def _event(row: Any) -> dict[str, Any]:
    # A price is null only while the event waits for its day's rollup to price it.
    return {
        "kind": row["kind"],
        "event_id": str(row["event_id"]),
        "at": row["at"].isoformat(),
        "name": row["name"],
        "cost_usd": None if row["cost_usd"] is None else usd(row["cost_usd"]),
        "detail": _detail(row["kind"], row["a"], row["b"], row["unit"]),
        "success": row["success"],
        "price_note": row["price_note"],
    }


async def _caps(res: Resources, user_id: str, tier: str) -> list[dict[str, Any]]:
    """Today's caps on the user: their own (``user:<id>``) and their tier's, each against
    the live counter the throttle enforces it on."""
    today = res.now().date()
    own = f"user:{user_id}"

    def counter_of(scope: str) -> str | None:
        if scope == own:
            return user_key(today, user_id)
        return tier_key(today, tier) if scope == tier else None

    caps = await caps_today(res, counter_of)
    return [{k: cap[k] for k in ("scope", "metric", "cap", "used", "fraction")} for cap in caps]


async def user_detail_body(
    request: Request, user_id: str, field: str = "user_id"
) -> dict[str, Any]:
    """One user's page as JSON (the CSV export writes its tables from it); a user never
    seen (no day rolled up, no throttle decision, no event in the range) is a 404 naming
    ``field``, the parameter that named them."""
    res = resources(request)
    tz = res.config.core.timezone
    today = res.now().date()
    span = params.date_range(request, today)
    before = span.previous
    begin, _ = day_bounds(span.first, tz)
    _, end = day_bounds(span.last, tz)
    pool = res.pool
    tier = await pool.fetchval(queries.USER_TIER, user_id, span.last)
    if tier is None:
        tier = await pool.fetchval(queries.USER_TIER_SEEN, user_id, UNATTRIBUTED, begin, end)
    if tier is None:
        raise BadInput(field, f"no user {user_id} has been seen", status=404)
    days = await pool.fetch(queries.USER_DAYS, user_id, span.first, span.last)
    previous_days = await pool.fetch(queries.USER_DAYS, user_id, before.first, before.last)
    total, totals = _totals(days)
    previous_total, previous_totals = _totals(previous_days)
    models = await pool.fetch(
        queries.USER_MODELS,
        user_id,
        begin,
        end,
        MAXIMUM["input_tokens"],
        MAXIMUM["output_tokens"],
    )
    services = await pool.fetch(queries.USER_SERVICES, user_id, begin, end)
    events = await pool.fetch(queries.USER_EVENTS, user_id, begin, end, RECENT_EVENTS)
    decisions = await pool.fetch(queries.USER_DECISIONS, user_id, span.first, span.last)
    return {
        "user_id": user_id,
        "tier": tier,
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "days": span.days,
        "timezone": tz.key,
        "partial_date": span.partial_date(today),
        "totals": totals,
        "previous_totals": previous_totals,
        "change": {"cost_usd": change(total, previous_total)},
        "days_series": _days_series(days, span),
        "by_model": [
            {
                "key": m["key"],
                "cost_usd": usd(m["cost_usd"]),
                **{k: int(m[k]) for k in ("tokens_in", "tokens_out", "calls")},
            }
            for m in models
        ],
        "by_service": [
            {"key": s["key"], "cost_usd": usd(s["cost_usd"]), "events": int(s["events"])}
            for s in services
        ],
        "recent_events": [_event(e) for e in events],
        "caps": await _caps(res, user_id, tier),
        "decisions": [
            {
                "date": d["date"].isoformat(),
                "tier": d["tier"],
                "action": d["action"],
                "decisions": int(d["decisions"]),
                "last_reason": d["last_reason"],
                "last_at": d["last_at"].isoformat(),
            }
            for d in decisions
        ],
    }


@admin_only
async def user_detail(request: Request) -> Response:
    user_id = params.entity_id(request, "user_id")
    return JSONResponse(await user_detail_body(request, user_id))
