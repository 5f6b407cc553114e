"""Seed two's queries: an episode, a podcast's episodes, daily and monthly summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
from asyncpg import Record
from grpc import aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.money import exact_arithmetic, exact_sum
from costguard.common.request_ids import call_metadata
from costguard.gateway import params, queries
from costguard.gateway.auth import admin_only
from costguard.gateway.money import cost_row, mean_usd, usd
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources
from costguard.v1 import rollup_pb2, rollup_pb2_grpc


@admin_only
async def episode(request: Request) -> Response:
    episode_id = params.entity_id(request, "episode_id")
    row = await resources(request).pool.fetchrow(queries.ENTITY, "episode", episode_id)
    if row is None:
        raise BadInput("episode_id", f"no costs for episode {episode_id!r} yet", status=404)
    return JSONResponse(cost_row(row))


@admin_only
async def podcast_episodes(request: Request) -> Response:
    podcast_id = params.entity_id(request, "podcast_id")
    limit = params.integer(request, "limit", 500, 1, 5000)
    # One snapshot, so that the totals are those of the episodes listed beside them.
    async with (
        resources(request).pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        stats = await conn.fetchrow(queries.PODCAST_STATS, podcast_id)
        assert stats is not None
        if stats["episodes"] == 0:
            raise BadInput(
                "podcast_id", f"no episode costs for podcast {podcast_id!r} yet", status=404
            )
        rows = await conn.fetch(queries.PODCAST_EPISODES, podcast_id, limit)
    return JSONResponse(
        {
            "podcast_id": podcast_id,
            "episode_count": stats["episodes"],
            "event_count": stats["events"],
            "total_cost_usd": usd(stats["total"]),
            "average_cost_usd": mean_usd(stats["total"], stats["episodes"]),
            "max_cost_usd": usd(stats["max"]),
            "ai_cost_usd": usd(stats["ai"]),
            "aws_cost_usd": usd(stats["aws"]),
            "compute_cost_usd": usd(stats["compute"]),
            "unpriced_cost_usd": usd(stats["unpriced"]),
            "episodes_with_unpriced_events": stats["unpriced_episodes"],
            "episodes": [cost_row(r) for r in rows],
        }
    )


_COUNTS = ("jobs", "ai_calls", "cpu_ms", "tokens_in", "tokens_out")


def _totals(rows: Sequence[Record], counted: str) -> dict[str, Any]:
    """The rows' counts and cost summed exactly (the cost shown rounded once)."""
    totals: dict[str, Any] = {counted: len(rows)}
    # The seed's daily columns are NULL-able: a row its own code wrote may leave them empty.
    totals.update({name: sum(int(r[name] or 0) for r in rows) for name in _COUNTS})
    totals["cost_usd"] = usd(exact_sum(r["cost_usd"] or Decimal(0) for r in rows))
    return totals


def _summed_maps(maps: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Maps of decimal strings (cost by service, by podcast), summed key by key exactly, each
    sum shown rounded once."""
    sums: dict[str, Decimal] = {}
    with exact_arithmetic():
        for entries in maps:
            for key, value in entries.items():
                sums[key] = sums.get(key, Decimal(0)) + Decimal(str(value))
    return {key: usd(value) for key, value in sorted(sums.items())}


@admin_only
async def daily(request: Request) -> Response:
    res = resources(request)
    last = params.iso_date(request, "to") or res.now().date()
    first = params.iso_date(request, "from") or last - timedelta(days=29)
    if first > last or (last - first).days > 366:
        raise BadInput("from", "from must be on or before to, at most 366 days earlier")
    rows = await res.pool.fetch(queries.DAILY, first, last)
    return JSONResponse(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "days": [cost_row(r) for r in rows],
            "totals": _totals(rows, "days"),
        }
    )


@admin_only
async def monthly(request: Request) -> Response:
    """One month (``year`` and ``month``, default the current one), or a whole ``year``."""
    res = resources(request)
    today = res.now().date()
    year = params.integer(request, "year", today.year, 2000, 2100)
    month = params.integer(request, "month", today.month, 1, 12)
    has_year = "year" in request.query_params
    has_month = "month" in request.query_params
    if has_month and not has_year:
        raise BadInput("year", "year is required with month")
    if has_year and not has_month:
        months = await res.pool.fetch(queries.MONTHS_OF_YEAR, year)
        totals = _totals(months, "months")
        totals["days_rolled"] = sum(int(m["days_rolled"]) for m in months)
        totals["cost_by_service"] = _summed_maps(m["cost_by_service"] for m in months)
        totals["podcast_breakdown"] = _summed_maps(m["podcast_breakdown"] for m in months)
        return JSONResponse(
            {"year": year, "months": [cost_row(m) for m in months], "totals": totals}
        )
    row = await res.pool.fetchrow(queries.MONTHLY, year, month)
    if row is None:
        raise BadInput("month", f"nothing rolled up for {year}-{month:02d}", status=404)
    return JSONResponse(cost_row(row))


@admin_only
async def recalculate_episode(request: Request) -> Response:
    episode_id = params.entity_id(request, "episode_id")
    res = resources(request)
    stub = rollup_pb2_grpc.RollupServiceStub(res.channels["rollup"])
    try:
        await stub.RecalculateEntity(
            rollup_pb2.RecalculateEntityRequest(entity_type="episode", entity_id=episode_id),
            metadata=call_metadata(res.config.core.service_token),
            timeout=60,
        )
    except aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise BadInput(
                "episode_id", f"no events for episode {episode_id!r}", status=404
            ) from None
        return JSONResponse(
            {"error": f"the rollup service did not answer: {exc.code().name}"}, status_code=503
        )
    row = await res.pool.fetchrow(queries.ENTITY, "episode", episode_id)
    return JSONResponse(cost_row(row))
