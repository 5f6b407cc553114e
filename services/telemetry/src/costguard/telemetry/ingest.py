"""Store a batch of events exactly once and add them to the live counters.

Rows are COPYed into a per-connection staging table, then moved with
``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING``: a retried event, a duplicate
inside the batch, or a copy racing in another stream is stored once, and only the rows
really inserted count as accepted and reach the counters.

The counters are bumped inside the transaction, before COMMIT. Together with the
reconciler's SHARE lock (see ``reconcile``) that makes a rebuild exact: a batch is
either wholly in the rebuild's snapshot or bumps the counters after the rebuild wrote
them. A crash between the bump and COMMIT over-counts until the next rebuild.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import UNATTRIBUTED, LiveCounters, Usage
from costguard.common.day_sheets import DaySheet, DaySheets, Model
from costguard.common.days import day_bounds
from costguard.common.db import Connection
from costguard.common.storage import ObjectChange, held_within, record_objects
from costguard.common.watermark import hold_for_ingest
from costguard.telemetry import metrics
from costguard.telemetry.prices import PRICE_COLUMNS, event_day, models_of, priced
from costguard.telemetry.rows import (
    COST_COLUMNS,
    JOB_COLUMNS,
    LLM_COLUMNS,
    Rejected,
    Row,
    RowBuilder,
)
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Table:
    stage: str
    columns: tuple[str, ...]
    create_stage: str
    insert: str
    params: tuple[str, ...]  # what $1, $2, ... of ``insert`` are, by name


# The staging table is LIKE its target with defaults, so ids come from the target's own
# sequence and ``SELECT *`` lines up column by column. The rows really inserted come back
# summed per local day, tier and user in USAGE_FIELDS order, for the live counters, with
# the latest instant (``vote``) that decides the user's tier for the day and each event's
# stored price in whole nano-dollars (rounded per event, as the rebuild sums them; left
# numeric, since events within their ranges can still cost more than a bigint holds).
_TABLES = {
    "job": _Table(
        "stage_job_events",
        JOB_COLUMNS + PRICE_COLUMNS["job"],
        "CREATE TEMP TABLE IF NOT EXISTS stage_job_events "
        "(LIKE telemetry_job_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        """
        WITH inserted AS (
            INSERT INTO telemetry_job_events SELECT * FROM stage_job_events
            ON CONFLICT (event_id) DO NOTHING
            RETURNING tier, user_id, cpu_ms, cost_usd, coalesce(started_at, created_at) AS at,
                      reservation_id
        )
        SELECT (at AT TIME ZONE $1)::date AS day, tier, user_id,
               max(costguard_tier_vote(at)) AS vote, count(*) AS events, count(*) AS jobs,
               sum(cpu_ms)::bigint AS cpu_ms, 0::bigint AS tokens_in, 0::bigint AS tokens_out,
               0::bigint AS ai_calls, sum(round(cost_usd * 1000000000)) AS cost_nusd,
               array_agg(reservation_id) FILTER (WHERE reservation_id IS NOT NULL) AS settles
        FROM inserted GROUP BY 1, 2, 3
        """,
        ("timezone",),
    ),
    "llm": _Table(
        "stage_llm_events",
        LLM_COLUMNS + PRICE_COLUMNS["llm"],
        "CREATE TEMP TABLE IF NOT EXISTS stage_llm_events "
        "(LIKE telemetry_llm_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        """
        WITH inserted AS (
            INSERT INTO telemetry_llm_events SELECT * FROM stage_llm_events
            ON CONFLICT (event_id) DO NOTHING
            RETURNING tier, user_id, input_tokens, output_tokens, cost_usd, created_at AS at,
                      reservation_id
        )
        SELECT (at AT TIME ZONE $1)::date AS day, tier, user_id,
               max(costguard_tier_vote(at)) AS vote, count(*) AS events, 0::bigint AS jobs,
               0::bigint AS cpu_ms, sum(input_tokens)::bigint AS tokens_in,
               sum(output_tokens)::bigint AS tokens_out, count(*) AS ai_calls,
               sum(round(cost_usd * 1000000000)) AS cost_nusd,
               array_agg(reservation_id) FILTER (WHERE reservation_id IS NOT NULL) AS settles
        FROM inserted GROUP BY 1, 2, 3
        """,
        ("timezone",),
    ),
    "cost": _Table(
        "stage_cost_events",
        COST_COLUMNS + PRICE_COLUMNS["cost"],
        "CREATE TEMP TABLE IF NOT EXISTS stage_cost_events "
        "(LIKE cost_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        # A cost event without a user counts as unattributed; one with a user but no tier
        # counts under the user's tier for the day and does not decide it (vote -2). The ids
        # inserted go to ``record_objects``, for the S3 objects they store or delete.
        """
        WITH inserted AS (
            INSERT INTO cost_events SELECT * FROM stage_cost_events
            ON CONFLICT (event_id) DO NOTHING RETURNING event_id, user_id, tier, cost_usd,
                                                    created_at AS at
        )
        SELECT (at AT TIME ZONE $1)::date AS day,
               CASE WHEN user_id IS NULL THEN $2 ELSE coalesce(tier, $2) END AS tier, user_id,
               max(CASE WHEN tier IS NULL THEN -2 ELSE costguard_tier_vote(at) END) AS vote,
               count(*) AS events, 0::bigint AS jobs, 0::bigint AS cpu_ms, 0::bigint AS tokens_in,
               0::bigint AS tokens_out, 0::bigint AS ai_calls,
               sum(round(cost_usd * 1000000000)) AS cost_nusd, NULL::text[] AS settles,
               array_agg(event_id) AS event_ids
        FROM inserted GROUP BY 1, 2, 3
        """,
        ("timezone", "unattributed"),
    ),
}


# DO NOTHING takes no lock on an existing row, so concurrent batches never queue here.
_MARK_DIRTY = (
    "INSERT INTO rollup_dirty_dates (date) SELECT unnest($1::date[]) ON CONFLICT (date) DO NOTHING"
)


# Extending a day's sheet races only with another extension or a reprice of that day.
_SHEET_ATTEMPTS = 5


def _event_id_of(event: telemetry_pb2.TelemetryEvent) -> str:
    kind = event.WhichOneof("kind")
    return str(getattr(event, kind).event_id) if kind else ""


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
        self, events: Sequence[telemetry_pb2.TelemetryEvent], batch: int
    ) -> tuple[dict[str, list[Row]], list[Rejection]]:
        builder = RowBuilder(self._tiers, datetime.now(UTC))
        convert: dict[str, Callable[[Any], Row]] = {
            "job": builder.job,
            "llm": builder.llm,
            "cost": builder.cost,
        }
        rows: dict[str, list[Row]] = {kind: [] for kind in _TABLES}
        rejections: list[Rejection] = []
        for index, event in enumerate(events):
            kind: str | None = event.WhichOneof("kind")
            if kind is None:
                rejections.append(
                    Rejection(batch, index, "", "kind", "has no job, llm or cost event")
                )
                continue
            try:
                rows[kind].append(convert[kind](getattr(event, kind)))
            except Rejected as exc:
                rejections.append(
                    Rejection(batch, index, _event_id_of(event), exc.field, exc.reason)
                )
        return rows, rejections

    def _usages(self, rows: list[asyncpg.Record]) -> list[Usage]:
        today = datetime.now(self._tz).date()
        return [
            Usage(
                row["day"],
                row["tier"],
                row["user_id"],
                row["vote"],
                (
                    row["jobs"],
                    row["cpu_ms"],
                    row["tokens_in"],
                    row["tokens_out"],
                    row["ai_calls"],
                    int(row["cost_nusd"]),
                ),
                tuple(row["settles"] or ()),
            )
            for row in rows
            # A late event's day has expired from the counters; the rollup has it.
            if abs((today - row["day"]).days) <= 1
        ]

    def _storage_usages(
        self, changes: Sequence[ObjectChange], in_force: Mapping[date, DaySheet]
    ) -> list[Usage]:
        """What the batch changed in the storage held yesterday and today, per object (in
        whole nano-dollars, rounded per object as the rebuild sums them), for the live
        counters: a new object holds to its end or the end of the day, a delete or an
        overwrite ends an earlier one. Storage never decides a user's tier (vote -1)."""
        if not changes:
            return []
        today = datetime.now(self._tz).date()
        usages = []
        for day in (today - timedelta(days=1), today):
            aws = in_force[day].sheet.aws if day in in_force else self._sheets.aws
            bounds = day_bounds(day, self._tz)
            for change in changes:
                now = held_within(change.size_bytes, change.stored_at, change.ended_at, bounds, aws)
                before = (
                    held_within(
                        change.size_bytes, change.stored_at, change.old_ended_at, bounds, aws
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
        self, events: Sequence[telemetry_pb2.TelemetryEvent], *, batch: int = 0
    ) -> IngestResult:
        """Validate, store and count one batch.

        A batch once begun is finished even when its caller is cancelled (a client that
        goes away cancels its RPC): cut between the counter bump and the commit, it would
        leave the live counters ahead of Postgres, and the client's retry of the same
        events would count them a second time.
        """
        task = asyncio.create_task(self._store(events, batch))
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
        self, events: Sequence[telemetry_pb2.TelemetryEvent], batch: int
    ) -> IngestResult:
        started = time.perf_counter()
        rows, rejections = self._build_rows(events, batch)
        valid = sum(len(r) for r in rows.values())
        accepted: Counter[str] = Counter()
        if valid:
            await self._write(rows, accepted)
        # Counted once committed: a batch that failed is retried, and counted then.
        _observe(events, rows, accepted, rejections, time.perf_counter() - started)
        total = accepted.total()
        return IngestResult(total, valid - total, tuple(rejections))

    async def _write(self, rows: dict[str, list[Row]], accepted: Counter[str]) -> None:
        """Price and store the rows in one transaction and count what was really inserted.

        Each event is priced with the sheet in force for its day, read while the day is
        held (``DaySheets.in_force``); a sheet that lacks one of the batch's models is first
        extended outside the transaction, and the batch tries again.
        """
        days = {
            kind: [event_day(kind, row, self._tz) for row in kind_rows]
            for kind, kind_rows in rows.items()
        }
        needs: dict[date, set[Model]] = {}
        for kind, kind_rows in rows.items():
            for day, row in zip(days[kind], kind_rows, strict=True):
                needs.setdefault(day, set()).update(models_of(kind, row))
        params = {"timezone": self._tz.key, "unattributed": UNATTRIBUTED}
        for _ in range(_SHEET_ATTEMPTS):
            await self._sheets.covering(self._pool, needs)
            async with self._pool.acquire() as conn, conn.transaction():
                # Before any id is taken: the rollup's watermark never passes this batch.
                await hold_for_ingest(conn)
                in_force = await self._sheets.in_force(conn, needs)
                if in_force is None:
                    continue  # a model new to a day's sheet (or a reprice): extend, again
                usages: list[Usage] = []
                dirty: set[date] = set()
                stored_costs: list[uuid.UUID] = []
                for kind, table in _TABLES.items():
                    if rows[kind]:
                        stored = _priced(kind, rows[kind], days[kind], in_force)
                        inserted = await _insert(conn, table, stored, params)
                        accepted[kind] += sum(row["events"] for row in inserted)
                        usages += self._usages(inserted)
                        dirty.update(row["day"] for row in inserted)
                        if kind == "cost":
                            stored_costs = [i for row in inserted for i in row["event_ids"]]
                objects = await record_objects(conn, stored_costs, tz=self._tz, mark_dirty=False)
                usages += self._storage_usages(objects.changes, in_force)
                # One sorted statement for every date: two could deadlock with another batch.
                dirty.update(objects.dirty_dates)
                if dirty:
                    # The rollup re-rolls these days (near-live today, late events).
                    await conn.execute(_MARK_DIRTY, sorted(dirty))
                await self._count(usages)
                return
        raise RuntimeError("no price sheet covers the batch's models; try again")


def nano_usd(amount: Decimal) -> int:
    """Whole nano-dollars, half up: what Postgres' round(cost * 1e9) gives for a cost >= 0."""
    return int((amount * 1_000_000_000).to_integral_value(rounding=ROUND_HALF_UP))


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


async def _insert(
    conn: Connection, table: _Table, rows: list[Row], params: Mapping[str, object]
) -> list[asyncpg.Record]:
    await conn.execute(table.create_stage)
    await conn.copy_records_to_table(table.stage, records=rows, columns=table.columns)
    return await conn.fetch(table.insert, *(params[name] for name in table.params))
