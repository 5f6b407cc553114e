"""Money in JSON: decimal strings, never floats, each rounded once, here.

Postgres holds exact sums (the rollup rounds nothing), so a range, a month or an entity's
total is summed exactly and only the figure shown is rounded: to 8 places, half away from
zero (Postgres' ``round()``), by :func:`usd`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

from costguard.common.money import round_usd

# The jsonb columns of the cost tables that map a name (service, category, podcast) to a
# cost, and those that map a name (tier, unpriced item) to figures holding a ``cost_usd``.
COST_MAPS = frozenset(
    {"cost_by_service", "cost_by_category", "cost_by_service_json", "podcast_breakdown"}
)
FIGURE_MAPS = frozenset({"tier_breakdown_json", "unpriced_json"})

# A quotient to 80 digits: rounding it to 8 places is the exact quotient's rounding unless its
# digits past the 8th run to ~70 nines or zeros, which no count below 10**70 produces.
_QUOTIENT = Context(prec=80)


def usd(value: Decimal | int | str | None) -> str:
    """A money figure as the API shows it: 8 places ("0.00000025"); zero (also a figure that
    rounds to zero) is "0"."""
    rounded = round_usd(Decimal(value or 0))
    return f"{rounded:f}" if rounded else "0"


def mean_usd(total: Decimal, count: int) -> str:
    """``total / count`` shown as :func:`usd` shows a figure, rounded once from the quotient."""
    if not count:
        return "0"
    with localcontext(_QUOTIENT):
        return usd(total / count)


def exact_text(value: Decimal | int) -> str:
    """A number that is not money (a cap's count, a threshold) as it is, never rounded."""
    return f"{Decimal(value):f}"


def ratio(part: float | int | Decimal, whole: float | int | Decimal) -> float:
    return float(part) / float(whole) if whole else 0.0


def _shown(value: Any) -> Any:
    """A stored cost (decimal text, or a JSON number) via :func:`usd`; anything else as is."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return value
    return usd(number) if number.is_finite() else value


def usd_map(costs: Mapping[str, Any]) -> dict[str, Any]:
    """A breakdown of costs (by service, category, podcast), each shown by :func:`usd`."""
    return {key: _shown(value) for key, value in costs.items()}


def _figures_map(figures: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, Mapping) and "cost_usd" in value:
            out[key] = {**value, "cost_usd": _shown(value["cost_usd"])}
        else:
            out[key] = value
    return out


def jsonable_row(row: Any) -> dict[str, Any]:
    """A record as JSON: decimals as exact strings, dates and times in ISO 8601."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if isinstance(value, Decimal):
            out[key] = exact_text(value)
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        elif isinstance(value, list):
            out[key] = [exact_text(v) if isinstance(v, Decimal) else v for v in value]
        else:
            out[key] = value
    return out


def cost_row(row: Any) -> dict[str, Any]:
    """A row of the cost tables as JSON: every decimal is money, shown by :func:`usd`, and
    so is every cost in its breakdowns; the rest as :func:`jsonable_row` writes it."""
    out = jsonable_row(row)
    for key, value in dict(row).items():
        if isinstance(value, Decimal):
            out[key] = usd(value)
        elif key in COST_MAPS and isinstance(value, Mapping):
            out[key] = usd_map(value)
        elif key in FIGURE_MAPS and isinstance(value, Mapping):
            out[key] = _figures_map(value)
    return out
