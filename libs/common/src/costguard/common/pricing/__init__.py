"""Prices, with no I/O: money is ``Decimal``, never float (issue 5).

- :mod:`.seed`: the seed's four constants from the environment (jobs, live counters, and
  any LLM model with no known price).
- :mod:`.llm`: per-model LLM rates and :func:`llm_call_cost` (cached tokens billed once at
  the cache rate, reasoning inside output).
- :mod:`.catalog`: those rates from genai-prices, offline (:func:`build_price_sheet`).
- :mod:`.aws`: AWS list prices, overridable from the environment.
- :mod:`.overlay`: model prices kept in code (Gemini text to speech, image generation).
- :mod:`.events`: the cost-event vocabulary (docs/cost-events.md) and
  :func:`cost_event_cost`, with its SQL twin.
- :mod:`.sheet`: the :class:`PriceSheet` a rollup loads into SQL and records by digest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from costguard.common.pricing.aws import AwsPrices
from costguard.common.pricing.events import (
    CATEGORY_AI,
    CATEGORY_AWS,
    CATEGORY_UNPRICED,
    COST_EVENTS_SQL,
    EVENT_RATE_COLUMNS,
    GEMINI_PROVIDER,
    EventCost,
    EventRate,
    cost_event_cost,
    event_rate_rows,
    event_rates,
    vocabulary,
)
from costguard.common.pricing.llm import (
    LLM_NO_TOKENS,
    LLM_UNKNOWN_MODEL,
    LlmRate,
    LlmTier,
    llm_call_cost,
    unpriced_llm_rate,
)
from costguard.common.pricing.overlay import OverlayPrices, OverlayRate, default_overlay
from costguard.common.pricing.seed import NANO, SeedPrices, to_nano_usd
from costguard.common.pricing.sheet import (
    LLM_CALL_COST_SQL,
    LLM_RATE_COLUMNS,
    OVERLAY_RATE_COLUMNS,
    PriceChange,
    PriceSheet,
    llm_rate_rows,
    overlay_rate_rows,
    price_changes,
)

if TYPE_CHECKING:
    from costguard.common.pricing.catalog import LLM_SOURCE, build_price_sheet, lookup_llm_rate

__all__ = [
    "CATEGORY_AI",
    "CATEGORY_AWS",
    "CATEGORY_UNPRICED",
    "COST_EVENTS_SQL",
    "EVENT_RATE_COLUMNS",
    "GEMINI_PROVIDER",
    "LLM_CALL_COST_SQL",
    "LLM_NO_TOKENS",
    "LLM_RATE_COLUMNS",
    "LLM_SOURCE",
    "LLM_UNKNOWN_MODEL",
    "NANO",
    "OVERLAY_RATE_COLUMNS",
    "AwsPrices",
    "EventCost",
    "EventRate",
    "LlmRate",
    "LlmTier",
    "OverlayPrices",
    "OverlayRate",
    "PriceChange",
    "PriceSheet",
    "SeedPrices",
    "build_price_sheet",
    "cost_event_cost",
    "default_overlay",
    "event_rate_rows",
    "event_rates",
    "llm_call_cost",
    "llm_rate_rows",
    "lookup_llm_rate",
    "overlay_rate_rows",
    "price_changes",
    "to_nano_usd",
    "unpriced_llm_rate",
    "vocabulary",
]

_CATALOG = frozenset({"LLM_SOURCE", "build_price_sheet", "lookup_llm_rate"})


def __getattr__(name: str) -> object:
    # genai-prices takes about half a second to import; telemetry and throttle only need the
    # seed constants, so the catalog loads on first use (PEP 562).
    if name in _CATALOG:
        return getattr(importlib.import_module("costguard.common.pricing.catalog"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
