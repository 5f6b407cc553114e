"""60,000 events through the SDK as fast as it takes them: every one stored, none twice.

An application records 50,000 jobs and 10,000 LLM calls through the public SDK in a tight
loop, yielding to its event loop every few records as an application's own awaits do,
so that the shipper sends while the buffer keeps filling (and spilling). The same load
runs against a healthy service, a slow one, one killed and restarted three times, and
one whose Postgres is stopped for ten seconds.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest

from costguard.devstack import LocalPostgres, free_port
from costguard.sdk import LlmCall, TelemetryClient, UserContext, job_telemetry, record_llm_event
from costguard.sdk._spill import SpillFolder
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from tests.processes import ServiceProcess, poll_until

JOBS = 50_000
LLM_CALLS = 10_000
TOTAL = JOBS + LLM_CALLS


async def record_load(
    client: TelemetryClient, *, yield_every: int, part: range = range(TOTAL)
) -> None:
    """Record the load (or the ``part`` of it with these indexes): one LLM call in six."""
    ctx = UserContext("load-user", "pro", domain="audio")
    call = LlmCall(llm_model="gpt-4o-mini", input_tokens=1000, output_tokens=200, user_ctx=ctx)
    for i in part:
        if i % 6 == 5:
            record_llm_event(call, client=client)
        else:
            async with job_telemetry("load", ctx, client=client):
                pass
        if i % yield_every == 0:
            await asyncio.sleep(0)  # the application awaiting its own work


async def stored(db: asyncpg.Pool | asyncpg.Connection) -> tuple[int, int]:
    jobs = await db.fetchval("SELECT count(*) FROM telemetry_job_events")
    calls = await db.fetchval("SELECT count(*) FROM telemetry_llm_events")
    return int(jobs), int(calls)


def assert_accounted(client: TelemetryClient) -> None:
    """Each accepted event was answered once from memory or from its own spill file."""
    stats = client.stats
    assert stats.accepted == TOTAL
    assert stats.dropped == 0
    assert stats.sent + stats.spilled == TOTAL
    assert stats.replayed == stats.spilled
    assert stats.stored + stats.duplicate + stats.rejected == stats.sent + stats.replayed
    assert stats.rejected == 0
    assert client.buffered == 0


@pytest.mark.parametrize("yield_every", [1, 50, 1000])
async def test_a_healthy_service_stores_all_60000(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path, yield_every: int
) -> None:
    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path)
    await record_load(client, yield_every=yield_every)
    assert await client.flush(timeout_s=60)
    await client.close()
    assert await stored(db) == (JOBS, LLM_CALLS)
    assert_accounted(client)
    assert client.stats.stored == TOTAL
    assert SpillFolder(tmp_path).pending() == []  # no spill file left behind


async def test_a_slow_service_fills_the_buffer_mid_send_and_stores_all_60000(
    slow_telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    client = TelemetryClient(slow_telemetry_addr, spill_dir=tmp_path)
    await record_load(client, yield_every=50)
    assert client.stats.spilled > 0  # the buffer did fill while sends were in flight
    assert await client.flush(timeout_s=90)
    await client.close()
    assert await stored(db) == (JOBS, LLM_CALLS)
    assert_accounted(client)
    assert client.stats.stored == TOTAL


async def test_a_service_killed_three_times_stores_all_60000_once(
    db: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"}
    service = await ServiceProcess("costguard.telemetry", env).start()
    await service.wait_for_log("serving")
    client = TelemetryClient(f"127.0.0.1:{port}", spill_dir=tmp_path, max_backoff_s=0.2)
    load = asyncio.create_task(record_load(client, yield_every=50))
    kills: list[int] = []
    try:
        for threshold in (10_000, 25_000, 40_000):

            async def reached(threshold: int = threshold) -> bool:
                return sum(await stored(db)) >= threshold

            await poll_until(reached, timeout_s=60)
            assert service.process is not None
            service.process.send_signal(signal.SIGKILL)
            await service.process.wait()
            kills.append(sum(await stored(db)))
            service = await ServiceProcess("costguard.telemetry", env).start()
            await service.wait_for_log("serving")
        await load
        assert await client.flush(timeout_s=90)
        await client.close()
    finally:
        load.cancel()
        await service.kill()
    assert all(count < TOTAL for count in kills)  # each kill left work undone
    assert await stored(db) == (JOBS, LLM_CALLS)
    assert_accounted(client)
    assert client.stats.send_failures > 0


async def test_postgres_stopped_for_ten_seconds_stores_all_60000(
    own_postgres: LocalPostgres, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "DATABASE_URL": own_postgres.dsn}
    server = await build_server(TelemetryConfig.from_env(env))
    port = await server.start()
    client = TelemetryClient(f"127.0.0.1:{port}", spill_dir=tmp_path, max_backoff_s=0.5)
    conn = await asyncpg.connect(own_postgres.dsn)
    loop = asyncio.get_running_loop()
    half = TOTAL // 2
    try:
        await record_load(client, yield_every=50, part=range(half))

        async def some_stored() -> bool:
            return sum(await stored(conn)) > 0

        await poll_until(some_stored)
        await conn.close()
        await asyncio.to_thread(own_postgres.stop)
        stopped_at = loop.time()
        # The application records the other half while Postgres is down.
        await record_load(client, yield_every=50, part=range(half, TOTAL))
        await asyncio.sleep(max(0.0, 10 - (loop.time() - stopped_at)))  # the outage itself
        held_back = TOTAL - client.stats.sent - client.stats.replayed
        await asyncio.to_thread(own_postgres.start)
        assert await client.flush(timeout_s=90)
        await client.close()
    finally:
        await server.stop()
    conn = await asyncpg.connect(own_postgres.dsn)
    try:
        assert await stored(conn) == (JOBS, LLM_CALLS)
    finally:
        await conn.close()
    assert held_back > 0  # the outage was real: what was recorded during it waited
    assert_accounted(client)
