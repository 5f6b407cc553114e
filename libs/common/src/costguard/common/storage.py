"""S3 storage priced by what is held: each object from its PUT or COPY to its end.

An object's end is its DELETE, or its overwrite by a later PUT or COPY of the same bucket
and key; until then it is held, and each day is charged to the end of the day. Storage
costs ``bytes x seconds held x`` :attr:`~costguard.common.pricing.AwsPrices.
s3_storage_per_byte_second` (the GB-month price over one GiB held for 30 days), so an
object deleted a minute after its PUT costs one minute of storage, and the days of an
object's life add up to its whole life's cost exactly.

``s3_objects`` has one row per stored ``s3_put``, ``s3_copy`` or ``s3_delete`` cost event
that names an object (a DeleteObjects call: one row per key it lists); a row's
``ended_at`` is the ``stored_at`` of the next row of its bucket and key, ``NULL`` for the
last one. Telemetry calls :func:`record_objects` in the transaction that stores the events;
the rollup adds :data:`HELD_DURING_DAY_SQL` to each day's costs (service
:data:`STORAGE_SERVICE`); :func:`day_cost_changes` turns a batch's changes into the change
of one day's storage cost per user and tier, for live counters. Migration ``0011_s3_objects``
defines the table and read the events stored before it the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.db import Connection
from costguard.common.money import exact_arithmetic
from costguard.common.pricing import AwsPrices

STORAGE_SERVICE = "s3_storage"  # the service storage costs are rolled up under
ZERO = Decimal(0)
# The classes of the advisory locks (pg_advisory_xact_lock(int, int)): one per bucket and
# key, and one over all keys. A lock per key would not do for every batch: a batch of 10,000
# uploads would take 10,000 locks, more than the shared lock table is sized for
# (max_locks_per_transaction x max_connections, 6,400 by default); Postgres lends it spare
# shared memory, and past that fails with "out of shared memory". So a batch touching at
# most MAX_KEY_LOCKS keys holds the lock over all keys shared, then its keys' locks; a
# bigger one holds the lock over all keys alone, while no other batch touches any.
KEY_LOCK_CLASS = 7_311
ALL_KEYS_LOCK_CLASS = 7_312
MAX_KEY_LOCKS = 64
# Postgres' -infinity and infinity, as asyncpg sends them: every instant is between.
_NEVER = datetime.min.replace(tzinfo=UTC)
_ALWAYS = datetime.max.replace(tzinfo=UTC)

# The object rows of the events among $1 (ids of cost_events rows just stored, created
# between $2 and $3: the day partitions to look in); the migration's backfill reads the
# stored events the same way. An object is named by a non-empty string ``s3_key`` of at
# most 1,024 bytes (S3's limit; longer ones name nothing S3 could hold, and would not fit
# the index) in ``bucket`` (``''`` when it names none); a delete with no ``s3_key`` names
# each string of ``keys``, at its position in the list. The size is that of
# ``stored_bytes`` in costguard.common.pricing.events.
INSERT_OBJECTS = """
INSERT INTO s3_objects (event_id, key_index, bucket, s3_key, size_bytes, stored_at, user_id,
                        tier, episode_id, podcast_id)
SELECT e.event_id, k.key_index, b.bucket, k.s3_key,
       CASE WHEN e.service = 's3_delete' THEN 0
            WHEN jsonb_typeof(e.metadata -> 'size_bytes') = 'number'
            THEN GREATEST((e.metadata ->> 'size_bytes')::numeric, 0)
            WHEN jsonb_typeof(e.metadata -> 'file_size_mb') = 'number'
            THEN GREATEST((e.metadata ->> 'file_size_mb')::numeric, 0) * 1048576
            ELSE 0 END,
       e.created_at, e.user_id, e.tier, e.episode_id, e.podcast_id
FROM cost_events e
CROSS JOIN LATERAL (
    SELECT CASE WHEN jsonb_typeof(e.metadata -> 'bucket') = 'string'
                THEN e.metadata ->> 'bucket' ELSE '' END AS bucket,
           coalesce(jsonb_typeof(e.metadata -> 's3_key') = 'string'
                    AND e.metadata ->> 's3_key' <> '', false) AS one_key
) b
CROSS JOIN LATERAL (
    SELECT 0 AS key_index, e.metadata ->> 's3_key' AS s3_key WHERE b.one_key
    UNION ALL
    SELECT (listed.n - 1)::integer, listed.value #>> '{}'
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.metadata -> 'keys') = 'array'
                                   THEN e.metadata -> 'keys' ELSE '[]' END)
         WITH ORDINALITY AS listed (value, n)
    WHERE e.service = 's3_delete' AND NOT b.one_key AND jsonb_typeof(listed.value) = 'string'
) k
WHERE e.event_id = ANY($1::uuid[]) AND e.created_at BETWEEN $2 AND $3
  AND e.event_type = 's3_operation' AND e.service IN ('s3_put', 's3_copy', 's3_delete')
  AND k.s3_key <> '' AND octet_length(k.s3_key) <= 1024 AND octet_length(b.bucket) <= 255
ON CONFLICT (event_id, key_index) DO NOTHING
RETURNING event_id, key_index, bucket, s3_key, size_bytes, stored_at, ended_at, user_id, tier,
          episode_id, podcast_id
"""

# The lock over all keys first, then one lock per distinct bucket and key of $1, $2 in the
# order of the lock ids (the subquery's ORDER BY is the order the aggregate sees): every
# batch takes its locks in the one order, so two batches never deadlock.
LOCK_SOME_KEYS = "SELECT pg_advisory_xact_lock_shared($1::integer, 0)"
LOCK_ALL_KEYS = "SELECT pg_advisory_xact_lock($1::integer, 0)"
LOCK_KEYS = """
SELECT count(pg_advisory_xact_lock($3::integer, h)) FROM (
    SELECT DISTINCT hashtext(bucket || '/' || s3_key) AS h
    FROM unnest($1::text[], $2::text[]) AS k (bucket, s3_key) ORDER BY h
) locks
"""

# Every row of the buckets and keys $1, $2 ends where the next one begins; the rows whose
# end moved come back with their old and new end.
RECOMPUTE_ENDS = """
WITH keys AS (
    SELECT DISTINCT bucket, s3_key FROM unnest($1::text[], $2::text[]) AS k (bucket, s3_key)
),
ordered AS (
    SELECT o.event_id, o.key_index, o.ended_at,
           lead(o.stored_at) OVER (PARTITION BY o.bucket, o.s3_key
                                   ORDER BY o.stored_at, o.event_id, o.key_index) AS next_at
    FROM s3_objects o JOIN keys k ON k.bucket = o.bucket AND k.s3_key = o.s3_key
)
UPDATE s3_objects o SET ended_at = c.next_at
FROM ordered c
WHERE o.event_id = c.event_id AND o.key_index = c.key_index
  AND o.ended_at IS DISTINCT FROM c.next_at
RETURNING o.event_id, o.key_index, o.bucket, o.s3_key, o.size_bytes, o.stored_at,
          c.ended_at AS old_ended_at, o.ended_at, o.user_id, o.tier, o.episode_id, o.podcast_id
"""

# DO NOTHING takes no lock on an existing row, so concurrent batches never queue here.
MARK_DIRTY = (
    "INSERT INTO rollup_dirty_dates (date) SELECT unnest($1::date[]) ON CONFLICT (date) DO NOTHING"
)

# One row per object held during the day [$1, $2), with its attribution and the exact cost
# of the overlap at $3 per byte-second: the SQL twin of :func:`held_within`. The epochs are
# exact numerics (microseconds), as ``timedelta`` is in Python.
HELD_DURING_DAY_SQL = """
SELECT o.event_id, o.key_index, o.bucket, o.s3_key, o.size_bytes, o.stored_at, o.ended_at,
       o.user_id, o.tier, o.episode_id, o.podcast_id,
       o.size_bytes * (extract(epoch FROM least(coalesce(o.ended_at, $2), $2))
                       - extract(epoch FROM greatest(o.stored_at, $1))) * $3::numeric AS cost
FROM s3_objects o
WHERE o.size_bytes > 0 AND o.stored_at < $2 AND (o.ended_at IS NULL OR o.ended_at > $1)
  AND (o.ended_at IS NULL OR o.ended_at > o.stored_at)
"""


class Owner(NamedTuple):
    """Whose storage it is: the attribution of the event that stored the object."""

    user_id: str | None
    tier: str | None


@dataclass(frozen=True)
class ObjectChange:
    """An object whose storage a batch changed: a new one (``inserted``: it held nothing
    before), or one whose end moved from ``old_ended_at`` to ``ended_at`` (``None``: held)."""

    event_id: uuid.UUID
    key_index: int
    bucket: str
    s3_key: str
    size_bytes: Decimal
    stored_at: datetime
    old_ended_at: datetime | None
    ended_at: datetime | None
    inserted: bool
    user_id: str | None
    tier: str | None
    episode_id: str | None
    podcast_id: str | None

    @property
    def owner(self) -> Owner:
        return Owner(self.user_id, self.tier)


@dataclass(frozen=True)
class ObjectChanges:
    """What :func:`record_objects` did: the object rows it stored (puts, copies and deletes
    naming an object), the objects whose storage changed, and the dates it marked dirty."""

    rows: int = 0
    changes: tuple[ObjectChange, ...] = ()
    dirty_dates: tuple[date, ...] = ()


async def record_objects(
    conn: Connection,
    event_ids: Sequence[uuid.UUID],
    *,
    tz: ZoneInfo,
    mark_dirty: bool = True,
    created: Sequence[datetime] = (),
) -> ObjectChanges:
    """Keep ``s3_objects`` up to date with the cost events ``event_ids`` just stored.

    Call it in the transaction that inserted them (READ COMMITTED, as by default), with the
    ids really inserted. The objects they name are stored, then every row of each touched
    bucket and key gets its end again from the rows in time order, under a transaction-level
    advisory lock per key (taken in one order; a batch of more than :data:`MAX_KEY_LOCKS`
    keys locks them all), so batches that touch the same key one after the other, in
    whatever order they arrive, leave the same lifetimes. Every local date (in
    ``tz``) whose storage changed is marked dirty for the rollup, up to today; with
    ``mark_dirty=False`` the caller marks ``dirty_dates`` itself, together with its own
    dates in one sorted statement (two statements could each wait on the other batch's
    uncommitted marks: a deadlock). ``created``, when given, holds when each event was
    created: the events are then looked up in their day partitions only.
    """
    if not event_ids:
        return ObjectChanges()
    earliest, latest = (min(created), max(created)) if created else (_NEVER, _ALWAYS)
    inserted = await conn.fetch(INSERT_OBJECTS, list(event_ids), earliest, latest)
    if not inserted:
        return ObjectChanges()
    buckets = [row["bucket"] for row in inserted]
    keys = [row["s3_key"] for row in inserted]
    if len(set(zip(buckets, keys, strict=True))) > MAX_KEY_LOCKS:
        await conn.execute(LOCK_ALL_KEYS, ALL_KEYS_LOCK_CLASS)
    else:
        await conn.execute(LOCK_SOME_KEYS, ALL_KEYS_LOCK_CLASS)
        await conn.fetchval(LOCK_KEYS, buckets, keys, KEY_LOCK_CLASS)
    moved = await conn.fetch(RECOMPUTE_ENDS, buckets, keys)
    changes = _changes(inserted, moved)
    dirty = dirty_dates(changes, tz=tz, today=datetime.now(tz).date())
    if dirty and mark_dirty:
        await conn.execute(MARK_DIRTY, list(dirty))
    return ObjectChanges(len(inserted), changes, dirty)


def _changes(
    inserted: Iterable[asyncpg.Record], moved: Iterable[asyncpg.Record]
) -> tuple[ObjectChange, ...]:
    """The objects that hold bytes and were stored or moved; a delete holds nothing."""
    new = {(row["event_id"], row["key_index"]) for row in inserted}
    by_row = {(row["event_id"], row["key_index"]): _change(row, inserted=True) for row in inserted}
    for row in moved:
        key = (row["event_id"], row["key_index"])
        by_row[key] = _change(row, inserted=key in new)
    return tuple(change for change in by_row.values() if change.size_bytes > 0)


def _change(row: asyncpg.Record, *, inserted: bool) -> ObjectChange:
    return ObjectChange(
        event_id=row["event_id"],
        key_index=row["key_index"],
        bucket=row["bucket"],
        s3_key=row["s3_key"],
        size_bytes=row["size_bytes"],
        stored_at=row["stored_at"],
        old_ended_at=None if inserted else row["old_ended_at"],
        ended_at=row["ended_at"],
        inserted=inserted,
        user_id=row["user_id"],
        tier=row["tier"],
        episode_id=row["episode_id"],
        podcast_id=row["podcast_id"],
    )


def dirty_dates(changes: Iterable[ObjectChange], *, tz: ZoneInfo, today: date) -> tuple[date, ...]:
    """Every local date whose storage the changes moved, up to ``today``: a new object's,
    from its ``stored_at`` to its end; a moved end's, from the earlier of its old and new
    end to the later (an object still held ends, for this, today)."""
    dates: set[date] = set()
    for change in changes:
        if change.inserted:
            first = change.stored_at.astimezone(tz).date()
            last = _end_date(change.ended_at, tz, today)
        else:
            old = _end_date(change.old_ended_at, tz, today)
            new = _end_date(change.ended_at, tz, today)
            first, last = min(old, new), max(old, new)
        day = first
        while day <= min(last, today):
            dates.add(day)
            day += timedelta(days=1)
    return tuple(sorted(dates))


def _end_date(end: datetime | None, tz: ZoneInfo, today: date) -> date:
    return today if end is None else end.astimezone(tz).date()


def held_cost(size_bytes: Decimal | int, start: datetime, end: datetime, aws: AwsPrices) -> Decimal:
    """The exact cost of holding ``size_bytes`` from ``start`` to ``end`` (0 if not after)."""
    if end <= start:
        return ZERO
    with exact_arithmetic():
        return Decimal(size_bytes) * _seconds(end - start) * aws.s3_storage_per_byte_second


def held_within(
    size_bytes: Decimal | int,
    stored_at: datetime,
    ended_at: datetime | None,
    bounds: tuple[datetime, datetime],
    aws: AwsPrices,
) -> Decimal:
    """What an object stored at ``stored_at`` and ending at ``ended_at`` (``None``: held)
    costs in the day ``bounds`` = [start, end): :data:`HELD_DURING_DAY_SQL` in Python."""
    start, end = bounds
    until = end if ended_at is None else min(ended_at, end)
    return held_cost(size_bytes, max(stored_at, start), until, aws)


def day_cost_changes(
    changes: Iterable[ObjectChange], bounds: tuple[datetime, datetime], aws: AwsPrices
) -> dict[Owner, Decimal]:
    """How much each owner's storage cost of the day ``bounds`` changed: per object, what
    it now holds within the day minus what it held before (nothing, for a new one). Owners
    whose cost did not change are left out."""
    deltas: dict[Owner, Decimal] = {}
    with exact_arithmetic():
        for change in changes:
            now = held_within(change.size_bytes, change.stored_at, change.ended_at, bounds, aws)
            before = ZERO
            if not change.inserted:
                before = held_within(
                    change.size_bytes, change.stored_at, change.old_ended_at, bounds, aws
                )
            if now != before:
                deltas[change.owner] = deltas.get(change.owner, ZERO) + now - before
    return {owner: delta for owner, delta in deltas.items() if delta != 0}


def _seconds(held: timedelta) -> Decimal:
    """A duration in seconds, exactly (to the microsecond, as Postgres holds time)."""
    whole = held.days * 86_400 + held.seconds
    return Decimal(whole) + Decimal(held.microseconds).scaleb(-6)
