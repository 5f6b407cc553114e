"""The event ranges (docs/cost-events.md, "The range of every number") are what the
document says, and their arithmetic holds: each maximum fits its column, a month of the
largest counts fits a bigint, and no event at its maxima costs more than the documented
maximum at the highest prices of the price sheets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from genai_prices import data as genai_data
from genai_prices.types import ModelPrice, TieredPrices

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
from costguard.common.storage import held_within

COST_EVENTS_DOC = Path(__file__).parents[1] / "docs" / "cost-events.md"
TOKENS = MAXIMUM["input_tokens"]


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
