"""Gemini's image output and speech, priced once at ingest and alike by the rollup's SQL.

Image tokens (Gemini's IMAGE output modality) are part of ``output_tokens`` and billed at the
model's output image rate from genai-prices; a text-to-speech model is priced from the
overlay table. The rates are written here by hand from genai-prices 0.2.3 and the overlay.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from costguard.common.pricing import (
    AwsPrices,
    SeedPrices,
    build_price_sheet,
    llm_call_cost,
    lookup_llm_rate,
)
from costguard.common.pricing.sheet import PriceSheet
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import Telemetry, build
from tests.events import llm, ts

SEED = SeedPrices.from_env({})
AWS = AwsPrices.from_env({})
MILLION = Decimal(1_000_000)
AT = datetime(2026, 11, 20, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")  # the services' default time zone
# gemini-2.5-flash-image: $0.30 input, $2.50 text output, $30 output image per 1M tokens.
IMAGE_MODEL = "gemini-2.5-flash-image"
# gemini-2.5-flash-preview-tts (overlay): $0.50 text input, $10.00 audio output per 1M.
TTS_MODEL = "gemini-2.5-flash-preview-tts"


def _image_call_cost(input_tokens: int, text_out: int, image_out: int) -> Decimal:
    return (
        input_tokens * Decimal("0.30") + text_out * Decimal("2.50") + image_out * Decimal(30)
    ) / MILLION


def test_image_output_is_billed_at_the_output_image_rate() -> None:
    rate = lookup_llm_rate(IMAGE_MODEL, "google", seed=SEED, at=AT)
    assert rate.priced
    assert rate.output_image_per_token == Decimal(30) / MILLION
    # 1,290 image tokens (one 1024x1024 image) and 40 words of text, from 500 tokens of prompt.
    cost = llm_call_cost(rate, 500, 0, 1_290 + 60, output_image_tokens=1_290)
    assert cost == _image_call_cost(500, 60, 1_290)


def test_a_model_without_an_image_rate_bills_image_tokens_as_output() -> None:
    rate = lookup_llm_rate("gemini-2.5-flash", "google", seed=SEED, at=AT)
    assert rate.output_image_per_token is None
    with_images = llm_call_cost(rate, 100, 0, 1_000, output_image_tokens=400)
    assert with_images == llm_call_cost(rate, 100, 0, 1_000)


def test_image_tokens_beyond_the_output_are_refused() -> None:
    rate = lookup_llm_rate(IMAGE_MODEL, "google", seed=SEED, at=AT)
    with pytest.raises(ValueError, match="output image tokens"):
        llm_call_cost(rate, 100, 0, 10, output_image_tokens=11)


def test_speech_models_are_priced_from_the_overlay() -> None:
    rate = lookup_llm_rate(TTS_MODEL, "google", seed=SEED, at=AT)
    assert (rate.priced, rate.matched) == (True, f"overlay/{TTS_MODEL}")
    cost = llm_call_cost(rate, 120, 0, 4_000)
    assert cost == (120 * Decimal("0.50") + 4_000 * Decimal(10)) / MILLION


def test_an_image_rate_survives_the_sheet_json_and_others_keep_their_json() -> None:
    sheet = build_price_sheet(
        [(IMAGE_MODEL, "google"), ("gpt-4o", "openai")], seed=SEED, aws=AWS, at=AT
    )
    loaded = PriceSheet.from_json(sheet.to_json())
    assert loaded.digest == sheet.digest
    assert loaded.llm[(IMAGE_MODEL, "google")].output_image_per_token == Decimal(30) / MILLION
    entries = {item["model"]: item for item in sheet.rates_json()["llm"]}
    # A model with no image price writes the same JSON as before image rates existed, so a
    # sheet stored then loads with its digest.
    assert "output_image_per_token" not in entries["gpt-4o"]
    assert entries[IMAGE_MODEL]["output_image_per_token"] == "0.00003"


@pytest.fixture
async def telemetry(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Telemetry]:
    built = await build(TelemetryConfig.from_env(service_env))
    yield built
    await built.server.stop()


async def test_ingest_and_the_rollup_price_image_and_speech_output_alike(
    telemetry: Telemetry, db: asyncpg.Pool
) -> None:
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    image = llm(
        provider="google",
        llm_model=IMAGE_MODEL,
        input_tokens=500,
        output_tokens=1_350,
        output_image_tokens=1_290,
        created_at=ts(now),
    )
    speech = llm(provider="google", llm_model=TTS_MODEL, input_tokens=120,
                 output_tokens=4_000, created_at=ts(now))  # fmt: skip
    result = await telemetry.ingestor.store([image, speech])
    assert (result.accepted, result.rejections) == (2, ())
    expected = {
        IMAGE_MODEL: _image_call_cost(500, 60, 1_290),
        TTS_MODEL: (120 * Decimal("0.50") + 4_000 * Decimal(10)) / MILLION,
    }
    stored = await db.fetch(
        "SELECT llm_model, output_image_tokens, cost_usd, unpriced_reason FROM telemetry_llm_events"
    )
    assert {r["llm_model"]: r["cost_usd"] for r in stored} == expected
    assert {r["llm_model"]: r["output_image_tokens"] for r in stored} == {
        IMAGE_MODEL: 1_290,
        TTS_MODEL: 0,
    }
    assert [r["unpriced_reason"] for r in stored] == [None, None]

    # The same calls written without a price (as the seed's own code writes rows) are priced
    # by the rollup's SQL to the same figures.
    await db.execute("DELETE FROM telemetry_llm_events")
    await db.executemany(
        "INSERT INTO telemetry_llm_events (event_id, user_id, tier, provider, llm_model, "
        "input_tokens, output_tokens, output_image_tokens, created_at, context_type) "
        "VALUES ($1, 'u1', 'free', 'google', $2, $3, $4, $5, $6, 'general')",
        [
            (uuid.uuid4(), IMAGE_MODEL, 500, 1_350, 1_290, now),
            (uuid.uuid4(), TTS_MODEL, 120, 4_000, 0, now),
        ],
    )
    pricing = Pricing(SEED, AWS)
    rolled = await rollup_costs_for_date(db, now.date(), tz=UTC_ZONE, pricing=pricing)
    rows = await db.fetch("SELECT llm_model, cost_usd FROM telemetry_llm_events")
    assert {r["llm_model"]: r["cost_usd"] for r in rows} == expected
    assert rolled.cost_usd == sum(expected.values())


async def test_image_tokens_beyond_the_output_are_rejected_naming_the_field(
    telemetry: Telemetry, db: asyncpg.Pool
) -> None:
    bad = llm(provider="google", llm_model=IMAGE_MODEL, output_tokens=10, output_image_tokens=11)
    good = llm(provider="google", llm_model=IMAGE_MODEL, output_tokens=10, output_image_tokens=10)
    result = await telemetry.ingestor.store([bad, good])
    assert result.accepted == 1
    ((index, field, reason),) = [(r.index, r.field, r.reason) for r in result.rejections]
    assert (index, field) == (0, "output_image_tokens")
    assert "exceeds output_tokens" in reason
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1
