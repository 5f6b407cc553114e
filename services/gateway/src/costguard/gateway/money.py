"""Money in JSON: decimal strings, never floats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def usd(value: Decimal | int | str | None) -> str:
    return f"{Decimal(value or 0):f}"


def ratio(part: float | int | Decimal, whole: float | int | Decimal) -> float:
    return float(part) / float(whole) if whole else 0.0


def jsonable_row(row: Any) -> dict[str, Any]:
    """A record as JSON: decimals as strings, dates and times in ISO 8601."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if isinstance(value, Decimal):
            out[key] = usd(value)
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        elif isinstance(value, list):
            out[key] = [usd(v) if isinstance(v, Decimal) else v for v in value]
        else:
            out[key] = value
    return out
