"""Store a batch of events exactly once and add them to the live counters.

Each event is validated on its own (``columns``, ``rows``): a bad one is rejected naming
its field, and the others are stored. The valid rows of each kind keep the first of any
event id the batch repeats, are priced, and go into their table through ``event_tables``,
which reports exactly which rows it inserted: those not stored before, by this batch or any
other. Only those count as accepted and reach the counters (``counting``); a retried event,
a duplicate inside the batch or a copy racing in another stream is stored and counted once.
An event sent without a time of its own counts on the day it arrived, so a repeat of it
arriving on another day would land in another day partition, out of reach of the first
copy's unique index: such an event is stored only when its id is new to
``telemetry_unstamped_events``.

The counters are bumped inside the transaction, before COMMIT. Together with the
reconciler's SHARE lock (see ``reconcile``) that makes a rebuild exact: a batch is
either wholly in the rebuild's snapshot or bumps the counters after the rebuild wrote
them. A crash between the bump and COMMIT over-counts until the next rebuild.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import attrgetter, methodcaller
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import LiveCounters, Usage
from costguard.common.day_sheets import DaySheet, DaySheets, Model
from costguard.common.db import Connection
from costguard.common.storage import record_objects
from costguard.common.watermark import hold_for_ingest
from costguard.telemetry import metrics
from costguard.telemetry.columns import BUILDERS
from costguard.telemetry.counting import Tally, storage_usages
from costguard.telemetry.event_tables import (
    SDK,
    TABLES,
    Conflict,
    Origin,
    copy_in,
    event_key,
    insert_each_once,
)
from costguard.telemetry.prices import event_day, event_instant, models_by_day, priced
from costguard.telemetry.rows import Rejected, Row, RowBuilder
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

KINDS = ("job", "llm", "cost")


@dataclass(frozen=True)
class Rejection:
    batch: int
    index: int
    event_id: str
    field: str
    reason: str


@dataclass(frozen=True)
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)

    def plus(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.accepted + other.accepted,
            self.duplicate + other.duplicate,
            self.rejections + other.rejections,
        )


# DO NOTHING takes no lock on an existing row, so concurrent batches never queue here.
_MARK_DIRTY = (
    "INSERT INTO rollup_dirty_dates (date) SELECT unnest($1::date[]) ON CONFLICT (date) DO NOTHING"
)
# The ids of events without a time of their own not seen before; waits for another
# transaction's uncommitted claim of the same id, as the event tables' indexes do.
_CLAIM_UNSTAMPED = """
INSERT INTO telemetry_unstamped_events (kind, event_id)
SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id
"""
_STORED_BEFORE = {
    kind: f"SELECT event_id FROM {table.name} WHERE event_id = ANY($1::uuid[])"  # noqa: S608
    for kind, table in TABLES.items()
}


# Extending a day's sheet races only with another extension or a reprice of that day.
_SHEET_ATTEMPTS = 5

# How rows of one kind go into their table: which of them were inserted (event_tables).
Insert = Callable[[Connection, str, Sequence[Row]], Awaitable[list[int]]]


class Ingestor:
    """Validates, stores and counts events. One per process; safe to share across calls."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        counters: LiveCounters | None,
        *,
        tiers: tuple[str, ...],
        timezone: ZoneInfo,
        sheets: DaySheets,
        on_counters_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._counters = counters
        self._tiers = tiers
        self._tz = timezone
        self._sheets = sheets
        self._on_counters_failed = on_counters_failed
        self._in_flight: set[asyncio.Task[IngestResult]] = set()

    def _build_rows(
        self, events: Sequence[telemetry_pb2.TelemetryEvent], batch: int, received_at: datetime
    ) -> tuple[dict[str, list[Row]], list[Rejection]]:
        """Each kind's valid rows, in batch order, and the rejections, in batch order. An
        event without a time of its own gets ``received_at``, this very object."""
        builder = RowBuilder(self._tiers, received_at)
        kinds: list[str | None] = list(map(_KIND, events))
        rejected: dict[int, Rejection] = {}
        rows: dict[str, list[Row]] = {kind: [] for kind in KINDS}
        for kind, indexes in _positions(kinds).items():
            if kind is None:
                for index in indexes:
                    rejected[index] = Rejection(
                        batch, index, "", "kind", "has no job, llm or cost event"
                    )
                continue
            if len(indexes) == len(events):  # a batch of one kind, as most are
                messages = list(map(attrgetter(kind), events))
            else:
                messages = [getattr(events[i], kind) for i in indexes]
            built = BUILDERS[kind](builder, messages)
            valid = [one for one in built if not isinstance(one, Rejected)]
            if len(valid) == len(built):
                rows[kind] = valid
                continue
            for index, message, one in zip(indexes, messages, built, strict=True):
                if isinstance(one, Rejected):
                    rejected[index] = Rejection(
                        batch, index, message.event_id, one.field, one.reason
                    )
                else:
                    rows[kind].append(one)
        return rows, [rejected[index] for index in sorted(rejected)]

    async def _count(self, usages: list[Usage]) -> None:
        if self._counters is None or not usages:
            return
        try:
            await self._counters.add(usages)
        except (RedisError, OSError):
            # Postgres is the truth: store the events anyway; a rebuild fixes the counters.
            log.warning("live counters not updated; a rebuild is due", exc_info=True)
            self._on_counters_failed()

    async def store(
        self,
        events: Sequence[telemetry_pb2.TelemetryEvent],
        *,
        batch: int = 0,
        origin: Origin = SDK,
    ) -> IngestResult:
        """Validate, store and count one batch (``origin``: how its LLM calls arrived).

        A batch once begun is finished even when its caller is cancelled (a client that
        goes away cancels its RPC): cut between the counter bump and the commit, it would
        leave the live counters ahead of Postgres, and the client's retry of the same
        events would count them a second time.
        """
        task = asyncio.create_task(self._store(events, batch, origin))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[IngestResult]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Also seen by the caller, unless it was cancelled: then only here.
            log.debug("batch failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for batches still being stored (their callers may have gone)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _store(
        self, events: Sequence[telemetry_pb2.TelemetryEvent], batch: int, origin: Origin
    ) -> IngestResult:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        rows, rejections = self._build_rows(events, batch, received_at)
        valid = sum(len(r) for r in rows.values())
        accepted: Counter[str] = Counter()
        if valid:
            await self._write(rows, accepted, received_at, origin)
        # Counted once committed: a batch that failed is retried, and counted then.
        _observe(events, rows, accepted, rejections, time.perf_counter() - started)
        total = accepted.total()
        return IngestResult(total, valid - total, tuple(rejections))

    async def _write(
        self,
        rows: dict[str, list[Row]],
        accepted: Counter[str],
        received_at: datetime,
        origin: Origin,
    ) -> None:
        """Price and store the rows in one transaction and count what was really inserted.

        Each event is priced with the sheet in force for its day, read while the day is
        held (``DaySheets.in_force``); a sheet that lacks one of the batch's models is first
        extended outside the transaction, and the batch tries again. The rows are copied in
        (``copy_in``) unless one of them is stored already, or being stored by another
        transaction; then the batch is stored again, row by row (``insert_each_once``).
        """
        unique = {kind: _first_of_each(kind_rows) for kind, kind_rows in rows.items() if kind_rows}
        days = {
            kind: [event_day(kind, row, self._tz) for row in kind_rows]
            for kind, kind_rows in unique.items()
        }
        unstamped = {
            kind: [i for i, row in enumerate(kind_rows) if event_instant(kind, row) is received_at]
            for kind, kind_rows in unique.items()
        }
        needs: dict[date, set[Model]] = {}
        for kind, kind_rows in unique.items():
            for day, models in models_by_day(kind, kind_rows, days[kind]).items():
                needs.setdefault(day, set()).update(models)
        insert: Insert = copy_in
        for _ in range(_SHEET_ATTEMPTS):
            await self._sheets.covering(self._pool, needs)
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    # Before any id is taken: the rollup's watermark never passes this batch.
                    await hold_for_ingest(conn)
                    in_force = await self._sheets.in_force(conn, needs)
                    if in_force is None:
                        continue  # a model new to a day's sheet (or a reprice): extend, again
                    kept = await _claim_unstamped(conn, unique, days, unstamped)
                    inserted = await self._insert(conn, insert, *kept, in_force, origin=origin)
                    accepted.update(inserted)
                    return
            except Conflict:
                # One of the events is stored already (or about to be): nothing of this
                # attempt is stored or counted. Again, skipping what is stored.
                insert = insert_each_once
        raise RuntimeError("no price sheet covers the batch's models; try again")

    async def _insert(
        self,
        conn: Connection,
        insert: Insert,
        rows: dict[str, list[Row]],
        days: dict[str, list[date]],
        in_force: dict[date, DaySheet],
        *,
        origin: Origin,
    ) -> dict[str, int]:
        """Inside the batch's transaction: price and insert the rows, record the S3 objects
        and dirty days of those inserted, and add them to the counters; how many of each
        kind were inserted."""
        tally = Tally()
        for kind, kind_rows in rows.items():
            if not kind_rows:
                continue  # every one a repeat of an event without a time of its own
            stored = _priced(kind, kind_rows, days[kind], in_force)
            if kind == "llm":
                stored = origin.appended(stored)
            inserted = await insert(conn, kind, stored)
            tally.add(kind, [stored[i] for i in inserted], [days[kind][i] for i in inserted])
        objects = await record_objects(
            conn, tally.cost_ids, tz=self._tz, mark_dirty=False, created=tally.cost_times
        )
        today = datetime.now(self._tz).date()
        usages = tally.usages(today) + storage_usages(
            objects.changes, in_force, tz=self._tz, aws=self._sheets.aws
        )
        # One sorted statement for every date: two could deadlock with another batch.
        dirty = tally.days.union(objects.dirty_dates)
        if dirty:
            # The rollup re-rolls these days (near-live today, late events).
            await conn.execute(_MARK_DIRTY, sorted(dirty))
        await self._count(usages)
        return tally.accepted


_KIND = methodcaller("WhichOneof", "kind")


def _positions(kinds: list[str | None]) -> dict[str | None, Sequence[int]]:
    """Where each kind's events are in the batch, in order (None: events of no kind)."""
    if kinds and kinds.count(kinds[0]) == len(kinds):
        return {kinds[0]: range(len(kinds))}
    positions: dict[str | None, list[int]] = {}
    for index, kind in enumerate(kinds):
        positions.setdefault(kind, []).append(index)
    return dict(positions)


async def _claim_unstamped(
    conn: Connection,
    rows: dict[str, list[Row]],
    days: dict[str, list[date]],
    unstamped: dict[str, list[int]],
) -> tuple[dict[str, list[Row]], dict[str, list[date]]]:
    """The rows and days to insert: all but the events without a time of their own whose
    id was stored before (on whatever day it arrived then)."""
    if not any(unstamped.values()):
        return rows, days
    kept_rows, kept_days = dict(rows), dict(days)
    for kind, positions in unstamped.items():
        if not positions:
            continue
        ids = [rows[kind][i][0] for i in positions]
        claimed = {str(r["event_id"]) for r in await conn.fetch(_CLAIM_UNSTAMPED, kind, ids)}
        repeats = {i for i in positions if event_key(rows[kind][i]) not in claimed}
        if repeats:
            # Claimed before: a repeat if its first copy is still stored (on any day; a rare
            # lookup across every partition). One deleted since is stored again.
            found = await conn.fetch(_STORED_BEFORE[kind], [rows[kind][i][0] for i in repeats])
            stored = {str(r["event_id"]) for r in found}
            repeats = {i for i in repeats if event_key(rows[kind][i]) in stored}
            keep = [i for i in range(len(rows[kind])) if i not in repeats]
            kept_rows[kind] = [rows[kind][i] for i in keep]
            kept_days[kind] = [days[kind][i] for i in keep]
    return kept_rows, kept_days


def _first_of_each(rows: list[Row]) -> list[Row]:
    """The rows with the first of each event id: the one a batch that repeats it stores."""
    keys = [event_key(row) for row in rows]
    if len(set(keys)) == len(keys):
        return rows
    seen: set[str] = set()
    first = []
    for key, row in zip(keys, rows, strict=True):
        if key not in seen:
            seen.add(key)
            first.append(row)
    return first


def _priced(
    kind: str, rows: list[Row], days: list[date], in_force: dict[date, DaySheet]
) -> list[Row]:
    return [priced(kind, row, in_force[day]) for row, day in zip(rows, days, strict=True)]


def _observe(
    events: Sequence[telemetry_pb2.TelemetryEvent],
    rows: dict[str, list[Row]],
    accepted: Counter[str],
    rejections: list[Rejection],
    seconds: float,
) -> None:
    for kind, stored in rows.items():
        if stored:
            metrics.EVENTS.labels(kind, "accepted").inc(accepted[kind])
            metrics.EVENTS.labels(kind, "duplicate").inc(len(stored) - accepted[kind])
    rejected = Counter(events[r.index].WhichOneof("kind") or "none" for r in rejections)
    for kind, count in rejected.items():
        metrics.EVENTS.labels(kind, "rejected").inc(count)
    metrics.INGEST_SECONDS.observe(seconds)
