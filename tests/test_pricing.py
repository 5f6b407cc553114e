"""Pricing rules (issue 5, and the cost-event vocabulary of docs/cost-events.md), by hand
and against genai-prices' own figures. No DB, no network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given
from hypothesis import strategies as st

from costguard.common.config import ConfigError
from costguard.common.pricing import (
    CATEGORY_AI,
    CATEGORY_AWS,
    CATEGORY_UNPRICED,
    EVENT_RATE_COLUMNS,
    LLM_RATE_COLUMNS,
    NANO,
    OVERLAY_RATE_COLUMNS,
    AwsPrices,
    LlmRate,
    PriceChange,
    PriceSheet,
    SeedPrices,
    build_price_sheet,
    cost_event_cost,
    default_overlay,
    event_rate_rows,
    llm_call_cost,
    llm_rate_rows,
    overlay_rate_rows,
    price_changes,
    to_nano_usd,
    vocabulary,
)
from costguard.common.pricing.events import stored_bytes

DATA = Path(__file__).with_name("data")
RETIRED = "s3_storage_days"  # read from old sheets only
SEED = SeedPrices.from_env({})
AWS = AwsPrices.from_env({})
AT = datetime(2026, 6, 1, tzinfo=UTC)
# (model, provider) as events record them: no cache price (gpt-3.5-turbo), long-prompt tiers
# (gemini-2.5-pro, claude-sonnet-4-5), a per-request fee (sonar).
KNOWN = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-3.5-turbo", "openai"),
    ("gemini-2.5-pro", "google"),
    ("claude-sonnet-4-5", "anthropic"),
    ("sonar", "perplexity"),
]
UNKNOWN = [("my-finetune-v3", "openai"), ("gpt-4o", "no-such-provider"), ("", "openai")]


@pytest.fixture(scope="module")
def sheet() -> PriceSheet:
    return build_price_sheet([*KNOWN, *UNKNOWN], seed=SEED, aws=AWS, at=AT)


def _library_total(model: str, provider: str, inp: int, cached: int, out: int) -> Decimal:
    usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
    found = calc_price(usage, model, provider_id=provider, genai_request_timestamp=AT)
    return found.total_price


# --- seed constants -----------------------------------------------------------------------


def test_seed_constants_default_to_the_seed_values() -> None:
    assert (
        SeedPrices(
            cpu_ms=Decimal("0.00000002"),
            db_row_1k=Decimal("0.0005"),
            llm_input_token=Decimal("0.00000015"),
            llm_output_token=Decimal("0.0000006"),
        )
        == SEED
    )
    assert all(type(getattr(SEED, f.name)) is Decimal for f in fields(SEED))


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("COST_CPU_MS", "cpu_ms"),
        ("COST_DB_ROW_1K", "db_row_1k"),
        ("COST_LLM_INPUT_TOKEN", "llm_input_token"),
        ("COST_LLM_OUTPUT_TOKEN", "llm_output_token"),
    ],
)
def test_each_seed_constant_is_overridden_from_the_environment(
    variable: str, attribute: str
) -> None:
    prices = SeedPrices.from_env({variable: "0.125"})
    assert getattr(prices, attribute) == Decimal("0.125")
    others = [f.name for f in fields(prices) if f.name != attribute]
    assert all(getattr(prices, name) == getattr(SEED, name) for name in others)


@pytest.mark.parametrize("bad", ["cheap", "-0.1", "nan", "Infinity"])
def test_a_bad_seed_value_names_its_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^COST_LLM_OUTPUT_TOKEN: ") as raised:
        SeedPrices.from_env({"COST_LLM_OUTPUT_TOKEN": bad})
    assert raised.value.variable == "COST_LLM_OUTPUT_TOKEN"


def test_job_cost_by_hand_from_the_constants() -> None:
    # 1,500 ms * $0.00000002 + (300 + 100) rows / 1,000 * $0.0005 = $0.00003 + $0.0002
    cost = SEED.job_cost(cpu_ms=1500, rows_read=300, rows_written=100)
    assert cost == Decimal("0.00023")
    assert type(cost) is Decimal
    assert to_nano_usd(cost) == 230_000
    assert Decimal("1e-9") == NANO


# --- LLM calls ----------------------------------------------------------------------------


def test_gpt_4o_bills_cached_tokens_once_at_the_cache_rate(sheet: PriceSheet) -> None:
    rate = sheet.llm_rate("gpt-4o", "openai")
    assert rate.priced
    assert rate.matched == "openai/gpt-4o"
    # 10,000 input of which 4,000 cached; 1,500 output of which some are reasoning:
    # 6,000 * $2.50/M + 4,000 * $1.25/M + 1,500 * $10/M = 0.015 + 0.005 + 0.015
    cost = llm_call_cost(rate, 10_000, 4_000, 1_500)
    assert cost == Decimal("0.035")
    assert cost == _library_total("gpt-4o", "openai", 10_000, 4_000, 1_500)
    assert type(cost) is Decimal


def test_a_model_without_a_cache_rate_bills_cached_tokens_as_input(sheet: PriceSheet) -> None:
    rate = sheet.llm_rate("gpt-3.5-turbo", "openai")
    assert rate.priced
    assert rate.cached_input_per_token == rate.input_per_token == Decimal("0.0000005")
    # 10,000 * $0.50/M + 1,500 * $1.50/M, whatever share of the input was cached
    cost = llm_call_cost(rate, 10_000, 4_000, 1_500)
    assert cost == Decimal("0.00725") == llm_call_cost(rate, 10_000, 0, 1_500)
    assert cost == _library_total("gpt-3.5-turbo", "openai", 10_000, 4_000, 1_500)


@pytest.mark.parametrize(
    ("input_tokens", "expected"),
    [
        # up to 200,000 input tokens, $1.25 / $0.125 cached / $10 per M:
        # 150,000 * 1.25e-6 + 50,000 * 1.25e-7 + 2,000 * 1e-5 = 0.1875 + 0.00625 + 0.02
        (200_000, "0.21375"),
        # past it every token of the call costs the long-prompt rates, $2.50 / $0.25 / $15:
        # 150,001 * 2.5e-6 + 50,000 * 2.5e-7 + 2,000 * 1.5e-5 = 0.3750025 + 0.0125 + 0.03
        (200_001, "0.4175025"),
    ],
)
def test_long_prompts_are_billed_at_the_long_context_rates(
    sheet: PriceSheet, input_tokens: int, expected: str
) -> None:
    rate = sheet.llm_rate("gemini-2.5-pro", "google")
    cost = llm_call_cost(rate, input_tokens, 50_000, 2_000)
    assert cost == Decimal(expected)
    assert cost == _library_total("gemini-2.5-pro", "google", input_tokens, 50_000, 2_000)


@given(
    model=st.sampled_from(KNOWN),
    input_tokens=st.integers(0, 2_000_000),
    cached_share=st.fractions(0, 1),
    output_tokens=st.integers(0, 500_000),
)
def test_call_cost_equals_genai_prices_for_any_usage(
    sheet: PriceSheet,
    model: tuple[str, str],
    input_tokens: int,
    cached_share: Any,
    output_tokens: int,
) -> None:
    cached = int(input_tokens * cached_share)
    cost = llm_call_cost(sheet.llm_rate(*model), input_tokens, cached, output_tokens)
    assert cost == _library_total(*model, input_tokens, cached, output_tokens)


def test_an_unknown_model_is_priced_at_the_constants_and_flagged(sheet: PriceSheet) -> None:
    for model, provider in UNKNOWN:
        rate = sheet.llm_rate(model, provider)
        assert not rate.priced
        assert rate.matched == ""
        assert (rate.input_per_token, rate.output_per_token) == (
            SEED.llm_input_token,
            SEED.llm_output_token,
        )
        # no discount is known, so cached tokens cost the full input constant; never $0
        cost = llm_call_cost(rate, 1_000, 400, 200)
        assert cost == SEED.llm_cost(1_000, 200) == Decimal("0.00027")
    assert set(sheet.unpriced_models) == set(UNKNOWN)
    never_seen = sheet.llm_rate("model-not-on-the-sheet")
    assert (never_seen.priced, never_seen.provider) == (False, "openai")
    assert llm_call_cost(never_seen, 10, 0, 10) > 0


def test_an_insight_cache_hit_costs_nothing(sheet: PriceSheet) -> None:
    rate = sheet.llm_rate("sonar", "perplexity")
    assert rate.per_request == Decimal("0.012")
    assert llm_call_cost(rate, 500, 0, 50, cache_hit=True) == 0
    assert llm_call_cost(rate, 0, 0, 0) == Decimal("0.012")


@pytest.mark.parametrize(("inp", "cached", "out"), [(10, 11, 0), (-1, 0, 0), (5, 0, -2)])
def test_impossible_token_counts_are_refused(
    sheet: PriceSheet, inp: int, cached: int, out: int
) -> None:
    with pytest.raises(ValueError, match="token"):
        llm_call_cost(sheet.llm_rate("gpt-4o"), inp, cached, out)


_RATES = st.decimals(min_value=0, max_value=Decimal("0.001"), places=12)


@given(
    input_rate=_RATES,
    cache_discount=st.decimals(min_value=0, max_value=1, places=3),
    output_rate=_RATES,
    tokens=st.tuples(*[st.integers(0, 10**9)] * 3),
    more=st.integers(1, 10**6),
)
def test_call_cost_is_never_negative_and_grows_with_each_token_count(
    input_rate: Decimal,
    cache_discount: Decimal,
    output_rate: Decimal,
    tokens: tuple[int, int, int],
    more: int,
) -> None:
    rate = LlmRate("m", "p", input_rate, input_rate * cache_discount, output_rate, priced=True)
    uncached, cached, out = tokens
    cost = llm_call_cost(rate, uncached + cached, cached, out)
    assert type(cost) is Decimal
    assert cost >= 0
    assert llm_call_cost(rate, uncached + cached + more, cached, out) >= cost
    assert llm_call_cost(rate, uncached + cached, cached, out + more) >= cost
    # more of the same input served from cache never costs more
    if uncached >= more:
        assert llm_call_cost(rate, uncached + cached, cached + more, out) <= cost


# --- cost events --------------------------------------------------------------------------

GIB = 2**30
# genai-prices' gemini-2.0-flash (provider google): $0.10 input, $0.025 cached, $0.40 output
# per 1M tokens, as checked against calc_price below.
FLASH_IN, FLASH_CACHED, FLASH_OUT = Decimal("0.10"), Decimal("0.025"), Decimal("0.40")
M = 10**6


@pytest.fixture(scope="module")
def gemini() -> PriceSheet:
    models = [("gemini-2.0-flash", "google"), ("gemini-2.5-pro", "google"), ("gemini-9", "google")]
    return build_price_sheet(models, seed=SEED, aws=AWS, at=AT)


def test_gemini_flash_rates_are_the_ones_the_tests_write_by_hand(gemini: PriceSheet) -> None:
    rate = gemini.llm_rate("gemini-2.0-flash", "google")
    assert (rate.priced, rate.matched) == (True, "google/gemini-2.0-flash")
    assert rate.input_per_token * M == FLASH_IN
    assert rate.cached_input_per_token * M == FLASH_CACHED
    assert rate.output_per_token * M == FLASH_OUT
    assert rate.per_request == 0
    assert not rate.tiers


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # the seed's example: 1,200 input and 300 output tokens of gemini-2.0-flash
        (
            ("ai_api_call", "gemini_text", 1500, "tokens",
             {"model": "gemini-2.0-flash", "input_tokens": 1200, "output_tokens": 300,
              "operation": "generateText"}),
            1200 * FLASH_IN / M + 300 * FLASH_OUT / M,
        ),
        # cached tokens are part of the input and billed once, at the cache rate
        (
            ("ai_api_call", "gemini_text", 12_000, "tokens",
             {"model": "gemini-2.0-flash", "input_tokens": 10_000.0,
              "cached_input_tokens": 4_000, "output_tokens": 2_000}),
            (6_000 * FLASH_IN + 4_000 * FLASH_CACHED + 2_000 * FLASH_OUT) / M,
        ),
        # the overlay: $0.50 / $10 per 1M text-in / audio-out tokens
        (
            ("ai_api_call", "gemini_tts", 12_400, "tokens",
             {"model": "gemini-2.5-flash-preview-tts", "input_tokens": 400,
              "output_tokens": 12_000}),
            400 * Decimal("0.50") / M + 12_000 * Decimal("10.00") / M,
        ),
        (
            ("ai_api_call", "gemini_image", 3, "images", {"model": "imagen-4.0-fast-generate-001"}),
            3 * Decimal("0.02"),
        ),
        (("ai_api_call", "gemini_image", 2, "images", {"model": "gemini-2.5-flash-image"}),
         2 * Decimal("0.039")),
        # $0.005 per 1,000 PUTs, whatever the size: storage is priced by what is held
        (("s3_operation", "s3_put", 1, "requests", {"size_known": False, "size_bytes": 0}),
         Decimal("0.005") / 1000),
        (("s3_operation", "s3_put", 2, "requests", {"size_bytes": 5 * GIB, "s3_key": "a"}),
         2 * Decimal("0.005") / 1000),
        (("s3_operation", "s3_copy", 1, "requests", {"file_size_mb": 1024}),
         Decimal("0.005") / 1000),
        (("s3_operation", "s3_list", 4, "requests", {}), 4 * Decimal("0.005") / 1000),
        (("s3_operation", "s3_get", 1, "requests", {"size_bytes": 5 * GIB}),
         Decimal("0.0004") / 1000),
        (("s3_operation", "s3_head", 25, "requests", {}), 25 * Decimal("0.0004") / 1000),
        (("s3_operation", "s3_delete", 1, "requests", {"deleted_count": 900}), Decimal(0)),
        # $0.10 per 1,000 emails sent
        (("ses_email", "ses", 48, "emails",
          {"template": "t", "batch_size": 50, "success_count": 48, "failed_count": 2}),
         48 * Decimal("0.10") / 1000),
        # $0.40 per million requests; one request per 64 KiB of payload, a batch of up to 10
        # messages is one request
        (("sqs_message", "sqs", 1, "messages", {"body_bytes": 100}), Decimal("0.0000004")),
        (("sqs_message", "sqs", 1, "messages", {"body_bytes": 65_537}), 2 * Decimal("0.0000004")),
        (("sqs_message", "sqs", 1, "messages", {"body_bytes": 200_000}), 4 * Decimal("0.0000004")),
        (("sqs_message", "sqs", 3, "messages", {"operation": "SendMessage"}),
         3 * Decimal("0.0000004")),
        (("sqs_message", "sqs", 10, "messages",
          {"operation": "SendMessageBatch", "body_bytes": 5_000}), Decimal("0.0000004")),
        (("sqs_message", "sqs", 25, "messages", {"operation": "SendMessageBatch"}),
         3 * Decimal("0.0000004")),  # ceil(25 / 10)
        (("sqs_message", "sqs", 25, "messages",
          {"operation": "SendMessageBatch", "body_bytes": 300_000}),
         5 * Decimal("0.0000004")),  # ceil(300,000 / 65,536)
        (("sqs_message", "sqs", 0, "messages", {"body_bytes": 100}), Decimal(0)),
        # $0.20 per million invocations + GB-seconds at $0.0000166667
        (("lambda_invocation", "lambda", 1, "requests",
          {"duration_seconds": 1.235, "memory_mb": 256}),
         Decimal("0.0000002") + Decimal("1.235") * 256 / 1024 * Decimal("0.0000166667")),
        (("lambda_invocation", "lambda", 3, "requests",
          {"duration_seconds": 4.5, "memory_mb": 1536}),
         3 * Decimal("0.0000002") + Decimal("4.5") * Decimal("1.5") * Decimal("0.0000166667")),
        (("lambda_invocation", "lambda", 1, "requests", {}), Decimal("0.0000002")),
    ],
)  # fmt: skip
def test_cost_events_by_hand(
    gemini: PriceSheet,
    event: tuple[str, str, Decimal | int, str, dict[str, Any]],
    expected: Decimal,
) -> None:
    event_type, service, quantity, unit, metadata = event
    priced = cost_event_cost(gemini, event_type, service, quantity, unit, metadata=metadata)
    assert priced.cost == expected
    assert priced.category == (CATEGORY_AI if event_type == "ai_api_call" else CATEGORY_AWS)
    assert (priced.reason, priced.item, priced.priced) == ("", "", True)
    assert type(priced.cost) is Decimal


def test_the_text_rate_is_genai_prices_own(gemini: PriceSheet) -> None:
    usage = Usage(input_tokens=250_000, cache_read_tokens=1_000, output_tokens=3_000)
    library = calc_price(usage, "gemini-2.5-pro", provider_id="google", genai_request_timestamp=AT)
    metadata = {"model": "gemini-2.5-pro", "input_tokens": 250_000,
                "cached_input_tokens": 1_000, "output_tokens": 3_000}  # fmt: skip
    priced = cost_event_cost(gemini, "ai_api_call", "gemini_text", 0, "tokens", metadata=metadata)
    assert priced.cost == library.total_price  # a long prompt: the long-context band


def test_the_tts_overlay_agrees_with_genai_prices() -> None:
    # genai-prices 0.2.3 maps the preview TTS models to its gemini-2.5-*-tts entries; should a
    # later version change them, this says so rather than silently diverging.
    for model, (inp, out) in {
        "gemini-2.5-flash-preview-tts": ("0.50", "10.00"),
        "gemini-2.5-pro-preview-tts": ("1.00", "20.00"),
    }.items():
        found = calc_price(Usage(), model, provider_id="google", genai_request_timestamp=AT)
        assert (found.model_price.input_mtok, found.model_price.output_mtok) == (
            Decimal(inp),
            Decimal(out),
        )
        rate = default_overlay()[("tts", model)]
        assert (rate.input_per_token * M, rate.output_per_token * M) == (Decimal(inp), Decimal(out))


def test_the_size_an_upload_stores_is_read_as_the_rollup_reads_it() -> None:
    # size_bytes when it is a number, else the app's file_size_mb (buffer.length / 1024 /
    # 1024) in MiB; a size_bytes that is a number wins, even a negative one (which counts as 0)
    assert stored_bytes({"size_bytes": GIB, "file_size_mb": 1}) == GIB
    assert stored_bytes({"file_size_mb": 5.5}) == Decimal("5.5") * 2**20
    assert stored_bytes({"size_bytes": -5, "file_size_mb": 1024}) == 0
    assert stored_bytes({"size_bytes": "12", "s3_key": "a"}) == 0


def test_storage_is_priced_per_byte_second_at_a_gib_held_for_thirty_days() -> None:
    rate = AWS.s3_storage_per_byte_second
    exact = Decimal("0.023") / (Decimal(GIB) * 2_592_000)  # at the context's 28 digits
    assert abs(rate - exact) < Decimal("1e-40")
    assert rate == rate.quantize(Decimal("1e-40"))
    # a GiB held 30 days is the GB-month price, to 22 decimal places
    assert abs(GIB * 2_592_000 * rate - Decimal("0.023")) < Decimal("1e-22")
    cheaper = AwsPrices.from_env({"COST_AWS_S3_STORAGE_GB_MONTH": "0.0125"})
    assert cheaper.s3_storage_per_byte_second < rate
    # the retired variable is not read
    assert AwsPrices.from_env({"COST_AWS_S3_STORAGE_DAYS": "1"}) == AWS
    assert AWS.s3_storage_days is None


@pytest.mark.parametrize(
    ("event", "reason", "item"),
    [
        (("openai_audio", "whisper", "seconds", {}), "unknown event type 'openai_audio'",
         "whisper:openai_audio"),
        (("ai_api_call", "gemini_txt", "tokens", {"model": "gemini-2.0-flash"}),
         "unknown service 'gemini_txt' for event type 'ai_api_call'", "gemini_txt:ai_api_call"),
        (("s3_operation", "s3_restore", "requests", {}),
         "unknown service 's3_restore' for event type 's3_operation'", "s3_restore:s3_operation"),
        (("ai_api_call", "gemini_text", "token",
          {"model": "gemini-2.0-flash", "input_tokens": 1, "output_tokens": 1}),
         "unit 'token' does not match 'tokens'", "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("lambda_invocation", "lambda", "ms", {}), "unit 'ms' does not match 'requests'",
         "lambda:lambda_invocation"),
        (("ai_api_call", "gemini_text", "tokens", {"input_tokens": 1, "output_tokens": 1}),
         "metadata 'model' is missing or not a non-empty string", "gemini_text:ai_api_call"),
        (("ai_api_call", "gemini_image", "images", {"model": ""}),
         "metadata 'model' is missing or not a non-empty string", "gemini_image:ai_api_call"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-2.0-flash", "output_tokens": 1}),
         "metadata 'input_tokens' is missing or not a non-negative integer",
         "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("ai_api_call", "gemini_tts", "tokens",
          {"model": "gemini-2.5-pro-preview-tts", "input_tokens": 1, "output_tokens": "12"}),
         "metadata 'output_tokens' is missing or not a non-negative integer",
         "gemini_tts:ai_api_call:gemini-2.5-pro-preview-tts"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-2.0-flash", "input_tokens": 1.5, "output_tokens": 1}),
         "metadata 'input_tokens' is missing or not a non-negative integer",
         "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-2.0-flash", "input_tokens": 10, "output_tokens": -1}),
         "metadata 'output_tokens' is missing or not a non-negative integer",
         "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-2.0-flash", "input_tokens": 10, "output_tokens": 1,
           "cached_input_tokens": True}),
         "metadata 'cached_input_tokens' is not a non-negative integer",
         "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-2.0-flash", "input_tokens": 10, "output_tokens": 1,
           "cached_input_tokens": 11}),
         "metadata 'cached_input_tokens' exceeds 'input_tokens'",
         "gemini_text:ai_api_call:gemini-2.0-flash"),
        (("ai_api_call", "gemini_text", "tokens",
          {"model": "gemini-9", "input_tokens": 10, "output_tokens": 1}),
         "no price for model 'gemini-9'", "gemini_text:ai_api_call:gemini-9"),
        (("ai_api_call", "gemini_text", "tokens",  # known to the library, not on the sheet
          {"model": "gemini-2.5-flash", "input_tokens": 10, "output_tokens": 1}),
         "no price for model 'gemini-2.5-flash'", "gemini_text:ai_api_call:gemini-2.5-flash"),
        (("ai_api_call", "gemini_image", "images", {"model": "dall-e-3"}),
         "no price for model 'dall-e-3'", "gemini_image:ai_api_call:dall-e-3"),
    ],
)  # fmt: skip
def test_an_unknown_event_is_zero_and_flagged_unpriced_with_its_reason(
    gemini: PriceSheet, event: tuple[str, str, str, dict[str, Any]], reason: str, item: str
) -> None:
    event_type, service, unit, metadata = event
    priced = cost_event_cost(gemini, event_type, service, 7, unit, metadata=metadata)
    assert priced == (Decimal(0), CATEGORY_UNPRICED, reason, item)
    assert not priced.priced


def test_a_sheet_without_the_overlay_prices_no_tts_or_image(gemini: PriceSheet) -> None:
    old = replace(gemini, overlay=None)
    tts = {"model": "gemini-2.5-flash-preview-tts", "input_tokens": 1, "output_tokens": 1}
    priced = cost_event_cost(old, "ai_api_call", "gemini_tts", 2, "tokens", metadata=tts)
    assert priced.reason == "no price for model 'gemini-2.5-flash-preview-tts'"


def test_a_negative_quantity_is_refused(gemini: PriceSheet) -> None:
    with pytest.raises(ValueError, match="quantity"):
        cost_event_cost(gemini, "ses_email", "ses", -1, "emails")


def test_aws_defaults_are_the_documented_list_prices() -> None:
    assert (
        AwsPrices(
            s3_put_per_1k=Decimal("0.005"),
            s3_get_per_1k=Decimal("0.0004"),
            s3_storage_gb_month=Decimal("0.023"),
            ses_per_1k_emails=Decimal("0.10"),
            sqs_per_million=Decimal("0.40"),
            lambda_gb_second=Decimal("0.0000166667"),
            lambda_per_million_requests=Decimal("0.20"),
        )
        == AWS
    )
    assert all(type(getattr(AWS, f.name)) is Decimal for f in fields(AWS) if f.name != RETIRED)


def test_aws_prices_are_overridden_from_the_environment(gemini: PriceSheet) -> None:
    prices = AwsPrices.from_env(
        {"COST_AWS_SES_PER_1K_EMAILS": "0.12", "COST_AWS_LAMBDA_GB_SECOND": "0.0000133334"}
    )
    sheet = replace(gemini, aws=prices)
    assert cost_event_cost(sheet, "ses_email", "ses", 1000, "emails").cost == Decimal("0.12")
    run = {"duration_seconds": 3, "memory_mb": 1024}
    cost = cost_event_cost(sheet, "lambda_invocation", "lambda", 0, "requests", metadata=run).cost
    assert cost == Decimal("0.0000400002")
    assert prices.s3_put_per_1k == AWS.s3_put_per_1k


def test_a_bad_aws_price_names_its_variable() -> None:
    with pytest.raises(ConfigError, match=r"^COST_AWS_SQS_PER_MILLION: ") as raised:
        AwsPrices.from_env({"COST_AWS_SQS_PER_MILLION": "forty cents"})
    assert raised.value.variable == "COST_AWS_SQS_PER_MILLION"


# --- the price sheet ----------------------------------------------------------------------


def test_the_sheet_round_trips_through_json(sheet: PriceSheet) -> None:
    stored = json.loads(json.dumps(sheet.to_json()))
    again = PriceSheet.from_json(stored)
    assert again == sheet
    assert again.digest == sheet.digest == stored["digest"]
    assert stored["llm_source"] == "genai-prices 0.2.3"
    rate = again.llm_rate("gemini-2.5-pro", "google")
    assert rate.tiers == sheet.llm_rate("gemini-2.5-pro", "google").tiers
    assert all(type(t.output_per_token) is Decimal for t in rate.tiers)
    assert stored["version"] == 3
    assert "s3_storage_days" not in stored["aws"]
    assert again.overlay == sheet.overlay == default_overlay()
    imagen = {"kind": "image", "model": "imagen-4.0-ultra-generate-001"}
    assert {**imagen, "input_per_token": "0", "output_per_token": "0", "per_image": "0.06"} in (
        stored["overlay"]
    )


def test_a_sheet_stored_by_the_code_before_the_overlay_still_loads() -> None:
    stored = json.loads((DATA / "price_sheet_v1.json").read_text())
    assert (stored["version"], "overlay" in stored) == (1, False)
    old = PriceSheet.from_json(stored)  # its digest checked against its rates
    assert old.digest == stored["digest"]
    assert old.overlay is None
    assert old.to_json() == stored
    rate = old.llm_rate("gpt-4o", "openai")
    assert llm_call_cost(rate, 10_000, 4_000, 1_500) == Decimal("0.035")
    # what a reprice onto today's sheet would list: the overlay, and nothing else
    new = replace(old, overlay=default_overlay())
    changes = price_changes(old, new)
    assert changes
    assert all(c.item.startswith("overlay.") and c.old is None for c in changes)
    assert PriceChange(
        "overlay.tts/gemini-2.5-pro-preview-tts.output_per_token", None, "0.00002"
    ) in (changes)


def test_a_version_2_sheet_stored_before_the_openai_overlay_kinds_still_loads() -> None:
    stored = json.loads((DATA / "price_sheet_v2.json").read_text())
    assert stored["version"] == 2
    assert {item["kind"] for item in stored["overlay"]} == {"tts", "image"}
    old = PriceSheet.from_json(stored)  # its digest checked against its rates
    assert old.digest == stored["digest"]
    assert old.to_json() == stored
    assert old.overlay_rate("sized_image", "dall-e-3/standard/1024x1024") is None
    # today's overlay adds the OpenAI kinds, and changes none of the rates it had
    assert old.overlay is not None
    new = replace(old, overlay={**default_overlay(), **old.overlay})
    changes = price_changes(old, new)
    assert changes
    assert {c.item.split("/")[0] for c in changes} == {
        "overlay.sized_image",
        "overlay.characters",
        "overlay.audio_seconds",
    }
    assert all(c.old is None for c in changes)
    assert PriceChange("overlay.characters/tts-1.per_image", None, "0.000015") in changes
    again = PriceSheet.from_json(json.loads(json.dumps(new.to_json())))
    assert (again.digest, again.overlay) == (new.digest, new.overlay)


def test_a_sheet_stored_while_uploads_were_charged_storage_days_still_loads() -> None:
    stored = json.loads((DATA / "price_sheet_v2.json").read_text())  # by the code before
    assert (stored["version"], stored["aws"]["s3_storage_days"]) == (2, "30")
    old = PriceSheet.from_json(stored)  # its digest checked against its rates
    assert old.digest == stored["digest"]
    assert old.to_json() == stored
    assert old.aws.s3_storage_days == 30
    assert old.overlay is not None
    assert {kind for kind, _ in old.overlay} == {"tts", "image"}
    # the retired rate prices nothing: an upload is its request
    upload = {"size_bytes": GIB, "s3_key": "a.mp3"}
    priced = cost_event_cost(old, "s3_operation", "s3_put", 1, "requests", metadata=upload)
    assert priced.cost == Decimal("0.000005")
    # dropping it is a change of the sheet, and the only one
    new = replace(old, aws=replace(old.aws, s3_storage_days=None))
    assert new.version == 3
    assert new.digest != old.digest
    assert price_changes(old, new) == [PriceChange("aws.s3_storage_days", "30", None)]
    assert PriceSheet.from_json(new.to_json()) == new
    # a version 3 sheet may not carry it
    forged = {**new.to_json(), "aws": stored["aws"]}
    with pytest.raises(ValueError, match="AwsPrices needs exactly"):
        PriceSheet.from_json(forged)


def test_the_digest_ignores_order_and_spelling_of_equal_numbers(sheet: PriceSheet) -> None:
    shuffled = sheet.to_json()
    shuffled["llm"] = list(reversed(shuffled["llm"]))
    shuffled = {key: shuffled[key] for key in reversed(list(shuffled))}
    assert PriceSheet.from_json(shuffled).digest == sheet.digest
    # 0.10 and 0.1 are one price
    spelled = AwsPrices.from_env({"COST_AWS_SES_PER_1K_EMAILS": "0.1000"})
    assert replace(sheet, aws=spelled).digest == sheet.digest
    # provenance is not a price
    assert replace(sheet, llm_source="genai-prices 9.9").digest == sheet.digest


@given(st.permutations([*KNOWN, *UNKNOWN, *KNOWN[:2]]))
def test_the_digest_does_not_depend_on_the_order_models_were_seen(
    sheet: PriceSheet, models: list[tuple[str, str]]
) -> None:
    assert build_price_sheet(models, seed=SEED, aws=AWS, at=AT).digest == sheet.digest


def _bumped_sheets(sheet: PriceSheet) -> Iterator[tuple[str, PriceSheet]]:
    for f in fields(SeedPrices):
        bumped = getattr(sheet.seed, f.name) + Decimal("1e-12")
        yield f"seed.{f.name}", replace(sheet, seed=replace(sheet.seed, **{f.name: bumped}))
    for f in fields(AwsPrices):
        if f.name == RETIRED:
            continue
        bumped = getattr(sheet.aws, f.name) + Decimal("1e-12")
        yield f"aws.{f.name}", replace(sheet, aws=replace(sheet.aws, **{f.name: bumped}))
    rate = sheet.llm[("gpt-4o", "openai")]
    for name in ("input_per_token", "cached_input_per_token", "output_per_token", "per_request"):
        changed = replace(rate, **{name: getattr(rate, name) + Decimal("1e-12")})
        yield (
            f"llm.gpt-4o/openai.{name}",
            replace(sheet, llm={**sheet.llm, ("gpt-4o", "openai"): changed}),
        )
    flagged = replace(rate, priced=False)
    yield (
        "llm.gpt-4o/openai.priced",
        replace(sheet, llm={**sheet.llm, ("gpt-4o", "openai"): flagged}),
    )
    assert sheet.overlay is not None
    for key, overlay in sheet.overlay.items():
        for name in ("input_per_token", "output_per_token", "per_image"):
            changed_overlay = replace(overlay, **{name: getattr(overlay, name) + Decimal("1e-12")})
            yield (
                f"overlay.{key[0]}/{key[1]}.{name}",
                replace(sheet, overlay={**sheet.overlay, key: changed_overlay}),
            )


def test_the_digest_changes_when_any_rate_changes(sheet: PriceSheet) -> None:
    digests = {sheet.digest}
    for item, changed in _bumped_sheets(sheet):
        assert changed.digest not in digests, item
        digests.add(changed.digest)
        assert [change.item for change in price_changes(sheet, changed)] == [item]


def test_price_changes_report_old_and_new_values(sheet: PriceSheet) -> None:
    fixed = replace(sheet, seed=SeedPrices.from_env({"COST_CPU_MS": "0.00000003"}))
    assert price_changes(sheet, fixed) == [PriceChange("seed.cpu_ms", "0.00000002", "0.00000003")]
    assert price_changes(sheet, sheet) == []


def test_a_stored_sheet_whose_rates_were_edited_is_refused(sheet: PriceSheet) -> None:
    stored = sheet.to_json()
    stored["seed"]["cpu_ms"] = "0"
    with pytest.raises(ValueError, match="digest"):
        PriceSheet.from_json(stored)
    stored["seed"]["cpu_ms"] = 0.00000002  # a float is not a price
    with pytest.raises(ValueError, match="cpu_ms"):
        PriceSheet.from_json(stored)


def test_rate_rows_load_every_band_and_event_type(sheet: PriceSheet) -> None:
    rows = llm_rate_rows(sheet)
    assert all(len(row) == len(LLM_RATE_COLUMNS) for row in rows)
    gemini = [row for row in rows if row[:2] == ("gemini-2.5-pro", "google")]
    assert [(row[2], row[3]) for row in gemini] == [(0, 200_000), (200_001, None)]
    assert [row[4] for row in gemini] == [Decimal("0.00000125"), Decimal("0.0000025")]
    assert all(type(value) is Decimal for row in rows for value in row[4:8])
    assert {row[:2] for row in rows if not row[8]} == set(UNKNOWN)

    events = {row[:2]: row for row in event_rate_rows(sheet)}
    assert all(len(row) == len(EVENT_RATE_COLUMNS) for row in events.values())
    assert {(t, s, u) for t, s, u, *_ in events.values()} == vocabulary()
    assert events[("lambda_invocation", "lambda")][2:] == (
        "requests",
        "lambda",
        Decimal("0.0000002"),
        Decimal("0.0000166667"),
        "aws",
    )
    assert events[("s3_operation", "s3_put")][2:] == ("requests", "upload", Decimal("0.000005"),
                                                      Decimal(0), "aws")  # fmt: skip
    assert events[("ai_api_call", "gemini_text")][3] == "llm"
    assert all(type(value) is Decimal for row in events.values() for value in row[4:6])

    overlay = {row[:2]: row for row in overlay_rate_rows(sheet)}
    assert all(len(row) == len(OVERLAY_RATE_COLUMNS) for row in overlay.values())
    assert overlay[("tts", "gemini-2.5-flash-preview-tts")][2:] == (
        Decimal("0.0000005"),
        Decimal("0.00001"),
        Decimal(0),
    )
    assert overlay[("image", "imagen-3.0-generate-002")][4] == Decimal("0.03")
    assert overlay_rate_rows(replace(sheet, overlay=None)) == []


def test_building_a_sheet_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    built = build_price_sheet([("gpt-4o-mini", "openai"), ("o3", "openai")], seed=SEED, aws=AWS)
    assert not built.unpriced_models


def test_seed_prices_load_without_the_price_library() -> None:
    # Telemetry and throttle import the seed constants; genai-prices loads only when a sheet
    # is built.
    probe = "import sys, costguard.common.pricing; print('genai_prices' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"
