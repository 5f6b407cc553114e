"""GET breakdown: a range's cost by model, service, domain or tier, beside the period before.

Every breakdown adds up to the range's cost_global_daily cost to the last digit: what a
dimension does not cover (jobs have no model, cost events no domain, the S3 storage held no
event) is one row of its own, the rest, so that the rows' sum is the summary's cost card.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.money import exact_arithmetic, exact_sum
from costguard.gateway import params, queries
from costguard.gateway.api_cost import change
from costguard.gateway.auth import admin_only
from costguard.gateway.money import ratio, usd
from costguard.gateway.params import BadInput, DateRange
from costguard.gateway.resources import Resources, resources

DIMENSIONS = ("model", "service", "domain", "tier")
REST_LABELS = {
    "model": "not an LLM call",
    "service": "not an event (S3 storage held)",
    "domain": "no domain",
    "tier": "no tier",
}
_FIGURES = ("cost_usd", "tokens_in", "tokens_out", "calls")

Sums = dict[str | None, dict[str, Any]]


def _by_tier(rows: Sequence[Any]) -> Sums:
    """The days' tier_breakdown_json summed by tier, exactly (calls: the tier's AI calls)."""
    out: Sums = {}
    with exact_arithmetic():
        for row in rows:
            for tier, figures in (row["tier_breakdown_json"] or {}).items():
                sums = out.setdefault(
                    tier, {"cost_usd": Decimal(0), **dict.fromkeys(_FIGURES[1:], 0)}
                )
                sums["cost_usd"] += Decimal(str(figures.get("cost_usd") or 0))
                sums["tokens_in"] += int(figures.get("tokens_in") or 0)
                sums["tokens_out"] += int(figures.get("tokens_out") or 0)
                sums["calls"] += int(figures.get("ai_calls") or 0)
    return out


async def _sums(res: Resources, by: str, span: DateRange) -> tuple[Sums, Decimal]:
    """The keyed sums over ``span`` and its cost_global_daily cost; the rest (the cost less
    the keyed sums) under the key None when it is not zero."""
    days = await res.pool.fetch(queries.SERIES, span.first, span.last)
    total = exact_sum(r["cost_usd"] for r in days)
    if by == "tier":
        sums = _by_tier(days)
    else:
        rows = await res.pool.fetch(queries.BREAKDOWN, by, span.first, span.last)
        sums = {r["key"]: {name: r[name] for name in _FIGURES} for r in rows}
    rest = total - exact_sum(s["cost_usd"] for s in sums.values())
    if rest:
        sums[None] = {"cost_usd": rest, "tokens_in": 0, "tokens_out": 0, "calls": 0}
    return sums, total


def _total(sums: Sums, total: Decimal) -> dict[str, Any]:
    return {
        "cost_usd": usd(total),
        **{name: sum(int(s[name]) for s in sums.values()) for name in _FIGURES[1:]},
    }


async def breakdown_body(request: Request) -> dict[str, Any]:
    """The breakdown's JSON body (the CSV export writes the same figures from it)."""
    by = request.query_params.get("by", "")
    if by not in DIMENSIONS:
        raise BadInput("by", f"by must be one of {', '.join(DIMENSIONS)}")
    res = resources(request)
    today = res.now().date()
    span = params.date_range(request, today)
    before = span.previous
    sums, total = await _sums(res, by, span)
    previous, previous_total = await _sums(res, by, before)
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1]["cost_usd"], kv[0] is None, kv[0] or ""))
    rows = []
    for key, figures in ranked:
        was = previous.get(key, {}).get("cost_usd", Decimal(0))
        rows.append(
            {
                "key": key,
                "label": REST_LABELS[by] if key is None else key,
                "cost_usd": usd(figures["cost_usd"]),
                **{name: int(figures[name]) for name in _FIGURES[1:]},
                "share": ratio(figures["cost_usd"], total),
                "previous_cost_usd": usd(was),
                "change": change(figures["cost_usd"], was),
            }
        )
    return {
        "by": by,
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "days": span.days,
        "timezone": res.config.core.timezone.key,
        "partial_date": span.partial_date(today),
        "previous": {"from": before.first.isoformat(), "to": before.last.isoformat()},
        "total": _total(sums, total),
        "previous_total": _total(previous, previous_total),
        "rows": rows,
    }


@admin_only
async def breakdown(request: Request) -> Response:
    return JSONResponse(await breakdown_body(request))
