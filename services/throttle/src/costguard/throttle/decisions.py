"""The throttle's decisions, counted in memory and added to Postgres every few seconds.

``record`` (on the Check path) only increments dicts. ``flush`` swaps them out and adds them
to ``throttle_decisions_daily`` and ``throttle_user_decisions_daily`` in one transaction;
when the write fails the counts are merged back and written by the next flush, so none is
lost while the process lives (a crash loses at most one interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg

log = logging.getLogger(__name__)

_Total = tuple[date, str, str]  # date, tier, action
_User = tuple[str, date, str, str]  # user_id, date, tier, action
# decisions, the last reason and when it was given
_UserCount = tuple[int, str, datetime]

ADD_TOTALS = """
INSERT INTO throttle_decisions_daily AS d (date, tier, action, decisions)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[])
ON CONFLICT (date, tier, action) DO UPDATE SET
    decisions = d.decisions + EXCLUDED.decisions, updated_at = now()
"""

ADD_USERS = """
INSERT INTO throttle_user_decisions_daily AS d
    (user_id, date, tier, action, decisions, last_reason, last_at)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                     $7::timestamptz[])
ON CONFLICT (user_id, date, tier, action) DO UPDATE SET
    decisions = d.decisions + EXCLUDED.decisions,
    last_reason = CASE WHEN EXCLUDED.last_at >= d.last_at THEN EXCLUDED.last_reason
                       ELSE d.last_reason END,
    last_at = greatest(d.last_at, EXCLUDED.last_at)
"""


class DecisionRecorder:
    def __init__(self, pool: asyncpg.Pool, tz: ZoneInfo, *, interval_s: float = 5.0) -> None:
        self._pool = pool
        self._tz = tz
        self._interval_s = interval_s
        self._totals: dict[_Total, int] = {}
        self._users: dict[_User, _UserCount] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, user_id: str, tier: str, action: str, reason: str) -> None:
        now = datetime.now(self._tz)
        day = now.date()
        total = (day, tier, action)
        self._totals[total] = self._totals.get(total, 0) + 1
        key = (user_id, day, tier, action)
        held = self._users.get(key)
        self._users[key] = (1 if held is None else held[0] + 1, reason, now)

    def pending(self) -> int:
        """Decisions counted and not yet written."""
        return sum(self._totals.values())

    async def flush(self) -> bool:
        """Add the counts to Postgres; False (counts kept for the next flush) when it failed."""
        async with self._lock:
            totals, users = self._totals, self._users
            if not totals:
                return True
            self._totals, self._users = {}, {}
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        ADD_TOTALS,
                        *(list(c) for c in zip(*totals, strict=True)),
                        list(totals.values()),
                    )
                    await conn.execute(
                        ADD_USERS,
                        *(list(c) for c in zip(*users, strict=True)),
                        *(list(c) for c in zip(*users.values(), strict=True)),
                    )
            except (asyncpg.PostgresError, OSError, TimeoutError):
                log.exception("could not write the throttle's decisions; kept for the next flush")
                self._merge_back(totals, users)
                return False
            return True

    def _merge_back(self, totals: dict[_Total, int], users: dict[_User, _UserCount]) -> None:
        for key, count in totals.items():
            self._totals[key] = self._totals.get(key, 0) + count
        for user, (count, reason, at) in users.items():
            newer = self._users.get(user)
            if newer is None:
                self._users[user] = (count, reason, at)
            else:
                self._users[user] = (count + newer[0], newer[1], newer[2])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop and flush once more (before the pool closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
