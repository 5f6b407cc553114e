"""The SDK never loses or doubles an event: buffer, retries, spill to disk, replay, exit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg

from costguard.devstack import free_port
from costguard.sdk import TelemetryClient
from costguard.sdk._spill import SpillFolder
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from tests.events import job


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
    assert client.stats.stored == 31
    # The new event may be spilled too while the channel reconnects; all come back.
    assert client.stats.replayed == client.stats.spilled >= 30
    assert await _stored(db) == 31


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
