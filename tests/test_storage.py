"""S3 storage's rules: the cost of holding bytes, a day's share, its SQL twin, record_objects.

Figures are computed by hand as exact fractions: the GB-month price over one GiB held for
30 days (2,592,000 s). The rate per byte-second is kept to 40 decimal places, so costs are
within 1e-20 of the fraction here, and every product after the rate is exact.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costguard.common.pricing import AwsPrices
from costguard.common.storage import (
    HELD_DURING_DAY_SQL,
    ObjectChange,
    Owner,
    day_cost_changes,
    dirty_dates,
    held_cost,
    held_within,
    record_objects,
)

AWS = AwsPrices.from_env({})
GIB = 2**30
PER_BYTE_SECOND = Fraction("0.023") / (GIB * 2_592_000)  # by hand, exactly
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY = (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
NEW_YORK = ZoneInfo("America/New_York")
WIDE = Context(prec=200)  # sums and products of costs here, unrounded


def near(cost: Decimal, exact: Fraction, within: str = "1e-20") -> bool:
    return abs(Fraction(cost) - exact) < Fraction(within)


def change(
    *,
    stored_at: datetime = T0,
    ended_at: datetime | None = None,
    old_ended_at: datetime | None = None,
    inserted: bool = False,
    size: int = GIB,
    user: str = "u1",
    tier: str = "pro",
) -> ObjectChange:
    return ObjectChange(
        event_id=uuid.uuid4(),
        key_index=0,
        bucket="media",
        s3_key="a.mp3",
        size_bytes=Decimal(size),
        stored_at=stored_at,
        old_ended_at=old_ended_at,
        ended_at=ended_at,
        inserted=inserted,
        user_id=user,
        tier=tier,
        episode_id=None,
        podcast_id=None,
    )


# --- held_cost and held_within ------------------------------------------------------------


def test_a_gib_held_thirty_days_costs_the_gb_month_price() -> None:
    cost = held_cost(GIB, T0, T0 + timedelta(days=30), AWS)
    assert near(cost, Fraction("0.023"))
    with localcontext(WIDE):
        assert cost == GIB * 2_592_000 * AWS.s3_storage_per_byte_second  # the exact product


def test_a_minute_costs_a_minute_and_a_microsecond_a_microsecond() -> None:
    minute = held_cost(100 * GIB, T0, T0 + timedelta(minutes=1), AWS)
    assert near(minute, 100 * GIB * 60 * PER_BYTE_SECOND)  # $0.0000532407407...
    assert minute.quantize(Decimal("1e-12")) == Decimal("0.000053240741")
    tick = held_cost(1, T0, T0 + timedelta(microseconds=1), AWS)
    assert tick == AWS.s3_storage_per_byte_second / 1_000_000


def test_nothing_held_costs_nothing() -> None:
    assert held_cost(GIB, T0, T0, AWS) == 0
    assert held_cost(GIB, T0, T0 - timedelta(hours=1), AWS) == 0
    assert held_cost(0, T0, T0 + timedelta(days=1), AWS) == 0


def test_the_days_of_a_life_add_up_to_the_life_exactly() -> None:
    start, end = T0, T0 + timedelta(days=3, hours=5, microseconds=7)
    size = Decimal("5767168.000000000582")  # what file_size_mb x 2**20 can give
    whole = held_cost(size, start, end, AWS)
    days = [
        held_within(size, start, end, (DAY[0] + timedelta(days=n), DAY[1] + timedelta(days=n)), AWS)
        for n in range(5)
    ]
    with localcontext(WIDE):
        assert sum(days, Decimal(0)) == whole
    assert days[4] == 0


def test_a_day_holds_what_overlaps_it() -> None:
    start, end = DAY
    # stored before the day, still held: the whole day
    assert held_within(GIB, start - timedelta(days=4), None, DAY, AWS) == held_cost(
        GIB, start, end, AWS
    )
    # stored during the day, still held: to its end
    assert near(held_within(GIB, T0, None, DAY, AWS), GIB * 14 * 3600 * PER_BYTE_SECOND)
    # ended during the day
    assert near(
        held_within(GIB, start - timedelta(days=1), T0, DAY, AWS), GIB * 10 * 3600 * PER_BYTE_SECOND
    )
    # ended as the day began, or stored as it ended: nothing
    assert held_within(GIB, start - timedelta(days=1), start, DAY, AWS) == 0
    assert held_within(GIB, end, None, DAY, AWS) == 0


# --- a day's change per owner, for live counters ------------------------------------------


def test_a_new_object_adds_the_rest_of_the_day_to_its_owner() -> None:
    deltas = day_cost_changes([change(inserted=True)], DAY, AWS)
    assert list(deltas) == [Owner("u1", "pro")]
    assert near(deltas[Owner("u1", "pro")], GIB * 14 * 3600 * PER_BYTE_SECOND)


def test_a_delete_takes_back_what_the_object_no_longer_holds() -> None:
    # held to the end of the day until a DELETE at 10:01 arrived: 13 h 59 min less
    deleted = change(stored_at=T0, old_ended_at=None, ended_at=T0 + timedelta(minutes=1))
    deltas = day_cost_changes([deleted], DAY, AWS)
    assert near(deltas[Owner("u1", "pro")], -GIB * (14 * 3600 - 60) * PER_BYTE_SECOND)
    # a new object deleted a minute later, in the same batch: one minute
    both = change(stored_at=T0, ended_at=T0 + timedelta(minutes=1), inserted=True)
    assert near(day_cost_changes([both], DAY, AWS)[Owner("u1", "pro")], GIB * 60 * PER_BYTE_SECOND)


def test_deltas_are_summed_per_owner_and_days_untouched_are_left_out() -> None:
    changes = [
        change(inserted=True, user="u1"),
        change(inserted=True, user="u1", size=2 * GIB),
        change(inserted=True, user="u2", tier="free"),
        # an end that moved on another day changes nothing today
        change(
            stored_at=T0 - timedelta(days=3),
            old_ended_at=T0 - timedelta(days=2),
            ended_at=T0 - timedelta(days=1),
        ),
        # an object moved later, then back: no change on balance for u3
        change(user="u3", stored_at=T0, old_ended_at=T0 + timedelta(hours=1), ended_at=None),
        change(user="u3", stored_at=T0, old_ended_at=None, ended_at=T0 + timedelta(hours=1)),
    ]
    deltas = day_cost_changes(changes, DAY, AWS)
    rest_of_day = GIB * 14 * 3600 * PER_BYTE_SECOND
    assert set(deltas) == {Owner("u1", "pro"), Owner("u2", "free")}
    assert near(deltas[Owner("u1", "pro")], 3 * rest_of_day)
    assert near(deltas[Owner("u2", "free")], rest_of_day)


# --- the dates a change makes dirty -------------------------------------------------------


def test_a_late_delete_dirties_from_its_time_to_today() -> None:
    today = date(2026, 11, 25)
    late = change(stored_at=T0 - timedelta(days=2), old_ended_at=None, ended_at=T0)
    assert dirty_dates([late], tz=ZoneInfo("UTC"), today=today) == tuple(
        date(2026, 11, d) for d in range(20, 26)
    )


def test_a_new_object_dirties_its_life_and_the_future_is_left_to_its_day() -> None:
    today = date(2026, 11, 25)
    ended = change(stored_at=T0 - timedelta(days=3), ended_at=T0 - timedelta(days=1), inserted=True)
    assert dirty_dates([ended], tz=ZoneInfo("UTC"), today=today) == (
        date(2026, 11, 17),
        date(2026, 11, 18),
        date(2026, 11, 19),
    )
    tomorrow = change(stored_at=datetime(2026, 11, 26, 1, tzinfo=UTC), inserted=True)
    assert dirty_dates([tomorrow], tz=ZoneInfo("UTC"), today=today) == ()
    # an end moved earlier within the stored object's days
    moved = change(
        stored_at=T0 - timedelta(days=5), old_ended_at=T0, ended_at=T0 - timedelta(days=2)
    )
    assert dirty_dates([moved], tz=ZoneInfo("UTC"), today=today) == (
        date(2026, 11, 18),
        date(2026, 11, 19),
        date(2026, 11, 20),
    )


def test_dirty_dates_are_local_dates() -> None:
    # 03:00 UTC on the 21st is 22:00 on the 20th in New York
    at = datetime(2026, 11, 21, 3, tzinfo=UTC)
    late = change(
        stored_at=at - timedelta(days=1), old_ended_at=at + timedelta(hours=20), ended_at=at
    )
    today = date(2026, 11, 22)
    assert dirty_dates([late], tz=NEW_YORK, today=today) == (date(2026, 11, 20), date(2026, 11, 21))
    assert dirty_dates([late], tz=ZoneInfo("UTC"), today=today) == (date(2026, 11, 21),)


# --- the SQL twin -------------------------------------------------------------------------

_MOMENTS = st.integers(-3 * 86_400 * 10**6, 4 * 86_400 * 10**6).map(
    lambda us: DAY[0] + timedelta(microseconds=us)
)
_SIZES = st.one_of(
    st.integers(0, 5 * 2**40).map(Decimal),
    st.decimals(0, 10**9, places=12, allow_nan=False, allow_infinity=False),
)
_OBJECT = st.tuples(_SIZES, _MOMENTS, st.one_of(st.none(), st.integers(0, 5 * 86_400 * 10**6)))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    objects=st.lists(_OBJECT, min_size=1, max_size=25),
    day_shift=st.integers(-1, 2),
    zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
)
async def test_sql_prices_a_day_of_storage_as_python_to_the_last_digit(
    db: asyncpg.Pool, objects: list[tuple[Decimal, datetime, int | None]], day_shift: int, zone: str
) -> None:
    start = datetime(2026, 11, 20 + day_shift, tzinfo=ZoneInfo(zone))
    bounds = (start, start + timedelta(days=1))
    rows: dict[uuid.UUID, tuple[Decimal, datetime, datetime | None]] = {}
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("TRUNCATE s3_objects")
        for size, stored_at, held_us in objects:
            ended_at = None if held_us is None else stored_at + timedelta(microseconds=held_us)
            rows[event_id := uuid.uuid4()] = (size, stored_at, ended_at)
            await conn.execute(
                "INSERT INTO s3_objects (event_id, bucket, s3_key, size_bytes, stored_at, "
                "ended_at) VALUES ($1, 'b', $2, $3, $4, $5)",
                event_id,
                str(event_id),
                size,
                stored_at,
                ended_at,
            )
        found = {
            row["event_id"]: row["cost"]
            for row in await conn.fetch(
                HELD_DURING_DAY_SQL, *bounds, AWS.s3_storage_per_byte_second
            )
        }
    for event_id, (size, stored_at, ended_at) in rows.items():
        python = held_within(size, stored_at, ended_at, bounds, AWS)
        assert found.get(event_id, Decimal(0)) == python
        assert (event_id in found) == (python > 0)


# --- record_objects -----------------------------------------------------------------------


async def _cost_event(conn: Any, service: str, at: datetime, metadata: dict[str, Any]) -> uuid.UUID:
    event_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, metadata, "
        "user_id, tier, episode_id, podcast_id, created_at) "
        "VALUES ($1, 's3_operation', $2, 1, 'requests', $3, 'u1', 'pro', 'ep1', 'pod1', $4)",
        event_id,
        service,
        metadata,
        at,
    )
    return event_id


async def test_record_objects_returns_what_changed_and_marks_local_dates(db: asyncpg.Pool) -> None:
    today = datetime.now(NEW_YORK).date()
    noon = datetime.combine(today - timedelta(days=2), datetime.min.time(), NEW_YORK) + timedelta(
        hours=12
    )
    object_key = {"bucket": "media", "s3_key": "a.mp3"}
    async with db.acquire() as conn, conn.transaction():
        put = await _cost_event(conn, "s3_put", noon, {**object_key, "size_bytes": GIB})
        first = await record_objects(conn, [put], tz=NEW_YORK)
    assert (first.rows, [c.inserted for c in first.changes]) == (1, [True])
    (stored,) = first.changes
    assert (stored.stored_at, stored.ended_at, stored.size_bytes) == (noon, None, Decimal(GIB))
    assert (stored.owner, stored.episode_id, stored.podcast_id) == (
        Owner("u1", "pro"),
        "ep1",
        "pod1",
    )
    assert first.dirty_dates == tuple(today - timedelta(days=n) for n in (2, 1, 0))

    await db.execute("DELETE FROM rollup_dirty_dates")
    async with db.acquire() as conn, conn.transaction():
        # a delete a day later, and one that names nothing
        gone = await _cost_event(conn, "s3_delete", noon + timedelta(days=1), object_key)
        nothing = await _cost_event(conn, "s3_delete", noon, {"bucket": "media"})
        second = await record_objects(conn, [gone, nothing], tz=NEW_YORK, mark_dirty=False)
    assert second.rows == 1  # the delete's own row, which holds nothing
    (ended,) = second.changes
    assert (ended.event_id, ended.inserted) == (put, False)
    assert (ended.old_ended_at, ended.ended_at) == (None, noon + timedelta(days=1))
    assert second.dirty_dates == (today - timedelta(days=1), today)
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty_dates") == 0  # left to the caller
    yesterday = tuple(
        datetime.combine(today - timedelta(days=d), datetime.min.time(), NEW_YORK) for d in (1, 0)
    )
    deltas = day_cost_changes(second.changes, (yesterday[0], yesterday[1]), AWS)
    assert near(deltas[Owner("u1", "pro")], -GIB * 12 * 3600 * PER_BYTE_SECOND)

    async with db.acquire() as conn, conn.transaction():
        again = await record_objects(conn, [put, gone], tz=NEW_YORK)  # already recorded
    assert (again.rows, again.changes) == (0, ())


async def test_a_batch_of_ten_thousand_uploads_fits_the_lock_table(db: asyncpg.Pool) -> None:
    # one lock per key would be more than the lock table is sized for (6,400 by default)
    moment = datetime.now(UTC) - timedelta(hours=1)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, metadata,"
            " created_at) SELECT gen_random_uuid(), 's3_operation', 's3_put', 1, 'requests',"
            " jsonb_build_object('bucket', 'media', 's3_key', 'k' || n, 'size_bytes', n), $1"
            " FROM generate_series(1, 10000) n",
            moment,
        )
        ids = [row["event_id"] for row in await conn.fetch("SELECT event_id FROM cost_events")]
        recorded = await record_objects(conn, ids, tz=ZoneInfo("UTC"))
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
    assert (recorded.rows, len(recorded.changes), held) == (10_000, 10_000, 1)


async def _would_wait(conn: Any, keys: list[str]) -> bool:
    """Whether a batch storing ``keys`` must wait for a lock (its transaction is undone)."""
    undone = conn.transaction()
    await undone.start()
    try:
        await conn.execute("SET LOCAL lock_timeout = '200ms'")
        ids = [await _cost_event(conn, "s3_put", T0, {"s3_key": k}) for k in keys]
        await record_objects(conn, ids, tz=ZoneInfo("UTC"))
    except asyncpg.exceptions.LockNotAvailableError:
        return True
    finally:
        await undone.rollback()
    return False


async def test_batches_wait_for_each_other_only_on_a_shared_key_or_a_big_batch(
    db: asyncpg.Pool,
) -> None:
    many = [f"many-{i}" for i in range(65)]  # more than are locked one by one
    async with db.acquire() as holder, db.acquire() as other:
        for held in (["a"], many):
            async with holder.transaction():
                ids = [await _cost_event(holder, "s3_put", T0, {"s3_key": k}) for k in held]
                await record_objects(holder, ids, tz=ZoneInfo("UTC"))
                # while the batch is still open
                waits = [await _would_wait(other, keys) for keys in (["a"], ["b"], many)]
            assert waits == ([True, False, True] if held == ["a"] else [True, True, True])
