"""The SDK never loses or doubles an event: buffer, retries, spill to disk, replay, exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from costguard.common.migrate import migrate_up
from costguard.devstack import DevStack, LocalPostgres, free_port
from costguard.sdk import TelemetryClient
from costguard.sdk._spill import SpillFolder
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from tests.events import job
from tests.processes import ServiceProcess, poll_until


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


async def _stored(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(DISTINCT event_id) FROM telemetry_job_events"))


async def test_a_full_buffer_spills_to_disk_and_is_replayed(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    offline = TelemetryClient(nowhere, max_buffer=10, spill_dir=tmp_path, timeout_s=0.5)
    for _ in range(25):
        offline.emit(job())
    assert offline.stats.spilled == 20  # two full buffers went to disk, and it says so
    await offline.close(timeout_s=0.3)  # the last 5 cannot be sent either
    assert offline.stats.spilled == 25
    assert len(_files(tmp_path, "*.spill")) == 3

    online = TelemetryClient(telemetry_addr, spill_dir=tmp_path)
    assert await online.flush()
    await online.close()
    assert online.stats.replayed == 25
    assert await _stored(db) == 25
    assert _files(tmp_path, "*") == []


async def test_a_long_outage_spills_and_the_next_success_replays(
    db: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    client = TelemetryClient(
        f"127.0.0.1:{port}", spill_after_s=0.2, spill_dir=tmp_path, timeout_s=0.5, max_backoff_s=0.2
    )
    for _ in range(30):
        client.emit(job())
    assert not await client.flush(timeout_s=0.5)  # nobody listens: spilled, not lost
    assert client.stats.spilled == 30

    server = await build_server(
        TelemetryConfig.from_env({**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"})
    )
    await server.start()
    try:
        client.emit(job())
        assert await client.flush()
        await client.close()
    finally:
        await server.stop()
    assert client.stats.accepted == 31
    # The new event may be spilled too while the channel reconnects; all come back.
    assert client.stats.replayed == client.stats.spilled >= 30
    assert await _stored(db) == 31


async def test_killed_mid_stream_and_restarted_ends_with_each_event_once(
    db: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"}
    service = await ServiceProcess("costguard.telemetry", env).start()
    await service.wait_for_log("serving")
    client = TelemetryClient(
        f"127.0.0.1:{port}",
        batch_size=250,
        max_buffer=100_000,
        spill_dir=tmp_path,
        max_backoff_s=0.2,
    )
    total = 20_000
    try:
        for _ in range(total):
            client.emit(job())

        # Kill it once some batches of the stream are stored but not all.
        async def partly_stored() -> bool:
            return 0 < await _stored(db) < total

        await poll_until(partly_stored)
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)
        await service.process.wait()
        stored_at_kill = await _stored(db)
        restarted = await ServiceProcess("costguard.telemetry", env).start()
        await restarted.wait_for_log("serving")
        try:
            assert await client.flush(timeout_s=60)
            await client.close()
        finally:
            assert await restarted.terminate() == 0
    finally:
        await service.kill()
    assert 0 < stored_at_kill < total
    assert await db.fetchval("SELECT count(*) FROM telemetry_job_events") == total
    assert await _stored(db) == total
    assert client.stats.accepted + client.stats.duplicate >= total
    assert client.stats.spilled == 0


@pytest.fixture
async def own_postgres(
    stack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalPostgres]:
    """A Postgres of its own: this test stops it, which the others must never see."""
    root = tmp_path_factory.mktemp("outage")
    root.chmod(0o755)
    postgres = LocalPostgres(Path(str(root)) / "pg", durable=False)
    await asyncio.to_thread(postgres.start)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await migrate_up(conn)
    finally:
        await conn.close()
    yield postgres
    await asyncio.to_thread(postgres.stop)


async def test_postgres_down_for_ten_seconds_loses_nothing(
    own_postgres: LocalPostgres, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "DATABASE_URL": own_postgres.dsn}
    server = await build_server(TelemetryConfig.from_env(env))
    port = await server.start()
    client = TelemetryClient(f"127.0.0.1:{port}", spill_dir=tmp_path, max_backoff_s=0.5)
    sent = 0
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        stopped_at: float | None = None
        # The SDK keeps sending while Postgres is stopped for 10 seconds, then restarted.
        while loop.time() - started < 13:
            client.emit(job())
            sent += 1
            elapsed = loop.time() - started
            if stopped_at is None and elapsed >= 1:
                await asyncio.to_thread(own_postgres.stop)
                stopped_at = loop.time()
            elif stopped_at is not None and loop.time() - stopped_at >= 10 and elapsed < 12.5:
                await asyncio.to_thread(own_postgres.start)
                stopped_at = float("inf")
            await asyncio.sleep(0.02)  # the application's own pace of work
        assert await client.flush(timeout_s=30)
        await client.close()
    finally:
        await server.stop()
    conn = await asyncpg.connect(own_postgres.dsn)
    try:
        stored = await conn.fetchval("SELECT count(DISTINCT event_id) FROM telemetry_job_events")
    finally:
        await conn.close()
    assert stored == sent
    assert client.stats.send_failures > 0  # the outage was real


def _script(target: str, spill: Path, count: int) -> str:
    return textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from costguard.sdk import TelemetryClient
        from tests.events import job

        async def main():
            client = TelemetryClient(
                {target!r}, spill_dir=Path({str(spill)!r}), flush_interval_s=3600
            )
            for _ in range({count}):
                client.emit(job())
            # no close(): the interpreter's exit must not lose these

        asyncio.run(main())
        """
    )


def _run(script: str) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", script], check=True, cwd=root, timeout=60, env={**os.environ}
    )


async def test_interpreter_exit_sends_what_is_buffered(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    await asyncio.to_thread(_run, _script(telemetry_addr, tmp_path, 12))
    assert await _stored(db) == 12
    assert _files(tmp_path, "*.spill") == []


async def test_interpreter_exit_spills_when_the_service_is_gone(tmp_path: Path) -> None:
    await asyncio.to_thread(_run, _script(f"127.0.0.1:{free_port()}", tmp_path, 7))
    (spilled,) = _files(tmp_path, "*.spill")
    assert sum(len(r.events) for r in SpillFolder.read(spilled)) == 7
