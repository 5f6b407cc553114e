"""LLM rates from genai-prices (pydantic's maintained price library), offline.

genai-prices ships its price data inside the package; costguard never starts its
``UpdatePrices`` downloader, so a given pinned version always answers the same and a sheet
can be rebuilt without the network. Each ``(model, provider)`` is looked up once per sheet,
at the standard service tier (priority, flex and batch variants are not recorded per call).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import Usage, __version__, calc_price
from genai_prices.types import ModelPrice, TieredPrices

from costguard.common.pricing.aws import AwsPrices
from costguard.common.pricing.llm import ZERO, LlmRate, LlmTier, unpriced_llm_rate
from costguard.common.pricing.seed import SeedPrices
from costguard.common.pricing.sheet import PriceSheet

LLM_SOURCE = f"genai-prices {__version__}"


def build_price_sheet(
    models: Iterable[tuple[str, str]],
    *,
    seed: SeedPrices,
    aws: AwsPrices,
    at: datetime | None = None,
) -> PriceSheet:
    """A sheet pricing each ``(model, provider)`` (as recorded in events) at time ``at``.

    ``at`` picks the library's prices in force then (a naive time is UTC; default now): pass
    the start of the day being rolled up. Unknown models get the seed constants, flagged.
    """
    when = at or datetime.now(UTC)
    rates: dict[tuple[str, str], LlmRate] = {}
    for model, provider in models:
        if (model, provider) not in rates:
            rates[(model, provider)] = lookup_llm_rate(model, provider, seed=seed, at=when)
    return PriceSheet(seed=seed, aws=aws, llm=rates, llm_source=LLM_SOURCE)


def lookup_llm_rate(model: str, provider: str, *, seed: SeedPrices, at: datetime) -> LlmRate:
    """The model's rates from genai-prices, or the seed constants flagged ``priced=False``."""
    if not model.strip():
        return unpriced_llm_rate(seed, model, provider)
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
            for price in (prices.input_mtok, prices.cache_read_mtok, prices.output_mtok)
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
    )


def _band(prices: ModelPrice, input_tokens: int, *, above: int = -1) -> LlmTier:
    """Per-token rates for a call of ``input_tokens``; cached tokens without a cache price
    are billed as input, as genai-prices does."""
    input_rate = _per_token(prices.input_mtok, input_tokens)
    cached = _per_token(prices.cache_read_mtok, input_tokens)
    return LlmTier(
        above_input_tokens=above,
        input_per_token=input_rate,
        cached_input_per_token=input_rate if prices.cache_read_mtok is None else cached,
        output_per_token=_per_token(prices.output_mtok, input_tokens),
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
