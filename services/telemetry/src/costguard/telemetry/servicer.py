"""Thin gRPC adapter: decode requests, call the ingest module, encode replies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import grpc
from grpc import aio

from costguard.telemetry.ingest import Ingestor, IngestResult
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name

# Postgres is down or restarting: the client should retry the same events later.
_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)

Context = aio.ServicerContext[telemetry_pb2.RecordRequest, telemetry_pb2.RecordResponse]


def _encode(result: IngestResult) -> telemetry_pb2.RecordResponse:
    return telemetry_pb2.RecordResponse(
        accepted=result.accepted,
        duplicate=result.duplicate,
        rejected=len(result.rejections),
        rejections=[
            telemetry_pb2.Rejection(
                batch=r.batch, index=r.index, event_id=r.event_id, field=r.field, reason=r.reason
            )
            for r in result.rejections
        ],
    )


async def _stored(work: Awaitable[IngestResult], context: Context) -> IngestResult:
    try:
        return await work
    except _UNAVAILABLE as exc:
        log.warning("database unavailable", extra={"error": repr(exc)})
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry the batch")
        raise  # abort raises; this line only satisfies the type checker


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def Record(
        self, request: telemetry_pb2.RecordRequest, context: Context
    ) -> telemetry_pb2.RecordResponse:
        return _encode(await _stored(self._ingestor.store(request.events), context))

    async def RecordStream(
        self, request_iterator: AsyncIterator[telemetry_pb2.RecordRequest], context: Context
    ) -> telemetry_pb2.RecordResponse:
        total = IngestResult()
        batch = 0
        async for request in request_iterator:
            stored = await _stored(self._ingestor.store(request.events, batch=batch), context)
            total = total.plus(stored)
            batch += 1
        return _encode(total)
