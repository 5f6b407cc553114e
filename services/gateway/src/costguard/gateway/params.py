"""Query and body parameters, validated: bad input is a 400 naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request

from costguard.gateway.user_days import RANGE_DAYS

_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
# YYYY-MM-DD in ASCII digits only: date.fromisoformat also takes 20250101 and 2025-W01-1.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIRST_DAY, _LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class BadInput(ValueError):
    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


# The longest range any analytics route reads is the days the top users' ranking holds;
# the default range is a week.
MAX_DAYS, DEFAULT_DAYS = RANGE_DAYS, 7
# 1 to 92 written plainly: "07" or "+7" would be a second spelling of the same range.
_DAYS = re.compile(r"[1-9][0-9]?")


def days(request: Request) -> int:
    raw = request.query_params.get("days", str(DEFAULT_DAYS))
    if not (raw.isascii() and _DAYS.fullmatch(raw)) or int(raw) > MAX_DAYS:
        raise BadInput("days", f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(raw)


@dataclass(frozen=True)
class DateRange:
    """``first`` .. ``last``, both included; ``previous`` is the period the figures are
    compared with: as many days, ending the day before ``first``."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    @property
    def previous(self) -> DateRange:
        return DateRange(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    def partial_date(self, today: date) -> str | None:
        """Today, when the range holds it: its figures are today's so far."""
        return today.isoformat() if self.first <= today <= self.last else None


def date_range(request: Request, today: date) -> DateRange:
    """Every analytics route's range: ``from`` .. ``to`` (default today, in the reporting
    time zone), at most MAX_DAYS days; without ``from``, the ``days`` days (1 to 92, default
    7) up to ``to``. One parser, so that every route reads the same range from a query."""
    last = iso_date(request, "to") or today
    first = iso_date(request, "from")
    if first is None:
        return DateRange(last - timedelta(days=days(request) - 1), last)
    if "days" in request.query_params:
        raise BadInput("days", "give days or from, not both")
    if first > last or (last - first).days >= MAX_DAYS:
        raise BadInput("from", f"from must be on or before to, at most {MAX_DAYS - 1} days earlier")
    return DateRange(first, last)


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # isdigit() alone admits "²" and "¾", which int() then refuses; the length bound
    # keeps int() clear of its 4,300-digit limit.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
        raise BadInput(name, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def iso_date(request: Request, name: str) -> date | None:
    """The date ``name``, or None when the query does not give it: the caller computes its
    default only then (a default computed from a given bound could overflow)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        value = date.fromisoformat(raw)
    except ValueError:
        raise BadInput(name, f"{name} must be a date YYYY-MM-DD") from None
    # Bounded like the years: a range computed from 0001-01-01 would overflow.
    if not _FIRST_DAY <= value <= _LAST_DAY:
        raise BadInput(name, f"{name} must be from {_FIRST_DAY} to {_LAST_DAY}")
    return value


def entity_id(request: Request, name: str) -> str:
    value = str(request.path_params.get(name, ""))
    if not _ID.fullmatch(value):  # match() would let a trailing newline through
        raise BadInput(name, f"{name} must be 1 to 64 letters, digits or _.:@-")
    return value


def query_id(request: Request, name: str) -> str | None:
    """The id ``name`` of the query (validated as path ids are), or None when not given."""
    value = request.query_params.get(name)
    if value is not None and not _ID.fullmatch(value):
        raise BadInput(name, f"{name} must be 1 to 64 letters, digits or _.:@-")
    return value


def decimal_or_none(body: dict[str, Any], name: str, places: int) -> Decimal | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(name, f'{name} must be a decimal string such as "12.50", or null')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadInput(name, f'{name} must be a decimal string such as "12.50", or null') from None
    if not number.is_finite() or number < 0 or number > Decimal(10) ** 12:
        raise BadInput(name, f"{name} must be between 0 and 10^12")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise BadInput(name, f"{name} has more than {places} decimal places")
    return number


def count_or_none(body: dict[str, Any], name: str, *, maximum: int = 10**15) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise BadInput(name, f"{name} must be a whole number from 0 to {maximum}, or null")
    return value
