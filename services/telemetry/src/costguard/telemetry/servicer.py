"""Thin gRPC adapter: decode requests, call the ingest module, encode replies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from grpc import aio

from costguard.telemetry.ingest import IngestResult, store_events
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

SERVICE_NAME = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name


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


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def Record(
        self,
        request: telemetry_pb2.RecordRequest,
        context: aio.ServicerContext[telemetry_pb2.RecordRequest, telemetry_pb2.RecordResponse],
    ) -> telemetry_pb2.RecordResponse:
        return _encode(await store_events(self._pool, request.events))

    async def RecordStream(
        self,
        request_iterator: AsyncIterator[telemetry_pb2.RecordRequest],
        context: aio.ServicerContext[telemetry_pb2.RecordRequest, telemetry_pb2.RecordResponse],
    ) -> telemetry_pb2.RecordResponse:
        total = IngestResult()
        batch = 0
        async for request in request_iterator:
            total = total.plus(await store_events(self._pool, request.events, batch=batch))
            batch += 1
        return _encode(total)
