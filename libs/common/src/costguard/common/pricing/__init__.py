"""Prices, with no I/O: money is ``Decimal``, never float (issue 5).

- :mod:`.seed`: the seed's four constants from the environment (jobs, live counters, and
  any LLM model with no known price).
- :mod:`.llm`: per-model LLM rates and :func:`llm_call_cost` (cached tokens billed once at
  the cache rate, reasoning inside output).
- :mod:`.catalog`: those rates from genai-prices, offline (:func:`build_price_sheet`).
- :mod:`.aws`: AWS list prices, overridable from the environment, and
  :func:`cost_event_cost`.
- :mod:`.sheet`: the :class:`PriceSheet` a rollup loads into SQL and records by digest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from costguard.common.pricing.aws import (
    AWS_EVENT_COST_SQL,
    CATEGORY_AWS,
    CATEGORY_UNPRICED,
    AwsPrices,
    AwsRate,
    EventCost,
    aws_rates,
    cost_event_cost,
)
from costguard.common.pricing.llm import LlmRate, LlmTier, llm_call_cost, unpriced_llm_rate
from costguard.common.pricing.seed import NANO, SeedPrices, to_nano_usd
from costguard.common.pricing.sheet import (
    AWS_RATE_COLUMNS,
    LLM_CALL_COST_SQL,
    LLM_RATE_COLUMNS,
    PriceChange,
    PriceSheet,
    aws_rate_rows,
    llm_rate_rows,
    price_changes,
)

if TYPE_CHECKING:
    from costguard.common.pricing.catalog import LLM_SOURCE, build_price_sheet, lookup_llm_rate

__all__ = [
    "AWS_EVENT_COST_SQL",
    "AWS_RATE_COLUMNS",
    "CATEGORY_AWS",
    "CATEGORY_UNPRICED",
    "LLM_CALL_COST_SQL",
    "LLM_RATE_COLUMNS",
    "LLM_SOURCE",
    "NANO",
    "AwsPrices",
    "AwsRate",
    "EventCost",
    "LlmRate",
    "LlmTier",
    "PriceChange",
    "PriceSheet",
    "SeedPrices",
    "aws_rate_rows",
    "aws_rates",
    "build_price_sheet",
    "cost_event_cost",
    "llm_call_cost",
    "llm_rate_rows",
    "lookup_llm_rate",
    "price_changes",
    "to_nano_usd",
    "unpriced_llm_rate",
]

_CATALOG = frozenset({"LLM_SOURCE", "build_price_sheet", "lookup_llm_rate"})


def __getattr__(name: str) -> object:
    # genai-prices takes about half a second to import; telemetry and throttle only need the
    # seed constants, so the catalog loads on first use (PEP 562).
    if name in _CATALOG:
        return getattr(importlib.import_module("costguard.common.pricing.catalog"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
