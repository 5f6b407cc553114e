"""The telemetry client from threads and from code with no event loop at all.

Threads emit at once into one client; a sync program's events are shipped by the client's
own background thread; one client serves two ``asyncio.run`` loops in turn. Each event
is read back from Postgres through the real telemetry service, counted once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import asyncpg
import pytest

from costguard.sdk import TelemetryClient
from costguard.sdk._spill import SpillFolder
from tests.events import job
from tests.processes import poll_until

ROOT = Path(__file__).resolve().parents[1]
THREADS = 8
PER_THREAD = 2_500


async def stored_ids(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT event_id::text AS id FROM telemetry_job_events")
    return [row["id"] for row in rows]


def emit_from_threads(client: TelemetryClient, ids: list[list[str]]) -> None:
    """Each thread emits its own ids; all start together, none has an event loop."""
    start = threading.Barrier(len(ids))

    def emitter(mine: list[str]) -> None:
        start.wait()
        for event_id in mine:
            client.emit(job(event_id=event_id))

    threads = [threading.Thread(target=emitter, args=(mine,)) for mine in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("max_buffer", [20_000, 700], ids=["buffered", "spilling"])
async def test_threads_emitting_at_once_store_every_event_once(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path, max_buffer: int
) -> None:
    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path, max_buffer=max_buffer)
    ids = [[str(uuid.uuid4()) for _ in range(PER_THREAD)] for _ in range(THREADS)]
    await asyncio.to_thread(emit_from_threads, client, ids)
    assert await asyncio.to_thread(client.flush_blocking, 60)

    everything = sorted(event_id for mine in ids for event_id in mine)
    assert sorted(await stored_ids(db)) == everything  # each once: event_id is unique
    stats = client.stats
    assert stats.accepted == THREADS * PER_THREAD
    assert stats.dropped == 0
    assert stats.sent + stats.spilled == stats.accepted
    assert stats.replayed == stats.spilled
    assert stats.stored == stats.accepted
    assert stats.stored + stats.duplicate + stats.rejected == stats.sent + stats.replayed
    if max_buffer < THREADS * PER_THREAD:
        assert stats.spilled > 0  # the threads filled the buffer faster than it was sent
    assert client.buffered == 0
    assert SpillFolder(tmp_path).pending() == []
    await client.close()


def _sync_program(target: str, spill: Path, ids: list[str]) -> str:
    """A program with no event loop: it emits, says so, and waits for its stdin to close."""
    return textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from costguard.sdk import TelemetryClient
        from tests.events import job

        client = TelemetryClient({target!r}, spill_dir=Path({str(spill)!r}))
        for event_id in {ids!r}:
            client.emit(job(event_id=event_id))
        print("emitted", flush=True)
        sys.stdin.read()  # no flush, no close: the background thread ships meanwhile
        """
    )


async def test_a_sync_program_is_shipped_by_the_background_thread_without_a_flush(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _sync_program(telemetry_addr, tmp_path, ids),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert program.stdin is not None
        assert program.stdout is not None
        assert await program.stdout.readline() == b"emitted\n"

        async def all_stored() -> bool:
            return len(await stored_ids(db)) == len(ids)

        await poll_until(all_stored)
        assert program.returncode is None  # stored while it still runs: not at its exit
        program.stdin.close()
        await program.wait()
    finally:
        if program.returncode is None:
            program.kill()
            await program.wait()
    assert program.returncode == 0
    assert sorted(await stored_ids(db)) == sorted(ids)
    assert SpillFolder(tmp_path).pending() == []


async def test_a_sync_program_that_exits_at_once_loses_nothing(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    program = textwrap.dedent(
        f"""
        from pathlib import Path
        from costguard.sdk import TelemetryClient
        from tests.events import job

        client = TelemetryClient({telemetry_addr!r}, spill_dir=Path({str(tmp_path)!r}))
        for event_id in {ids!r}:
            client.emit(job(event_id=event_id))
        # exits now: the background thread gets to deliver before it is stopped
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", program, cwd=ROOT)
    assert await child.wait() == 0
    assert sorted(await stored_ids(db)) == sorted(ids)  # answered before it exited
    assert SpillFolder(tmp_path).pending() == []


def two_runs(
    client: TelemetryClient, first: list[str], unflushed: list[str], second: list[str]
) -> bool:
    """Two ``asyncio.run`` in turn on this thread; the answer of the second one's flush."""

    async def run_one() -> None:
        for event_id in first:
            client.emit(job(event_id=event_id))
        assert await client.flush(timeout_s=30)
        for event_id in unflushed:  # left to the shipper, which asyncio.run then cancels
            client.emit(job(event_id=event_id))

    async def run_two() -> bool:
        for event_id in second:
            client.emit(job(event_id=event_id))
        return await client.flush(timeout_s=30)

    asyncio.run(run_one())
    return asyncio.run(run_two())


async def test_one_client_serves_two_asyncio_runs_in_turn(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path)
    first, unflushed, second = ([str(uuid.uuid4()) for _ in range(n)] for n in (10, 5, 10))
    # A grpc.aio channel works only on the loop that made it: the second run needs its own.
    assert await asyncio.to_thread(two_runs, client, first, unflushed, second)
    assert sorted(await stored_ids(db)) == sorted(first + unflushed + second)
    assert client.stats.sent == 25
    assert client.stats.send_failures == 0
    await client.close()


async def test_a_worker_threads_emit_wakes_the_shipper_on_the_main_loop(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    # An hour between timed sends: only a wake-up makes this shipper send.
    client = TelemetryClient(
        telemetry_addr, spill_dir=tmp_path, batch_size=10, flush_interval_s=3600
    )
    client.emit(job())  # starts the shipper on this loop

    def emit_ten() -> None:
        for _ in range(10):
            client.emit(job())

    await asyncio.to_thread(emit_ten)  # the buffer reaches a batch: the thread wakes it

    async def all_stored() -> bool:
        return len(await stored_ids(db)) == 11

    await poll_until(all_stored)
    assert await client.flush()  # the reply may still be on its way to the shipper
    assert client.stats.sent == 11
    await client.close()


async def test_flush_blocking_on_an_event_loop_thread_warns_instead_of_deadlocking(
    telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = TelemetryClient(telemetry_addr, spill_dir=tmp_path)
    client.emit(job())
    with caplog.at_level(logging.WARNING, logger="costguard.sdk._client"):
        assert client.flush_blocking(5) is False
    assert [r.getMessage() for r in caplog.records] == [
        "flush_blocking() called on an event loop's thread: use await flush()"
    ]
    assert await client.flush()  # what the warning says to do
    assert len(await stored_ids(db)) == 1
    await client.close()


async def test_a_flush_that_times_out_leaves_nothing_in_flight(tmp_path: Path) -> None:
    # A "service" that takes the connection and never answers: a send hangs until cancelled.
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client = TelemetryClient(f"127.0.0.1:{port}", spill_dir=tmp_path, timeout_s=3600, batch_size=10)
    ids = [str(uuid.uuid4()) for _ in range(30)]

    def emit_all() -> None:
        for event_id in ids:
            client.emit(job(event_id=event_id))

    await asyncio.to_thread(emit_all)  # no loop on that thread: the background one ships

    async def shipper_sending() -> bool:
        return bool(client._in_flight)  # some or all of them: the rest wait in the buffer

    await poll_until(shipper_sending)
    assert not await asyncio.to_thread(client.flush_blocking, 0.5)
    assert client.buffered == 0  # the shipper's send was called back, then spilled
    spilled = [
        event.job.event_id
        for path in SpillFolder(tmp_path).pending()
        for request in SpillFolder.read(path)
        for event in request.events
    ]
    assert sorted(spilled) == sorted(ids)
    assert client.stats.spilled == 30
    await client.close(timeout_s=0.1)
    silent.close()
    for writer in connections:
        writer.close()
    await silent.wait_closed()
