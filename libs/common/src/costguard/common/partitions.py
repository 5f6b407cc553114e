"""The raw event tables' day partitions: made ahead by the rollup service, dropped by retention.

Each raw event table is partitioned by range on the instant its events count on (a job's
``started_at``, else its ``created_at``; an LLM or cost event's ``created_at``), one
partition per local day of ``COSTGUARD_TIMEZONE``, named ``<table>_pYYYYMMDD``, and a
``<table>_default`` partition for any instant no day partition covers. The rollup service
keeps the partitions of yesterday, today and the next :data:`AHEAD_DAYS` days
(:func:`keep_day_partitions`, at start and as each day begins), so events arrive into their
day's partition; one that comes later or much earlier (a backfill, a clock far off) waits
in the default partition, and a rollup of its day reads it there. When a day's partition
is made while the default partition holds rows of that day, they move in with it
(``costguard_add_event_partition``, migration 0016).

Making or dropping a partition takes an ACCESS EXCLUSIVE lock on the table (or its
default partition) for a moment: each is its own transaction under :data:`PARTITION_LOCK`
(one service at a time) with a short ``lock_timeout``, so a long ingest transaction makes
it wait for the next round rather than queue every other ingest behind it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.days import day_bounds
from costguard.common.db import Connection

log = logging.getLogger(__name__)

EVENT_TABLES = ("telemetry_job_events", "telemetry_llm_events", "cost_events")
AHEAD_DAYS = 7
PARTITION_LOCK = 7_310_000_006
LOCK_TIMEOUT = "2s"

_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")

_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = ANY($1::regclass[])
"""
_ADD = "SELECT costguard_add_event_partition($1, $2, $3, $4)"


@dataclass(frozen=True)
class DayPartition:
    table: str
    day: date

    @property
    def name(self) -> str:
        return f"{self.table}_p{self.day:%Y%m%d}"


def parse_partition(name: str) -> DayPartition | None:
    """The day partition ``name`` stands for; None for the default partition or another."""
    match = _NAME.match(name)
    if match is None or match["table"] not in EVENT_TABLES:
        return None
    day = match["day"]
    return DayPartition(match["table"], date(int(day[:4]), int(day[4:6]), int(day[6:])))


async def day_partitions(conn: Connection | asyncpg.Pool) -> list[DayPartition]:
    """Every day partition of the raw event tables, by table and day."""
    rows = await conn.fetch(_PARTITIONS, list(EVENT_TABLES))
    found = (parse_partition(row["relname"]) for row in rows)
    return sorted((p for p in found if p is not None), key=lambda p: (p.table, p.day))


async def add_day_partitions(
    pool: asyncpg.Pool, days: Iterable[date], *, tz: ZoneInfo
) -> list[DayPartition]:
    """Make each table's partition of each day of ``days`` that it lacks; the ones made.

    A partition that cannot be made now (its lock not granted within the timeout, another
    service making partitions) is left for the next call, and logged.
    """
    existing = {(p.table, p.day) for p in await day_partitions(pool)}
    made: list[DayPartition] = []
    for day in sorted(set(days)):
        lo, hi = day_bounds(day, tz)
        for table in EVENT_TABLES:
            if (table, day) in existing:
                continue
            partition = DayPartition(table, day)
            try:
                async with pool.acquire() as conn, conn.transaction():
                    if not await conn.fetchval(
                        "SELECT pg_try_advisory_xact_lock($1)", PARTITION_LOCK
                    ):
                        log.info("partitions are being made elsewhere; leaving them to it")
                        return made
                    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    if await conn.fetchval("SELECT to_regclass($1)", partition.name):
                        continue  # made since we looked
                    moved = await conn.fetchval(_ADD, table, partition.name, lo, hi)
            except asyncpg.LockNotAvailableError:
                log.warning("partition %s not made: its table is busy; next round", partition.name)
                continue
            except asyncpg.InvalidObjectDefinitionError:
                # Its range overlaps a partition made under another time zone.
                log.warning("partition %s not made: its range is taken", partition.name)
                continue
            made.append(partition)
            log.info(
                "event partition made",
                extra={"partition": partition.name, "moved_from_default": moved},
            )
    return made


async def keep_day_partitions(
    pool: asyncpg.Pool, *, tz: ZoneInfo, today: date, ahead: int = AHEAD_DAYS
) -> list[DayPartition]:
    """Make the partitions of yesterday, today and the ``ahead`` days after it."""
    days = [today + timedelta(days=offset) for offset in range(-1, ahead + 1)]
    return await add_day_partitions(pool, days, tz=tz)


async def drop_partition(conn: Connection, partition: DayPartition) -> int:
    """Inside the caller's transaction: count the partition's rows and drop it; the count.
    Raises ``asyncpg.LockNotAvailableError`` when its table stays busy past the timeout."""
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    await conn.execute(f'LOCK TABLE ONLY "{partition.table}" IN ACCESS EXCLUSIVE MODE')
    count: int = await conn.fetchval(f'SELECT count(*) FROM "{partition.name}"')  # noqa: S608
    await conn.execute(f'DROP TABLE "{partition.name}"')
    return count
