"""costguard against a real three-master Redis Cluster: every Redis use, through the services.

The services run as processes with ``REDIS_URL=redis+cluster://...`` naming one node. Each
Lua script and MULTI/EXEC they send must name keys of one slot, or the cluster client refuses
it (``all keys must map to the same key slot``) and the RPC fails; the figures read back
through a cluster client show that the counters, reservations, queue and sessions live there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from grpc import aio
from redis.asyncio.cluster import RedisCluster
from redis.typing import ClusterNodeDetail

from costguard.common.counters import (
    LiveCounters,
    built_key,
    global_key,
    index_key,
    reservation_data_key,
    reservations_key,
    tier_key,
    user_key,
)
from costguard.common.redis import create_redis
from costguard.devstack import DevStack, LocalRedisCluster, free_port
from costguard.gateway.auth import hash_token
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc, throttle_pb2, throttle_pb2_grpc
from tests.events import job, llm
from tests.processes import ServiceProcess, run_to_exit

ALLOW, DEFER = (throttle_pb2.Action.Value(n) for n in ("ALLOW", "DEFER"))
SLOTS = 16384
NO_CAP = 2**63 - 1
FREE_CPU_CAP = 10_000
ADMIN = "cluster-admin-token"
QUEUE_KEYS = ("seq", "tiers", "ready:free", "ready:pro", "leased", "credit", "job:j-1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    running = LocalRedisCluster(Path(str(tmp_path_factory.mktemp("redis-cluster"))))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def cluster_redis(cluster: LocalRedisCluster) -> AsyncIterator[RedisCluster]:
    client = create_redis(cluster.url)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture
async def cluster_env(
    db: asyncpg.Pool,
    cluster: LocalRedisCluster,
    cluster_redis: RedisCluster,
    service_env: dict[str, str],
) -> dict[str, str]:
    """A clean database (``db``) and cluster, and the services' environment naming it."""
    await cluster_redis.flushall()  # every master's keys
    return {**service_env, "REDIS_URL": cluster.url}


async def _serving(module: str, env: dict[str, str]) -> tuple[ServiceProcess, aio.Channel]:
    port = free_port()
    service = await ServiceProcess(module, {**env, "GRPC_LISTEN": f"127.0.0.1:{port}"}).start()
    try:
        await service.wait_for_log("serving")
    except BaseException:
        await service.kill()
        raise
    return service, aio.insecure_channel(f"127.0.0.1:{port}")


class Services:
    def __init__(self, telemetry: aio.Channel, throttle: aio.Channel) -> None:
        self.telemetry = telemetry_pb2_grpc.TelemetryServiceStub(telemetry)
        self.throttle = throttle_pb2_grpc.ThrottleServiceStub(throttle)


@pytest.fixture
async def services(cluster_env: dict[str, str], db: asyncpg.Pool) -> AsyncIterator[Services]:
    """Telemetry and the throttle as processes on the cluster; the free tier may use 10,000
    CPU ms a day (written before the throttle starts, so it loads it at once)."""
    await db.execute(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap) VALUES ('free', $1, $2, $2, $2)",
        FREE_CPU_CAP,
        NO_CAP,
    )
    telemetry, telemetry_channel = await _serving("costguard.telemetry", cluster_env)
    try:
        throttle, throttle_channel = await _serving("costguard.throttle", cluster_env)
        try:
            yield Services(telemetry_channel, throttle_channel)
            await throttle_channel.close()
            assert await throttle.terminate() == 0
        finally:
            await throttle.kill()
        await telemetry_channel.close()
        assert await telemetry.terminate() == 0
    finally:
        await telemetry.kill()
    for entry in telemetry.logs + throttle.logs:  # a Redis error would be logged, not raised
        assert entry.get("level") not in ("WARNING", "ERROR"), entry


async def _stored_nusd(db: asyncpg.Pool, user: str) -> int:
    """The user's events' stored prices in whole nano-dollars, rounded per event."""
    total = await db.fetchval(
        "SELECT sum(n) FROM (SELECT round(cost_usd * 1000000000) AS n FROM telemetry_job_events "
        "WHERE user_id = $1 UNION ALL SELECT round(cost_usd * 1000000000) FROM "
        "telemetry_llm_events WHERE user_id = $1) AS priced",
        user,
    )
    return int(total)


def _slot_count(node: ClusterNodeDetail) -> int:
    ranges = node["slots"]
    assert isinstance(ranges, list)
    return sum(int(r[-1]) - int(r[0]) + 1 for r in ranges if isinstance(r, list))


def _master_of(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return node.name


def _today() -> date:
    return datetime.now(UTC).date()  # the services' day: COSTGUARD_TIMEZONE is UTC


async def test_the_masters_split_the_slots_and_each_day_keeps_to_one_slot(
    cluster: LocalRedisCluster, cluster_redis: RedisCluster
) -> None:
    owned = {
        name: _slot_count(node)
        for name, node in (await cluster_redis.cluster_nodes()).items()
        if "master" in str(node["flags"])
    }
    assert sorted(owned) == sorted(f"127.0.0.1:{port}" for port in cluster.ports)
    assert all(count > 0 for count in owned.values())
    assert sum(owned.values()) == SLOTS

    slot_of_day: dict[date, int] = {}
    days = [date(2026, 11, 25) + timedelta(days=i) for i in range(7)]
    for day in [*days, _today()]:
        keys = [
            global_key(day),
            tier_key(day, "free"),
            tier_key(day, "unattributed"),
            user_key(day, "ann"),
            user_key(day, "{odd}user"),  # a brace in a user id moves nothing
            index_key(day),
            built_key(day),
            reservations_key(day),
            reservation_data_key(day),
        ]
        slots = {await cluster_redis.cluster_keyslot(key) for key in keys}  # the server's CRC
        assert len(slots) == 1, (day, slots)
        slot_of_day[day] = slots.pop()
    assert len({slot_of_day[day] for day in days}) == len(days)  # a new day, a new slot
    masters = {_master_of(cluster_redis, global_key(day)) for day in days}
    assert len(masters) == 3  # days take turns on the masters; one day stays on one

    queue = {await cluster_redis.cluster_keyslot(f"cgq:{{default}}:{k}") for k in QUEUE_KEYS}
    assert len(queue) == 1


async def test_recorded_events_bump_the_cluster_counters_and_a_lost_day_is_rebuilt(
    services: Services, cluster_redis: RedisCluster, db: asyncpg.Pool
) -> None:
    events = [
        job(user_id="ann", tier="free", cpu_ms=1500, rows_read=300),
        job(user_id="bob", tier="pro", cpu_ms=250),
        llm(user_id="ann", tier="free", input_tokens=1000, output_tokens=200),
    ]
    reply = await services.telemetry.Record(telemetry_pb2.RecordRequest(events=events))
    assert (reply.accepted, reply.rejected) == (3, 0)

    day = _today()
    counters = LiveCounters(cluster_redis)
    ann, bob = await _stored_nusd(db, "ann"), await _stored_nusd(db, "bob")
    assert min(ann, bob) > 0
    ann_figures = {
        "jobs": 1,
        "cpu_ms": 1500,
        "tokens_in": 1000,
        "tokens_out": 200,
        "ai_calls": 1,
        "cost_nusd": ann,
    }
    bob_figures = {"jobs": 1, "cpu_ms": 250, "tokens_in": 0, "tokens_out": 0, "ai_calls": 0}
    bob_figures["cost_nusd"] = bob
    expected = {
        global_key(day): {**ann_figures, "jobs": 2, "cpu_ms": 1750, "cost_nusd": ann + bob},
        tier_key(day, "free"): ann_figures,
        user_key(day, "ann"): ann_figures,
        tier_key(day, "pro"): bob_figures,
        user_key(day, "bob"): bob_figures,
    }
    assert {key: await counters.read(key) for key in expected} == expected
    assert await cluster_redis.smembers(index_key(day)) == set(expected)

    await cluster_redis.flushall()  # Redis lost the day, on every master
    assert await cluster_redis.exists(global_key(day), built_key(day)) == 0
    check = throttle_pb2.CheckRequest(user_id="carl", tier="pro", est_cpu_ms=10)
    assert (await services.throttle.Check(check)).action == ALLOW  # decided after a rebuild
    assert {key: await counters.read(key) for key in expected} == expected
    assert await cluster_redis.get(built_key(day)) == "1"


async def test_the_throttle_reserves_defers_releases_and_settles_on_the_cluster(
    services: Services, cluster_redis: RedisCluster, db: asyncpg.Pool
) -> None:
    day = _today()
    scopes = [global_key(day), tier_key(day, "free"), user_key(day, "ann")]
    first = await services.throttle.Check(
        throttle_pb2.CheckRequest(user_id="ann", tier="free", est_cpu_ms=6_000)
    )
    assert (first.action, bool(first.reservation_id)) == (ALLOW, True)
    assert await cluster_redis.zscore(reservations_key(day), first.reservation_id) is not None
    assert [await cluster_redis.hget(key, "r_cpu_ms") for key in scopes] == ["6000"] * 3

    over = await services.throttle.Check(
        throttle_pb2.CheckRequest(user_id="bob", tier="free", est_cpu_ms=6_000)
    )
    assert (over.action, over.reservation_id) == (DEFER, "")
    assert "free cpu_ms" in over.reason

    # Release tries today and yesterday: two slots, so two script calls.
    released = await services.throttle.Release(
        throttle_pb2.ReleaseRequest(reservation_id=first.reservation_id)
    )
    assert released.released
    assert [await cluster_redis.hget(key, "r_cpu_ms") for key in scopes] == ["0"] * 3
    assert await cluster_redis.zscore(reservations_key(day), first.reservation_id) is None

    again = await services.throttle.Check(
        throttle_pb2.CheckRequest(user_id="bob", tier="free", est_cpu_ms=6_000)
    )
    assert again.action == ALLOW
    settled = job(user_id="bob", tier="free", cpu_ms=4_000, reservation_id=again.reservation_id)
    reply = await services.telemetry.Record(telemetry_pb2.RecordRequest(events=[settled]))
    assert reply.accepted == 1
    figures = await cluster_redis.hmget(tier_key(day, "free"), ["cpu_ms", "r_cpu_ms"])
    assert figures == ["4000", "0"]  # the estimate gave way to the actual use


async def test_the_deferral_queue_enqueues_and_hands_out_a_job_on_the_cluster(
    services: Services, cluster_redis: RedisCluster
) -> None:
    deferred = await services.throttle.Defer(
        throttle_pb2.DeferRequest(job_id="j-1", user_id="bob", tier="free", payload=b"\x00job")
    )
    job_key = f"cgq:{{default}}:job:{deferred.job_id}"
    assert await cluster_redis.hget(job_key, "tier") == "free"
    leased = await services.throttle.Lease(
        throttle_pb2.LeaseRequest(worker_id="w1", max_jobs=5, visibility_timeout_ms=60_000)
    )
    assert [(j.job_id, j.payload) for j in leased.jobs] == [("j-1", b"\x00job")]
    assert await cluster_redis.zcard("cgq:{default}:leased") == 1
    acked = await services.throttle.Ack(
        throttle_pb2.AckRequest(job_id="j-1", lease_token=leased.jobs[0].lease_token)
    )
    assert acked.acked
    assert await cluster_redis.exists(job_key) == 0
    assert await cluster_redis.zcard("cgq:{default}:leased") == 0


async def test_gateway_sessions_and_readiness_on_the_cluster(
    cluster_env: dict[str, str], cluster_redis: RedisCluster
) -> None:
    port = free_port()
    env = {
        **cluster_env,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "GATEWAY_SESSION_SECRET": "cluster-session-secret",
        "ALERT_DISPATCH_SECONDS": "3600",
    }
    gateway = await ServiceProcess("costguard.gateway", env).start()
    origin = {"Origin": f"http://127.0.0.1:{port}"}
    try:
        await gateway.wait_for_log("Application startup complete.")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = await client.get("/readyz")  # the services are not running: only Redis
            assert ready.json()["checks"]["redis"] == "ok"
            signed_in = await client.post(
                "/api/admin/session", json={"token": ADMIN}, headers=origin
            )
            assert signed_in.status_code == 200, signed_in.text
            # SCAN through a cluster client visits every master (KEYS would ask one node).
            (session,) = [key async for key in cluster_redis.scan_iter(match="cg:session:*")]
            assert (await client.get("/api/admin/cost/summary")).status_code == 200
            signed_out = await client.delete("/api/admin/session", headers=origin)
            assert signed_out.status_code == 200
            assert await cluster_redis.exists(session) == 0
            assert (await client.get("/api/admin/me")).status_code == 401
    finally:
        await gateway.kill()


async def test_the_throttle_answers_by_its_fail_policy_when_the_cluster_is_unreachable(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    # The probe at start-up would refuse this URL: build the server in-process to reach the
    # state of a cluster lost after start-up.
    env = {**service_env, "REDIS_URL": f"redis+cluster://127.0.0.1:{free_port()}"}
    app = await build(ThrottleConfig.from_env(env))
    port = await app.server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = throttle_pb2_grpc.ThrottleServiceStub(channel)
            replies = {
                tier: await stub.Check(throttle_pb2.CheckRequest(user_id="u", tier=tier))
                for tier in ("free", "pro")
            }
            assert {tier: r.action for tier, r in replies.items()} == {"free": DEFER, "pro": ALLOW}
            assert "Redis unreachable" in replies["free"].reason
            with pytest.raises(aio.AioRpcError) as failure:
                await stub.Release(throttle_pb2.ReleaseRequest(reservation_id="r-1"))
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.server.stop()


async def test_a_redis_url_of_the_wrong_kind_stops_a_service_with_one_line(
    cluster: LocalRedisCluster, stack: DevStack, service_env: dict[str, str]
) -> None:
    node = cluster.ports[1]
    cases = {
        f"redis://127.0.0.1:{node}/0": f"127.0.0.1:{node} is a Redis Cluster node: "
        "use redis+cluster://",
        f"redis+cluster://127.0.0.1:{stack.redis.port}": f"127.0.0.1:{stack.redis.port} is "
        "not a Redis Cluster node: use redis://",
    }
    outcomes = await asyncio.gather(
        *(run_to_exit("costguard.telemetry", {**service_env, "REDIS_URL": url}) for url in cases)
    )
    assert [(code, stderr.strip()) for code, stderr in outcomes] == [
        (2, f"costguard: REDIS_URL: {problem}") for problem in cases.values()
    ]


async def test_a_cluster_with_a_master_down_stops_a_service_at_start(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    own = LocalRedisCluster(tmp_path / "cluster")
    await asyncio.to_thread(own.start)
    try:
        startup, down = own.ports[0], own.ports[2]
        await asyncio.to_thread(own.stop_node, down)
        env = {**service_env, "REDIS_URL": own.url}
        code, stderr = await run_to_exit("costguard.throttle", env)
    finally:
        await asyncio.to_thread(own.stop)
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line.startswith(
        f"costguard: REDIS_URL: the Redis Cluster found at 127.0.0.1:{startup} is not usable: "
    )
    assert f"127.0.0.1:{down}" in line  # the master that did not answer
