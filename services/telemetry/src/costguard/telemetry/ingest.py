"""Store a batch of events exactly once.

Rows are COPYed into a per-connection staging table, then moved with
``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING``: a retried event, a duplicate
inside the batch, or a copy racing in another stream is stored once, and only the rows
that were really inserted count as accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from costguard.common.db import Connection
from costguard.telemetry.rows import (
    COST_COLUMNS,
    JOB_COLUMNS,
    LLM_COLUMNS,
    Rejected,
    Row,
    cost_row,
    job_row,
    llm_row,
)
from costguard.v1 import telemetry_pb2


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
    convert: Callable[[Any, datetime], Row]
    create_stage: str
    insert: str


# The staging table is LIKE its target with defaults, so ids come from the target's own
# sequence and ``SELECT *`` lines up column by column.
_TABLES = {
    "job": _Table(
        "stage_job_events",
        JOB_COLUMNS,
        job_row,
        "CREATE TEMP TABLE IF NOT EXISTS stage_job_events "
        "(LIKE telemetry_job_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        "INSERT INTO telemetry_job_events SELECT * FROM stage_job_events "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    ),
    "llm": _Table(
        "stage_llm_events",
        LLM_COLUMNS,
        llm_row,
        "CREATE TEMP TABLE IF NOT EXISTS stage_llm_events "
        "(LIKE telemetry_llm_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        "INSERT INTO telemetry_llm_events SELECT * FROM stage_llm_events "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    ),
    "cost": _Table(
        "stage_cost_events",
        COST_COLUMNS,
        cost_row,
        "CREATE TEMP TABLE IF NOT EXISTS stage_cost_events "
        "(LIKE cost_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        "INSERT INTO cost_events SELECT * FROM stage_cost_events "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    ),
}


def _event_id_of(event: telemetry_pb2.TelemetryEvent) -> str:
    kind = event.WhichOneof("kind")
    return str(getattr(event, kind).event_id) if kind else ""


async def _insert(conn: Connection, table: _Table, rows: list[Row]) -> int:
    await conn.execute(table.create_stage)
    await conn.copy_records_to_table(table.stage, records=rows, columns=table.columns)
    return len(await conn.fetch(table.insert))


async def store_events(
    pool: asyncpg.Pool, events: Sequence[telemetry_pb2.TelemetryEvent], *, batch: int = 0
) -> IngestResult:
    received_at = datetime.now(UTC)
    rows: dict[str, list[Row]] = {kind: [] for kind in _TABLES}
    rejections: list[Rejection] = []
    for index, event in enumerate(events):
        kind: str | None = event.WhichOneof("kind")
        if kind is None:
            rejections.append(
                Rejection(batch, index, "", "kind", "event has no job, llm or cost payload")
            )
            continue
        try:
            rows[kind].append(_TABLES[kind].convert(getattr(event, kind), received_at))
        except Rejected as exc:
            rejections.append(Rejection(batch, index, _event_id_of(event), exc.field, exc.reason))
    valid = sum(len(r) for r in rows.values())
    accepted = 0
    if valid:
        async with pool.acquire() as conn, conn.transaction():
            for name, table in _TABLES.items():
                if rows[name]:
                    accepted += await _insert(conn, table, rows[name])
    return IngestResult(accepted, valid - accepted, tuple(rejections))
