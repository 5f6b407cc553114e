"""S3 storage end to end: events through the real telemetry service, days rolled up.

Each object costs from its PUT (or COPY) to its DELETE or overwrite, and a live one to the
end of each day; by hand, as exact fractions of the GB-month price ($0.023 per GiB held 30
days), compared as the gateway shows the stored exact figures: rounded once, to 8 decimals.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc import aio

from costguard.common.money import round_usd
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.common.storage import HELD_DURING_DAY_SQL
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.events import batch, cost, ts

PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
UTC_ZONE = ZoneInfo("UTC")
GIB = 2**30
PUT = Fraction("0.005") / 1000
PER_BYTE_SECOND = Fraction("0.023") / (GIB * 2_592_000)
HOUR = 3600
TODAY = datetime.now(UTC).date()


def cents(exact: Fraction) -> Decimal:
    """An exact figure as it is shown: rounded once, to 8 decimals, half away from zero."""
    wide = Context(prec=80)
    quotient = wide.divide(Decimal(exact.numerator), Decimal(exact.denominator))
    return quotient.quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)


def held(size: int, seconds: int) -> Fraction:
    return size * seconds * PER_BYTE_SECOND


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def s3(
    service: str, when: datetime, user: str = "u1", **metadata: Any
) -> telemetry_pb2.TelemetryEvent:
    meta = Struct()
    meta.update({"bucket": "media", **metadata})
    return cost(
        service=service, created_at=ts(when), metadata=meta, user_id=user, tier="pro",
        episode_id="ep1", podcast_id="pod1",
    )  # fmt: skip


@pytest.fixture
async def stub(telemetry_addr: str) -> AsyncIterator[telemetry_pb2_grpc.TelemetryServiceStub]:
    async with aio.insecure_channel(telemetry_addr) as channel:
        yield telemetry_pb2_grpc.TelemetryServiceStub(channel)


async def send(stub: Any, *events: telemetry_pb2.TelemetryEvent) -> None:
    reply = await stub.Record(batch(*events))
    assert (reply.accepted, reply.rejected) == (len(events), 0)


def shown(value: Decimal | str) -> Decimal:
    return round_usd(Decimal(value))


def shown_json(figures: dict[str, str]) -> dict[str, str]:
    return {key: f"{shown(value):f}" for key, value in figures.items()}


async def day_cost(db: asyncpg.Pool, day: date) -> dict[str, Any]:
    """The day rolled up, its money as shown (the rollup stores it exact)."""
    await rollup_costs_for_date(db, day, tz=UTC_ZONE, pricing=PRICING)
    row = await db.fetchrow("SELECT * FROM cost_global_daily WHERE date = $1", day)
    assert row is not None
    figures = dict(row)
    figures["cost_usd"] = shown(row["cost_usd"])
    figures["cost_by_service_json"] = shown_json(row["cost_by_service_json"])
    return figures


Life = tuple[str, str, int, datetime, datetime | None]


async def lifetimes(db: asyncpg.Pool) -> list[Life]:
    """Every object row: (service of its event, key, key index, stored at, ended at), in
    time order."""
    rows = await db.fetch(
        "SELECT e.service, o.s3_key, o.key_index, o.stored_at, o.ended_at FROM s3_objects o"
        " JOIN cost_events e USING (event_id) ORDER BY o.stored_at, o.s3_key"
    )
    return [tuple(row.values()) for row in rows]


async def test_a_put_deleted_a_minute_later_costs_its_request_and_one_minute(
    db: asyncpg.Pool, stub: Any
) -> None:
    day = TODAY - timedelta(days=1)
    size = 100 * GIB  # $0.00000088734567... a second, so a second more or less would show
    await send(stub, s3("s3_put", at(day, 10), s3_key="ep.mp3", size_bytes=size))
    await send(stub, s3("s3_delete", at(day, 10, 1), s3_key="ep.mp3"))

    figures = await day_cost(db, day)
    storage = held(size, 60)  # $0.0000532407407...
    assert figures["cost_usd"] == cents(PUT + storage) == Decimal("0.00005824")
    assert figures["cost_by_service_json"] == {
        "s3_put": "0.00000500",
        "s3_delete": "0.00000000",
        "s3_storage": f"{cents(storage):f}",
    }
    assert figures["events"] == 2  # storage is no event
    # unrounded, the minute is exact to 20 decimal places
    bounds = (at(day, 0), at(day + timedelta(days=1), 0))
    rate = PRICING.aws.s3_storage_per_byte_second
    (row,) = await db.fetch(HELD_DURING_DAY_SQL, *bounds, rate)
    assert abs(Fraction(row["cost"]) - storage) < Fraction("1e-20")
    assert row["ended_at"] == at(day, 10, 1)


async def test_a_live_object_costs_to_the_end_of_its_day_then_whole_days(
    db: asyncpg.Pool, stub: Any
) -> None:
    first = TODAY - timedelta(days=2)
    second = first + timedelta(days=1)
    await send(stub, s3("s3_put", at(first, 18), s3_key="live.mp3", size_bytes=GIB))

    put_day = await day_cost(db, first)
    assert put_day["cost_usd"] == cents(PUT + held(GIB, 6 * HOUR))
    next_day = await day_cost(db, second)
    assert next_day["cost_usd"] == cents(held(GIB, 24 * HOUR)) == Decimal("0.00076667")  # 0.023/30
    assert (next_day["events"], next_day["cost_by_service_json"]) == (
        0,
        {"s3_storage": "0.00076667"},
    )
    user = await db.fetchrow("SELECT * FROM cost_user_daily WHERE date = $1", second)
    assert user is not None
    assert (user["user_id"], user["tier"], shown(user["cost_usd"])) == (
        "u1",
        "pro",
        Decimal("0.00076667"),
    )
    episode = await db.fetchrow("SELECT * FROM entity_costs WHERE entity_id = 'ep1'")
    assert episode is not None
    # The two days summed exact, then rounded once.
    both = held(GIB, 6 * HOUR) + held(GIB, 24 * HOUR)
    assert shown(episode["total_cost_usd"]) == cents(PUT + both)
    assert episode["event_count"] == 1
    assert shown_json(episode["cost_by_service"]) == {
        "s3_put": "0.00000500",
        "s3_storage": f"{cents(both):f}",
    }
    assert episode["usage_metrics"]["storage_mb"] == 1024  # what was uploaded, once


async def test_an_overwrite_ends_the_first_object(db: asyncpg.Pool, stub: Any) -> None:
    day = TODAY - timedelta(days=1)
    await send(
        stub,
        s3("s3_put", at(day, 6), s3_key="cover.png", size_bytes=GIB),
        s3("s3_copy", at(day, 12), s3_key="cover.png", size_bytes=2 * GIB),
    )
    figures = await day_cost(db, day)
    assert figures["cost_usd"] == cents(2 * PUT + held(GIB, 6 * HOUR) + held(2 * GIB, 12 * HOUR))
    assert await lifetimes(db) == [
        ("s3_put", "cover.png", 0, at(day, 6), at(day, 12)),
        ("s3_copy", "cover.png", 0, at(day, 12), None),
    ]


async def test_a_bulk_delete_ends_each_listed_key(db: asyncpg.Pool, stub: Any) -> None:
    day = TODAY - timedelta(days=1)
    await send(stub, *(s3("s3_put", at(day, 6), s3_key=k, size_bytes=GIB) for k in "abc"))
    await send(
        stub,
        s3("s3_delete", at(day, 12), operation="DeleteObjects", keys=["a", "b"], deleted_count=2,
           keys_truncated=False),
    )  # fmt: skip
    figures = await day_cost(db, day)
    assert figures["cost_usd"] == cents(3 * PUT + 2 * held(GIB, 6 * HOUR) + held(GIB, 18 * HOUR))
    assert await lifetimes(db) == [
        ("s3_put", "a", 0, at(day, 6), at(day, 12)),
        ("s3_put", "b", 0, at(day, 6), at(day, 12)),
        ("s3_put", "c", 0, at(day, 6), None),
        ("s3_delete", "a", 0, at(day, 12), None),
        ("s3_delete", "b", 1, at(day, 12), None),  # the list's second key
    ]


async def test_arrival_out_of_order_gives_the_same_lifetimes(db: asyncpg.Pool, stub: Any) -> None:
    day = TODAY - timedelta(days=1)
    put, overwrite, delete = (
        s3("s3_put", at(day, 6), s3_key="k", size_bytes=GIB),
        s3("s3_put", at(day, 9), s3_key="k", size_bytes=3 * GIB),
        s3("s3_delete", at(day, 10), s3_key="k"),
    )
    for event in (delete, overwrite, put):  # last first, each in a batch of its own
        await send(stub, event)
    figures = await day_cost(db, day)
    assert figures["cost_usd"] == cents(2 * PUT + held(GIB, 3 * HOUR) + held(3 * GIB, HOUR))
    assert await lifetimes(db) == [
        ("s3_put", "k", 0, at(day, 6), at(day, 9)),
        ("s3_put", "k", 0, at(day, 9), at(day, 10)),
        ("s3_delete", "k", 0, at(day, 10), None),  # the last row: holds nothing
    ]


async def test_a_late_delete_marks_the_days_whose_storage_changed(
    db: asyncpg.Pool, stub: Any
) -> None:
    await send(stub, s3("s3_put", at(TODAY - timedelta(days=5), 12), s3_key="old", size_bytes=GIB))
    for back in (5, 4, 3, 2, 1):
        await day_cost(db, TODAY - timedelta(days=back))
    await db.execute("DELETE FROM rollup_dirty_dates")

    await send(stub, s3("s3_delete", at(TODAY - timedelta(days=3), 12), s3_key="old"))
    dirty = {r["date"] for r in await db.fetch("SELECT date FROM rollup_dirty_dates")}
    assert dirty == {TODAY - timedelta(days=back) for back in (3, 2, 1, 0)}
    # re-rolled, those days hold half a day, then nothing
    assert (await day_cost(db, TODAY - timedelta(days=3)))["cost_usd"] == cents(
        held(GIB, 12 * HOUR)
    )
    assert (await day_cost(db, TODAY - timedelta(days=2)))["cost_usd"] == 0

    # a PUT arriving after the DELETE that ends it: the days of its life
    await db.execute("DELETE FROM rollup_dirty_dates")
    await send(stub, s3("s3_delete", at(TODAY - timedelta(days=2), 6), s3_key="late"))
    await db.execute("DELETE FROM rollup_dirty_dates")
    await send(stub, s3("s3_put", at(TODAY - timedelta(days=4), 6), s3_key="late", size_bytes=GIB))
    dirty = {r["date"] for r in await db.fetch("SELECT date FROM rollup_dirty_dates")}
    assert dirty == {TODAY - timedelta(days=back) for back in (4, 3, 2)}


async def test_an_upload_of_unknown_size_costs_only_its_request(
    db: asyncpg.Pool, stub: Any
) -> None:
    day = TODAY - timedelta(days=1)
    await send(stub, s3("s3_put", at(day, 8), s3_key="x", size_bytes=0, size_known=False))
    figures = await day_cost(db, day)
    assert figures["cost_usd"] == Decimal("0.00000500")
    assert figures["cost_by_service_json"] == {"s3_put": "0.00000500"}
    assert await db.fetchval("SELECT size_bytes FROM s3_objects") == 0


async def test_concurrent_batches_on_one_key_leave_each_object_ending_at_the_next(
    db: asyncpg.Pool, stub: Any
) -> None:
    day = TODAY - timedelta(days=1)
    moments = random.sample(range(24 * 60), 24)
    events = [
        s3("s3_delete" if n % 3 == 2 else "s3_put", at(day, 0) + timedelta(minutes=m),
           s3_key="busy", size_bytes=GIB)
        for n, m in enumerate(moments)
    ]  # fmt: skip
    await asyncio.gather(*(send(stub, event) for event in events))
    lives = await lifetimes(db)
    starts = [life[3] for life in lives]
    assert starts == sorted(at(day, 0) + timedelta(minutes=m) for m in moments)
    assert [life[4] for life in lives] == [*starts[1:], None]


async def test_objects_are_charged_to_whoever_stored_them(db: asyncpg.Pool, stub: Any) -> None:
    day = TODAY - timedelta(days=1)
    await send(
        stub,
        s3("s3_put", at(day, 12), s3_key="mine", size_bytes=GIB, user="u1"),
        s3("s3_put", at(day, 18), s3_key="yours", size_bytes=GIB, user="u2"),
    )
    await day_cost(db, day)
    users = {
        r["user_id"]: shown(r["cost_usd"])
        for r in await db.fetch(
            "SELECT user_id, cost_usd FROM cost_user_daily WHERE date = $1", day
        )
    }
    assert users == {
        "u1": cents(PUT + held(GIB, 12 * HOUR)),
        "u2": cents(PUT + held(GIB, 6 * HOUR)),
    }


async def test_a_users_tier_is_that_of_their_latest_event_not_of_their_storage(
    db: asyncpg.Pool, stub: Any
) -> None:
    first = TODAY - timedelta(days=2)
    await send(stub, s3("s3_put", at(first, 12), s3_key="kept", size_bytes=GIB))  # as pro
    downgraded = cost(service="s3_get", created_at=ts(at(first, 20)), user_id="u1", tier="free")
    later = cost(service="s3_get", created_at=ts(at(first, 6) + timedelta(days=1)), user_id="u1",
                 tier="free")  # fmt: skip
    await send(stub, downgraded, later)
    for day in (first, first + timedelta(days=1)):
        await day_cost(db, day)
    tiers = [r["tier"] for r in await db.fetch("SELECT tier FROM cost_user_daily ORDER BY date")]
    assert tiers == ["free", "free"]
