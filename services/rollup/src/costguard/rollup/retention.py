"""Retention: raw events older than ``RETENTION_DAYS`` are deleted; the aggregates stay.

The rule (issue 7): an event is deleted when its local date (the rollup's day: a job's
``started_at``, else ``created_at``; an LLM or cost event's ``created_at``) is before the
horizon, ``today - RETENTION_DAYS``, **and** that date has been rolled up
(``cost_global_daily`` has it) **and** is not marked dirty. Events of a date that was never
rolled up, or that late events made dirty, are kept and counted as ``kept``: their
aggregates do not hold them yet.

The raw tables are partitioned by day (``costguard.common.partitions``): a day partition
past the horizon whose date is settled so is dropped whole, in a moment, however many
events it holds. What is left past the horizon (events that waited in a default partition)
is deleted in small batches (``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``), each its
own short transaction under the rollup's advisory lock, with a pause between batches, so
neither ingest nor a rollup waits long behind them. The mirror rule lives in ``Rollups``:
a date before the horizon is never rolled up again, because with its raw events gone that
would overwrite its aggregates with nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.days import day_bounds
from costguard.common.partitions import day_partitions, drop_partition
from costguard.rollup import metrics
from costguard.rollup.rollup import ROLLUP_LOCK

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
PAUSE_S = 0.1
DAILY_S = 24 * 3600.0
# Per raw event table: the batch DELETE, and the count of what stays before the horizon.
# $1 is the horizon's first instant, $2 the time zone, $3 the batch size. The instant that
# decides an event's date is the rollup's (a job's started_at, else its created_at).
STATEMENTS = {
    "telemetry_job_events": (
        """
        DELETE FROM telemetry_job_events WHERE id IN (
            SELECT id FROM (
                SELECT id, (coalesce(started_at, created_at) AT TIME ZONE $2)::date AS day
                FROM telemetry_job_events WHERE coalesce(started_at, created_at) < $1) e
            WHERE day IN (SELECT date FROM cost_global_daily)
              AND day NOT IN (SELECT date FROM rollup_dirty_dates)
            LIMIT $3)
        """,
        "SELECT count(*) FROM telemetry_job_events WHERE coalesce(started_at, created_at) < $1",
    ),
    "telemetry_llm_events": (
        """
        DELETE FROM telemetry_llm_events WHERE id IN (
            SELECT id FROM (
                SELECT id, (created_at AT TIME ZONE $2)::date AS day
                FROM telemetry_llm_events WHERE created_at < $1) e
            WHERE day IN (SELECT date FROM cost_global_daily)
              AND day NOT IN (SELECT date FROM rollup_dirty_dates)
            LIMIT $3)
        """,
        "SELECT count(*) FROM telemetry_llm_events WHERE created_at < $1",
    ),
    "cost_events": (
        """
        DELETE FROM cost_events WHERE id IN (
            SELECT id FROM (
                SELECT id, (created_at AT TIME ZONE $2)::date AS day
                FROM cost_events WHERE created_at < $1) e
            WHERE day IN (SELECT date FROM cost_global_daily)
              AND day NOT IN (SELECT date FROM rollup_dirty_dates)
            LIMIT $3)
        """,
        "SELECT count(*) FROM cost_events WHERE created_at < $1",
    ),
}


# Whether a date is settled: rolled up, and not dirty since.
_SETTLED = """
SELECT EXISTS (SELECT 1 FROM cost_global_daily WHERE date = $1)
   AND NOT EXISTS (SELECT 1 FROM rollup_dirty_dates WHERE date = $1)
"""

_DROP_UNSTAMPED = "DELETE FROM telemetry_unstamped_events WHERE received_at < $1"
_DROP_GROUPS = (
    "DELETE FROM rollup_day_groups WHERE date < $1",
    "DELETE FROM rollup_day_watermarks WHERE date < $1",
)


class PastRetention(ValueError):
    """A rollup of a date whose raw events retention may already have deleted."""


def horizon(retention_days: int, tz: ZoneInfo, *, today: date | None = None) -> date | None:
    """The oldest date whose raw events are kept; None when retention is off (0 days)."""
    if retention_days == 0:
        return None
    return (today or datetime.now(tz).date()) - timedelta(days=retention_days)


def refuse_past_horizon(days: list[date], retention_days: int, tz: ZoneInfo) -> None:
    """Raise :class:`PastRetention` when a date of ``days`` is before the horizon."""
    oldest = horizon(retention_days, tz)
    if oldest is not None and days and min(days) < oldest:
        raise PastRetention(
            f"{min(days)} is before the retention horizon {oldest} (RETENTION_DAYS="
            f"{retention_days}): its raw events may be deleted, and rolling it up again would "
            "overwrite its aggregates; run with RETENTION_DAYS=0 only if its events are intact"
        )


@dataclass(frozen=True)
class Pruned:
    horizon: date
    deleted: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # before the horizon, not yet rolled up
    batches: int = 0


async def prune_raw_events(
    pool: asyncpg.Pool,
    *,
    retention_days: int,
    tz: ZoneInfo,
    batch_size: int = BATCH_SIZE,
    pause_s: float = PAUSE_S,
) -> Pruned | None:
    """Delete raw events past the horizon by the rule above; None when retention is off."""
    oldest = horizon(retention_days, tz)
    if oldest is None:
        return None
    cutoff = day_bounds(oldest, tz)[0]  # local midnight starting the oldest kept date
    deleted = await _drop_day_partitions(pool, oldest)
    kept: dict[str, int] = {}
    batches = 0
    for table, (delete, count_kept) in STATEMENTS.items():
        while True:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", ROLLUP_LOCK)
                status = await conn.execute(delete, cutoff, tz.key, batch_size)
            count = int(status.split()[-1])
            batches += 1
            deleted[table] += count
            metrics.RETENTION_DELETED.labels(table).inc(count)
            if count < batch_size:
                break
            await asyncio.sleep(pause_s)  # let ingest and rollups in between batches
        kept[table] = await pool.fetchval(count_kept, cutoff)
    # A date before the horizon is never rolled up again, so its groups go too; and the
    # ids of events without their own time that arrived before it (a repeat of one of them
    # arriving now would be stored again, as any event whose first copy retention removed).
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ROLLUP_LOCK)
        for statement in _DROP_GROUPS:
            await conn.execute(statement, oldest)
        await conn.execute(_DROP_UNSTAMPED, cutoff)
    result = Pruned(oldest, deleted, kept, batches)
    log.info(
        "retention pruned raw events",
        extra={"horizon": oldest.isoformat(), "deleted": deleted, "kept": kept},
    )
    if any(kept.values()):
        log.warning(
            "raw events before the retention horizon kept: their dates are dirty or were "
            "never rolled up",
            extra={"horizon": oldest.isoformat(), "kept": kept},
        )
    return result


async def _drop_day_partitions(pool: asyncpg.Pool, oldest: date) -> dict[str, int]:
    """Drop each day partition before ``oldest`` whose date is settled; the rows dropped,
    by table. One that stays locked past the timeout is left for the next round."""
    dropped = dict.fromkeys(STATEMENTS, 0)
    for partition in await day_partitions(pool):
        if partition.day >= oldest:
            continue
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", ROLLUP_LOCK)
                if not await conn.fetchval(_SETTLED, partition.day):
                    continue  # its rows are kept, and counted so, below
                count = await drop_partition(conn, partition)
        except asyncpg.LockNotAvailableError:
            log.warning("partition %s not dropped: its table is busy", partition.name)
            continue
        dropped[partition.table] += count
        metrics.RETENTION_DELETED.labels(partition.table).inc(count)
        log.info("event partition dropped", extra={"partition": partition.name, "rows": count})
    return dropped


class RetentionLoop:
    """Inside the rollup service: prune once at start, then daily."""

    def __init__(
        self, pool: asyncpg.Pool, *, retention_days: int, tz: ZoneInfo, interval_s: float = DAILY_S
    ) -> None:
        self._pool = pool
        self._days = retention_days
        self._tz = tz
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await prune_raw_events(self._pool, retention_days=self._days, tz=self._tz)
            except Exception:
                log.exception("retention failed; trying again tomorrow")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stopping.wait()

    def start(self) -> None:
        if self._days:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
