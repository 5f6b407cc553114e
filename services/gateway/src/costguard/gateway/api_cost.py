"""GET summary and top users: the dashboard's main reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.counters import UNATTRIBUTED, LiveCounters, global_key, tier_key
from costguard.common.days import day_bounds
from costguard.common.money import exact_arithmetic, exact_sum
from costguard.common.pricing import NANO
from costguard.gateway import params, queries, user_days
from costguard.gateway.auth import admin_only
from costguard.gateway.forecast import averaged_days, month_forecast
from costguard.gateway.money import exact_text, ratio, usd
from costguard.gateway.resources import Resources, resources

_CAP_METRICS = (
    ("daily_jobs_cap", "jobs", "jobs"),
    ("daily_cpu_ms_cap", "cpu_ms", "cpu_ms"),
    ("llm_input_tokens_cap", "llm_input_tokens", "tokens_in"),
    ("llm_output_tokens_cap", "llm_output_tokens", "tokens_out"),
    ("daily_cost_usd_cap", "cost_usd", "cost_nusd"),
)


_CARD_COUNTS = ("jobs", "ai_calls", "cpu_ms", "tokens_in", "tokens_out")
_CHANGED = ("cost_usd", "jobs", "ai_calls", "tokens_in", "tokens_out")


def _cards(rows: list[Any]) -> tuple[Decimal, dict[str, Any]]:
    """A range's exact cost and its cards: the cost shown rounded once, the counts summed."""
    total = exact_sum(r["cost_usd"] for r in rows)
    return total, {"cost_usd": usd(total), **{k: sum(r[k] for r in rows) for k in _CARD_COUNTS}}


def change(current: Decimal | int, previous: Decimal | int) -> float | None:
    """(current - previous) / previous; None when there is nothing to compare with."""
    if not previous:
        return None
    return float((Decimal(current) - Decimal(previous)) / Decimal(previous))


def cap_figures(
    budget: Any, live: dict[str, Any]
) -> list[tuple[str, Decimal, Decimal, Callable[[Decimal], str]]]:
    """Each cap of ``budget`` and its use in ``live`` (a counter's fields): (metric, cap,
    used, how both are shown: money rounded once, counts whole)."""
    out: list[tuple[str, Decimal, Decimal, Callable[[Decimal], str]]] = []
    for column, metric, field in _CAP_METRICS:
        cap = budget[column]
        if cap is None:
            continue
        used = Decimal(live[field]) * (NANO if field == "cost_nusd" else 1)
        out.append((metric, cap, used, usd if metric == "cost_usd" else exact_text))
    return out


async def caps_today(res: Resources, counter_of: Callable[[str], str | None]) -> list[Any]:
    """Today's use against each enabled cap whose scope ``counter_of`` maps to the live
    counter it is enforced on (scopes it maps to None are left out), and when today's pace
    reaches it."""
    tz = res.config.core.timezone
    now = res.now()
    midnight, next_midnight = day_bounds(now.date(), tz)
    elapsed = max(1.0, (now - midnight).total_seconds())
    counters = LiveCounters(res.redis)
    out = []
    for budget in await res.pool.fetch(queries.BUDGETS):
        scope = budget["apply_scope"]
        key = counter_of(scope) if budget["enabled"] else None
        if key is None:
            continue
        for metric, cap, used, shown in cap_figures(budget, await counters.read(key)):
            reached_at = None
            if 0 < used < cap:
                eta = now + timedelta(seconds=float((cap - used) / used) * elapsed)
                reached_at = eta.isoformat() if eta < next_midnight else None
            out.append(
                {
                    "scope": scope,
                    "metric": metric,
                    "cap": shown(cap),
                    "used": shown(used),
                    "fraction": ratio(used, cap) if cap else (1.0 if used else 0.0),
                    "reached_at": reached_at,
                }
            )
    return out


async def _caps_today(res: Resources) -> list[dict[str, Any]]:
    """Use today against each global and tier cap (a user's are on the user's page)."""
    today = res.now().date()

    def counter_of(scope: str) -> str | None:
        if scope.startswith("user:"):
            return None
        return global_key(today) if scope == "global" else tier_key(today, scope)

    return await caps_today(res, counter_of)


def _series(rows: list[Any], dates: list[date], configured: tuple[str, ...]) -> dict[str, Any]:
    by_date = {row["date"]: row for row in rows}
    # Cost events without a user have a tier of their own, shown when there are any.
    unattributed = any(UNATTRIBUTED in row["tier_breakdown_json"] for row in rows)
    tiers = (*configured, UNATTRIBUTED) if unattributed else configured
    cost_by_tier = []
    for day in dates:
        breakdown = by_date[day]["tier_breakdown_json"] if day in by_date else {}
        cost_by_tier.append(
            {
                "date": day.isoformat(),
                **{t: usd(breakdown.get(t, {}).get("cost_usd")) for t in tiers},
            }
        )
    sparklines: dict[str, list[dict[str, Any]]] = {}
    for name in ("cost_usd", "jobs", "ai_calls", "tokens_in", "tokens_out"):
        points = []
        for day in dates:
            value = by_date[day][name] if day in by_date else 0
            points.append(
                {"date": day.isoformat(), "value": usd(value) if name == "cost_usd" else value}
            )
        sparklines[name] = points
    return {"cost_by_tier": cost_by_tier, "sparklines": sparklines}


def _unpriced(rows: list[Any], total: Decimal) -> list[dict[str, Any]]:
    """What the rollup flagged unpriced over the window, by item, with why (``reason``: the
    distinct reasons of its days, "" for days rolled up before reasons were recorded)."""
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    reasons: dict[str, set[str]] = defaultdict(set)
    with exact_arithmetic():
        for row in rows:
            for item, figures in row["unpriced_json"].items():
                sums[item][0] += Decimal(figures["cost_usd"])
                sums[item][1] += Decimal(figures["events"])
                reasons[item].update(filter(None, str(figures.get("reason") or "").split("; ")))
    ranked = sorted(sums.items(), key=lambda kv: kv[1][0], reverse=True)
    return [
        {
            "item": item,
            "cost_usd": usd(cost),
            "share": ratio(cost, total),
            "events": int(events),
            "reason": "; ".join(sorted(reasons[item])),
        }
        for item, (cost, events) in ranked
    ]


def _estimated(rows: list[Any], total: Decimal) -> dict[str, Any]:
    """LLM calls whose usage never arrived, priced at their estimate, over the window."""
    cost = exact_sum(row["estimated_cost_usd"] for row in rows)
    return {
        "events": sum(row["estimated_events"] for row in rows),
        "cost_usd": usd(cost),
        "share": ratio(cost, total),
    }


async def _forecast(res: Resources) -> dict[str, Any]:
    now = res.now()
    today = now.date()
    mtd: Decimal = await res.pool.fetchval(queries.MONTH_TO_DATE, today.replace(day=1), today)
    full = await res.pool.fetchrow(queries.FULL_DAYS, *averaged_days(today))
    assert full is not None
    forecast = month_forecast(
        now,
        res.config.core.timezone,
        month_to_date=mtd,
        full_days=full["days"],
        full_days_cost=full["cost_usd"],
    )
    return {
        "month_to_date_cost_usd": usd(forecast.month_to_date),
        "month_projected_cost_usd": usd(forecast.projected),
        "method": forecast.method,
        "daily_average_usd": None
        if forecast.daily_average is None
        else usd(forecast.daily_average),
        "days_averaged": forecast.days_averaged,
        "remaining_days": f"{forecast.remaining_days.quantize(Decimal('0.0001')):f}",
    }


async def summary_body(request: Request) -> dict[str, Any]:
    """The summary's JSON body (the CSV export writes its cost by day and unpriced from it)."""
    res = resources(request)
    tz = res.config.core.timezone
    today = res.now().date()
    span = params.date_range(request, today)
    start, last, dates = span.first, span.last, span.dates
    before = span.previous
    rows = await res.pool.fetch(queries.SERIES, start, last)
    previous_rows = await res.pool.fetch(queries.SERIES, before.first, before.last)
    begin, _ = day_bounds(start, tz)
    _, end = day_bounds(last, tz)
    hits = {r["date"]: r for r in await res.pool.fetch(queries.CACHE_HITS, begin, end, tz.key)}
    domains = await res.pool.fetch(queries.JOBS_BY_DOMAIN, begin, end)
    total, cards = _cards(rows)
    previous_total, previous_cards = _cards(previous_rows)
    calls = sum(h["calls"] for h in hits.values())
    series = _series(rows, dates, res.config.core.tiers)
    return {
        "days": span.days,
        "from": start.isoformat(),
        "to": last.isoformat(),
        "timezone": tz.key,
        # Today's figures are today's so far: the charts draw this date as a partial day.
        "partial_date": span.partial_date(today),
        "cards": {
            **cards,
            "cache_hit_rate": ratio(sum(h["hits"] for h in hits.values()), calls),
        },
        "previous": {
            "from": before.first.isoformat(),
            "to": before.last.isoformat(),
            "cards": previous_cards,
        },
        # Each figure against the previous period's, exact before the quotient.
        "change": {
            name: change(total, previous_total)
            if name == "cost_usd"
            else change(cards[name], previous_cards[name])
            for name in _CHANGED
        },
        "sparklines": series["sparklines"],
        "today": {
            # The live counters: the figure the caps are enforced on, the same stored
            # prices the rollup adds up (which reaches it within a dirty-date pass).
            "cost_usd": usd(
                Decimal((await LiveCounters(res.redis).read(global_key(today)))["cost_nusd"]) * NANO
            ),
            "caps": await _caps_today(res),
        },
        "series": {
            "cost_by_tier": series["cost_by_tier"],
            "jobs_by_domain": [dict(d) for d in domains],
            "tokens": [
                {
                    "date": day.isoformat(),
                    "tokens_in": next((r["tokens_in"] for r in rows if r["date"] == day), 0),
                    "tokens_out": next((r["tokens_out"] for r in rows if r["date"] == day), 0),
                    "cache_hit_rate": ratio(hits[day]["hits"], hits[day]["calls"])
                    if day in hits
                    else 0.0,
                }
                for day in dates
            ],
        },
        "forecast": await _forecast(res),
        "unpriced": _unpriced(rows, total),
        "estimated": _estimated(rows, total),
    }


@admin_only
async def cost_summary(request: Request) -> Response:
    return JSONResponse(await summary_body(request))


async def top_users_body(request: Request) -> dict[str, Any]:
    """The top users' JSON body (the CSV export writes the same figures from it)."""
    res = resources(request)
    span = params.date_range(request, res.now().date())
    start, last = span.first, span.last
    limit = params.integer(request, "limit", 20, 1, 500)
    # One snapshot: the held days are used at the versions it sees (``user_days``).
    async with (
        res.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await user_days.top_users(res.user_days, conn, start, last, limit)
    users = [
        {
            "user_id": r["user_id"],
            "tier": r["tier"],
            "cost_usd": usd(r["cost_usd"]),
            **{k: r[k] for k in ("jobs", "ai_calls", "tokens_in", "tokens_out")},
        }
        for r in rows
    ]
    return {"days": span.days, "from": start.isoformat(), "to": last.isoformat(), "users": users}


@admin_only
async def top_users(request: Request) -> Response:
    return JSONResponse(await top_users_body(request))
