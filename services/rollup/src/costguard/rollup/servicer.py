"""Thin gRPC adapter for RollupService."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from costguard.common.money import round_usd
from costguard.rollup.retention import PastRetention
from costguard.rollup.rollup import DateRollup
from costguard.rollup.runs import BadRange, Rollups, dates_between
from costguard.v1 import rollup_pb2, rollup_pb2_grpc

SERVICE_NAME = rollup_pb2.DESCRIPTOR.services_by_name["RollupService"].full_name
Context = aio.ServicerContext[Any, Any]


def _stamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _date(value: str, field: str, context: Context) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"{field}: expected YYYY-MM-DD, got {value[:40]!r}"
        )
        raise  # abort raises; this satisfies the type checker


def _usd(value: Decimal | str) -> str:
    """A stored exact cost (a numeric, or a breakdown's decimal text) as shown: 8 places."""
    return f"{round_usd(Decimal(value)):f}"


def _encode(results: list[DateRollup]) -> rollup_pb2.RollupResponse:
    return rollup_pb2.RollupResponse(
        dates=[
            rollup_pb2.DateRollup(
                date=r.date.isoformat(),
                users=r.users,
                events=r.events,
                cost_usd=f"{round_usd(r.cost_usd):f}",
                seconds=r.seconds,
            )
            for r in results
        ]
    )


class RollupServicer(rollup_pb2_grpc.RollupServiceServicer):
    def __init__(self, rollups: Rollups) -> None:
        self._rollups = rollups

    async def _run(self, days: list[date], context: Context) -> rollup_pb2.RollupResponse:
        try:
            return _encode(await self._rollups.run("rpc", days))
        except PastRetention as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise  # abort raises; this satisfies the type checker

    async def RollupDate(
        self, request: rollup_pb2.RollupDateRequest, context: Context
    ) -> rollup_pb2.RollupResponse:
        return await self._run([await _date(request.date, "date", context)], context)

    async def RollupRange(
        self, request: rollup_pb2.RollupRangeRequest, context: Context
    ) -> rollup_pb2.RollupResponse:
        first = await _date(request.from_date, "from_date", context)
        last = await _date(request.to_date, "to_date", context)
        try:
            days = dates_between(first, last)
        except BadRange as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"to_date: {exc}")
        return await self._run(days, context)

    async def RecalculateEntity(
        self, request: rollup_pb2.RecalculateEntityRequest, context: Context
    ) -> rollup_pb2.RecalculateEntityResponse:
        if not request.entity_id or len(request.entity_id) > 64:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "entity_id: 1 to 64 characters")
        try:
            row = await self._rollups.recalculate_entity(request.entity_type, request.entity_id)
        except BadRange as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"entity_type: {exc}")
        if row is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no events for {request.entity_type} {request.entity_id!r}",
            )
        cost = rollup_pb2.EntityCost(
            entity_type=row["entity_type"],
            entity_id=row["entity_id"],
            podcast_id=row["podcast_id"] or "",
            total_cost_usd=_usd(row["total_cost_usd"]),
            cost_by_service={k: _usd(v) for k, v in row["cost_by_service"].items()},
            cost_by_category={k: _usd(v) for k, v in row["cost_by_category"].items()},
            usage={k: float(v) for k, v in row["usage_metrics"].items()},
            event_count=row["event_count"],
            calculated_at=_stamp(row["calculated_at"]),
        )
        return rollup_pb2.RecalculateEntityResponse(cost=cost)

    async def GetRunStatus(
        self, request: rollup_pb2.RunStatusRequest, context: Context
    ) -> rollup_pb2.RunStatusResponse:
        limit = request.limit or 20
        if not 0 < limit <= 500:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "limit: must be between 1 and 500"
            )
        runs = await self._rollups.last_runs(limit)
        return rollup_pb2.RunStatusResponse(
            runs=[
                rollup_pb2.RollupRun(
                    id=r["id"],
                    trigger=r["trigger"],
                    from_date=r["from_date"].isoformat(),
                    to_date=r["to_date"].isoformat(),
                    status=r["status"],
                    started_at=_stamp(r["started_at"]),
                    finished_at=_stamp(r["finished_at"]),
                    error=r["error"] or "",
                )
                for r in runs
            ]
        )
