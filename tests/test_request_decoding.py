"""A request that does not decode (a string that is not UTF-8, most often) ends with
INVALID_ARGUMENT naming the field, on every costguard gRPC service, instead of UNKNOWN."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from costguard.rollup.config import RollupConfig
from costguard.rollup.server import build as build_rollup
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build as build_throttle
from costguard.v1 import rollup_pb2, telemetry_pb2, throttle_pb2
from tests.events import batch, cost, job

MARK = "MARKER"
NOT_UTF8 = b"\xffARKER"  # 0xff never occurs in UTF-8; the same length as MARK


def corrupted(message: Message) -> bytes:
    """The message's bytes with the one string holding MARK made invalid UTF-8."""
    data = message.SerializeToString()
    assert data.count(MARK.encode()) == 1
    return data.replace(MARK.encode(), NOT_UTF8)


async def _refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as refused:
        await call()
    return refused.value.code(), refused.value.details() or ""


@pytest.fixture
async def channel(telemetry_addr: str) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(telemetry_addr) as opened:
        yield opened


def _raw(channel: aio.Channel, method: str) -> aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """A method called with bytes as they go on the wire, answering bytes."""
    call: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    return call


def _record(channel: aio.Channel) -> aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return _raw(channel, "/costguard.v1.TelemetryService/Record")


def _metadata(**values: Any) -> Struct:
    meta = Struct()
    meta.update(values)
    return meta


CASES = [
    (batch(job(), job(user_id=MARK)), "events[1].job.user_id"),
    (batch(cost(entities={"show": MARK})), "events[0].cost.entities['show']"),
    (batch(cost(entities={MARK: "x"})), "events[0].cost.entities[0].key"),
    (
        batch(cost(metadata=_metadata(note=MARK))),
        "events[0].cost.metadata.fields['note'].string_value",
    ),
    (
        batch(job(), cost(metadata=_metadata(nested={"list": [1, MARK]}))),
        "events[1].cost.metadata.fields['nested'].struct_value.fields['list']"
        ".list_value.values[1].string_value",
    ),
]


@pytest.mark.parametrize(("request_", "field"), CASES, ids=[f for _, f in CASES])
async def test_a_string_that_is_not_utf8_is_named_in_an_invalid_argument(
    channel: aio.Channel, db: asyncpg.Pool, request_: Message, field: str
) -> None:
    code, details = await _refusal(lambda: _record(channel)(corrupted(request_)))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, f"{field}: is not valid UTF-8")
    assert await db.fetchval("SELECT count(*) FROM telemetry_job_events") == 0


async def test_a_stream_names_the_request_that_does_not_decode(
    channel: aio.Channel, db: asyncpg.Pool
) -> None:
    stream: aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
        "/costguard.v1.TelemetryService/RecordStream"
    )
    requests = [batch(job()).SerializeToString(), corrupted(batch(job(job_name=MARK)))]
    code, details = await _refusal(lambda: stream(iter(requests)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "events[0].job.job_name: is not valid UTF-8 (request 1 of the stream)"


async def test_bytes_that_are_no_message_at_all_are_an_invalid_argument(
    channel: aio.Channel,
) -> None:
    code, details = await _refusal(lambda: _record(channel)(b"\x0a\xff\xff"))
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "request: is not a valid costguard.v1.RecordRequest message",
    )


async def test_the_service_still_answers_after_a_refusal(channel: aio.Channel) -> None:
    await _refusal(lambda: _record(channel)(corrupted(batch(job(user_id=MARK)))))
    answer = await _record(channel)(batch(job()).SerializeToString())
    reply = telemetry_pb2.RecordResponse.FromString(answer)
    assert reply.accepted == 1


async def test_the_throttle_names_the_field(db: asyncpg.Pool, service_env: dict[str, str]) -> None:
    app = await build_throttle(ThrottleConfig.from_env(service_env))
    port = await app.server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as opened:
            check = _raw(opened, "/costguard.v1.ThrottleService/Check")
            request = throttle_pb2.CheckRequest(user_id=MARK, tier="free")
            code, details = await _refusal(lambda: check(corrupted(request)))
    finally:
        await app.server.stop()
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "user_id: is not valid UTF-8")


async def test_the_rollup_names_the_field(db: asyncpg.Pool, service_env: dict[str, str]) -> None:
    app = await build_rollup(RollupConfig.from_env({**service_env, "ROLLUP_SCHEDULER": "false"}))
    port = await app.server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as opened:
            recalculate = _raw(opened, "/costguard.v1.RollupService/RecalculateEntity")
            request = rollup_pb2.RecalculateEntityRequest(entity_type="episode", entity_id=MARK)
            code, details = await _refusal(lambda: recalculate(corrupted(request)))
    finally:
        await app.server.stop()
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "entity_id: is not valid UTF-8")
