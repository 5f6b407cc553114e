"""The largest value each number of an event may hold: one table for ingest and the rollup.

Telemetry rejects an event holding a number above its maximum (or a count below 0), naming
the field; the rollup counts a stored row outside the ranges (one written before they
existed, or by other code) at the nearest end of them, and logs how many it met. The
maxima are chosen so that the event tables hold any one event and every aggregate holds any
day of them, assuming

- at most :data:`EVENTS_PER_DAY` events a day in any scope (everyone, a tier, a user), and
  :data:`DAYS_PER_MONTH` days in a month (``cost_monthly_summary`` adds up a month's days);
- the figures summed into ``bigint`` columns and the live counters (Redis ``HINCRBY``,
  signed 64-bit), :data:`SUMMED`, stay below ``2**63`` for a month of such days;
- at the highest unit prices of the price sheets, no event costs more than
  :data:`MAX_EVENT_COST_USD`, whose nano-dollars the live counters' Lua script adds
  exactly (its numbers are doubles, exact to 2**53).

Money is summed in unconstrained ``numeric`` everywhere but the live counters, which keep
whole nano-dollars: a day of at most about $9.2 billion a scope. Per-event ranges cannot
promise that (10**9 events of $9.23 pass it), so it is an assumption of its own; a day past
it cannot fail ingest or the rollup, only the live cost counters. docs/cost-events.md lists
each maximum with its reason (tests/test_event_range_bounds.py holds the two together).
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

EVENTS_PER_DAY = 10**9
DAYS_PER_MONTH = 31
INT64_MAX = 2**63 - 1

_TOKENS = 10**8  # ten times the largest context window any model has (10M)
_DURATION_MS = 10**11  # about 3.2 years

MAXIMUM = MappingProxyType(
    {
        # job events
        "duration_ms": _DURATION_MS,  # LLM events' too
        "queue_wait_ms": _DURATION_MS,
        "cpu_ms": 2 * 10**8,
        "mem_mb_peak": 10**8,
        "rows_read": 10**11,
        "rows_written": 10**11,
        "attempt": 10**6,
        # LLM events
        "input_tokens": _TOKENS,
        "cached_input_tokens": _TOKENS,
        "output_tokens": _TOKENS,
        "reasoning_tokens": _TOKENS,
        "output_image_tokens": _TOKENS,
        # cost events, and the metadata numbers their prices read
        "quantity": 10**9,
        "metadata.input_tokens": _TOKENS,
        "metadata.cached_input_tokens": _TOKENS,
        "metadata.output_tokens": _TOKENS,
        "metadata.size_bytes": 5 * 2**40,  # S3's largest object, 5 TiB
        "metadata.file_size_mb": 5 * 2**20,  # the same in MiB
        "metadata.body_bytes": 10**15,
        "metadata.duration_seconds": 10**8,
        "metadata.memory_mb": 10**5,
    }
)
# A quantity of these units is dearer than the others: its own, lower maximum.
QUANTITY_BY_UNIT = MappingProxyType({"images": 10**6})

# The event fields summed into bigint aggregates and live counters (cpu_ms, tokens_in,
# tokens_out), each at most EVENTS_PER_DAY * DAYS_PER_MONTH times its maximum in a month.
SUMMED = ("cpu_ms", "input_tokens", "output_tokens")

# The price of 10**6 images at the highest price per unit ($0.25 an image of gpt-image-1 at
# high quality and 1024x1536); every other event, at its maxima, costs less.
MAX_EVENT_COST_USD = Decimal(250_000)

# The metadata keys whose numbers are checked, as they appear in the metadata.
METADATA_KEYS = tuple(name.removeprefix("metadata.") for name in MAXIMUM if "." in name)
