"""The top users from the gateway's held days are exactly those of the full ranking in SQL.

``GET /api/admin/cost/users`` ranks on the per-day costs each gateway holds in memory
(``costguard.gateway.user_days``) and sums only the users who can be in the top exactly in
Postgres. These tests hold it to ``queries.TOP_USERS`` run on the whole table: random users,
days, costs (ties, sub-nano-dollar digits, NULLs, negative and huge figures) and tiers, random
ranges of 1 to 92 days, after rows are rewritten, and right after the real rollup re-rolls a
day, on two gateways at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costguard.common.day_sheets import DaySheets
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.gateway import queries
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.money import usd
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.telemetry.ingest import Ingestor
from tests.events import job, ts

ADMIN = "admin-token-1"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
TODAY = date(2026, 6, 30)
SPAN = 100  # the days rows are drawn from: TODAY - 99 .. TODAY
TIERS = ("free", "pro", "enterprise")
# Names whose order differs by collation (case, punctuation), as the database orders them.
USERS = [f"{p}{n}" for p in ("u", "U", "a-", "a_", "z") for n in range(8)]


def _noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture
async def gateways(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[list[Any]]:
    """Two gateways (replicas) on the one database, both with TODAY as today."""
    env = {**service_env, "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}"}
    apps = [create_app(GatewayConfig.from_env(env), clock=lambda: _noon(TODAY)) for _ in "ab"]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
            for app in apps
        ]
        yield clients
        for client in clients:
            await client.aclose()


@pytest.fixture
async def deaf(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway that hears no NOTIFY: its held days are checked by their versions alone."""
    env = {**service_env, "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}"}
    app = create_app(GatewayConfig.from_env(env), clock=lambda: _noon(TODAY))
    async with app.router.lifespan_context(app):
        await app.state.resources.user_days.stop()  # no listener, no reloads ahead of reads
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def _expected(db: asyncpg.Pool, first: date, last: date, limit: int) -> list[dict[str, Any]]:
    """The straightforward ranking: every row of the range summed in SQL."""
    return [
        {
            "user_id": r["user_id"],
            "tier": r["tier"],
            "cost_usd": usd(r["cost_usd"]),
            **{k: r[k] for k in ("jobs", "ai_calls", "tokens_in", "tokens_out")},
        }
        for r in await db.fetch(queries.TOP_USERS, first, last, limit)
    ]


async def _check(
    client: httpx.AsyncClient, db: asyncpg.Pool, first: date, last: date, limit: int
) -> list[dict[str, Any]]:
    reply = await client.get(
        "/api/admin/cost/users",
        params={"from": first.isoformat(), "to": last.isoformat(), "limit": limit},
        headers=AS_ADMIN,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["from"], body["to"], body["days"]) == (
        first.isoformat(),
        last.isoformat(),
        (last - first).days + 1,
    )
    expected = await _expected(db, first, last, limit)
    assert body["users"] == expected
    return expected


COSTS = st.one_of(
    # Few distinct figures: many users tie, on a day and over a range.
    st.sampled_from([Decimal(0), Decimal(1), Decimal("2.5"), Decimal("0.00000001")]),
    st.decimals(min_value=Decimal(-1), max_value=Decimal(50), places=8),
    # Past the 9th place: the held figure is a bound, the exact sum Postgres'.
    st.decimals(min_value=Decimal(0), max_value=Decimal(3), places=13),
    # Now and then NULL (the seed's column is NULL-able: counted as 0), or past $10^7 for one
    # day (Postgres ranks a range holding it).
    st.sampled_from([None, Decimal("20000000.5"), *[Decimal(0)] * 18]),
)
ROW = st.tuples(COSTS, st.sampled_from(TIERS), st.integers(0, 5))
_NANOS = [Decimal(n) / 10**10 for n in (4, 5, 6, 10, 15, 19)]
_USER_DAYS = st.tuples(st.integers(0, len(USERS) - 1), st.integers(0, SPAN - 1))
ROWS = st.one_of(
    st.dictionaries(_USER_DAYS, ROW, max_size=250),
    # Costs of a nano-dollar or so: the held figures (rounded down) order users otherwise.
    st.dictionaries(
        _USER_DAYS,
        st.tuples(st.sampled_from(_NANOS), st.sampled_from(TIERS), st.integers(0, 5)),
        min_size=50,
        max_size=250,
    ),
    # Mostly nothing: more users tie at the k-th figure than the top has places.
    st.dictionaries(
        _USER_DAYS,
        st.tuples(
            st.sampled_from([Decimal(0), Decimal(0), Decimal(1)]),
            st.sampled_from(TIERS),
            st.integers(0, 5),
        ),
        min_size=50,
        max_size=250,
    ),
)
RANGES = st.tuples(st.integers(0, SPAN - 1), st.integers(1, 92), st.integers(1, 12))


_COLUMNS = ("user_id", "date", "tier", "jobs", "ai_calls", "tokens_in", "tokens_out", "cost_usd")


async def _store(db: asyncpg.Pool, rows: dict[tuple[int, int], tuple[Any, str, int]]) -> None:
    await db.copy_records_to_table(
        "cost_user_daily",
        records=[
            (USERS[u], TODAY - timedelta(days=d), tier, jobs, jobs * 2, jobs * 3, jobs * 5, cost)
            for (u, d), (cost, tier, jobs) in rows.items()
        ],
        columns=_COLUMNS,
    )


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=ROWS, ranges=st.lists(RANGES, min_size=1, max_size=3), data=st.data())
async def test_the_top_users_are_the_full_rankings_for_any_range(
    gateways: list[httpx.AsyncClient],
    db: asyncpg.Pool,
    rows: dict[tuple[int, int], tuple[Any, str, int]],
    ranges: list[tuple[int, int, int]],
    data: st.DataObject,
) -> None:
    await db.execute("TRUNCATE cost_user_daily")
    await _store(db, rows)
    for end, length, limit in ranges:
        last = TODAY - timedelta(days=end)
        await _check(gateways[0], db, last - timedelta(days=length - 1), last, limit)
    # Rows rewritten, added and removed, as a re-roll does: the next read sees them.
    changes = data.draw(ROWS)
    await db.execute(
        "INSERT INTO cost_user_daily AS d (user_id, date, tier, jobs, cost_usd) "
        "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[], $5::numeric[]) "
        "ON CONFLICT (user_id, date) DO UPDATE SET tier = EXCLUDED.tier, jobs = EXCLUDED.jobs, "
        "cost_usd = EXCLUDED.cost_usd",
        [USERS[u] for u, _ in changes],
        [TODAY - timedelta(days=d) for _, d in changes],
        [tier for _, tier, _ in changes.values()],
        [jobs for _, _, jobs in changes.values()],
        [cost for cost, _, _ in changes.values()],
    )
    gone = data.draw(st.lists(st.sampled_from(sorted(rows)), max_size=10) if rows else st.just([]))
    await db.execute(
        "DELETE FROM cost_user_daily WHERE (user_id, date) IN "
        "(SELECT * FROM unnest($1::text[], $2::date[]))",
        [USERS[u] for u, _ in gone],
        [TODAY - timedelta(days=d) for _, d in gone],
    )
    for client in gateways:
        for end, length, limit in ranges:
            last = TODAY - timedelta(days=end)
            await _check(client, db, last - timedelta(days=length - 1), last, limit)


async def test_days_7_and_30_end_today(gateways: list[httpx.AsyncClient], db: asyncpg.Pool) -> None:
    await _store(
        db,
        {
            (u, d): (Decimal(u * d % 7), TIERS[d % 3], 1)
            for u in range(9)
            for d in (0, 6, 7, 29, 30)
        },
    )
    for days in (7, 30):
        reply = await gateways[0].get(f"/api/admin/cost/users?days={days}", headers=AS_ADMIN)
        body = reply.json()
        first = TODAY - timedelta(days=days - 1)
        assert (body["days"], body["from"], body["to"]) == (
            days,
            first.isoformat(),
            TODAY.isoformat(),
        )
        assert body["users"] == await _expected(db, first, TODAY, 20)
        assert body["users"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-06-30&to=2026-06-29", "from"),  # backwards
        ("from=2026-03-30&to=2026-06-30", "from"),  # 93 days
        ("from=2026-06-01&days=7", "days"),  # both
        ("from=2026-6-1", "from"),
        ("to=yesterday", "to"),
        ("days=93", "days"),  # past the 92-day limit (any whole number 1..92 is a range)
        ("days=0", "days"),
    ],
)
async def test_a_bad_range_is_400_naming_the_field(
    gateways: list[httpx.AsyncClient], query: str, field: str
) -> None:
    reply = await gateways[0].get(f"/api/admin/cost/users?{query}", headers=AS_ADMIN)
    assert reply.status_code == 400
    assert reply.json()["field"] == field


async def test_the_92nd_day_back_is_in_range(
    gateways: list[httpx.AsyncClient], db: asyncpg.Pool
) -> None:
    first = TODAY - timedelta(days=91)
    await _store(db, {(0, 91): (Decimal(3), "pro", 1), (1, 0): (Decimal(2), "free", 1)})
    users = await _check(gateways[0], db, first, TODAY, 5)
    assert [u["user_id"] for u in users] == [USERS[0], USERS[1]]


async def test_digits_past_the_nano_dollar_decide_the_order(
    gateways: list[httpx.AsyncClient], db: asyncpg.Pool
) -> None:
    """Held in whole nano-dollars rounded down, two days of $0.0000000006 are 0 nano-dollars
    each, less than one day of $0.0000000011 (1); exactly they are more."""
    tenths = Decimal("0.0000000006")
    await _store(
        db,
        {
            (0, 0): (tenths, "pro", 1),
            (0, 1): (tenths, "pro", 1),
            (1, 0): (tenths * 2 - tenths / 6, "free", 1),
        },
    )
    users = await _check(gateways[0], db, TODAY - timedelta(days=1), TODAY, 1)
    assert [u["user_id"] for u in users] == [USERS[0]]


async def test_a_gateway_deaf_to_notifications_still_answers_right(
    deaf: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """Held days are used at the versions a read sees, whatever the listener heard: after a
    day's rows are emptied and written anew, a cost changes, and a user goes."""
    first = TODAY - timedelta(days=9)
    rows = {(u, d): (Decimal(100 + u + d), TIERS[u % 3], 1) for u in range(12) for d in range(10)}
    await _store(db, rows)
    await _check(deaf, db, first, TODAY, 4)
    await db.execute("TRUNCATE cost_user_daily")
    await _store(db, {(u, d): (Decimal(20 - u), "pro", 2) for u in range(5) for d in (0, 3)})
    assert [u["user_id"] for u in await _check(deaf, db, first, TODAY, 3)] == USERS[:3]
    await db.execute(
        "UPDATE cost_user_daily SET cost_usd = 100 WHERE user_id = $1 AND date = $2",
        USERS[4],
        TODAY,
    )
    await db.execute("DELETE FROM cost_user_daily WHERE user_id = $1", USERS[0])
    assert [u["user_id"] for u in await _check(deaf, db, first, TODAY, 3)] == [
        USERS[4],
        USERS[1],
        USERS[2],
    ]


def _sheets() -> DaySheets:
    return DaySheets(seed=SeedPrices.from_env({}), aws=AwsPrices.from_env({}), tz=ZoneInfo("UTC"))


async def test_right_after_a_re_roll_on_every_replica(
    gateways: list[httpx.AsyncClient], db: asyncpg.Pool
) -> None:
    """The real rollup rewrites a day: a user goes, a cost and a tier change; both gateways
    answer with the new day at once (no waiting for their listeners)."""
    ingestor = Ingestor(db, None, tiers=TIERS, timezone=ZoneInfo("UTC"), sheets=_sheets())
    pricing = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    yesterday, morning = TODAY - timedelta(days=1), _noon(TODAY) - timedelta(hours=3)

    async def store(user: str, tier: str, cpu_ms: int, at: datetime) -> None:
        event = job(user_id=user, tier=tier, cpu_ms=cpu_ms, created_at=ts(at), started_at=ts(at))
        assert (await ingestor.store([event])).accepted == 1

    async def roll_up(day: date) -> None:
        await rollup_costs_for_date(db, day, tz=ZoneInfo("UTC"), pricing=pricing, sheets=_sheets())

    for user, cpu_ms in (("ann", 4000), ("bob", 3000), ("cat", 2000), ("dan", 1000)):
        await store(user, "free", cpu_ms, morning)
        await store(user, "free", cpu_ms, _noon(yesterday))
    await roll_up(yesterday)
    await roll_up(TODAY)
    first = yesterday
    before = [await _check(client, db, first, TODAY, 3) for client in gateways]
    assert [u["user_id"] for u in before[0]] == ["ann", "bob", "cat"]

    # bob's events of today are gone, dan spends more, cat's latest event is on pro.
    await db.execute(
        "DELETE FROM telemetry_job_events WHERE user_id = 'bob' AND created_at >= $1", morning
    )
    await store("dan", "free", 9000, morning + timedelta(hours=1))
    await store("cat", "pro", 10, morning + timedelta(hours=2))
    await roll_up(TODAY)
    after = [await _check(client, db, first, TODAY, 3) for client in gateways]
    assert after[0] == after[1]
    assert [(u["user_id"], u["tier"]) for u in after[0]] == [
        ("dan", "free"),
        ("ann", "free"),
        ("cat", "pro"),
    ]
    today_only = await _check(gateways[1], db, TODAY, TODAY, 5)
    assert "bob" not in [u["user_id"] for u in today_only]
