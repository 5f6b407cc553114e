"""LLM rates from genai-prices (pydantic's maintained price library), offline.

genai-prices ships its price data inside the package; costguard never starts its
``UpdatePrices`` downloader, so a given pinned version always answers the same and a sheet
can be rebuilt without the network. Each ``(model, provider)`` is looked up once per sheet,
at the standard service tier (priority, flex and batch variants are not recorded per call).
A text-to-speech model the overlay lists (``pricing/overlay.py``) is priced from the
overlay's ``tts`` rate instead: genai-prices lacks most of them, and the overlay is the one
table costguard keeps for Gemini speech, whether it is recorded as an LLM call or as a
``gemini_tts`` cost event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import Usage, __version__, calc_price
from genai_prices.types import ModelPrice, TieredPrices

from costguard.common.pricing.aws import AwsPrices
from costguard.common.pricing.llm import ZERO, LlmRate, LlmTier, unpriced_llm_rate
from costguard.common.pricing.overlay import OverlayPrices, OverlayRate, default_overlay
from costguard.common.pricing.seed import SeedPrices
from costguard.common.pricing.sheet import PriceSheet

LLM_SOURCE = f"genai-prices {__version__}"


def build_price_sheet(
    models: Iterable[tuple[str, str]],
    *,
    seed: SeedPrices,
    aws: AwsPrices,
    at: datetime | None = None,
    overlay: OverlayPrices | None = None,
) -> PriceSheet:
    """A sheet pricing each ``(model, provider)`` (as recorded in events) at time ``at``.

    ``at`` picks the library's prices in force then (a naive time is UTC; default now): pass
    the start of the day being rolled up. Unknown models get the seed constants, flagged.
    ``overlay`` (default: the one in code) prices text-to-speech models and is the sheet's.
    """
    when = at or datetime.now(UTC)
    table = default_overlay() if overlay is None else overlay
    rates: dict[tuple[str, str], LlmRate] = {}
    for model, provider in models:
        if (model, provider) not in rates:
            rates[(model, provider)] = lookup_llm_rate(
                model, provider, seed=seed, at=when, overlay=table
            )
    return PriceSheet(seed=seed, aws=aws, llm=rates, llm_source=LLM_SOURCE, overlay=table)


def lookup_llm_rate(
    model: str,
    provider: str,
    *,
    seed: SeedPrices,
    at: datetime,
    overlay: OverlayPrices | None = None,
) -> LlmRate:
    """The model's rates: the overlay's for a text-to-speech model it lists, else
    genai-prices', else the seed constants flagged ``priced=False``."""
    if not model.strip():
        return unpriced_llm_rate(seed, model, provider)
    speech = (default_overlay() if overlay is None else overlay).get(("tts", model))
    if speech is not None:
        return overlay_tts_rate(speech, provider)
    try:
        # Zero usage costs nothing but resolves the model and its prices in force at ``at``.
        found = calc_price(Usage(), model, provider_id=provider or None, genai_request_timestamp=at)
    except (LookupError, ValueError):
        return unpriced_llm_rate(seed, model, provider)
    prices = found.model_price
    if prices.input_mtok is None and prices.output_mtok is None:
        # Priced by something other than tokens (audio hours, pages...): tokens alone would
        # come to $0, so treat it as unknown.
        return unpriced_llm_rate(seed, model, provider)
    base = _band(prices, 0)
    thresholds = sorted(
        {
            tier.start
            for price in (*_text_prices(prices), _output_image(prices))
            if isinstance(price, TieredPrices)
            for tier in price.tiers
        }
    )
    requests = prices.requests_kcount
    return LlmRate(
        model=model,
        provider=provider,
        input_per_token=base.input_per_token,
        cached_input_per_token=base.cached_input_per_token,
        output_per_token=base.output_per_token,
        priced=True,
        per_request=requests.scaleb(-3) if isinstance(requests, Decimal) else ZERO,
        tiers=tuple(_band(prices, start + 1, above=start) for start in thresholds),
        matched=f"{found.provider.id}/{found.model.id}",
        output_image_per_token=base.output_image_per_token,
    )


def overlay_tts_rate(speech: OverlayRate, provider: str) -> LlmRate:
    """A text-to-speech model's rates from the overlay: text input and audio output per
    token; no cache discount is known, so cached tokens are billed as input."""
    return LlmRate(
        model=speech.model,
        provider=provider,
        input_per_token=speech.input_per_token,
        cached_input_per_token=speech.input_per_token,
        output_per_token=speech.output_per_token,
        priced=True,
        matched=f"overlay/{speech.model}",
    )


def _text_prices(prices: ModelPrice) -> tuple[Decimal | TieredPrices | None, ...]:
    return prices.input_mtok, prices.cache_read_mtok, prices.output_mtok


def _output_image(prices: ModelPrice) -> Decimal | TieredPrices | None:
    """The model's output image price per million tokens, if genai-prices lists one."""
    price = getattr(prices, "output_image_mtok", None)
    return price if isinstance(price, Decimal | TieredPrices) else None


def _band(prices: ModelPrice, input_tokens: int, *, above: int = -1) -> LlmTier:
    """Per-token rates for a call of ``input_tokens``; cached tokens without a cache price
    are billed as input, as genai-prices does."""
    input_rate = _per_token(prices.input_mtok, input_tokens)
    cached = _per_token(prices.cache_read_mtok, input_tokens)
    image = _output_image(prices)
    return LlmTier(
        above_input_tokens=above,
        input_per_token=input_rate,
        cached_input_per_token=input_rate if prices.cache_read_mtok is None else cached,
        output_per_token=_per_token(prices.output_mtok, input_tokens),
        output_image_per_token=None if image is None else _per_token(image, input_tokens),
    )


def _per_token(price: Decimal | TieredPrices | None, input_tokens: int) -> Decimal:
    """USD per token from USD per million; tiers apply when input tokens pass their start."""
    if price is None:
        return ZERO
    if isinstance(price, TieredPrices):
        chosen = price.base
        for tier in price.tiers:
            if input_tokens > tier.start:
                chosen = tier.price
        price = chosen
    return price.scaleb(-6)
