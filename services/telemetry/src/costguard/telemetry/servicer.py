"""Thin gRPC adapter: decode requests, call the ingest module, encode replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import asyncpg
import grpc
from grpc import aio

from costguard.telemetry.ingest import Ingestor, IngestResult
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name

# Postgres is down or restarting: the client should retry the same events later.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)

_STREAM_CONCURRENCY = 3
T = TypeVar("T")

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


async def stored(work: Awaitable[T], context: Context) -> T:
    try:
        return await work
    except DATABASE_UNAVAILABLE as exc:
        log.warning("database unavailable", extra={"error": repr(exc)})
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry the batch")
        raise  # abort raises; this line only satisfies the type checker


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def Record(
        self, request: telemetry_pb2.RecordRequest, context: Context
    ) -> telemetry_pb2.RecordResponse:
        return _encode(await stored(self._ingestor.store(request.events), context))

    async def RecordStream(
        self, request_iterator: AsyncIterator[telemetry_pb2.RecordRequest], context: Context
    ) -> telemetry_pb2.RecordResponse:
        # Batches of one stream are stored concurrently, a few at a time, each in its own
        # transaction: Postgres works on one batch while Python prepares the next. Order
        # does not matter (event_ids make each event's fate independent); the reply comes
        # once every batch is stored.
        slots = asyncio.Semaphore(_STREAM_CONCURRENCY)
        pending: list[asyncio.Task[IngestResult]] = []

        async def store(request: telemetry_pb2.RecordRequest, batch: int) -> IngestResult:
            async with slots:
                return await self._ingestor.store(request.events, batch=batch)

        try:
            batch = 0
            async for request in request_iterator:
                await slots.acquire()  # read ahead no further than we can store
                slots.release()
                pending.append(asyncio.create_task(store(request, batch)))
                batch += 1
            results = await stored(asyncio.gather(*pending), context)
        finally:
            for task in pending:
                task.cancel()
        total = IngestResult()
        for result in results:
            total = total.plus(result)
        return _encode(total)
