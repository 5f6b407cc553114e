"""Durable mode: what a process accepted survives its SIGKILL, and is stored exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
import uuid
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from costguard.common.counters import global_key
from costguard.devstack import free_port
from costguard.sdk import TelemetryClient, configure
from costguard.sdk._spill import SpillFolder
from tests.events import job
from tests.processes import poll_until

ROOT = Path(__file__).resolve().parents[1]
ACCEPTED = 20_000


def _sender(target: str, folder: Path, base: int, *, durable: bool) -> str:
    """A process that records ACCEPTED jobs with known ids, says so, then keeps sending."""
    return textwrap.dedent(
        f"""
        import asyncio, uuid
        from pathlib import Path
        from costguard.sdk import TelemetryClient
        from tests.events import job

        async def main():
            client = TelemetryClient(
                {target!r}, spill_dir=Path({str(folder)!r}), durable={durable!r}
            )
            for i in range({ACCEPTED}):
                client.emit(job(event_id=str(uuid.UUID(int={base} + i))))
            print("accepted", client.stats.accepted, flush=True)
            await asyncio.sleep(3600)  # the shipper sends until this process is killed

        asyncio.run(main())
        """
    )


def _replayer(target: str, folder: Path) -> str:
    """A second process with the same folder: it replays what the first left behind."""
    return textwrap.dedent(
        f"""
        import asyncio, dataclasses, json
        from pathlib import Path
        from costguard.sdk import TelemetryClient

        async def main():
            client = TelemetryClient(
                {target!r}, spill_dir=Path({str(folder)!r}), durable=True
            )
            delivered = await client.flush(timeout_s=60)
            await client.close()
            print(json.dumps({{"delivered": delivered, **dataclasses.asdict(client.stats)}}))

        asyncio.run(main())
        """
    )


async def _python(script: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )


async def _stored_ids(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT event_id::text AS id FROM telemetry_job_events")
    return [row["id"] for row in rows]


async def _kill_mid_send(target: str, folder: Path, db: asyncpg.Pool, *, durable: bool) -> int:
    """Run a sender, SIGKILL it once part of what it accepted is stored; the rows then."""
    base = uuid.uuid4().int >> 32 << 32
    sender = await _python(_sender(target, folder, base, durable=durable))
    try:
        assert sender.stdout is not None
        assert (await sender.stdout.readline()).split() == [b"accepted", str(ACCEPTED).encode()]

        async def partly_stored() -> bool:
            return 0 < len(await _stored_ids(db)) < ACCEPTED

        await poll_until(partly_stored)
        sender.send_signal(signal.SIGKILL)
    finally:
        if sender.returncode is None:
            sender.kill()
        await sender.wait()
    return base


async def test_sigkill_mid_send_in_durable_mode_loses_nothing_and_doubles_nothing(
    slow_telemetry_addr: str, db: asyncpg.Pool, redis_client: Redis, tmp_path: Path
) -> None:
    base = await _kill_mid_send(slow_telemetry_addr, tmp_path, db, durable=True)
    at_kill = len(await _stored_ids(db))
    assert 0 < at_kill < ACCEPTED

    replayer = await _python(_replayer(slow_telemetry_addr, tmp_path))
    out, _ = await replayer.communicate()
    assert replayer.returncode == 0
    stats = json.loads(out)
    assert stats["delivered"] is True

    expected = sorted(str(uuid.UUID(int=base + i)) for i in range(ACCEPTED))
    assert sorted(await _stored_ids(db)) == expected  # every accepted event, each once
    assert stats["recovered"] >= ACCEPTED - at_kill
    # What the first process had stored but not heard back about comes back a duplicate.
    assert stats["stored"] + stats["duplicate"] == stats["replayed"] >= ACCEPTED - at_kill
    assert stats["dropped"] == 0
    # The live counters were bumped once per stored event, replays included.
    days = await db.fetch(
        "SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS day FROM telemetry_job_events"
    )
    counted = [await redis_client.hget(global_key(row["day"]), "jobs") for row in days]
    assert sum(int(jobs or 0) for jobs in counted) == ACCEPTED
    assert list((tmp_path / "journal").iterdir()) == []
    assert SpillFolder(tmp_path).pending() == []


async def test_sigkill_in_the_default_mode_loses_what_was_in_memory(
    slow_telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    # The contrast the README states: without durable mode a SIGKILL loses the buffer.
    await _kill_mid_send(slow_telemetry_addr, tmp_path, db, durable=False)
    at_kill = len(await _stored_ids(db))
    replayer = await _python(_replayer(slow_telemetry_addr, tmp_path))
    out, _ = await replayer.communicate()
    assert json.loads(out)["recovered"] == 0
    assert at_kill <= len(await _stored_ids(db)) < ACCEPTED


async def test_a_torn_last_record_is_skipped_and_the_rest_replayed(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    dies = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from costguard.sdk import TelemetryClient
        from tests.events import job

        client = TelemetryClient(
            "127.0.0.1:{free_port()}", spill_dir=Path({str(tmp_path)!r}), durable=True
        )
        for event_id in {ids!r}:
            client.emit(job(event_id=event_id))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", dies, cwd=ROOT)
    assert await child.wait() == -signal.SIGKILL
    (segment,) = (tmp_path / "journal").glob("*.seg")
    with segment.open("ab") as out:  # the record it was writing when it died
        out.write(b"\x00\x00\x01\x00garbage")

    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path, durable=True)
    assert client.stats.recovered == 50
    assert await client.flush()
    await client.close()
    assert sorted(await _stored_ids(db)) == sorted(ids)
    assert list((tmp_path / "journal").iterdir()) == []


async def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    writer = TelemetryClient(nowhere, spill_dir=tmp_path, durable=True)
    for _ in range(10):
        writer.emit(job())
    segments = sorted((tmp_path / "journal").glob("*.seg"))
    assert len(segments) == 1

    neighbour = TelemetryClient(nowhere, spill_dir=tmp_path, durable=True)
    assert neighbour.stats.recovered == 0  # the writer still holds its segment
    assert sorted((tmp_path / "journal").glob("*.seg")) == segments
    await neighbour.close(timeout_s=0.1)
    await writer.close(timeout_s=0.1)  # cannot send: spilled, and the segment let go
    assert list((tmp_path / "journal").iterdir()) == []
    assert (
        sum(len(r.events) for p in SpillFolder(tmp_path).pending() for r in SpillFolder.read(p))
        == 10
    )


async def test_a_segment_is_deleted_once_its_events_are_answered(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path, durable=True)
    for _ in range(5_000):  # more than one segment's worth
        client.emit(job())
    assert len(list((tmp_path / "journal").glob("*.seg"))) == 2
    assert await client.flush()
    assert list((tmp_path / "journal").glob("*.seg")) == []  # while the client is open
    await client.close()
    assert len(await _stored_ids(db)) == 5_000


@pytest.mark.parametrize("value", ["yes", "2", "on"])
def test_a_malformed_durable_setting_fails_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTGUARD_DURABLE", value)
    with pytest.raises(ValueError, match="COSTGUARD_DURABLE"):
        configure()
