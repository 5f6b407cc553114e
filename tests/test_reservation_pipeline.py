"""Reservations batched into one Redis round trip decide exactly as checks sent one by one.

Checks started together with ``asyncio.gather`` reach the pipeline in one turn of the event
loop: the first goes out alone (nothing was in flight) and the others wait for it, then go
together. So these tests know which checks share a batch, and the batch-size metric says
that they did. The day's counters are built first (``_built``): on an empty Redis every
check would be told to rebuild them and ask again, each on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from costguard.common.config import ConfigError
from costguard.common.counters import (
    TTL_SECONDS,
    built_key,
    global_key,
    reservations_key,
    user_key,
)
from costguard.devstack import LocalRedis
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.pipeline import ReservationPipeline
from costguard.throttle.policy import Action, BudgetDecision
from costguard.throttle.reserve import CountersLost, Reservation, Reserver, ReserveRequest
from costguard.throttle.server import ThrottleApp
from costguard.throttle.service import CheckInput
from tests.test_throttle import PATIENT_REDIS, _set_budget, _start, _usage


def _batches() -> tuple[float, float, float]:
    """So far in this process: (script calls, checks they carried, calls carrying one)."""
    name = "costguard_throttle_reserve_batch_size"
    get = REGISTRY.get_sample_value
    return (
        get(f"{name}_count") or 0.0,
        get(f"{name}_sum") or 0.0,
        get(f"{name}_bucket", {"le": "1.0"}) or 0.0,
    )


def _since(before: tuple[float, float, float]) -> tuple[int, int, int]:
    calls, carried, alone = (now - then for now, then in zip(_batches(), before, strict=True))
    return int(calls), int(carried), int(alone)


@pytest.fixture
async def app(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[ThrottleApp]:
    async for running in _start({**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600"}):
        yield running.app


async def _built(app: ThrottleApp) -> None:
    await app.throttle._rebuilder.rebuild_today(wait=True)


def _check(tier: str, cpu_ms: int, user: str = "u1", **more: Any) -> CheckInput:
    return CheckInput(user_id=user, tier=tier, est_cpu_ms=cpu_ms, **more)


def _cpu(decision: BudgetDecision) -> tuple[int, int]:
    (cpu,) = [(r.used, r.remaining) for r in decision.remaining if r.metric == "cpu_ms"]
    return cpu


@pytest.fixture
async def patient_app(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[ThrottleApp]:
    env = {**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600", **PATIENT_REDIS}
    async for running in _start(env):
        yield running.app


async def test_200_batched_checks_overshoot_a_cap_by_at_most_one_estimate(
    patient_app: ThrottleApp, db: asyncpg.Pool, redis_client: Redis
) -> None:
    app = patient_app
    await _usage(db, cpu_ms=9_050, tier="enterprise")
    await _set_budget(db, app, "global", daily_cpu_ms_cap=10_000)
    await _built(app)
    before = _batches()
    decisions = await asyncio.gather(
        *(app.throttle.check(_check("enterprise", 100, user=f"u{i}")) for i in range(200))
    )
    calls, carried, alone = _since(before)
    assert carried == 200
    assert calls - alone >= 3  # 199 checks waited behind the first: batches of up to 64
    assert calls <= 1 + 4
    allowed = [d for d in decisions if d.action is Action.ALLOW]
    assert len(allowed) == 9  # 9,050 + 9 x 100 = 9,950; a tenth would pass 10,000
    day = datetime.now(app.throttle._config.core.timezone).date()
    figures = await redis_client.hmget(global_key(day), ["cpu_ms", "r_cpu_ms"])
    assert sum(int(v or 0) for v in figures) <= 10_000 + 100
    # In order: the first nine asked are the nine let through.
    assert [d.action for d in decisions[:10]] == [Action.ALLOW] * 9 + [Action.DEFER]


def _mixed() -> list[CheckInput]:
    return [
        _check("enterprise", 0, user="warm", reserve=False),  # alone: the rest wait behind it
        _check("enterprise", 4_000, reservation_id="job-a"),
        _check("enterprise", 4_000, reserve=False),  # a dry run: as if, nothing held
        _check("enterprise", 4_000, reservation_id="job-a"),  # a retry: held once
        _check("enterprise", 4_000),
        _check("enterprise", 4_000),  # 8,000 held: 12,000 would pass the cap
    ]


def _answer(decision: BudgetDecision) -> tuple[Action, str, tuple[int, int], str | bool]:
    """What a check answered; a reservation id made up by the throttle only as "one"."""
    rid = decision.reservation_id
    return decision.action, decision.reason, _cpu(decision), rid if rid == "job-a" else bool(rid)


async def test_a_batch_of_reservations_a_dry_run_and_a_retry_answers_each_as_alone(
    app: ThrottleApp, db: asyncpg.Pool, redis_client: Redis
) -> None:
    await _set_budget(db, app, "global", daily_cpu_ms_cap=10_000)
    await _built(app)
    day = datetime.now(app.throttle._config.core.timezone).date()
    before = _batches()
    batched = await asyncio.gather(*(app.throttle.check(c) for c in _mixed()))
    assert _since(before) == (2, 6, 1)  # the warm-up alone, then the five together
    assert [(d.action, _cpu(d)) for d in batched[1:]] == [
        (Action.ALLOW, (4_000, 6_000)),
        (Action.ALLOW, (8_000, 2_000)),  # the dry run counts its own estimate
        (Action.ALLOW, (4_000, 6_000)),  # the retry is not counted twice
        (Action.ALLOW, (8_000, 2_000)),
        (Action.DEFER, (8_000, 2_000)),
    ]
    assert [d.reservation_id for d in batched[1:4]] == ["job-a", "", "job-a"]
    assert await redis_client.hget(global_key(day), "r_cpu_ms") == "8000"
    assert await redis_client.zcard(reservations_key(day)) == 2
    for key in (global_key(day), user_key(day, "u1"), reservations_key(day)):
        assert 0 < await redis_client.ttl(key) <= TTL_SECONDS  # what a reservation wrote expires

    # The same checks one by one, from the same counters, answer the same.
    await redis_client.flushdb()
    await _built(app)
    alone = [await app.throttle.check(c) for c in _mixed()]
    assert [_answer(d) for d in alone] == [_answer(d) for d in batched]


def _request(day: date, rid: str, cpu_ms: int) -> tuple[date, ReserveRequest]:
    return day, ReserveRequest(
        scope_keys=[global_key(day)],
        caps=[[-1, 10**9, -1, -1, -1]],
        estimate=[1, cpu_ms, 0, 0, 0],
        limit=1.0,
        reservation_id=rid,
        now_ms=int(datetime.now().timestamp() * 1000),
        ttl_ms=600_000,
    )


async def test_a_queue_across_midnight_goes_as_one_script_call_per_day(
    db: asyncpg.Pool, redis_client: Redis
) -> None:
    pipeline = ReservationPipeline(Reserver(redis_client), max_batch=64)
    before_midnight, after = date(2026, 11, 24), date(2026, 11, 25)
    await redis_client.set(built_key(before_midnight), "1")  # the new day is not built yet
    asked = [
        _request(before_midnight, "warm", 1),
        _request(before_midnight, "a", 10),
        _request(before_midnight, "b", 20),
        _request(after, "c", 30),
        _request(after, "d", 40),
    ]
    before = _batches()
    answers = await asyncio.gather(
        *(pipeline.check(day=day, request=r) for day, r in asked), return_exceptions=True
    )
    assert _since(before) == (3, 5, 1)  # warm | a, b | c, d
    assert [type(a) for a in answers] == [Reservation] * 3 + [CountersLost] * 2
    # Each day's call read its own day's sentinel and wrote only its own day's keys.
    assert await redis_client.hget(global_key(before_midnight), "r_cpu_ms") == "31"
    assert await redis_client.exists(global_key(after), reservations_key(after)) == 0


async def test_a_check_cancelled_while_it_waits_for_its_batch_reserves_nothing(
    db: asyncpg.Pool, redis_client: Redis
) -> None:
    pipeline = ReservationPipeline(Reserver(redis_client), max_batch=64)
    day = date(2026, 11, 24)
    await redis_client.set(built_key(day), "1")
    before = _batches()
    first = asyncio.ensure_future(pipeline.check(day=day, request=_request(day, "first", 1)[1]))
    gone = asyncio.ensure_future(pipeline.check(day=day, request=_request(day, "gone", 10)[1]))
    await asyncio.sleep(0)  # both asked: the first's call is out, the other waits behind it
    gone.cancel()  # its RPC ended (a deadline, a client gone)
    assert (await first).reserved
    assert gone.cancelled()
    assert _since(before) == (1, 1, 1)  # no call for the cancelled check
    assert await redis_client.hget(global_key(day), "r_cpu_ms") == "1"
    assert await redis_client.zrange(reservations_key(day), 0, -1) == ["first"]


async def test_redis_stopped_under_a_batch_gives_each_check_its_fault_decision(
    db: asyncpg.Pool, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = LocalRedis(tmp_path_factory.mktemp("redis"), durable=False)
    await asyncio.to_thread(own.start)
    try:
        async for running in _start({**service_env, "REDIS_URL": own.url}):
            throttle = running.app.throttle
            await _set_budget(db, running.app, "global", daily_cpu_ms_cap=1_000)
            assert (await throttle.check(_check("free", 10))).action is Action.ALLOW
            await asyncio.to_thread(own.stop)
            tiers = ["free", "pro", "enterprise"] * 3
            before = _batches()
            decisions = await asyncio.gather(
                *(throttle.check(_check(t, 10, user=f"u{i}")) for i, t in enumerate(tiers))
            )
            assert _since(before) == (2, 9, 1)
            assert [(d.action, d.retry_after_ms) for d in decisions] == [
                (Action.DEFER, 30_000),
                (Action.ALLOW, 0),
                (Action.ALLOW, 0),
            ] * 3
            assert all("Redis unreachable" in d.reason for d in decisions)
            assert all(d.reservation_id == "" for d in decisions)

            await _usage(db, cpu_ms=990)
            await asyncio.to_thread(own.start)  # back, empty: rebuilt before deciding
            reply = await throttle.check(_check("pro", 50))
            assert reply.action is Action.DEFER
            assert "(1,040 of 1,000)" in reply.reason
    finally:
        await asyncio.to_thread(own.stop)


async def test_a_command_failing_for_one_check_of_a_batch_fails_that_check_alone(
    app: ThrottleApp, db: asyncpg.Pool, redis_client: Redis
) -> None:
    await _set_budget(db, app, "global", daily_cpu_ms_cap=10_000)
    day = datetime.now(app.throttle._config.core.timezone).date()
    await _built(app)
    await redis_client.set(user_key(day, "broken"), "not a hash")  # HMGET: WRONGTYPE
    before = _batches()
    _, ok, broken, also_ok = await asyncio.gather(
        app.throttle.check(_check("pro", 0, user="warm", reserve=False)),
        app.throttle.check(_check("pro", 100, user="a")),
        app.throttle.check(_check("pro", 100, user="broken")),
        app.throttle.check(_check("free", 100, user="b")),
    )
    assert _since(before) == (2, 4, 1)
    assert (ok.action, also_ok.action) == (Action.ALLOW, Action.ALLOW)
    assert ok.reservation_id
    assert also_ok.reservation_id
    assert _cpu(also_ok) == (200, 9_800)  # it saw the check before it, not the broken one
    assert (broken.action, broken.reservation_id) == (Action.ALLOW, "")
    assert broken.reason == "Redis unreachable: allowed by the fail-open policy for tier pro"
    assert await redis_client.hget(global_key(day), "r_cpu_ms") == "200"


async def test_a_batch_that_finds_the_counters_lost_rebuilds_and_decides_each(
    app: ThrottleApp, db: asyncpg.Pool, redis_client: Redis
) -> None:
    await _usage(db, cpu_ms=100, tier="enterprise")
    await _set_budget(db, app, "global", daily_cpu_ms_cap=1_000)
    await redis_client.flushdb()
    decisions = await asyncio.gather(
        *(app.throttle.check(_check("enterprise", 300, user=f"u{i}")) for i in range(5))
    )
    assert [d.action for d in decisions].count(Action.ALLOW) == 3  # 100 + 3 x 300
    day = datetime.now(app.throttle._config.core.timezone).date()
    assert await redis_client.hmget(global_key(day), ["cpu_ms", "r_cpu_ms"]) == ["100", "900"]


async def test_a_reserved_cost_past_14_digits_is_given_back_exactly(
    app: ThrottleApp, db: asyncpg.Pool, redis_client: Redis
) -> None:
    # cjson writes numbers with 14 significant digits: 123,456,789,012,345 nano-USD would
    # be held as ...012,340 and given back 5 short, had the amounts gone through it.
    await db.execute(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap, daily_cost_usd_cap) "
        "VALUES ('global', $1, $1, $1, $1, 1000000)",
        2**63 - 1,
    )
    await app.budgets.reload()
    await _built(app)
    decision = await app.throttle.check(
        _check("enterprise", 0, user="big", est_cost_usd=Decimal("123456.789012345"))
    )
    (cost,) = [r for r in decision.remaining if r.metric == "cost_usd"]
    assert (cost.used, decision.action) == (123_456_789_012_345, Action.ALLOW)
    day = datetime.now(app.throttle._config.core.timezone).date()
    assert await redis_client.hget(global_key(day), "r_cost_nusd") == "123456789012345"
    assert await app.throttle.release(decision.reservation_id) is True
    assert await redis_client.hget(global_key(day), "r_cost_nusd") == "0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("THROTTLE_RESERVE_BATCH_MAX", "0", "expected an integer between 1 and 1024"),
        ("THROTTLE_RESERVE_BATCH_MAX", "5000", "expected an integer between 1 and 1024"),
        ("THROTTLE_RESERVE_WINDOW_MS", "-1", "expected a finite number >= 0"),
        ("THROTTLE_RESERVE_WINDOW_MS", "60", "expected at most 50.0 ms"),
    ],
)
def test_batching_settings_are_bounded(name: str, value: str, message: str) -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h:6379/0"}
    with pytest.raises(ConfigError, match=message) as failure:
        ThrottleConfig.from_env({**env, name: value})
    assert str(failure.value).startswith(f"{name}: ")
    defaults = ThrottleConfig.from_env(env)
    assert (defaults.reserve_batch_max, defaults.reserve_window_s) == (64, 0.002)
