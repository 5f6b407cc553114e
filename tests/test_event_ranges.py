"""Every number of an event has a range (docs/cost-events.md, "The range of every number"):
outside it the event is rejected alone, naming the field; inside it the tables, every
aggregate of a day and a month, and the live counters hold any event; and the rollup counts
a row stored outside the ranges without failing."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from genai_prices import data as genai_data
from genai_prices.types import ModelPrice, TieredPrices
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from costguard.common.counters import global_key
from costguard.common.event_ranges import (
    DAYS_PER_MONTH,
    EVENTS_PER_DAY,
    INT64_MAX,
    MAX_EVENT_COST_USD,
    MAXIMUM,
    QUANTITY_BY_UNIT,
    SUMMED,
)
from costguard.common.pricing import (
    AwsPrices,
    LlmRate,
    PriceSheet,
    SeedPrices,
    cost_event_cost,
    default_overlay,
    llm_call_cost,
    vocabulary,
)
from costguard.common.rebuild import totals_for_day
from costguard.common.storage import held_within
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from costguard.v1 import telemetry_pb2_grpc
from tests.events import batch, cost, job, llm, ts
from tests.test_rollup import DAY, rollup
from tests.test_rollup import job as stored_job
from tests.test_rollup import llm as stored_llm

COST_EVENTS_DOC = Path(__file__).parents[1] / "docs" / "cost-events.md"
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


def _documented_ranges() -> dict[str, int]:
    text = COST_EVENTS_DOC.read_text()
    section = text.split("## The range of every number", 1)[1].split("\n## ", 1)[0]
    row = r"^\| `([a-z_.]+)`(?: in `([a-z]+)`)? \| [^|]+ \| ([\d,]+) \|"
    rows = re.findall(row, section, re.MULTILINE)
    return {
        f"{name} in {unit}" if unit else name: int(maximum.replace(",", ""))
        for name, unit, maximum in rows
    }


def test_the_documented_ranges_are_the_code_s() -> None:
    by_unit = {f"quantity in {unit}": limit for unit, limit in QUANTITY_BY_UNIT.items()}
    assert _documented_ranges() == dict(MAXIMUM) | by_unit


def test_a_month_of_the_largest_summed_counts_fits_a_bigint() -> None:
    events_a_month = EVENTS_PER_DAY * DAYS_PER_MONTH
    for name in SUMMED:
        assert events_a_month * MAXIMUM[name] <= INT64_MAX, name
    assert MAX_EVENT_COST_USD * 10**9 <= INT64_MAX  # one event's nano-dollars


_COLUMN_TYPES = """
SELECT column_name, data_type, numeric_precision, numeric_scale
FROM information_schema.columns
WHERE table_name IN ('telemetry_job_events', 'telemetry_llm_events', 'cost_events')
"""


async def test_each_maximum_fits_its_column(db: asyncpg.Pool) -> None:
    columns = {row["column_name"]: row for row in await db.fetch(_COLUMN_TYPES)}
    capacity = {"bigint": INT64_MAX, "integer": 2**31 - 1}
    for name, maximum in MAXIMUM.items():
        if name.startswith("metadata."):
            continue  # jsonb holds any number
        column = columns[name]
        if column["data_type"] == "numeric":
            digits = column["numeric_precision"] - column["numeric_scale"]
            assert maximum < 10**digits, name
        else:
            assert maximum <= capacity[column["data_type"]], name


def _rate(price: Decimal | TieredPrices | None) -> Decimal:
    if isinstance(price, TieredPrices):
        return max([price.base, *(tier.price for tier in price.tiers)])
    return price if isinstance(price, Decimal) else Decimal(0)


def _catalog_maxima() -> dict[str, Decimal]:
    """The highest of each rate costguard reads from genai-prices, over every model."""
    names = ("input_mtok", "cache_read_mtok", "output_mtok", "output_image_mtok")
    highest = dict.fromkeys((*names, "requests_kcount"), Decimal(0))

    def visit(found: Any) -> None:
        if isinstance(found, ModelPrice):
            for name in highest:
                highest[name] = max(highest[name], _rate(getattr(found, name, None)))
        elif isinstance(found, list):
            for item in found:
                visit(item)
        elif hasattr(found, "prices"):
            visit(found.prices)

    for provider in genai_data.providers:
        for model in provider.models:
            visit(model.prices)
    return highest


def test_the_highest_rates_assumed_are_the_price_library_s() -> None:
    highest = _catalog_maxima()
    assert (highest["input_mtok"], highest["output_mtok"]) == (Decimal(150), Decimal(600))
    assert highest["cache_read_mtok"] <= highest["input_mtok"]
    assert highest["output_image_mtok"] <= highest["output_mtok"]
    assert highest["requests_kcount"] == Decimal(14)


def _dearest_llm(provider: str) -> LlmRate:
    highest = _catalog_maxima()
    return LlmRate(
        model="dearest",
        provider=provider,
        input_per_token=highest["input_mtok"].scaleb(-6),
        cached_input_per_token=highest["input_mtok"].scaleb(-6),
        output_per_token=highest["output_mtok"].scaleb(-6),
        priced=True,
        per_request=highest["requests_kcount"].scaleb(-3),
    )


def _metadata_at_maximum() -> dict[str, Any]:
    return {
        name.removeprefix("metadata."): value
        for name, value in MAXIMUM.items()
        if name.startswith("metadata.")
    } | {"cached_input_tokens": 0, "operation": "SendMessageBatch"}


def test_no_event_costs_more_than_the_documented_maximum() -> None:
    seed, aws = SeedPrices.from_env({}), AwsPrices.from_env({})
    sheet = PriceSheet(seed=seed, aws=aws, llm={("dearest", "google"): _dearest_llm("google")})
    job_cost = seed.job_cost(MAXIMUM["cpu_ms"], MAXIMUM["rows_read"], MAXIMUM["rows_written"])
    rate = _dearest_llm("openai")
    llm_cost = llm_call_cost(rate, TOKENS, 0, MAXIMUM["output_tokens"])
    assert (job_cost, llm_cost) == (Decimal(100_004), Decimal("75000.014"))
    meta = _metadata_at_maximum()
    costs = []
    for event_type, service, unit in vocabulary():
        for model in [*(model for _, model in default_overlay()), "dearest"]:
            quality, _, size = model.partition("/")[2].partition("/")
            variant = {"model": model.partition("/")[0], "quality": quality, "size": size}
            quantity = QUANTITY_BY_UNIT.get(unit, MAXIMUM["quantity"])
            found = cost_event_cost(
                sheet, event_type, service, quantity, unit, metadata=meta | variant
            )
            costs.append(found.cost)
    day = (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    storage = held_within(MAXIMUM["metadata.size_bytes"], day[0], None, day, aws)
    assert max([job_cost, llm_cost, storage, *costs]) == MAX_EVENT_COST_USD
