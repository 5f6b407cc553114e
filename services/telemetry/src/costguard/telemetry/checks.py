"""Field checks that name the field: what a user reads in a rejection.

Every value that reaches Postgres passes here first, so that one bad event is rejected
alone instead of failing its whole batch's COPY (issue 3: "Nothing reaches Postgres
that would make a later rollup fail").
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from google.protobuf.message import Message

from costguard.common.event_ranges import MAXIMUM, METADATA_KEYS, QUANTITY_BY_UNIT

# Column widths of the event tables (tests/test_validation.py checks them against the
# live schema).
MAX_LENGTH = {
    "job_name": 128,
    "user_id": 64,
    "tier": 32,
    "domain": 64,
    "job_type": 64,
    "error_code": 64,
    "episode_id": 64,
    "podcast_id": 64,
    "provider": 32,
    "llm_model": 128,
    "context_type": 32,
    "job_id": 64,
    "operation": 32,
    "insight_key": 256,
    "event_type": 64,
    "service": 32,
    "unit": 32,
    "reservation_id": 64,
}
# Every number's range is in costguard.common.event_ranges, shared with the rollup.
MAX_QUANTITY = MAXIMUM["quantity"]
# cost_events.quantity is numeric(24, 6): an event is priced at the quantity it is stored with
# (rounded as Postgres rounds on the cast, half away from zero), so that the live counters and
# every later rollup price the same number.
QUANTITY_QUANTUM = Decimal("0.000001")
MAX_METADATA_BYTES = 16_384
MAX_FUTURE = timedelta(days=1)  # clock skew we tolerate; later is a client bug


@dataclass(frozen=True)
class Rejected(Exception):
    field: str
    reason: str


def event_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Rejected("event_id", f"must be a UUID, got {value[:40]!r}") from None


def text(name: str, value: str, *, required: bool = False) -> str | None:
    if not value:
        if required:
            raise Rejected(name, "is required")
        return None
    limit = MAX_LENGTH[name]
    if len(value) > limit:
        raise Rejected(name, f"is {len(value)} characters long; at most {limit} fit")
    if "\x00" in value:
        raise Rejected(name, "contains a NUL character")
    return value


def tier(value: str, tiers: tuple[str, ...], *, required: bool = True) -> str | None:
    if not value and not required:
        return None
    if value not in tiers:
        raise Rejected("tier", f"{value[:32]!r} is not a configured tier ({', '.join(tiers)})")
    return value


def count(name: str, value: int) -> int:
    if value < 0:
        raise Rejected(name, f"must not be negative, got {value}")
    limit = MAXIMUM[name]
    if value > limit:
        raise Rejected(name, f"must be at most {limit:,}, got {value:,}")
    return value


def finite(name: str, value: float, *, maximum: float = math.inf, per: str = "") -> float:
    if not math.isfinite(value):
        raise Rejected(name, f"must be a finite number, got {value}")
    if value < 0:
        raise Rejected(name, f"must not be negative, got {value}")
    if value > maximum:
        raise Rejected(name, f"must be at most {maximum:g}{per}, got {value:g}")
    return value


def quantity(value: float, unit: str) -> Decimal:
    """The quantity as it is stored and priced: checked, then to :data:`QUANTITY_QUANTUM`."""
    if unit in QUANTITY_BY_UNIT:
        checked = finite("quantity", value, maximum=QUANTITY_BY_UNIT[unit], per=f" {unit}")
    else:
        checked = finite("quantity", value, maximum=MAX_QUANTITY)
    # repr: the shortest text that is this double, what the SDK's caller wrote
    return Decimal(repr(checked)).quantize(QUANTITY_QUANTUM, rounding=ROUND_HALF_UP)


_YEAR_2000 = 946_684_800  # seconds since the epoch


def moment(message: Message, name: str, received_at: datetime) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp = getattr(message, name)
    seconds, nanos = stamp.seconds, stamp.nanos
    if seconds < _YEAR_2000 or not 0 <= nanos < 1_000_000_000:
        raise Rejected(name, f"is not a plausible time: {seconds}s {nanos}ns")
    if seconds > received_at.timestamp() + MAX_FUTURE.total_seconds():
        raise Rejected(name, f"is in the future ({seconds}s since the epoch)")
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)


def in_order(*named: tuple[str, datetime | None]) -> None:
    """Each present time is not before the previous present one."""
    previous: tuple[str, datetime] | None = None
    for name, value in named:
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            raise Rejected(name, f"is before {previous[0]}")
        previous = (name, value)


def metadata_numbers(metadata: dict[str, Any]) -> None:
    """Bound the metadata numbers a price or a stored size reads. Below 0 they count as 0
    (docs/cost-events.md), so only the maximum is checked; other values are not read."""
    for key in METADATA_KEYS:
        value = metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        limit = MAXIMUM[f"metadata.{key}"]
        if value > limit:
            raise Rejected(f"metadata.{key}", f"must be at most {limit:,}, got {value:g}")


def json_value(name: str, value: Any, depth: int = 0) -> None:
    """Reject what jsonb cannot hold (NaN, infinity, NUL) or what nests absurdly deep."""
    if depth > 32:
        raise Rejected(name, "nests deeper than 32 levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise Rejected(name, f"holds a non-finite number ({value})")
    if isinstance(value, str) and "\x00" in value:
        raise Rejected(name, "holds a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            json_value(name, key, depth + 1)
            json_value(name, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            json_value(name, item, depth + 1)
