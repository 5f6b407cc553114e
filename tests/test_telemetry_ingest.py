"""TelemetryService: exactly once, and every bad event rejected alone with its field named."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from costguard.telemetry.checks import MAX_LENGTH
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.events import batch, cost, job, llm, ts


@pytest.fixture
async def stub(telemetry_addr: str) -> AsyncIterator[telemetry_pb2_grpc.TelemetryServiceStub]:
    async with aio.insecure_channel(telemetry_addr) as channel:
        yield telemetry_pb2_grpc.TelemetryServiceStub(channel)


async def _count(db: asyncpg.Pool, table: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table}"))


async def test_each_kind_is_stored(stub: Any, db: asyncpg.Pool) -> None:
    meta = Struct()
    meta.update({"bucket": "media", "size_bytes": 2048})
    reply = await stub.Record(
        batch(job(), llm(cached_input_tokens=400), cost(metadata=meta, episode_id="ep1"))
    )
    assert (reply.accepted, reply.duplicate, reply.rejected) == (3, 0, 0)
    row = await db.fetchrow("SELECT metadata, episode_id, quantity FROM cost_events")
    assert row is not None
    assert row["metadata"] == {"bucket": "media", "size_bytes": 2048}
    assert row["episode_id"] == "ep1"
    assert await db.fetchval("SELECT cached_input_tokens FROM telemetry_llm_events") == 400


async def test_a_retried_batch_is_stored_once(stub: Any, db: asyncpg.Pool) -> None:
    events = batch(job(), llm(), cost())
    first = await stub.Record(events)
    again = await stub.Record(events)
    assert (first.accepted, first.duplicate) == (3, 0)
    assert (again.accepted, again.duplicate) == (0, 3)
    assert [
        await _count(db, t) for t in ("telemetry_job_events", "telemetry_llm_events", "cost_events")
    ] == [1, 1, 1]


async def test_a_duplicate_inside_one_batch_is_stored_once(stub: Any, db: asyncpg.Pool) -> None:
    event = job()
    reply = await stub.Record(batch(event, event, event))
    assert (reply.accepted, reply.duplicate) == (1, 2)
    assert await _count(db, "telemetry_job_events") == 1


async def test_copies_racing_in_different_streams_are_stored_once(
    stub: Any, db: asyncpg.Pool
) -> None:
    events = [job() for _ in range(200)]
    requests = [batch(*events[i : i + 50]) for i in range(0, 200, 50)]

    async def stream() -> telemetry_pb2.RecordResponse:
        return await stub.RecordStream(iter(requests))  # type: ignore[no-any-return]

    replies = await asyncio.gather(*(stream() for _ in range(6)))
    assert sum(r.accepted for r in replies) == 200
    assert sum(r.duplicate for r in replies) == 5 * 200
    assert await _count(db, "telemetry_job_events") == 200


def _future(**delta: float) -> Any:
    return ts(datetime.now(UTC) + timedelta(**delta))


NOW = datetime.now(UTC)
BAD_EVENTS = [
    (job(user_id=""), "user_id", "is required"),
    (llm(user_id=""), "user_id", "is required"),
    (job(tier="platinum"), "tier", "'platinum' is not a configured tier (free, pro, enterprise)"),
    (cost(tier="gold"), "tier", "'gold' is not a configured tier"),
    (job(job_name="j" * 129), "job_name", "is 129 characters long; at most 128 fit"),
    (llm(llm_model="m" * 200), "llm_model", "at most 128 fit"),
    (job(user_id="a\x00b"), "user_id", "contains a NUL character"),
    (job(cpu_ms=-1), "cpu_ms", "must not be negative, got -1"),
    (job(rows_read=-5), "rows_read", "must not be negative"),
    (llm(output_tokens=-2), "output_tokens", "must not be negative"),
    (llm(input_tokens=10, cached_input_tokens=11), "cached_input_tokens", "exceeds input_tokens"),
    (llm(output_tokens=5, reasoning_tokens=6), "reasoning_tokens", "exceeds output_tokens"),
    (
        job(started_at=ts(NOW), finished_at=ts(NOW - timedelta(seconds=1))),
        "finished_at",
        "is before started_at",
    ),
    (
        job(queued_at=ts(NOW), started_at=ts(NOW - timedelta(seconds=5))),
        "started_at",
        "is before queued_at",
    ),
    (job(created_at=_future(days=3)), "created_at", "is in the future"),
    (job(mem_mb_peak=-1), "mem_mb_peak", "must not be negative"),
    (cost(quantity=math.inf), "quantity", "must be a finite number"),
    (cost(quantity=1e30), "quantity", "must be at most"),
    (cost(quantity=-1.0), "quantity", "must not be negative"),
    (job(event_id="not-a-uuid"), "event_id", "must be a UUID"),
    (cost(event_type=""), "event_type", "is required"),
    (telemetry_pb2.TelemetryEvent(), "kind", "has no job, llm or cost event"),
]


@pytest.mark.parametrize(
    ("bad", "field", "reason"), BAD_EVENTS, ids=[f"{f}:{r[:24]}" for _, f, r in BAD_EVENTS]
)
async def test_a_bad_event_is_rejected_alone_with_the_field_named(
    stub: Any, db: asyncpg.Pool, bad: telemetry_pb2.TelemetryEvent, field: str, reason: str
) -> None:
    good = [job(), llm(), cost()]
    reply = await stub.Record(batch(good[0], bad, good[1], good[2]))
    assert (reply.accepted, reply.rejected) == (3, 1)
    (rejection,) = reply.rejections
    assert (rejection.index, rejection.field) == (1, field)
    assert reason in rejection.reason


async def test_non_finite_metadata_is_rejected(stub: Any) -> None:
    meta = Struct()
    meta.update({"ratio": math.nan})
    reply = await stub.Record(batch(cost(metadata=meta)))
    assert [(r.field, "non-finite" in r.reason) for r in reply.rejections] == [("metadata", True)]


async def test_a_stream_reports_rejections_by_batch_and_index(stub: Any, db: asyncpg.Pool) -> None:
    requests = [batch(job(), job()), batch(job(), job(cpu_ms=-3), job())]
    reply = await stub.RecordStream(iter(requests))
    assert (reply.accepted, reply.rejected) == (4, 1)
    assert [(r.batch, r.index, r.field) for r in reply.rejections] == [(1, 1, "cpu_ms")]


async def test_length_limits_are_the_schema_column_widths(db: asyncpg.Pool) -> None:
    rows = await db.fetch(
        "SELECT table_name, column_name, character_maximum_length AS width "
        "FROM information_schema.columns "
        "WHERE table_name = ANY($1) AND data_type = 'character varying'",
        ["telemetry_job_events", "telemetry_llm_events", "cost_events"],
    )
    widths = {(r["column_name"], r["width"]) for r in rows}
    assert widths == set(MAX_LENGTH.items())
