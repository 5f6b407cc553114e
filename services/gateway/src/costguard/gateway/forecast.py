"""The month's forecast: what is spent so far, and the rest of the month at a recent pace.

projected = month to date + remaining days x the average of the last full days, where the
remaining days are what is left of today (a fraction, in the configured time zone, so a
23- or 25-hour day counts right) plus the days after today, and the full days are the 7
before today. Today is never a full day: dividing a partial day by its whole would project
a morning's spend onto the month. Days without a rolled-up row (the data starts later, or a
rollup is missing) are not averaged as $0: the average is over the days that have one, and
the method says how many. With none, the projection is the month to date alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from zoneinfo import ZoneInfo

from costguard.common.days import day_bounds
from costguard.common.money import round_usd

FULL_DAYS = 7
_EXACT = Context(prec=80)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class MonthForecast:
    month_to_date: Decimal
    projected: Decimal
    daily_average: Decimal | None  # None: no full day to average
    days_averaged: int
    remaining_days: Decimal  # the rest of today (a fraction) and the days after it
    method: str


def averaged_days(today: date) -> tuple[date, date]:
    """The first and last of the full days the pace is taken from: the 7 before today."""
    return today - timedelta(days=FULL_DAYS), today - timedelta(days=1)


def remaining_days(now: datetime, tz: ZoneInfo) -> Decimal:
    """What is left of the month from ``now``: the rest of today, as a fraction of today's
    length, plus every day after it."""
    today = now.astimezone(tz).date()
    start, end = day_bounds(today, tz)
    first_of_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    with localcontext(_EXACT):
        rest_of_today = Decimal((end - now) // _MICROSECOND) / Decimal(
            (end - start) // _MICROSECOND
        )
        days_after_today = (first_of_next - today).days - 1
        return rest_of_today + days_after_today


def _days_text(days: Decimal) -> str:
    shown = days.quantize(Decimal("0.01")).normalize()
    return f"{shown:f}"


def _pace_text(amount: Decimal) -> str:
    """Per-day money in a sentence: 4 places from a cent up ("$1.0300"), else 8."""
    if abs(amount) < Decimal("0.01"):
        return f"${round_usd(amount):f}"
    with localcontext(_EXACT):
        return f"${amount.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f}"


def month_forecast(
    now: datetime, tz: ZoneInfo, *, month_to_date: Decimal, full_days: int, full_days_cost: Decimal
) -> MonthForecast:
    """The forecast at ``now``, from this month's cost so far (today's included) and the cost
    of the ``full_days`` rolled-up days among the 7 before today."""
    remaining = remaining_days(now, tz)
    if full_days == 0:
        return MonthForecast(
            month_to_date=month_to_date,
            projected=month_to_date,
            daily_average=None,
            days_averaged=0,
            remaining_days=remaining,
            method=(
                f"month to date only: no full day of data in the {FULL_DAYS} days before "
                f"today to project the remaining {_days_text(remaining)} days from"
            ),
        )
    with localcontext(_EXACT):
        average = full_days_cost / full_days
        projected = month_to_date + remaining * average
    if full_days == FULL_DAYS:
        which = f"the average of the last {FULL_DAYS} full days"
    else:
        which = (
            f"the average of the {full_days} full day{'s' if full_days > 1 else ''} "
            f"with data among the last {FULL_DAYS}"
        )
    return MonthForecast(
        month_to_date=month_to_date,
        projected=projected,
        daily_average=average,
        days_averaged=full_days,
        remaining_days=remaining,
        method=f"month to date + {_days_text(remaining)} days x {_pace_text(average)}/day, {which}",
    )
