"""The price sheet: a frozen snapshot of every rate the rollup needs, with a content hash.

The rollup prices millions of events inside Postgres, so it loads a sheet into temporary
tables (:func:`llm_rate_rows`, :func:`overlay_rate_rows`, ``event_rate_rows`` of
:mod:`.events`, plus the seed constants as parameters) and joins. It stores each sheet it
used (:meth:`PriceSheet.to_json`) under its :attr:`~PriceSheet.digest` and records the
digest on every row it writes, so re-running a past date with the stored sheet gives the
same answer, and a deliberate reprice can report both what changed (:func:`price_changes`)
and by how much the cost moved.

The digest is the sha256 of the canonical JSON of the rates (``seed``, ``aws``, ``llm`` and,
from version 2, ``overlay``): keys sorted, Decimals in their shortest exact form, models
sorted. ``llm_source`` (which price-library version made the sheet) is provenance, outside
the digest: two sheets with the same digest price every event the same.

Version 1 sheets (stored before the overlay of :mod:`.overlay` existed) still load, with
``overlay=None``, and keep their digest; they price no ``gemini_tts`` or ``gemini_image``
event until the day's sheet gains the overlay (``costguard.common.day_sheets``). The
overlay kinds added later (OpenAI's ``sized_image``, ``characters`` and ``audio_seconds``)
are entries of the same form: a sheet stored before them loads with its digest, prices none
of their events until the missing overlay models are added to it, and a sheet made since
holds more entries (so a new digest), in the same JSON. Version 1 and 2 sheets (stored
while an upload was charged ``s3_storage_days`` of storage) load with that retired rate,
which keeps their digest and prices nothing; version 3 sheets have none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Context, Decimal, InvalidOperation
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple

from costguard.common.pricing.aws import RETIRED, AwsPrices
from costguard.common.pricing.llm import LlmRate, LlmTier, unpriced_llm_rate
from costguard.common.pricing.overlay import (
    OVERLAY_KINDS,
    OverlayKind,
    OverlayPrices,
    OverlayRate,
    default_overlay,
    overlay_prices,
)
from costguard.common.pricing.seed import SeedPrices

SHEET_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # 1: before the overlay; 1 and 2: with s3_storage_days
_WIDE = Context(prec=1000)  # normalize() rounds to its context: never lose a digit

LLM_RATE_COLUMNS = (
    "model",
    "provider",
    "min_input_tokens",
    "max_input_tokens",
    "input_per_token",
    "cached_input_per_token",
    "output_per_token",
    "per_request",
    "priced",
    "output_image_per_token",
)
LlmRateRow = tuple[str, str, int, int | None, Decimal, Decimal, Decimal, Decimal, bool, Decimal]
OVERLAY_RATE_COLUMNS = ("kind", "model", "input_per_token", "output_per_token", "per_image")
OverlayRateRow = tuple[str, str, Decimal, Decimal, Decimal]


@dataclass(frozen=True)
class PriceSheet:
    """Every rate one rollup uses. ``llm`` is keyed by ``(model, provider)`` as recorded;
    ``overlay`` by ``(kind, model)``, ``None`` for a version 1 sheet."""

    seed: SeedPrices
    aws: AwsPrices
    llm: Mapping[tuple[str, str], LlmRate]
    llm_source: str = ""
    overlay: OverlayPrices | None = field(default_factory=default_overlay)

    def __post_init__(self) -> None:
        for (model, provider), rate in self.llm.items():
            if (rate.model, rate.provider) != (model, provider):
                raise ValueError(f"rate for {model!r}/{provider!r} names another model")
        object.__setattr__(self, "llm", MappingProxyType(dict(sorted(self.llm.items()))))
        if self.overlay is not None:
            for (kind, model), overlay_rate in self.overlay.items():
                if (overlay_rate.kind, overlay_rate.model) != (kind, model):
                    raise ValueError(f"overlay rate for {kind!r}/{model!r} names another model")
            object.__setattr__(self, "overlay", overlay_prices(list(self.overlay.values())))

    def __hash__(self) -> int:
        return hash(self.digest)

    def llm_rate(self, model: str, provider: str = "openai") -> LlmRate:
        """The model's rate; a model not on the sheet is priced at the seed constants, flagged."""
        rate = self.llm.get((model, provider))
        return rate if rate is not None else unpriced_llm_rate(self.seed, model, provider)

    def overlay_rate(self, kind: OverlayKind, model: str) -> OverlayRate | None:
        """The overlay's price for the model, ``None`` when the sheet has none."""
        return None if self.overlay is None else self.overlay.get((kind, model))

    @property
    def unpriced_models(self) -> tuple[tuple[str, str], ...]:
        """``(model, provider)`` of every model on the sheet with no known price."""
        return tuple(key for key, rate in self.llm.items() if not rate.priced)

    def rates_json(self) -> dict[str, Any]:
        """The rates as JSON: what the digest covers."""
        rates: dict[str, Any] = {
            "version": self.version,
            "seed": _decimals_json(self.seed),
            "aws": _decimals_json(self.aws),
            "llm": [_llm_json(rate) for rate in self.llm.values()],
        }
        if self.overlay is not None:
            rates["overlay"] = [_overlay_json(rate) for rate in self.overlay.values()]
        return rates

    @property
    def version(self) -> int:
        """The format the sheet is stored in: 3, or what an older sheet was stored as."""
        if self.aws.s3_storage_days is None:
            return SHEET_VERSION
        return 1 if self.overlay is None else 2

    def to_json(self) -> dict[str, Any]:
        return {**self.rates_json(), "llm_source": self.llm_source, "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PriceSheet:
        """Rebuild a stored sheet; a ``digest`` that does not match the rates is refused."""
        version = data.get("version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise ValueError(f"unsupported price sheet version {version!r}")
        rates = [_llm_from_json(item) for item in _list(data, "llm")]
        overlay = None
        if version == 2 or (version == SHEET_VERSION and "overlay" in data):
            overlay = overlay_prices([_overlay_from_json(item) for item in _list(data, "overlay")])
        retired = RETIRED if version < SHEET_VERSION else frozenset()
        sheet = cls(
            seed=SeedPrices(**_decimals_from_json(SeedPrices, _dict(data, "seed"))),
            aws=AwsPrices(**_decimals_from_json(AwsPrices, _dict(data, "aws"), retired)),
            llm={(rate.model, rate.provider): rate for rate in rates},
            llm_source=str(data.get("llm_source", "")),
            overlay=overlay,
        )
        if len(sheet.llm) != len(rates):
            raise ValueError("price sheet lists a model twice")
        if "digest" in data and data["digest"] != sheet.digest:
            raise ValueError("price sheet digest does not match its rates")
        return sheet

    @cached_property
    def digest(self) -> str:
        canonical = json.dumps(self.rates_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def llm_rate_rows(sheet: PriceSheet) -> list[LlmRateRow]:
    """One row per model and input-token band, in :data:`LLM_RATE_COLUMNS` order.

    Join an event to the row whose band holds its ``input_tokens`` (``max_input_tokens``
    NULL means no upper bound); :data:`LLM_CALL_COST_SQL` is the cost.
    """
    return [
        (
            rate.model,
            rate.provider,
            low,
            high,
            band.input_per_token,
            band.cached_input_per_token,
            band.output_per_token,
            rate.per_request,
            rate.priced,
            band.image_rate,
        )
        for rate in sheet.llm.values()
        for low, high, band in rate.bands()
    ]


def overlay_rate_rows(sheet: PriceSheet) -> list[OverlayRateRow]:
    """One row per overlay model, in :data:`OVERLAY_RATE_COLUMNS` order (none for version 1)."""
    return [
        (r.kind, r.model, r.input_per_token, r.output_per_token, r.per_image)
        for r in (sheet.overlay or {}).values()
    ]


# The SQL twin of ``llm_call_cost``: ``e`` is a ``telemetry_llm_events`` row, ``r`` its row
# from ``llm_rate_rows`` (LEFT JOIN ON r.model = e.model AND r.provider = e.provider AND
# e.input_tokens BETWEEN r.min_input_tokens AND COALESCE(r.max_input_tokens, e.input_tokens)).
# Build the sheet from the events' distinct (model, provider) so every event finds its row.
LLM_CALL_COST_SQL = """
(CASE WHEN e.cache_hit THEN 0 ELSE
     (e.input_tokens - e.cached_input_tokens) * r.input_per_token
     + e.cached_input_tokens * r.cached_input_per_token
     + (e.output_tokens - e.output_image_tokens) * r.output_per_token
     + e.output_image_tokens * r.output_image_per_token
     + r.per_request
 END)
"""


class PriceChange(NamedTuple):
    """One rate that differs between two sheets (``None``: absent from that sheet)."""

    item: str
    old: str | None
    new: str | None


def price_changes(old: PriceSheet, new: PriceSheet) -> list[PriceChange]:
    """Every rate that differs, by a dotted name such as ``llm.gpt-4o/openai.output_per_token``."""
    before, after = _flatten(old.rates_json()), _flatten(new.rates_json())
    return [
        PriceChange(item, before.get(item), after.get(item))
        for item in sorted(before.keys() | after.keys())
        if before.get(item) != after.get(item)
    ]


def _flatten(rates: Mapping[str, Any]) -> dict[str, str]:
    flat = {
        f"{part}.{key}": str(value)
        for part in ("seed", "aws")
        for key, value in rates[part].items()
    }
    for item in rates["llm"]:
        name = f"llm.{item['model']}/{item['provider']}"
        for key, value in item.items():
            if key not in ("model", "provider"):
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                flat[f"{name}.{key}"] = text
    for item in rates.get("overlay", []):
        name = f"overlay.{item['kind']}/{item['model']}"
        for key, value in item.items():
            if key not in ("kind", "model"):
                flat[f"{name}.{key}"] = value
    return flat


def decimal_text(value: Decimal) -> str:
    """The shortest exact text of a Decimal: 0.10 and 0.1 are the same rate."""
    return format(value.normalize(_WIDE), "f")


def _decimals_json(prices: SeedPrices | AwsPrices) -> dict[str, str]:
    values = {item.name: getattr(prices, item.name) for item in fields(prices)}
    return {name: decimal_text(value) for name, value in values.items() if value is not None}


def _image_json(rate: LlmRate | LlmTier) -> dict[str, str]:
    """The output image rate, only where the model has one: a sheet stored before image
    rates existed keeps its JSON, and so its digest."""
    if rate.output_image_per_token is None:
        return {}
    return {"output_image_per_token": decimal_text(rate.output_image_per_token)}


def _llm_json(rate: LlmRate) -> dict[str, Any]:
    return {
        "model": rate.model,
        "provider": rate.provider,
        "input_per_token": decimal_text(rate.input_per_token),
        "cached_input_per_token": decimal_text(rate.cached_input_per_token),
        "output_per_token": decimal_text(rate.output_per_token),
        "per_request": decimal_text(rate.per_request),
        "priced": rate.priced,
        "matched": rate.matched,
        "tiers": [
            {
                "above_input_tokens": tier.above_input_tokens,
                "input_per_token": decimal_text(tier.input_per_token),
                "cached_input_per_token": decimal_text(tier.cached_input_per_token),
                "output_per_token": decimal_text(tier.output_per_token),
                **_image_json(tier),
            }
            for tier in rate.tiers
        ],
        **_image_json(rate),
    }


def _overlay_json(rate: OverlayRate) -> dict[str, str]:
    return {
        "kind": rate.kind,
        "model": rate.model,
        "input_per_token": decimal_text(rate.input_per_token),
        "output_per_token": decimal_text(rate.output_per_token),
        "per_image": decimal_text(rate.per_image),
    }


def _overlay_from_json(item: Any) -> OverlayRate:
    if not isinstance(item, Mapping):
        raise ValueError("price sheet overlay entries must be objects")
    name = _str(item, "kind")
    kind = next((known for known in OVERLAY_KINDS if known == name), None)
    if kind is None:
        raise ValueError(f"price sheet overlay kind must be one of {OVERLAY_KINDS}")
    return OverlayRate(
        kind=kind,
        model=_str(item, "model"),
        input_per_token=_decimal(item, "input_per_token"),
        output_per_token=_decimal(item, "output_per_token"),
        per_image=_decimal(item, "per_image"),
    )


def _llm_from_json(item: Any) -> LlmRate:
    if not isinstance(item, Mapping):
        raise ValueError("price sheet llm entries must be objects")
    tiers = tuple(
        LlmTier(
            above_input_tokens=_int(tier, "above_input_tokens"),
            input_per_token=_decimal(tier, "input_per_token"),
            cached_input_per_token=_decimal(tier, "cached_input_per_token"),
            output_per_token=_decimal(tier, "output_per_token"),
            output_image_per_token=_image_from_json(tier),
        )
        for tier in _list(item, "tiers")
    )
    priced = item.get("priced")
    if not isinstance(priced, bool):
        raise ValueError("price sheet llm entry needs a boolean 'priced'")
    return LlmRate(
        model=_str(item, "model"),
        provider=_str(item, "provider"),
        input_per_token=_decimal(item, "input_per_token"),
        cached_input_per_token=_decimal(item, "cached_input_per_token"),
        output_per_token=_decimal(item, "output_per_token"),
        priced=priced,
        per_request=_decimal(item, "per_request"),
        tiers=tiers,
        matched=_str(item, "matched"),
        output_image_per_token=_image_from_json(item),
    )


def _image_from_json(item: Mapping[str, Any]) -> Decimal | None:
    return _decimal(item, "output_image_per_token") if "output_image_per_token" in item else None


def _decimals_from_json(
    kind: type[SeedPrices | AwsPrices], data: Any, retired: frozenset[str] = frozenset()
) -> dict[str, Decimal]:
    """The prices of ``kind``; ``retired`` ones are those a sheet of its version holds."""
    names = {item.name for item in fields(kind) if item.name not in RETIRED} | retired
    if set(data) != names:
        raise ValueError(f"price sheet {kind.__name__} needs exactly {sorted(names)}")
    return {name: _decimal(data, name) for name in names}


def _decimal(data: Any, key: str) -> Decimal:
    value = data.get(key) if isinstance(data, Mapping) else None
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise ValueError(f"price sheet {key!r} must be a decimal string >= 0, got {value!r}")
    return number


def _int(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"price sheet {key!r} must be an integer, got {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"price sheet {key!r} must be a string, got {value!r}")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"price sheet {key!r} must be a list")
    return value


def _dict(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"price sheet {key!r} must be an object")
    return value
