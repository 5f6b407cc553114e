"""Issue 4's throttle figures, from one run on this machine.

``Check`` over gRPC (decisions per second, p50/p99) with 16 and 64 concurrent callers,
beside, in the same run: a no-op ``grpc.aio`` unary handler with the same message sizes
(the wire's own limit), a bare ``EVALSHA`` of the same reserve script from this one
process, and the ``limits`` library's Redis moving-window limiter on the same Redis.
Check and the no-op take turns, two rounds each at every concurrency, so that load from
elsewhere on a shared machine weighs on both alike. Beside each Check figure, the Redis
round trips it took per check: the throttle batches concurrent reservations into one
script call, and Redis counts the calls (``INFO commandstats``). Headline figures:
``check_vs_noop_16`` and ``check_vs_noop_64`` (Check's rate against the no-op's) and
``check_p99_vs_noop_p99_16``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from grpc import aio
from limits import RateLimitItemPerDay
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from bench.common import bench_stack, cpu_seconds, figure, measure_cpu, percentile, report
from costguard.common.counters import built_key, global_key, tier_key, user_key
from costguard.devstack import DevStack, free_port
from costguard.throttle.reserve import Reserver, ReserveRequest
from costguard.v1 import throttle_pb2, throttle_pb2_grpc
from tests.processes import ServiceProcess

CALLS_PER_CALLER = 400
CONCURRENCY = (16, 64)
# Check and the no-op take turns, in this many rounds each (of CALLS_PER_CALLER / ROUNDS
# calls per caller): on a shared machine, load from elsewhere then weighs on both alike.
ROUNDS = 2


async def _drive(
    concurrency: int, call: Callable[[int], Awaitable[object]], calls: int = CALLS_PER_CALLER
) -> tuple[float, list[float]]:
    """``concurrency`` callers, each making ``calls`` calls back to back."""
    latencies: list[float] = []

    async def caller(n: int) -> None:
        for i in range(calls):
            started = time.perf_counter()
            await call(n * calls + i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _rate_line(rate: float, latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return f"{rate:>8,.0f}/s  p50 {p50:5.2f} ms  p99 {p99:5.2f} ms"


def _request(i: int) -> throttle_pb2.CheckRequest:
    return throttle_pb2.CheckRequest(
        user_id=f"user-{i % 500}",
        tier=("free", "pro", "enterprise")[i % 3],
        domain="audio",
        est_cpu_ms=50,
    )


async def _script_calls(redis: Redis) -> int:
    """Script calls Redis has served so far (EVALSHA, and EVAL when a script is loaded)."""
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


Rates = dict[int, tuple[float, list[float]]]
Ask = Callable[[throttle_pb2.CheckRequest], Awaitable[object]]


def _asking(stub: Ask) -> Callable[[int], Awaitable[object]]:
    return lambda i: stub(_request(i))


async def _grpc_rates(
    check_target: str, noop_target: str, redis: Redis
) -> tuple[Rates, Rates, dict[int, float]]:
    """Rates and latencies of Check and of the no-op per concurrency, the two taking turns,
    and the Redis script calls Check made per call."""
    checks: Rates = {}
    noops: Rates = {}
    round_trips = {}
    async with (
        aio.insecure_channel(check_target) as check_channel,
        aio.insecure_channel(noop_target) as noop_channel,
    ):
        check = throttle_pb2_grpc.ThrottleServiceStub(check_channel).Check
        noop = throttle_pb2_grpc.ThrottleServiceStub(noop_channel).Check
        await check(_request(0))  # warm the connections
        await noop(_request(0))
        for concurrency in CONCURRENCY:
            elapsed = {"check": 0.0, "noop": 0.0}
            latencies: dict[str, list[float]] = {"check": [], "noop": []}
            script_calls = 0
            for _ in range(ROUNDS):
                for name, stub in (("check", check), ("noop", noop)):
                    before = await _script_calls(redis)
                    rate, lat = await _drive(concurrency, _asking(stub), CALLS_PER_CALLER // ROUNDS)
                    if name == "check":
                        script_calls += await _script_calls(redis) - before
                    elapsed[name] += len(lat) / rate
                    latencies[name] += lat
            checks[concurrency] = (len(latencies["check"]) / elapsed["check"], latencies["check"])
            noops[concurrency] = (len(latencies["noop"]) / elapsed["noop"], latencies["noop"])
            round_trips[concurrency] = script_calls / len(latencies["check"])
    return checks, noops, round_trips


async def _bare_evalsha(url: str) -> float:
    redis = Redis.from_url(url, decode_responses=True)
    reserver = Reserver(redis)
    day = datetime.now(UTC).date()
    await redis.set(built_key(day), "1")
    caps = [[-1, 10**15, -1, -1, -1], [-1] * 5, [-1] * 5]

    async def once(i: int) -> object:
        return await reserver.check(
            day=day,
            request=ReserveRequest(
                scope_keys=[
                    global_key(day),
                    tier_key(day, "pro"),
                    user_key(day, f"user-{i % 500}"),
                ],
                caps=caps,
                estimate=[1, 50, 0, 0, 1000],
                limit=1.0,
                reservation_id=f"bench-{i}",
                now_ms=int(time.time() * 1000),
                ttl_ms=600_000,
            ),
        )

    rate, _ = await _drive(16, once)
    await redis.aclose()
    return rate


async def _limits_moving_window(url: str) -> float:
    storage = RedisStorage(url.replace("redis://", "async+redis://"), implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerDay(10**9)

    async def once(i: int) -> object:
        return await limiter.hit(item, f"user-{i % 500}")

    rate, _ = await _drive(16, once)
    return rate


async def run(stack: DevStack) -> None:
    conn = await asyncpg.connect(stack.postgres.dsn)
    await conn.execute(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap) VALUES ('global', 1e12, 1e9, 1e12, 1e12)"
    )
    await conn.close()
    port = free_port()
    throttle = ServiceProcess(
        "costguard.throttle",
        {
            "DATABASE_URL": stack.postgres.dsn,
            "REDIS_URL": stack.redis.url,
            "GRPC_LISTEN": f"127.0.0.1:{port}",
        },
    )
    await throttle.start()
    await throttle.wait_for_log("serving")
    noop_port = free_port()
    noop = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.noop_throttle", str(noop_port), stdout=asyncio.subprocess.PIPE
    )
    assert noop.stdout is not None
    await noop.stdout.readline()
    redis = Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        assert throttle.process is not None
        noop_before = cpu_seconds(noop.pid)
        (checks, noops, round_trips), cpu = await measure_cpu(
            stack,
            throttle.process.pid,
            _grpc_rates(f"127.0.0.1:{port}", f"127.0.0.1:{noop_port}", redis),
        )
        noop_cpu = cpu_seconds(noop.pid) - noop_before
        evalsha = await _bare_evalsha(stack.redis.url)
        moving_window = await _limits_moving_window(stack.redis.url)
    finally:
        await redis.aclose()
        noop.terminate()
        await noop.wait()
        await throttle.terminate()
    rows = []
    for concurrency in CONCURRENCY:
        rate, lat = checks[concurrency]
        noop_rate, noop_lat = noops[concurrency]
        rows += [
            (f"Check, {concurrency} callers", _rate_line(rate, lat)),
            (f"  Redis round trips per Check ({concurrency})", f"{round_trips[concurrency]:.2f}"),
            (f"no-op handler, {concurrency} callers", _rate_line(noop_rate, noop_lat)),
            (f"  Check / no-op ({concurrency})", f"{rate / noop_rate:.2f}  (goal >= 0.70)"),
        ]
        figure(
            f"check_vs_noop_{concurrency}",
            rate,
            "checks/s",
            baseline=noop_rate,
            goal=">= 0.7",
        )
    rate16 = checks[16][0]
    rows += [
        ("bare EVALSHA reserve, 16 tasks", f"{evalsha:>8,.0f}/s"),
        ("limits moving window, 16 tasks", f"{moving_window:>8,.0f}/s"),
        ("  Check(16) / limits", f"{rate16 / moving_window:.2f}  (goal > 1)"),
        ("  Check(16) p99", f"{percentile(checks[16][1], 99):.2f} ms  (goal < 5 ms)"),
    ]
    check_p99, noop_p99 = percentile(checks[16][1], 99), percentile(noops[16][1], 99)
    rows.append(("  Check(16) p99 / no-op(16) p99", f"{check_p99 / noop_p99:.2f}  (goal <= 1.50)"))
    answered = sum(len(latencies) for _, latencies in checks.values())
    noop_calls = sum(len(latencies) for _, latencies in noops.values())
    # The client's CPU is one process's for both kinds of call, alike per call.
    client = cpu.client / (answered + noop_calls)
    check_cost = client + (cpu.service + cpu.redis) / answered
    noop_cost = client + noop_cpu / noop_calls
    rows += [
        ("CPU per 1,000 Checks: throttle / Postgres / Redis", cpu.per_thousand(answered)),
        ("  Checks per core: throttle", f"{answered / cpu.service:,.0f} per CPU-second"),
        ("  no-op handler's CPU per 1,000 calls", f"{1e6 * noop_cpu / noop_calls:.1f} ms"),
        ("  the client's (this process) CPU per 1,000 calls", f"{1e6 * client:.1f} ms"),
        (
            "  Check / no-op with every core busy, at this CPU per call",
            f"{noop_cost / check_cost:.2f}",
        ),
        ("  Checks per core: Redis", f"{answered / cpu.redis:,.0f} per CPU-second"),
    ]
    figure("check_p99_vs_noop_p99_16", check_p99, "ms", baseline=noop_p99, goal="<= 1.5")
    report(f"throttle Check ({CALLS_PER_CALLER} calls per caller)", rows)


def main() -> None:
    with bench_stack() as stack:
        asyncio.run(run(stack))


if __name__ == "__main__":
    main()
