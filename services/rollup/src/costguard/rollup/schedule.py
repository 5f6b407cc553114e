"""When the rollup runs by itself: nightly at 02:30 local, and dirty dates within a minute.

The nightly run rolls up yesterday (local). A run missed while the service was down is
caught up at start-up: if the last successful nightly run is older than the latest
02:30 that has passed, yesterday is rolled up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from costguard.rollup.runs import Rollups

log = logging.getLogger(__name__)

NIGHTLY_AT = time(2, 30)


def next_nightly(now: datetime, tz: ZoneInfo, at: time = NIGHTLY_AT) -> datetime:
    """The next local ``at`` strictly after ``now`` (an aware datetime), DST-safe."""
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return candidate


def last_nightly(now: datetime, tz: ZoneInfo, at: time = NIGHTLY_AT) -> datetime:
    """The latest local ``at`` at or before ``now``."""
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate > local:
        candidate = datetime.combine(local.date() - timedelta(days=1), at, tzinfo=tz)
    return candidate


def nightly_date(run_at: datetime, tz: ZoneInfo) -> date:
    """The date a nightly run at ``run_at`` rolls up: the local day before."""
    return run_at.astimezone(tz).date() - timedelta(days=1)


def missed(
    last_success: datetime | None, now: datetime, tz: ZoneInfo, at: time = NIGHTLY_AT
) -> bool:
    """Whether the nightly run due at the latest ``at`` has not happened yet."""
    return last_success is None or last_success < last_nightly(now, tz, at)


class Scheduler:
    """Inside the rollup service: dirty dates every interval, yesterday nightly."""

    def __init__(self, rollups: Rollups, *, nightly_at: time, dirty_interval_s: float) -> None:
        self._rollups = rollups
        self._at = nightly_at
        self._interval_s = dirty_interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def catch_up(self) -> bool:
        """Run the nightly rollup now if the last one due was missed; True if it ran."""
        tz = self._rollups.tz
        now = datetime.now(tz)
        last = await self._rollups.last_success("nightly")
        if not missed(last["started_at"] if last else None, now, tz, self._at):
            return False
        await self._rollups.run("nightly", [nightly_date(last_nightly(now, tz, self._at), tz)])
        return True

    async def _loop(self) -> None:
        tz = self._rollups.tz
        while not self._stopping.is_set():
            try:
                await self._rollups.keep_partitions()
                await self.catch_up()
                await self._rollups.roll_dirty()
            except Exception:
                log.exception("scheduled rollup failed; trying again at the next tick")
            now = datetime.now(tz)
            pause = min(self._interval_s, (next_nightly(now, tz, self._at) - now).total_seconds())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, pause)):
                    await self._stopping.wait()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
