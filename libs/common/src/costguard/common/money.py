"""Money as it is shown: an exact sum, rounded once.

The rollup stores exact sums (unconstrained ``numeric``), so a month, an entity's total or a
range of days is the exact sum of its days. A figure is rounded where it is shown (the
gateway's JSON, the rollup service's answers), once, by :func:`round_usd`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

USD_QUANTUM = Decimal("0.00000001")  # 8 places, what the API has always shown
# Enough digits that no sum the tables can hold overflows the quantize.
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_UP)


def round_usd(value: Decimal | int) -> Decimal:
    """``value`` to 8 places, half away from zero: what Postgres' ``round(value, 8)`` gives."""
    return Decimal(value).quantize(USD_QUANTUM, context=_ROUNDING)
