"""Money as it is shown: an exact sum, rounded once.

The rollup stores exact sums (unconstrained ``numeric``), so a month, an entity's total or a
range of days is the exact sum of its days. A figure is rounded where it is shown (the
gateway's JSON, the rollup service's answers), once, by :func:`round_usd`.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

USD_QUANTUM = Decimal("0.00000001")  # 8 places, what the API has always shown
# Enough digits that no sum the tables can hold overflows the quantize.
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_UP)


def round_usd(value: Decimal | int) -> Decimal:
    """``value`` to 8 places, half away from zero: what Postgres' ``round(value, 8)`` gives."""
    return Decimal(value).quantize(USD_QUANTUM, context=_ROUNDING)


# Python's default context keeps 28 digits, and a day's exact sum can hold more (S3 storage
# is priced to 1e-24 per byte): sums of stored figures are made at 100 digits, and a step that
# would still round raises rather than drift.
_EXACT_SUMS = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A block in which adding stored money is exact (or raises ``Inexact``)."""
    return localcontext(_EXACT_SUMS)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of stored money figures."""
    with exact_arithmetic():
        return sum(values, Decimal(0))
