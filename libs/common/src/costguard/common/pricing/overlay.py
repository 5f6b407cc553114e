"""Model prices kept in code, for what costguard does not price through genai-prices.

The podcast app's ``ai_api_call`` events (docs/cost-events.md) include Gemini text to
speech and image generation. Images are priced per image, which genai-prices' token rates
do not express, and text to speech is listed here as well so that the whole ``gemini_tts``
service is priced from one table. Figures are Google's published Gemini API pricing
(https://ai.google.dev/gemini-api/docs/pricing, paid tier, standard, as of 2025):

==========================================  =====  =============================================
model                                       kind   USD
==========================================  =====  =============================================
gemini-2.5-flash-preview-tts                tts    0.50 per 1M input (text) tokens,
                                                   10.00 per 1M output (audio) tokens
gemini-2.5-pro-preview-tts                  tts    1.00 per 1M input tokens, 20.00 per 1M output
imagen-3.0-generate-002                     image  0.03 per image
imagen-4.0-generate-001                     image  0.04 per image
imagen-4.0-fast-generate-001                image  0.02 per image
imagen-4.0-ultra-generate-001               image  0.06 per image
gemini-2.5-flash-image                      image  0.039 per image (1,290 output tokens at $30/1M)
gemini-2.5-flash-image-preview              image  0.039 per image
gemini-2.0-flash-preview-image-generation   image  0.039 per image
==========================================  =====  =============================================

Each price sheet stores the overlay it was built with (covered by its digest), so changing a
figure here reprices only dates rolled up afterwards or deliberately repriced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

from costguard.common.pricing.llm import ZERO

OverlayKind = Literal["tts", "image"]
OVERLAY_KINDS: tuple[OverlayKind, ...] = ("tts", "image")


@dataclass(frozen=True)
class OverlayRate:
    """One model's price: per token (``tts``) or per image (``image``), in USD."""

    kind: OverlayKind
    model: str
    input_per_token: Decimal = ZERO
    output_per_token: Decimal = ZERO
    per_image: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.kind not in OVERLAY_KINDS:
            raise ValueError(f"overlay kind must be one of {OVERLAY_KINDS}, got {self.kind!r}")
        if not self.model:
            raise ValueError("an overlay rate needs a model")
        rates = (self.input_per_token, self.output_per_token, self.per_image)
        if any(not isinstance(r, Decimal) or not r.is_finite() or r < 0 for r in rates):
            raise ValueError(f"rates of {self.model!r} must be finite Decimals >= 0")


OverlayPrices = Mapping[tuple[OverlayKind, str], OverlayRate]


def _tts(model: str, input_per_mtok: str, output_per_mtok: str) -> OverlayRate:
    return OverlayRate(
        "tts",
        model,
        input_per_token=Decimal(input_per_mtok).scaleb(-6),
        output_per_token=Decimal(output_per_mtok).scaleb(-6),
    )


def _image(model: str, per_image: str) -> OverlayRate:
    return OverlayRate("image", model, per_image=Decimal(per_image))


_DEFAULT = (
    _tts("gemini-2.5-flash-preview-tts", "0.50", "10.00"),
    _tts("gemini-2.5-pro-preview-tts", "1.00", "20.00"),
    _image("imagen-3.0-generate-002", "0.03"),
    _image("imagen-4.0-generate-001", "0.04"),
    _image("imagen-4.0-fast-generate-001", "0.02"),
    _image("imagen-4.0-ultra-generate-001", "0.06"),
    _image("gemini-2.5-flash-image", "0.039"),
    _image("gemini-2.5-flash-image-preview", "0.039"),
    _image("gemini-2.0-flash-preview-image-generation", "0.039"),
)


def overlay_prices(rates: tuple[OverlayRate, ...] | list[OverlayRate]) -> OverlayPrices:
    """The rates by ``(kind, model)``, sorted, read-only; a model listed twice is refused."""
    by_key = {(rate.kind, rate.model): rate for rate in rates}
    if len(by_key) != len(rates):
        raise ValueError("an overlay lists a model twice")
    return MappingProxyType(dict(sorted(by_key.items())))


def default_overlay() -> OverlayPrices:
    """The table above: what a sheet built today carries."""
    return overlay_prices(_DEFAULT)
