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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import LiveCounters, Usage
from costguard.common.db import Connection
from costguard.common.pricing import SeedPrices
from costguard.common.storage import record_objects
from costguard.telemetry import metrics
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
# summed per local day, tier and user in USAGE_FIELDS order, for the live counters.
_TABLES = {
    "job": _Table(
        "stage_job_events",
        JOB_COLUMNS,
        "CREATE TEMP TABLE IF NOT EXISTS stage_job_events "
        "(LIKE telemetry_job_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        """
        WITH inserted AS (
            INSERT INTO telemetry_job_events SELECT * FROM stage_job_events
            ON CONFLICT (event_id) DO NOTHING
            RETURNING tier, user_id, cpu_ms, rows_read + rows_written AS rows_touched,
                      coalesce(started_at, created_at) AS at, reservation_id
        )
        SELECT (at AT TIME ZONE $1)::date AS day, tier, user_id, count(*) AS events,
               count(*) AS jobs, sum(cpu_ms)::bigint AS cpu_ms, 0::bigint AS tokens_in,
               0::bigint AS tokens_out, 0::bigint AS ai_calls,
               sum(costguard_job_cost_nusd(cpu_ms, rows_touched, $2, $3))::bigint AS cost_nusd,
               array_agg(reservation_id) FILTER (WHERE reservation_id IS NOT NULL) AS settles
        FROM inserted GROUP BY 1, 2, 3
        """,
        ("timezone", "cpu_ms", "db_row_1k"),
    ),
    "llm": _Table(
        "stage_llm_events",
        LLM_COLUMNS,
        "CREATE TEMP TABLE IF NOT EXISTS stage_llm_events "
        "(LIKE telemetry_llm_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        """
        WITH inserted AS (
            INSERT INTO telemetry_llm_events SELECT * FROM stage_llm_events
            ON CONFLICT (event_id) DO NOTHING
            RETURNING tier, user_id, input_tokens, output_tokens, cache_hit, created_at AS at,
                      reservation_id
        )
        SELECT (at AT TIME ZONE $1)::date AS day, tier, user_id, count(*) AS events,
               0::bigint AS jobs, 0::bigint AS cpu_ms, sum(input_tokens)::bigint AS tokens_in,
               sum(output_tokens)::bigint AS tokens_out, count(*) AS ai_calls,
               sum(costguard_llm_cost_nusd(input_tokens, output_tokens, cache_hit, $2, $3))::bigint
                   AS cost_nusd,
               array_agg(reservation_id) FILTER (WHERE reservation_id IS NOT NULL) AS settles
        FROM inserted GROUP BY 1, 2, 3
        """,
        ("timezone", "llm_input_token", "llm_output_token"),
    ),
    "cost": _Table(
        "stage_cost_events",
        COST_COLUMNS,
        "CREATE TEMP TABLE IF NOT EXISTS stage_cost_events "
        "(LIKE cost_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        # Cloud operations are priced by the rollup; the live counters do not hold them. The
        # ids inserted go to ``record_objects``, for the S3 objects they store or delete.
        """
        WITH inserted AS (
            INSERT INTO cost_events SELECT * FROM stage_cost_events
            ON CONFLICT (event_id) DO NOTHING RETURNING event_id, created_at AS at
        )
        SELECT (at AT TIME ZONE $1)::date AS day, count(*) AS events,
               array_agg(event_id) AS event_ids
        FROM inserted GROUP BY 1
        """,
        ("timezone",),
    ),
}


# DO NOTHING takes no lock on an existing row, so concurrent batches never queue here.
_MARK_DIRTY = (
    "INSERT INTO rollup_dirty_dates (date) SELECT unnest($1::date[]) ON CONFLICT (date) DO NOTHING"
)


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
        prices: SeedPrices,
        on_counters_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._counters = counters
        self._tiers = tiers
        self._tz = timezone
        self._prices = prices
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

    def _usages(self, kind: str, rows: list[asyncpg.Record]) -> list[Usage]:
        if kind == "cost":
            return []
        today = datetime.now(self._tz).date()
        return [
            Usage(
                row["day"],
                row["tier"],
                row["user_id"],
                (
                    row["jobs"],
                    row["cpu_ms"],
                    row["tokens_in"],
                    row["tokens_out"],
                    row["ai_calls"],
                    row["cost_nusd"],
                ),
                tuple(row["settles"] or ()),
            )
            for row in rows
            # A late event's day has expired from the counters; the rollup has it.
            if abs((today - row["day"]).days) <= 1
        ]

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
            params = {"timezone": self._tz.key, **vars(self._prices)}
            async with self._pool.acquire() as conn, conn.transaction():
                usages: list[Usage] = []
                days: set[date] = set()
                stored_costs: list[uuid.UUID] = []
                for kind, table in _TABLES.items():
                    if rows[kind]:
                        inserted = await _insert(conn, table, rows[kind], params)
                        accepted[kind] += sum(row["events"] for row in inserted)
                        usages += self._usages(kind, inserted)
                        days.update(row["day"] for row in inserted)
                        if kind == "cost":
                            stored_costs = [i for row in inserted for i in row["event_ids"]]
                objects = await record_objects(conn, stored_costs, tz=self._tz, mark_dirty=False)
                # One sorted statement for every date: two could deadlock with another batch.
                days.update(objects.dirty_dates)
                if days:
                    # The rollup re-rolls these days (issue 5: near-live today, late events).
                    await conn.execute(_MARK_DIRTY, sorted(days))
                await self._count(usages)
        # Counted once committed: a batch that failed is retried, and counted then.
        _observe(events, rows, accepted, rejections, time.perf_counter() - started)
        total = accepted.total()
        return IngestResult(total, valid - total, tuple(rejections))


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
    conn: Connection, table: _Table, rows: list[Row], params: dict[str, object]
) -> list[asyncpg.Record]:
    await conn.execute(table.create_stage)
    await conn.copy_records_to_table(table.stage, records=rows, columns=table.columns)
    return await conn.fetch(table.insert, *(params[name] for name in table.params))
