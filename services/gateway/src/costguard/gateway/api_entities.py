"""Seed two's queries: an episode, a podcast's episodes, daily and monthly summaries."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from grpc import aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.request_ids import call_metadata
from costguard.gateway import params, queries
from costguard.gateway.auth import admin_only
from costguard.gateway.money import jsonable_row, usd
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources
from costguard.v1 import rollup_pb2, rollup_pb2_grpc


@admin_only
async def episode(request: Request) -> Response:
    episode_id = params.entity_id(request, "episode_id")
    row = await resources(request).pool.fetchrow(queries.ENTITY, "episode", episode_id)
    if row is None:
        raise BadInput("episode_id", f"no costs for episode {episode_id!r} yet", status=404)
    return JSONResponse(jsonable_row(row))


@admin_only
async def podcast_episodes(request: Request) -> Response:
    podcast_id = params.entity_id(request, "podcast_id")
    limit = params.integer(request, "limit", 500, 1, 5000)
    pool = resources(request).pool
    stats = await pool.fetchrow(queries.PODCAST_STATS, podcast_id)
    rows = await pool.fetch(queries.PODCAST_EPISODES, podcast_id, limit)
    assert stats is not None
    return JSONResponse(
        {
            "podcast_id": podcast_id,
            "episode_count": stats["episodes"],
            "total_cost_usd": usd(stats["total"]),
            "average_cost_usd": usd(round(stats["average"], 8)),
            "max_cost_usd": usd(stats["max"]),
            "episodes": [jsonable_row(r) for r in rows],
        }
    )


@admin_only
async def daily(request: Request) -> Response:
    res = resources(request)
    today = datetime.now(res.config.core.timezone).date()
    last = params.iso_date(request, "to", today)
    first = params.iso_date(request, "from", last - timedelta(days=29))
    if first > last or (last - first).days > 366:
        raise BadInput("from", "from must be on or before to, at most 366 days earlier")
    rows = await res.pool.fetch(queries.DAILY, first, last)
    return JSONResponse(
        {"from": first.isoformat(), "to": last.isoformat(), "days": [jsonable_row(r) for r in rows]}
    )


@admin_only
async def monthly(request: Request) -> Response:
    today = datetime.now(resources(request).config.core.timezone).date()
    year = params.integer(request, "year", today.year, 2000, 2100)
    month = params.integer(request, "month", today.month, 1, 12)
    row = await resources(request).pool.fetchrow(queries.MONTHLY, year, month)
    if row is None:
        raise BadInput("month", f"nothing rolled up for {year}-{month:02d}", status=404)
    return JSONResponse(jsonable_row(row))


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
    return JSONResponse(jsonable_row(row))
