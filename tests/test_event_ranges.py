"""Every number of an event has a range (docs/cost-events.md, "The range of every number"):
outside it the event is rejected alone, naming the field, and the rest of its batch is
stored; events at every maximum are stored and their day rolls up; and the rollup and the
counter rebuild count a row stored outside the ranges without failing. The ranges'
arithmetic is tests/test_event_range_bounds.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from costguard.common.counters import global_key
from costguard.common.event_ranges import MAXIMUM, QUANTITY_BY_UNIT
from costguard.common.pricing import AwsPrices
from costguard.common.rebuild import totals_for_day
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from costguard.v1 import telemetry_pb2_grpc
from tests.events import batch, cost, job, llm, ts
from tests.test_rollup import DAY, rollup
from tests.test_rollup import job as stored_job
from tests.test_rollup import llm as stored_llm

BIG = 2**63 - 1
TOKENS = MAXIMUM["input_tokens"]
IMAGES = QUANTITY_BY_UNIT["images"]


@pytest.fixture
async def stub(telemetry_addr: str) -> AsyncIterator[telemetry_pb2_grpc.TelemetryServiceStub]:
    async with aio.insecure_channel(telemetry_addr) as channel:
        yield telemetry_pb2_grpc.TelemetryServiceStub(channel)


def _meta(**values: Any) -> Struct:
    meta = Struct()
    meta.update(values)
    return meta


def _image(quantity: float, at: datetime) -> Any:
    """The dearest unit the price sheets know: a gpt-image-1 image, high, 1024x1536."""
    meta = _meta(model="gpt-image-1", quality="high", size="1024x1536")
    return cost(
        event_type="ai_api_call",
        service="openai_image",
        unit="images",
        quantity=quantity,
        metadata=meta,
        user_id="u1",
        tier="free",
        created_at=ts(at),
    )


def _gemini_text(at: datetime | None = None, **tokens: float) -> Any:
    meta = _meta(model="gemini-2.5-pro", **tokens)
    return cost(
        event_type="ai_api_call",
        service="gemini_text",
        unit="tokens",
        metadata=meta,
        created_at=ts(at or datetime.now(UTC)),
    )


OUT_OF_RANGE = [
    (job(cpu_ms=BIG), "cpu_ms"),
    (job(rows_read=BIG), "rows_read"),
    (job(rows_written=BIG), "rows_written"),
    (job(mem_mb_peak=2**31), "mem_mb_peak"),
    (job(duration_ms=BIG), "duration_ms"),
    (job(queue_wait_ms=BIG), "queue_wait_ms"),
    (job(attempt=2**31 - 1), "attempt"),
    (llm(input_tokens=BIG), "input_tokens"),
    (llm(output_tokens=BIG), "output_tokens"),
    (llm(output_tokens=BIG, reasoning_tokens=BIG), "output_tokens"),
    (llm(duration_ms=BIG), "duration_ms"),
    (cost(quantity=1e17), "quantity"),
    (cost(quantity=1e17, service="s3_delete"), "quantity"),
    (cost(quantity=1e17, event_type="unknown", service="unknown"), "quantity"),
    (_image(IMAGES + 1, datetime.now(UTC)), "quantity"),
    (_gemini_text(input_tokens=1e30, output_tokens=10), "metadata.input_tokens"),
    (_gemini_text(input_tokens=10, output_tokens=1e19), "metadata.output_tokens"),
    (cost(metadata=_meta(bucket="b", s3_key="k", size_bytes=1e30)), "metadata.size_bytes"),
    (cost(metadata=_meta(bucket="b", s3_key="k", file_size_mb=1e13)), "metadata.file_size_mb"),
    (
        cost(
            event_type="lambda_invocation",
            service="lambda",
            metadata=_meta(duration_seconds=1e300, memory_mb=1024),
        ),
        "metadata.duration_seconds",
    ),
    (
        cost(
            event_type="sqs_message",
            service="sqs",
            unit="messages",
            metadata=_meta(body_bytes=1e300),
        ),
        "metadata.body_bytes",
    ),
]


@pytest.mark.parametrize(
    ("bad", "field"), OUT_OF_RANGE, ids=[f"{i}:{f}" for i, (_, f) in enumerate(OUT_OF_RANGE)]
)
async def test_a_number_out_of_range_rejects_its_event_alone(
    stub: Any, db: asyncpg.Pool, bad: Any, field: str
) -> None:
    good = [job(), llm(), cost()]
    reply = await stub.Record(batch(good[0], bad, good[1], good[2]))
    assert (reply.accepted, reply.duplicate, reply.rejected) == (3, 0, 1)
    (rejection,) = reply.rejections
    assert (rejection.index, rejection.field) == (1, field)
    assert "must be at most" in rejection.reason


async def test_a_quantity_of_1e17_is_rejected_and_its_day_still_rolls_up(
    stub: Any, db: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    reply = await stub.Record(batch(cost(quantity=1e17, service="s3_delete", created_at=ts(now))))
    assert [(r.field, r.reason) for r in reply.rejections] == [
        ("quantity", "must be at most 1e+09, got 1e+17")
    ]
    assert await db.fetchval("SELECT count(*) FROM cost_events") == 0
    await rollup(db, now.date())


async def test_a_batch_costing_more_nano_dollars_than_a_bigint_holds_is_stored(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    """Past $9.2 billion: 37,000 events at the dearest maximum, or prices raised by the
    environment, here $1,000,000 an email."""
    env = {**service_env, "COST_AWS_SES_PER_1K_EMAILS": "1000000000"}
    server = await build_server(TelemetryConfig.from_env(env))
    port = await server.start()
    now = datetime.now(UTC)
    email = {"event_type": "ses_email", "service": "ses", "unit": "emails", "user_id": "u1"}
    emails = [cost(**email, quantity=10_000.0, created_at=ts(now)) for _ in range(2)]
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
            reply = await stub.Record(batch(*emails, job(created_at=ts(now))))
    finally:
        await server.stop()
    assert (reply.accepted, reply.rejected) == (3, 0)
    result = await rollup(db, now.date())
    assert result.cost_usd == 2 * 10**10 + 100 * Decimal("0.00000002")  # and the job's


def _at_maximum(now: datetime) -> list[Any]:
    """One event of each kind with every number at its maximum."""
    started = ts(now - timedelta(hours=1))
    limits = {
        name: MAXIMUM[name]
        for name in ("duration_ms", "queue_wait_ms", "cpu_ms", "mem_mb_peak", "rows_read")
    }
    s3 = _meta(bucket="b", s3_key="k", size_bytes=MAXIMUM["metadata.size_bytes"])
    lam = _meta(
        duration_seconds=MAXIMUM["metadata.duration_seconds"],
        memory_mb=MAXIMUM["metadata.memory_mb"],
    )
    gemini = _gemini_text(
        now, input_tokens=TOKENS, cached_input_tokens=TOKENS, output_tokens=MAXIMUM["output_tokens"]
    )
    return [
        job(
            **limits,
            rows_written=MAXIMUM["rows_written"],
            attempt=MAXIMUM["attempt"],
            started_at=started,
            created_at=ts(now),
        ),
        llm(
            input_tokens=TOKENS,
            cached_input_tokens=TOKENS,
            output_tokens=MAXIMUM["output_tokens"],
            reasoning_tokens=MAXIMUM["reasoning_tokens"],
            output_image_tokens=MAXIMUM["output_image_tokens"],
            duration_ms=MAXIMUM["duration_ms"],
            llm_model="o1-pro",
            created_at=ts(now),
        ),
        _image(IMAGES, now),
        cost(quantity=MAXIMUM["quantity"], metadata=s3, user_id="u1", created_at=ts(now)),
        cost(
            event_type="lambda_invocation",
            service="lambda",
            quantity=MAXIMUM["quantity"],
            metadata=lam,
            created_at=ts(now),
        ),
        gemini,
    ]


async def test_a_day_of_events_at_every_maximum_is_stored_and_rolls_up(
    stub: Any, db: asyncpg.Pool
) -> None:
    now = datetime.now(UTC).replace(hour=12)
    copies = 3
    for _ in range(copies):
        events = _at_maximum(now)
        reply = await stub.Record(batch(*events))
        assert (reply.accepted, reply.rejected) == (len(events), 0), reply.rejections
    result = await rollup(db, now.date())
    assert result.out_of_range == 0
    user = await db.fetchrow("SELECT * FROM cost_user_daily WHERE user_id = 'u1'")
    assert user is not None
    assert (user["cpu_ms"], user["tokens_in"], user["tokens_out"]) == (
        copies * MAXIMUM["cpu_ms"],
        copies * TOKENS,
        copies * MAXIMUM["output_tokens"],
    )
    month = await db.fetchrow("SELECT * FROM cost_monthly_summary")
    assert month is not None
    assert month["cpu_ms"] == copies * MAXIMUM["cpu_ms"]


async def test_rows_stored_outside_the_ranges_count_at_their_ends_and_the_day_rolls_up(
    db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows from before the ranges, or from other writers: their sums would overflow."""
    await stored_job(db, "u1", "free", BIG)
    await stored_job(db, "u1", "free", BIG)
    await stored_job(db, "u1", "free", -5)
    await stored_llm(db, "u1", "free", "gpt-4o", (BIG, 0, BIG))
    await stored_llm(db, "u1", "free", "gpt-4o", (BIG, 0, 7))
    await stored_job(db, "u1", "free", 1000)
    with caplog.at_level(logging.WARNING, logger="costguard.rollup.rollup"):
        result = await rollup(db)
    assert result.out_of_range == 5
    assert [r.__dict__["rows"] for r in caplog.records if "rows" in r.__dict__] == [5]
    user = await db.fetchrow("SELECT * FROM cost_user_daily WHERE date = $1", DAY)
    assert user is not None
    assert (user["jobs"], user["cpu_ms"]) == (4, 2 * MAXIMUM["cpu_ms"] + 1000)
    assert (user["tokens_in"], user["tokens_out"]) == (2 * TOKENS, MAXIMUM["output_tokens"] + 7)


async def test_a_rebuild_of_the_live_counters_counts_stored_rows_at_their_ends(
    db: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    await stored_job(db, "u1", "free", BIG, at=now)
    await stored_job(db, "u1", "free", BIG, at=now)
    async with db.acquire() as conn:
        totals = await totals_for_day(conn, now.date(), ZoneInfo("UTC"), AwsPrices.from_env({}))
    assert totals.figures[global_key(now.date())]["cpu_ms"] == 2 * MAXIMUM["cpu_ms"]
