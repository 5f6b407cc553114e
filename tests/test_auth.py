"""The service-token interceptor: every RPC but health and reflection needs the token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from grpc import aio

from costguard.common.auth import token_metadata
from costguard.common.health import health_status
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

TOKEN = "s3cret-service-token"


@pytest.fixture
async def guarded(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[aio.Channel]:
    server = await build_server(
        TelemetryConfig.from_env({**service_env, "COSTGUARD_SERVICE_TOKEN": TOKEN})
    )
    port = await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop()


def _one_job() -> telemetry_pb2.RecordRequest:
    job = telemetry_pb2.JobEvent(
        event_id=str(uuid.uuid4()), job_name="j", user_id="u1", tier="free", success=True
    )
    return telemetry_pb2.RecordRequest(events=[telemetry_pb2.TelemetryEvent(job=job)])


@pytest.mark.parametrize("metadata", [(), token_metadata("wrong"), (("authorization", TOKEN),)])
async def test_unary_call_without_the_token_is_unauthenticated(
    guarded: aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    stub = telemetry_pb2_grpc.TelemetryServiceStub(guarded)
    with pytest.raises(aio.AioRpcError) as failure:
        await stub.Record(_one_job(), metadata=metadata)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_stream_call_without_the_token_is_unauthenticated(guarded: aio.Channel) -> None:
    stub = telemetry_pb2_grpc.TelemetryServiceStub(guarded)
    with pytest.raises(aio.AioRpcError) as failure:
        await stub.RecordStream(iter([_one_job()]))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_token_lets_calls_through_and_health_needs_none(
    guarded: aio.Channel, db: asyncpg.Pool
) -> None:
    stub = telemetry_pb2_grpc.TelemetryServiceStub(guarded)
    reply = await stub.Record(_one_job(), metadata=token_metadata(TOKEN))
    assert reply.accepted == 1
    assert await db.fetchval("SELECT count(*) FROM telemetry_job_events") == 1
    assert await health_status(guarded) == "SERVING"
