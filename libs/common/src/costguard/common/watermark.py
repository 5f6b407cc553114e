"""The ingest watermark: the highest event ids a rollup may read with no gap below them.

Event ids come from sequences, taken as rows are inserted, but transactions commit in any
order: a batch holding id 10 may commit after a batch holding id 11. A rollup that read
"every event up to the highest id committed" could skip id 10 for good. So every ingest
transaction holds :data:`INGEST_LOCK` shared from its first statement (before it takes any
id), and the rollup takes it exclusively for the instant it reads the highest ids: no
ingest is then in flight, so every id at or below them is committed or rolled back, and
every id taken later is higher. The exclusive lock waits for the batches in flight and is
held while the three sequences are read: the last id each handed out is the watermark (the
sequences hand out one id at a time, ``CACHE 1``, so no session holds lower ones back).
Reading the sequences rather than ``max(id)`` touches none of the tables' day partitions.

Rows written straight into the tables by other code (the seed's own, without the lock) are
not covered: a full rollup of their day (nightly, or on demand) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from costguard.common.db import Connection

INGEST_LOCK = 7_310_000_005

_HIGHEST_IDS = """
SELECT coalesce(pg_sequence_last_value('telemetry_job_events_id_seq'), 0) AS job,
       coalesce(pg_sequence_last_value('telemetry_llm_events_id_seq'), 0) AS llm,
       coalesce(pg_sequence_last_value('cost_events_id_seq'), 0) AS cost
"""


@dataclass(frozen=True)
class Watermark:
    """The highest id of each event table below which every transaction has finished."""

    job: int
    llm: int
    cost: int


async def hold_for_ingest(conn: Connection) -> None:
    """Call first in an ingest transaction: a watermark is never read while it runs."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", INGEST_LOCK)


async def read_watermark(conn: Connection) -> Watermark:
    """The watermark now. Call outside a transaction (or in a READ COMMITTED one, before
    anything else): the ids are read in a snapshot taken once no ingest is in flight."""
    await conn.execute("SELECT pg_advisory_lock($1)", INGEST_LOCK)
    try:
        row = await conn.fetchrow(_HIGHEST_IDS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", INGEST_LOCK)
    assert row is not None
    return Watermark(job=row["job"], llm=row["llm"], cost=row["cost"])
