"""Who can be in the top k: from per-day columns of users' costs held in nano-dollars.

A held day (``Day``) has each user's cost rounded down to whole nano-dollars, and marks the
users whose cost has digits past the 9th place; summed over a range (``Sums``) each figure is
the user's exact cost less at most one nano-dollar per marked day. ``shortlist`` keeps every
user whose exact cost can reach the k-th largest, so that Postgres, summing only them exactly,
ranks them as it would rank everyone (``costguard.gateway.user_days``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T", bound=np.generic)


@dataclass(frozen=True)
class Day:
    """One date's costs by user index (``UserDays.ids``), at one version of the date."""

    date: date
    version: int
    nano: npt.NDArray[np.int64]  # floor(cost_usd * 10^9); 0 for a user without a row
    present: npt.NDArray[np.bool_]  # the users with a row
    inexact: npt.NDArray[np.bool_] | None  # the users whose cost is not whole nano-dollars
    fits: bool  # every cost within $10^7 either way; else Postgres ranks ranges holding it


@dataclass(frozen=True)
class Shortlist:
    """Who can be in the top ``limit``: ``users``, and of ``tied`` (users whose exact costs
    all equal the k-th largest) only the first ``limit`` by user_id."""

    users: list[str]
    tied: list[str]


def widened(column: npt.NDArray[T], users: int) -> npt.NDArray[T]:
    """A copy of a held day's column, for ``users`` users (0 / False for those after it)."""
    out = np.zeros(users, column.dtype)
    out[: len(column)] = column
    return out


def _names(ids: Sequence[str], at: npt.NDArray[np.intp]) -> list[str]:
    return [ids[i] for i in at.tolist()]


def _kth(values: npt.NDArray[np.int64], limit: int) -> int:
    return int(np.partition(values, len(values) - limit)[len(values) - limit])


def present_users(days: Sequence[Day], users: int) -> npt.NDArray[np.intp]:
    present = np.zeros(users, np.bool_)
    for day in days:
        present[: len(day.present)] |= day.present
    return np.flatnonzero(present)


@dataclass(frozen=True)
class Sums:
    """Users' costs summed over days, in nano-dollars rounded down per day, and per user the
    days whose cost was not whole nano-dollars (each adds less than one too little)."""

    key: tuple[tuple[date, int], ...]  # the days summed, with their versions
    nano: npt.NDArray[np.int64]
    slack: npt.NDArray[np.int32]


def summed(days: Sequence[Day], users: int) -> Sums:
    total = np.zeros(users, np.int64)
    slack = np.zeros(users, np.int32)
    for day in days:
        held = len(day.nano)  # users who first appeared after the day was loaded are absent
        total[:held] += day.nano
        if day.inexact is not None:
            slack[:held] += day.inexact
    return Sums(tuple((day.date, day.version) for day in days), total, slack)


def shortlist(days: Sequence[Day], sums: Sums, ids: Sequence[str], limit: int) -> Shortlist:
    """The users of ``days`` (summed in ``sums``) who can be among the ``limit`` costliest
    over them."""
    total, slack = sums.nano, sums.slack
    # A user's exact cost in nano-dollars is in [low, low + slack); exactly low without slack.
    # A user without a row in the range holds 0 without slack: when the k-th largest of all is
    # above 0 they cannot reach it, and who has rows need not be worked out.
    if len(ids) > limit and (kth := _kth(total, limit)) > 0:
        users, low = np.arange(len(ids)), total
    else:
        users = present_users(days, len(ids))
        if len(users) <= limit:
            return Shortlist(_names(ids, users), [])
        low, slack = total[users], slack[users]
        kth = _kth(low, limit)  # at most the k-th exact cost
    exact = slack == 0
    can = np.where(exact, low >= kth, low + slack > kth)
    tied = exact & (low == kth)
    if np.count_nonzero(tied) <= limit:
        return Shortlist(_names(ids, users[can]), [])
    # Many equal costs (users who cost nothing, say): of those only the first ``limit`` by
    # user_id can be in the top ``limit``, and Postgres knows that order.
    return Shortlist(_names(ids, users[can & ~tied]), _names(ids, users[tied]))
