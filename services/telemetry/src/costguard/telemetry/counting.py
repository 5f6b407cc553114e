"""What the rows a batch really inserted add to the live counters, summed in Python.

The figures are those the counter rebuild (``costguard.common.rebuild``) adds up from
Postgres, row for row: per local day, tier and user, the events, jobs, CPU, tokens and AI
calls, each event's stored price in whole nano-dollars (rounded per event, half up, as
``round(cost_usd * 1e9)``), the latest instant that decides the user's tier for the day
(``costguard_tier_vote``: microseconds since 1970), and the reservations the events settle.
A cost event without a user counts as unattributed; one with a user but no tier counts
under the user's tier for the day and does not decide it (vote -2).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from zoneinfo import ZoneInfo

from costguard.common.counters import UNATTRIBUTED, Usage
from costguard.common.day_sheets import DaySheet
from costguard.common.days import day_bounds
from costguard.common.pricing import AwsPrices
from costguard.common.storage import ObjectChange, held_within
from costguard.telemetry.event_tables import TABLES
from costguard.telemetry.rows import Row

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NANO = Decimal(1_000_000_000)


def nano_usd(amount: Decimal) -> int:
    """Whole nano-dollars, half up: what Postgres' round(cost * 1e9) gives for a cost >= 0."""
    return int((amount * _NANO).to_integral_value(rounding=ROUND_HALF_UP))


def tier_vote(at: datetime) -> int:
    """``costguard_tier_vote(at)``: the instant in whole microseconds since 1970."""
    return (at - _EPOCH) // _MICROSECOND


def _fields(kind: str, *names: str) -> itemgetter[Row]:
    columns = TABLES[kind].columns
    return itemgetter(*(columns.index(name) for name in names))


_JOB = _fields(
    "job", "user_id", "tier", "started_at", "created_at", "cpu_ms", "cost_usd", "reservation_id"
)
_LLM = _fields(
    "llm",
    "user_id",
    "tier",
    "created_at",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "reservation_id",
)
_COST = _fields("cost", "event_id", "user_id", "tier", "created_at", "cost_usd")

_Key = tuple[date, str, str | None]  # local day, tier, user


class _Group:
    """One key's latest vote, figures (``USAGE_FIELDS`` order) and reservations settled."""

    __slots__ = ("figures", "settles", "vote")

    def __init__(self, vote: int) -> None:
        self.vote = vote
        self.figures = [0, 0, 0, 0, 0, 0]
        self.settles: list[str] = []


class Tally:
    """The counters' figures of one batch's inserted rows, by local day, tier and user."""

    def __init__(self) -> None:
        self.accepted: dict[str, int] = {}
        self.days: set[date] = set()  # every local day an inserted event counts on
        self.cost_ids: list[uuid.UUID] = []  # for the S3 objects they store or delete
        self.cost_times: list[datetime] = []  # and when each was created (its partition)
        self._groups: dict[_Key, _Group] = {}

    def _group(self, key: _Key, vote: int) -> _Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(vote)
        else:
            group.vote = max(group.vote, vote)
        return group

    def add(self, kind: str, rows: Sequence[Row], days: Sequence[date]) -> None:
        """Count rows just inserted; ``days``: the local day each counts on."""
        self.accepted[kind] = self.accepted.get(kind, 0) + len(rows)
        self.days.update(days)
        add = {"job": self._add_job, "llm": self._add_llm, "cost": self._add_cost}[kind]
        for row, day in zip(rows, days, strict=True):
            add(row, day)

    def _add_job(self, row: Row, day: date) -> None:
        user, tier, started, created, cpu_ms, cost, reservation = _JOB(row)
        group = self._group((day, tier, user), tier_vote(started or created))
        figures = group.figures
        figures[0] += 1
        figures[1] += cpu_ms
        figures[5] += nano_usd(cost)
        if reservation is not None:
            group.settles.append(reservation)

    def _add_llm(self, row: Row, day: date) -> None:
        user, tier, created, tokens_in, tokens_out, cost, reservation = _LLM(row)
        group = self._group((day, tier, user), tier_vote(created))
        figures = group.figures
        figures[2] += tokens_in
        figures[3] += tokens_out
        figures[4] += 1
        figures[5] += nano_usd(cost)
        if reservation is not None:
            group.settles.append(reservation)

    def _add_cost(self, row: Row, day: date) -> None:
        event_id, user, tier, created, cost = _COST(row)
        counted = UNATTRIBUTED if user is None else (tier or UNATTRIBUTED)
        vote = -2 if tier is None else tier_vote(created)
        self._group((day, counted, user), vote).figures[5] += nano_usd(cost)
        self.cost_ids.append(event_id)
        self.cost_times.append(created)

    def usages(self, today: date) -> list[Usage]:
        """The counters' usages; a late event's day has expired from the counters (the
        rollup has it)."""
        live = {day for day in self.days if abs((today - day).days) <= 1}
        usages = []
        for (day, tier, user), group in self._groups.items():
            if day in live:
                jobs, cpu_ms, tokens_in, tokens_out, ai_calls, cost_nusd = group.figures
                figures = (jobs, cpu_ms, tokens_in, tokens_out, ai_calls, cost_nusd)
                usages.append(Usage(day, tier, user, group.vote, figures, tuple(group.settles)))
        return usages


def storage_usages(
    changes: Sequence[ObjectChange],
    in_force: Mapping[date, DaySheet],
    *,
    tz: ZoneInfo,
    aws: AwsPrices,
) -> list[Usage]:
    """What the batch changed in the storage held yesterday and today, per object (in
    whole nano-dollars, rounded per object as the rebuild sums them), for the live
    counters: a new object holds to its end or the end of the day, a delete or an
    overwrite ends an earlier one. Storage never decides a user's tier (vote -1).
    ``aws``: the prices of a day without a sheet in force."""
    if not changes:
        return []
    today = datetime.now(tz).date()
    usages = []
    for day in (today - timedelta(days=1), today):
        prices = in_force[day].sheet.aws if day in in_force else aws
        bounds = day_bounds(day, tz)
        for change in changes:
            now = held_within(change.size_bytes, change.stored_at, change.ended_at, bounds, prices)
            before = (
                held_within(
                    change.size_bytes, change.stored_at, change.old_ended_at, bounds, prices
                )
                if not change.inserted
                else Decimal(0)
            )
            delta = nano_usd(now) - nano_usd(before)
            if delta:
                user = change.user_id
                tier = (change.tier if user else None) or UNATTRIBUTED
                vote = -1 if user and change.tier else -2
                usages.append(Usage(day, tier, user, vote, (0, 0, 0, 0, 0, delta)))
    return usages
