"""The top users' ranking: each gateway holds every user's cost of each recent day in memory.

``GET /api/admin/cost/users`` ranks the users by their exact cost over a range of days. Summed
in Postgres that reads every row of the range: seconds at 100,000 users (3 million rows a
month). Instead each gateway holds, per date, a column of every user's cost in whole
nano-dollars rounded down (``floor(cost_usd * 10^9)``) and which users have a row that day.
A range's sums are then numpy additions, and each bounds a user's exact cost from below by
less than one nano-dollar per day whose cost was not a whole number of nano-dollars (none, for
costs of at most 9 places: the sum is then the exact cost). Only the users whose bound can
reach the k-th largest sum can be in the top k, ties included; Postgres sums exactly those,
with the very statement of the full ranking restricted to them, so the answer is the one the
full ranking gives (order, exact sums, tier of the last day).

Freshness: triggers on cost_user_daily (migration 0014) give a date a new version in the
same transaction as any write that adds, removes or re-costs one of its rows, whoever writes
them, log which users it changed, and NOTIFY at commit. A read takes one repeatable-read
snapshot, reads its dates' versions there and uses a held day only at the version it sees; a
day held at an older version is patched in that snapshot from the users logged since (a
re-roll of today changes a few of 100,000), else loaded whole. A NOTIFY brings a changed day
up to date ahead of the reads; on every replica alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import asyncpg
import numpy as np
import numpy.typing as npt

from costguard.common.db import Connection
from costguard.gateway import queries
from costguard.gateway.shortlist import Day, Sums, shortlist, summed, widened

log = logging.getLogger(__name__)

CHANNEL = "costguard_user_days"
# The longest range the top users read; the listener keeps this many days up to today loaded.
RANGE_DAYS = 92

# Whole blocks of this many days (by date ordinal) are summed once and kept while their days
# keep their versions: a range adds a dozen of them and the days at its ends.
BLOCK_DAYS = 8

VERSIONS = "SELECT date, version FROM cost_user_day_versions WHERE date BETWEEN $1 AND $2"
VERSION = "SELECT version FROM cost_user_day_versions WHERE date = $1"

# A day's users, their costs in nano-dollars rounded down, those whose cost is not a whole
# number of nano-dollars, and whether every cost is within $10^7 either way (92 such days
# sum within a bigint; a day past that is ranked by Postgres, see ``Day.fits``).
DAY = """
WITH day AS (
    SELECT user_id, coalesce(cost_usd, 0) * 1000000000 AS nano
    FROM cost_user_daily WHERE date = $1
)
SELECT coalesce(array_agg(user_id), '{}') AS users,
       coalesce(array_agg(floor(least(greatest(nano, -1e16), 1e16))::bigint), '{}') AS nano,
       coalesce(array_agg(user_id) FILTER (WHERE nano <> floor(nano)), '{}') AS inexact,
       coalesce(bool_and(abs(nano) <= 1e16), true) AS fits
FROM day
"""

# A held day's version is brought to a later one by the users its changes name (migration
# 0014), when they link it: each change names the version before it.
CHANGES = """
SELECT version, previous, users FROM cost_user_day_changes
WHERE date = $1 AND version > $2 AND version <= $3 ORDER BY version
"""
_DAY_ROWS = "FROM cost_user_daily WHERE date = $1\n"
PATCH = DAY.replace(_DAY_ROWS, _DAY_ROWS.replace("$1", "$1 AND user_id = ANY($2::text[])"))
if PATCH == DAY:
    raise AssertionError("DAY no longer reads the day as PATCH expects")

# Of users whose exact costs are all equal: the first $2 as ORDER BY user_id puts them (the
# database's collation decides, as it does in the full ranking).
FIRST_BY_ID = "SELECT u FROM unnest($1::text[]) AS u ORDER BY u LIMIT $2"


async def top_users(
    user_days: UserDays, conn: Connection, first: date, last: date, limit: int
) -> list[asyncpg.Record]:
    """``queries.TOP_USERS`` over ``first`` .. ``last`` (at most ``RANGE_DAYS``), as
    ``conn``'s transaction (a repeatable-read snapshot) sees the days."""
    days = await user_days.days(conn, first, last)
    if not all(day.fits for day in days):
        return await conn.fetch(queries.TOP_USERS, first, last, limit)
    found = shortlist(days, user_days.sums(days, first, last), user_days.ids, limit)
    users = found.users
    if found.tied:
        users += [r["u"] for r in await conn.fetch(FIRST_BY_ID, found.tied, limit)]
    return await conn.fetch(queries.TOP_USERS_AMONG, first, last, limit, users)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _: event.set()


class UserDays:
    """The held days (at most ``held_days``, the least recently read dropped first), the
    users' indexes into their columns, and the listener that reloads changed days."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, *, held_days: int, today: Callable[[], date]
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._held_days = held_days
        self._today = today
        self.ids: list[str] = []
        self._index: dict[str, int] = {}
        self._days: OrderedDict[date, Day] = OrderedDict()
        self._blocks: dict[int, Sums] = {}  # by date.toordinal() // BLOCK_DAYS
        self._loading: dict[date, asyncio.Future[Day | None]] = {}
        self._dirty: set[date] = set()
        self._due = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def days(self, conn: Connection, first: date, last: date) -> list[Day]:
        """The days from ``first`` to ``last`` as ``conn``'s transaction (a repeatable-read
        snapshot) sees them; a date without rows is left out."""
        versions = await conn.fetch(VERSIONS, first, last)
        return [await self._day(conn, r["date"], r["version"]) for r in versions]

    def sums(self, days: Sequence[Day], first: date, last: date) -> Sums:
        """``days`` (``first`` .. ``last``) summed: the whole BLOCK_DAYS blocks in the range
        from sums kept while their days keep their versions, the days at its ends one by one."""
        users = len(self.ids)
        blocks: dict[int, list[Day]] = {}
        for day in days:
            blocks.setdefault(day.date.toordinal() // BLOCK_DAYS, []).append(day)
        parts: list[Sums] = []
        loose: list[Day] = []
        for block, members in blocks.items():
            start = block * BLOCK_DAYS
            if start < first.toordinal() or start + BLOCK_DAYS - 1 > last.toordinal():
                loose += members
                continue
            kept = self._blocks.get(block)
            if kept is None or kept.key != tuple((d.date, d.version) for d in members):
                kept = self._blocks[block] = summed(members, users)
                while len(self._blocks) > self._held_days // BLOCK_DAYS + 2:
                    del self._blocks[next(iter(self._blocks))]
            parts.append(kept)
        total = summed(loose, users)
        for part in parts:
            total.nano[: len(part.nano)] += part.nano
            total.slack[: len(part.slack)] += part.slack
        return total

    async def _day(self, conn: Connection, day: date, version: int) -> Day:
        held = self._days.get(day)
        if held is not None and held.version == version:
            self._days.move_to_end(day)
            return held
        pending = self._loading.get(day)
        if pending is not None:
            loaded = await asyncio.shield(pending)
            if loaded is not None and loaded.version == version:
                return loaded
        return await self._load(conn, day, version)

    async def _load(self, conn: Connection, day: date, version: int) -> Day:
        """``day`` at ``version``, which ``conn``'s snapshot sees: held from now on unless a
        newer version of the day is held already."""
        future: asyncio.Future[Day | None] | None = None
        if day not in self._loading:
            future = asyncio.get_running_loop().create_future()
            self._loading[day] = future
        loaded: Day | None = None
        try:
            held = self._days.get(day)
            if held is not None and held.version < version:
                loaded = await self._patched(conn, held, version)
            if loaded is None:
                row = await conn.fetchrow(DAY, day)
                assert row is not None
                loaded = self._column(day, version, row)
            held = self._days.get(day)  # another read may have installed one meanwhile
            # A date's versions grow in commit order: an older snapshot's day is not kept.
            if held is None or held.version < version:
                self._days[day] = loaded
            if day in self._days:
                self._days.move_to_end(day)
            while len(self._days) > self._held_days:
                self._days.popitem(last=False)
            return loaded
        finally:
            if future is not None:
                del self._loading[day]
                future.set_result(loaded)  # None: a waiter loads the day itself

    def _at(self, users: list[str]) -> npt.NDArray[np.int64]:
        """The users' indexes, new users given the next ones."""
        index, ids = self._index, self.ids
        for user in users:
            if user not in index:
                index[user] = len(ids)
                ids.append(user)
        return np.fromiter(map(index.__getitem__, users), np.int64, len(users))

    def _column(self, day: date, version: int, row: asyncpg.Record) -> Day:
        at = self._at(row["users"])
        nano = np.zeros(len(self.ids), np.int64)
        nano[at] = np.asarray(row["nano"], np.int64)
        present = np.zeros(len(self.ids), np.bool_)
        present[at] = True
        inexact = None
        if row["inexact"]:
            inexact = np.zeros(len(self.ids), np.bool_)
            inexact[self._at(row["inexact"])] = True
        return Day(day, version, nano, present, inexact, row["fits"])

    async def _patched(self, conn: Connection, held: Day, version: int) -> Day | None:
        """``held`` brought to ``version`` by rereading the users changed in between (a
        re-roll of today changes a few of 100,000), or None when the changes kept do not
        link the two versions (the day is then loaded whole)."""
        if not held.fits:
            return None
        changed: set[str] = set()
        reached = held.version
        for change in await conn.fetch(CHANGES, held.date, held.version, version):
            if change["previous"] != reached or change["users"] is None:
                return None
            changed.update(change["users"])
            reached = change["version"]
        if reached != version:
            return None
        row = await conn.fetchrow(PATCH, held.date, sorted(changed))
        assert row is not None
        gone, at = self._at(sorted(changed)), self._at(row["users"])  # gone, then back
        users = len(self.ids)
        nano, present = widened(held.nano, users), widened(held.present, users)
        inexact = None if held.inexact is None else widened(held.inexact, users)
        nano[gone], present[gone] = 0, False
        if inexact is not None:
            inexact[gone] = False
        nano[at] = np.asarray(row["nano"], np.int64)
        present[at] = True
        if row["inexact"]:
            inexact = inexact if inexact is not None else np.zeros(users, np.bool_)
            inexact[self._at(row["inexact"])] = True
        return Day(held.date, version, nano, present, inexact, row["fits"])

    # The listener: reload a changed day ahead of the reads that would wait for it.

    def _in_range(self, day: date) -> bool:
        today = self._today()
        return today - timedelta(days=RANGE_DAYS - 1) <= day <= today

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if payload == "":  # emptied: no held day is any date's any more
            self._days.clear()
            self._blocks.clear()
            return
        try:
            day = date.fromisoformat(str(payload))
        except ValueError:
            return
        if day in self._days or self._in_range(day):
            self._dirty.add(day)
            self._due.set()

    async def _refresh(self, day: date) -> None:
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            version = await conn.fetchval(VERSION, day)
            if version is None:
                self._days.pop(day, None)
            else:
                await self._day(conn, day, version)

    async def _refresh_forever(self) -> None:
        while not self._stopping:
            await self._due.wait()
            self._due.clear()
            while self._dirty and not self._stopping:
                day = max(self._dirty)  # the newest first: today is in every default range
                self._dirty.discard(day)
                try:
                    await self._refresh(day)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    # A read loads the day itself when it needs it.
                    log.warning("could not reload a day of user costs", exc_info=True)

    async def _listen_forever(self) -> None:
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            closed = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(CHANNEL, self._notified)
                # Whatever changed while nobody listened, and the days of the longest range.
                today = self._today()
                first = today - timedelta(days=RANGE_DAYS - 1)
                rows = await conn.fetch(VERSIONS, first, today)
                self._dirty.update([*self._days, *(r["date"] for r in rows)])
                self._due.set()
                await closed.wait()  # the notifications arrive on their own until then
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("user-days listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)  # Postgres is away: retry at a gentle pace
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen_forever()),
            loop.create_task(self._refresh_forever()),
        ]

    async def stop(self) -> None:
        # A flag as well as cancel(): asyncpg can swallow a cancellation mid-query.
        self._stopping = True
        self._due.set()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
