"""Per-model LLM rates and the cost of one call.

Token counts follow the OpenTelemetry GenAI conventions (docs/architecture.md): ``input_tokens``
include the cached ones, which are billed once, at the cache-read rate; reasoning tokens are
part of ``output_tokens`` and billed at the output rate. So a call costs

    (input - cached) * input_rate + cached * cached_rate + output * output_rate + per_request

which is what genai-prices computes for the same usage. Some models bill long prompts at
higher rates (cliff pricing: once a call's input tokens pass a threshold, *every* token of
that call is billed at the higher rates); those bands are :class:`LlmTier` s.

A model the price library does not know is priced at the seed constants, cached tokens at the
full input rate (no discount is known), and flagged ``priced=False``: never silently $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from costguard.common.pricing.seed import SeedPrices

ZERO = Decimal(0)
# Why an LLM call's price is not its model's own (``telemetry_llm_events.unpriced_reason``).
LLM_UNKNOWN_MODEL = "model unknown to the price library: billed at the seed constants"
LLM_NO_TOKENS = "no tokens reported: nothing to price"
# Exact arithmetic: token counts times rates never need more than ~40 digits, and rounding
# happens once, when the rollup stores a figure.
EXACT = Context(prec=60)


@dataclass(frozen=True)
class LlmTier:
    """Rates for a call whose input tokens exceed ``above_input_tokens``."""

    above_input_tokens: int
    input_per_token: Decimal
    cached_input_per_token: Decimal
    output_per_token: Decimal


@dataclass(frozen=True)
class LlmRate:
    """What one model costs, in USD per token (per call for ``per_request``).

    ``priced=False`` means the price library does not know the model: the rates are the
    seed constants. ``matched`` names the library's entry (``provider/model-id``) the rates
    came from, "" when unpriced. ``tiers`` are ascending by threshold.
    """

    model: str
    provider: str
    input_per_token: Decimal
    cached_input_per_token: Decimal
    output_per_token: Decimal
    priced: bool
    per_request: Decimal = ZERO
    tiers: tuple[LlmTier, ...] = ()
    matched: str = ""

    def __post_init__(self) -> None:
        thresholds = [tier.above_input_tokens for tier in self.tiers]
        if thresholds != sorted(set(thresholds)) or any(t < 0 for t in thresholds):
            raise ValueError(f"tiers of {self.model!r} must have distinct ascending thresholds")
        rates = [self.input_per_token, self.cached_input_per_token, self.output_per_token]
        rates += [self.per_request]
        rates += [r for t in self.tiers for r in _tier_rates(t)]
        if any(not isinstance(r, Decimal) or not r.is_finite() or r < 0 for r in rates):
            raise ValueError(f"rates of {self.model!r} must be finite Decimals >= 0")

    def band(self, input_tokens: int) -> LlmTier:
        """The rates a call with this many input tokens (cached included) is billed at."""
        chosen = LlmTier(
            -1, self.input_per_token, self.cached_input_per_token, self.output_per_token
        )
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                chosen = tier
        return chosen

    def bands(self) -> list[tuple[int, int | None, LlmTier]]:
        """Each band as (min input tokens, max input tokens or None, rates), inclusive."""
        starts = [0, *(tier.above_input_tokens + 1 for tier in self.tiers)]
        ends: list[int | None] = [*(tier.above_input_tokens for tier in self.tiers), None]
        return [(start, end, self.band(start)) for start, end in zip(starts, ends, strict=True)]


def _tier_rates(tier: LlmTier) -> tuple[Decimal, Decimal, Decimal]:
    return tier.input_per_token, tier.cached_input_per_token, tier.output_per_token


def unpriced_llm_rate(seed: SeedPrices, model: str, provider: str) -> LlmRate:
    """The fallback for a model with no known price: the seed constants, flagged."""
    return LlmRate(
        model=model,
        provider=provider,
        input_per_token=seed.llm_input_token,
        cached_input_per_token=seed.llm_input_token,
        output_per_token=seed.llm_output_token,
        priced=False,
    )


def llm_call_cost(
    rate: LlmRate,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    *,
    cache_hit: bool = False,
) -> Decimal:
    """The exact USD cost of one LLM call at ``rate``.

    ``input_tokens`` include ``cached_input_tokens``; ``output_tokens`` include reasoning.
    ``cache_hit`` marks costguard's own insight cache answering instead of the model: no
    call was made, so it costs nothing.
    """
    if min(input_tokens, cached_input_tokens, output_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_input_tokens > input_tokens:
        raise ValueError("cached input tokens are part of input tokens and cannot exceed them")
    if cache_hit:
        return ZERO
    band = rate.band(input_tokens)
    with localcontext(EXACT):
        return (
            (input_tokens - cached_input_tokens) * band.input_per_token
            + cached_input_tokens * band.cached_input_per_token
            + output_tokens * band.output_per_token
            + rate.per_request
        )
