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


# Python's default context keeps 28 digits, and Postgres' numeric keeps them all: a price, a
# sum of prices and a sum of stored figures are made in EXACT, where a step that would round
# raises rather than drift from the SQL that makes the same figure. How many digits that
# takes: a figure's largest digit is below 10**21 (a month of EVENTS_PER_DAY events at
# MAX_EVENT_COST_USD is under 10**16), and its smallest is that of a product of prices and
# metadata numbers. Those numbers are JSON doubles (17 digits, down to 4.9e-324, so a last
# digit at 10**-340), and Lambda's GB-seconds multiplies two of them by 1/1024 and a price:
# 10**-340 x 10**-340 x 10**-10 x a price's last place. 1,000 digits leaves a price 290
# places, where sheets have at most 40.
EXACT_DIGITS = 1000
EXACT = Context(prec=EXACT_DIGITS, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A block in which pricing and adding money is exact (or raises ``Inexact``)."""
    return localcontext(EXACT)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of stored money figures."""
    with exact_arithmetic():
        return sum(values, Decimal(0))
