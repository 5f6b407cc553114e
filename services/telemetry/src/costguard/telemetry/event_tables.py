"""The one place ingest writes events into their tables, each ``event_id`` stored once.

``copy_in`` COPYs a batch's rows straight into the event table: Postgres' cheapest way to
take rows (a multi-row insert, no per-row conflict handling, no staging table, nothing
returned). The unique index on ``event_id`` of the event's day partition has the last
word (an event counts on one day, so a repeat lands in the same partition): when one of the
events is stored already (a retry whose reply was lost, a spill file replayed) or is being
stored by another transaction (the same events sent again on another stream), the COPY
fails with a unique violation, or a deadlock when two transactions wait on each other,
and :class:`Conflict` tells the caller to roll back and store the batch again with
``insert_each_once``: ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING
RETURNING event_id`` (no conflict target: a partitioned table has no unique index of its
own on ``event_id``, each partition has one), which skips whatever is stored already,
waits for another transaction's uncommitted copy to commit or roll back, and says which
rows it stored.
Either way the caller learns exactly which rows it inserted, and counts those alone.
New events, nearly all of them, pay for the COPY only; a repeat costs its batch an undone
COPY and the row-by-row insert.

Both take the rows of one kind, with their price columns (``PRICE_COLUMNS``) and, for LLM
calls, their origin (``ORIGIN_COLUMNS``), one row per event id (the first of the batch),
inside the caller's transaction, which holds the rollup watermark's shared lock from its
first statement (``hold_for_ingest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from costguard.common.db import Connection
from costguard.telemetry.prices import PRICE_COLUMNS
from costguard.telemetry.rows import COST_COLUMNS, JOB_COLUMNS, LLM_COLUMNS, Row


class Conflict(Exception):
    """One of the events copied is stored already, or being stored by another transaction;
    the transaction is aborted."""


@dataclass(frozen=True)
class EventTable:
    name: str
    columns: tuple[str, ...]  # what a row holds, in order (the COPY's columns)
    insert_each_once: str  # SQL: insert the rows (one array a column), returning the ids


# What ingest appends to an LLM call's row after its price (migration 0017): how the call
# arrived, and the cost its sender reported for it, kept beside costguard's own price.
ORIGIN_COLUMNS = ("source", "reported_cost_usd")


@dataclass(frozen=True)
class Origin:
    """How a batch's LLM calls arrived: ``sdk`` (the SDK's RPCs) or ``otlp`` (GenAI spans),
    and the costs the spans reported for themselves, by event id."""

    source: str = "sdk"
    reported_costs: Mapping[str, Decimal] = field(default_factory=dict)

    def appended(self, rows: Sequence[Row]) -> list[Row]:
        """The LLM call rows with their :data:`ORIGIN_COLUMNS` appended."""
        costs, source = self.reported_costs, self.source
        if not costs:
            return [(*row, source, None) for row in rows]
        return [(*row, source, costs.get(event_key(row))) for row in rows]


SDK = Origin()

# One array per column, in the order of the table's ``columns``; text arrays for varchar
# columns (the lengths were checked as the rows were built).
_INSERT_JOBS = """
INSERT INTO telemetry_job_events (
    event_id, job_name, user_id, tier, domain, job_type, queued_at, started_at, finished_at,
    duration_ms, queue_wait_ms, cpu_ms, mem_mb_peak, rows_read, rows_written, attempt, success,
    error_code, episode_id, podcast_id, created_at, reservation_id, job_id, cost_usd,
    price_sheet_id)
SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
    $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::bigint[], $12::bigint[],
    $13::integer[], $14::bigint[], $15::bigint[], $16::integer[], $17::boolean[], $18::text[],
    $19::text[], $20::text[], $21::timestamptz[], $22::text[], $23::text[], $24::numeric[],
    $25::bigint[])
ON CONFLICT DO NOTHING
RETURNING event_id
"""
_INSERT_LLM_CALLS = """
INSERT INTO telemetry_llm_events (
    event_id, user_id, tier, domain, job_name, provider, llm_model, operation, input_tokens,
    cached_input_tokens, output_tokens, reasoning_tokens, usage_reported, duration_ms, cache_hit,
    insight_key, success, error_code, episode_id, podcast_id, created_at, reservation_id,
    context_type, output_image_tokens, cost_usd, price_sheet_id, unpriced_reason, source,
    reported_cost_usd)
SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::boolean[],
    $14::bigint[], $15::boolean[], $16::text[], $17::boolean[], $18::text[], $19::text[],
    $20::text[], $21::timestamptz[], $22::text[], $23::text[], $24::bigint[], $25::numeric[],
    $26::bigint[], $27::text[], $28::text[], $29::numeric[])
ON CONFLICT DO NOTHING
RETURNING event_id
"""
_INSERT_COSTS = """
INSERT INTO cost_events (
    event_id, event_type, service, quantity, unit, metadata, user_id, tier, episode_id,
    podcast_id, entities, created_at, cost_usd, price_sheet_id, cost_category, unpriced_reason,
    unpriced_item)
SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::text[], $6::jsonb[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::timestamptz[], $13::numeric[],
    $14::bigint[], $15::text[], $16::text[], $17::text[])
ON CONFLICT DO NOTHING
RETURNING event_id
"""

TABLES = {
    "job": EventTable("telemetry_job_events", JOB_COLUMNS + PRICE_COLUMNS["job"], _INSERT_JOBS),
    "llm": EventTable(
        "telemetry_llm_events",
        LLM_COLUMNS + PRICE_COLUMNS["llm"] + ORIGIN_COLUMNS,
        _INSERT_LLM_CALLS,
    ),
    "cost": EventTable("cost_events", COST_COLUMNS + PRICE_COLUMNS["cost"], _INSERT_COSTS),
}


def event_key(row: Row) -> str:
    """The row's event id in canonical text, whether it holds a ``uuid.UUID`` or the text."""
    return str(row[0])


async def copy_in(conn: Connection, kind: str, rows: Sequence[Row]) -> list[int]:
    """COPY the rows into their table: all of them are inserted (their positions in
    ``rows`` are returned), or :class:`Conflict` is raised and none is."""
    table = TABLES[kind]
    try:
        await conn.copy_records_to_table(table.name, records=rows, columns=table.columns)
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        raise Conflict(table.name) from exc
    return list(range(len(rows)))


async def insert_each_once(conn: Connection, kind: str, rows: Sequence[Row]) -> list[int]:
    """Insert the rows no other transaction stored first; return their positions in
    ``rows``."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    found = await conn.fetch(TABLES[kind].insert_each_once, *columns)
    inserted = {str(record["event_id"]) for record in found}
    return [i for i, row in enumerate(rows) if event_key(row) in inserted]
