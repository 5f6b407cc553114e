"""Per-model LLM rates and the cost of one call.

Token counts follow the OpenTelemetry GenAI conventions (docs/architecture.md): ``input_tokens``
include the cached ones, which are billed once, at the cache-read rate; reasoning tokens are
part of ``output_tokens`` and billed at the output rate. So a call costs

    (input - cached) * input_rate + cached * cached_rate
        + (output - image) * output_rate + image * output_image_rate + per_request

which is what genai-prices computes for the same usage. ``image`` are the output tokens of
generated images (Gemini's IMAGE output modality), part of the output like reasoning tokens
and billed at the model's output image rate, or at its output rate when it has none.

Some models bill long prompts at higher rates (cliff pricing: once a call's input tokens
pass a threshold, *every* token of that call is billed at the higher rates); those bands are
:class:`LlmTier` s.

A model the price library does not know is priced at the seed constants, cached tokens at the
full input rate (no discount is known), and flagged ``priced=False``: never silently $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from costguard.common.money import EXACT
from costguard.common.pricing.seed import SeedPrices

ZERO = Decimal(0)
# Why an LLM call's price is not its model's own (``telemetry_llm_events.unpriced_reason``).
LLM_UNKNOWN_MODEL = "model unknown to the price library: billed at the seed constants"
LLM_NO_TOKENS = "no tokens reported: nothing to price"


@dataclass(frozen=True)
class LlmTier:
    """Rates for a call whose input tokens exceed ``above_input_tokens``.
    ``output_image_per_token`` ``None``: image output is billed at the output rate."""

    above_input_tokens: int
    input_per_token: Decimal
    cached_input_per_token: Decimal
    output_per_token: Decimal
    output_image_per_token: Decimal | None = None

    @property
    def image_rate(self) -> Decimal:
        """What one output image token costs in this band."""
        if self.output_image_per_token is None:
            return self.output_per_token
        return self.output_image_per_token


@dataclass(frozen=True)
class LlmRate:
    """What one model costs, in USD per token (per call for ``per_request``).

    ``priced=False`` means the price library does not know the model: the rates are the
    seed constants. ``matched`` names the library's entry (``provider/model-id``) the rates
    came from (``overlay/<model>`` for a text-to-speech model priced from the overlay), ""
    when unpriced. ``tiers`` are ascending by threshold. ``output_image_per_token`` ``None``:
    the model has no image output price, its image tokens are billed as output.
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
    output_image_per_token: Decimal | None = None

    def __post_init__(self) -> None:
        thresholds = [tier.above_input_tokens for tier in self.tiers]
        if thresholds != sorted(set(thresholds)) or any(t < 0 for t in thresholds):
            raise ValueError(f"tiers of {self.model!r} must have distinct ascending thresholds")
        rates = [self.input_per_token, self.cached_input_per_token, self.output_per_token]
        rates += [self.per_request, self.band(0).image_rate]
        rates += [r for t in self.tiers for r in _tier_rates(t)]
        if any(not isinstance(r, Decimal) or not r.is_finite() or r < 0 for r in rates):
            raise ValueError(f"rates of {self.model!r} must be finite Decimals >= 0")

    def band(self, input_tokens: int) -> LlmTier:
        """The rates a call with this many input tokens (cached included) is billed at."""
        chosen = LlmTier(
            -1,
            self.input_per_token,
            self.cached_input_per_token,
            self.output_per_token,
            self.output_image_per_token,
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


def _tier_rates(tier: LlmTier) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return tier.input_per_token, tier.cached_input_per_token, tier.output_per_token, tier.image_rate


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
    output_image_tokens: int = 0,
    cache_hit: bool = False,
) -> Decimal:
    """The exact USD cost of one LLM call at ``rate``.

    ``input_tokens`` include ``cached_input_tokens``; ``output_tokens`` include reasoning
    and ``output_image_tokens``. ``cache_hit`` marks costguard's own insight cache answering
    instead of the model: no call was made, so it costs nothing.
    """
    if min(input_tokens, cached_input_tokens, output_tokens, output_image_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_input_tokens > input_tokens:
        raise ValueError("cached input tokens are part of input tokens and cannot exceed them")
    if output_image_tokens > output_tokens:
        raise ValueError("output image tokens are part of output tokens and cannot exceed them")
    if cache_hit:
        return ZERO
    band = rate.band(input_tokens)
    with localcontext(EXACT):
        return (
            (input_tokens - cached_input_tokens) * band.input_per_token
            + cached_input_tokens * band.cached_input_per_token
            + (output_tokens - output_image_tokens) * band.output_per_token
            + output_image_tokens * band.image_rate
            + rate.per_request
        )
