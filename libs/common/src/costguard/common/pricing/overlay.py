"""Model prices kept in code, for what costguard does not price through genai-prices.

The podcast app's ``ai_api_call`` events (docs/cost-events.md) include Gemini text to
speech and image generation. Images are priced per image, which genai-prices' token rates
do not express, and text to speech is listed here as well so that Gemini speech is priced
from one table, whether it is a ``gemini_tts`` cost event or an LLM call of a ``tts`` model
(``instrument_gemini`` records speech as LLM calls; ``lookup_llm_rate`` prices them here).
Figures are Google's published Gemini API pricing
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

OpenAI's images, speech and transcriptions (``openai_image``, ``openai_tts``,
``openai_transcription``, recorded by ``instrument_openai``) are priced per image of a
quality and size, per character of input text and per second of input audio. Figures are
OpenAI's published prices (https://platform.openai.com/docs/pricing, standard, as of 2025).
A ``sized_image`` rate is keyed ``<model>/<quality>/<size>``; DALL-E 2 has one quality,
recorded as ``standard``:

============================  ============  ====================================================
model                         kind          USD
============================  ============  ====================================================
dall-e-3                      sized_image   standard: 0.040 (1024x1024), 0.080 (1024x1792,
                                            1792x1024); hd: 0.080 (1024x1024), 0.120 (wide)
dall-e-2                      sized_image   standard: 0.020 (1024x1024), 0.018 (512x512),
                                            0.016 (256x256)
gpt-image-1                   sized_image   1024x1024: low 0.011, medium 0.042, high 0.167;
                                            1024x1536 and 1536x1024: low 0.016, medium 0.063,
                                            high 0.25
tts-1                         characters    15.00 per 1M characters
tts-1-hd                      characters    30.00 per 1M characters
gpt-4o-mini-tts               characters    0.015 per minute of audio, priced as 15.00 per 1M
                                            characters: an estimate at 1,000 characters a
                                            minute (OpenAI bills it by text and audio tokens)
whisper-1                     audio_seconds 0.006 per minute (0.0001 a second)
gpt-4o-transcribe             audio_seconds 0.006 per minute (0.0001 a second)
gpt-4o-mini-transcribe        audio_seconds 0.003 per minute (0.00005 a second)
============================  ============  ====================================================

A rate has three prices, as the rollup's ``rollup_overlay_rates`` table has three price
columns: ``input_per_token`` and ``output_per_token`` (``tts``), and ``per_image``, which
is the price per unit of the event's quantity for every other kind: per image (``image``,
``sized_image``), per character (``characters``), per second (``audio_seconds``);
:attr:`OverlayRate.per_unit` names it so. Adding kinds changed no stored sheet: the entries
of the kinds before keep their JSON, so the sheets stored before load with their digests.

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

OverlayKind = Literal["tts", "image", "sized_image", "characters", "audio_seconds"]
OVERLAY_KINDS: tuple[OverlayKind, ...] = (
    "tts",
    "image",
    "sized_image",
    "characters",
    "audio_seconds",
)


@dataclass(frozen=True)
class OverlayRate:
    """One model's price, in USD: per token (``tts``), else per unit of quantity, kept in
    ``per_image`` (see the module docstring)."""

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

    @property
    def per_unit(self) -> Decimal:
        """The price per unit of quantity: an image, a character, a second of audio."""
        return self.per_image


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


def sized_image_key(model: str, quality: str, size: str) -> str:
    """The overlay model of a ``sized_image`` rate (the SQL builds the same text)."""
    return f"{model}/{quality}/{size}"


def _sized(model: str, quality: str, size: str, per_image: str) -> OverlayRate:
    return OverlayRate(
        "sized_image", sized_image_key(model, quality, size), per_image=Decimal(per_image)
    )


def _per_unit(kind: OverlayKind, model: str, per_unit: Decimal) -> OverlayRate:
    return OverlayRate(kind, model, per_image=per_unit)


_TALL, _WIDE = "1024x1792", "1792x1024"


def _per_second(per_minute: str) -> Decimal:
    """USD a second from USD a minute; the figures used divide exactly (0.006 / 60)."""
    second = Decimal(per_minute) / 60
    if second * 60 != Decimal(per_minute):
        raise ValueError(f"{per_minute} a minute is no exact price a second")
    return second


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
    _sized("dall-e-3", "standard", "1024x1024", "0.040"),
    _sized("dall-e-3", "standard", _TALL, "0.080"),
    _sized("dall-e-3", "standard", _WIDE, "0.080"),
    _sized("dall-e-3", "hd", "1024x1024", "0.080"),
    _sized("dall-e-3", "hd", _TALL, "0.120"),
    _sized("dall-e-3", "hd", _WIDE, "0.120"),
    _sized("dall-e-2", "standard", "1024x1024", "0.020"),
    _sized("dall-e-2", "standard", "512x512", "0.018"),
    _sized("dall-e-2", "standard", "256x256", "0.016"),
    *(
        _sized("gpt-image-1", quality, size, price)
        for quality, square, portrait in (
            ("low", "0.011", "0.016"),
            ("medium", "0.042", "0.063"),
            ("high", "0.167", "0.25"),
        )
        for size, price in (
            ("1024x1024", square),
            ("1024x1536", portrait),
            ("1536x1024", portrait),
        )
    ),
    _per_unit("characters", "tts-1", Decimal("15.00").scaleb(-6)),
    _per_unit("characters", "tts-1-hd", Decimal("30.00").scaleb(-6)),
    # $0.015 a minute at 1,000 characters a minute: an estimate, see the table
    _per_unit("characters", "gpt-4o-mini-tts", Decimal("0.015").scaleb(-3)),
    _per_unit("audio_seconds", "whisper-1", _per_second("0.006")),
    _per_unit("audio_seconds", "gpt-4o-transcribe", _per_second("0.006")),
    _per_unit("audio_seconds", "gpt-4o-mini-transcribe", _per_second("0.003")),
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
