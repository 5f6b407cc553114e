"""The SDK's accounting, with a send we hold open: every accepted event ends up sent once.

A fake ``_send`` stands in for the network so that the order of events (a spill while a
batch is in flight, a spill while a file is replayed) is fixed, not left to timing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from grpc import aio

from costguard.devstack import free_port
from costguard.sdk import TelemetryClient
from costguard.sdk._spill import SpillFolder
from costguard.v1 import telemetry_pb2
from tests.events import job


class HeldSend(TelemetryClient):
    """A client whose sends are recorded, and can be held open or failed, in order."""

    def __init__(self, spill_dir: Path, *, batch_size: int = 500, max_buffer: int = 20_000) -> None:
        super().__init__(
            f"127.0.0.1:{free_port()}",
            spill_dir=spill_dir,
            flush_interval_s=3600,
            batch_size=batch_size,
            max_buffer=max_buffer,
        )
        self.delivered: list[str] = []
        self.calls = 0
        self.hold_call: int | None = None  # this call (1-based) waits for ``release``
        self.fail_call: int | None = None  # this call fails, after its hold if any
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def _send(
        self, events: Sequence[telemetry_pb2.TelemetryEvent]
    ) -> telemetry_pb2.RecordResponse:
        self.calls += 1
        call = self.calls
        if call == self.hold_call:
            self.held.set()
            await self.release.wait()
        if call == self.fail_call:
            raise aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, details="service restarting")
        self.delivered += [event.job.event_id for event in events]
        return telemetry_pb2.RecordResponse(accepted=len(events))


def _spilled_ids(folder: Path) -> list[str]:
    return [
        event.job.event_id
        for path in SpillFolder(folder).pending()
        for request in SpillFolder.read(path)
        for event in request.events
    ]


def _emit(client: TelemetryClient, count: int) -> list[str]:
    events = [job() for _ in range(count)]
    for event in events:
        client.emit(event)
    return [event.job.event_id for event in events]


async def test_a_spill_during_a_send_keeps_every_event_exactly_once(tmp_path: Path) -> None:
    # The first batch (all 100 buffered events) is in flight while 150 more arrive: the
    # buffer fills and spills. The spill must hold only the newer events, and the send's
    # return must remove exactly the events it sent.
    client = HeldSend(tmp_path, batch_size=10, max_buffer=100)
    client.hold_call = 1
    first = _emit(client, 100)
    await client.held.wait()
    assert client.buffered == 100  # all in flight
    later = _emit(client, 150)
    assert client.stats.spilled == 100
    assert sorted(_spilled_ids(tmp_path)) == sorted(later[:100])  # none of the in-flight
    client.release.set()

    assert await client.flush(timeout_s=10)
    assert Counter(client.delivered) == Counter(first + later)  # each exactly once
    assert client.stats.accepted == 250
    assert client.stats.sent + client.stats.spilled == 250
    assert client.stats.replayed == client.stats.spilled == 100
    assert client.stats.dropped == 0
    assert SpillFolder(tmp_path).pending() == []
    await client.close()


async def test_a_failed_batch_goes_back_whole_while_newer_events_spill(tmp_path: Path) -> None:
    client = HeldSend(tmp_path, batch_size=10, max_buffer=50)
    client.hold_call = 1
    client.fail_call = 1
    first = _emit(client, 50)
    await client.held.wait()
    later = _emit(client, 80)  # 50 spill, 30 stay buffered behind the in-flight batch
    client.release.set()

    assert await client.flush(timeout_s=10)
    assert Counter(client.delivered) == Counter(first + later)
    assert client.stats.send_failures == 1
    assert client.stats.sent == 80
    assert client.stats.spilled == client.stats.replayed == 50
    await client.close()


async def test_flush_is_true_only_once_a_spill_made_during_a_replay_is_sent(
    tmp_path: Path,
) -> None:
    earlier = [job() for _ in range(5)]
    SpillFolder(tmp_path).write(earlier, 10)  # from an earlier run
    client = HeldSend(tmp_path, batch_size=10, max_buffer=20)
    client.hold_call = 1  # the replay of the earlier file
    flushing = asyncio.create_task(client.flush(timeout_s=10))
    await client.held.wait()
    during = _emit(client, 25)  # the buffer fills while the replay waits: a new file
    assert client.stats.spilled == 20
    client.release.set()

    assert await flushing
    assert SpillFolder(tmp_path).pending() == []
    expected = [event.job.event_id for event in earlier] + during
    assert Counter(client.delivered) == Counter(expected)
    await client.close()


async def test_close_mid_send_gives_the_batch_back_and_delivers_it(tmp_path: Path) -> None:
    client = HeldSend(tmp_path, batch_size=10, max_buffer=1000)
    client.hold_call = 1
    ids = _emit(client, 40)
    await client.held.wait()  # the shipper holds 40 in flight; close() cancels it
    await client.close(timeout_s=5)
    assert sorted(client.delivered) == sorted(ids)
    assert client.buffered == 0


async def test_spilling_is_logged_at_most_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = TelemetryClient(f"127.0.0.1:{free_port()}", max_buffer=10, spill_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="costguard.sdk._client"):
        _emit(client, 61)  # six full buffers
    assert client.stats.spilled == 60
    spills = [r for r in caplog.records if r.getMessage() == "telemetry events spilled to disk"]
    assert len(spills) == 1
    assert len(SpillFolder(tmp_path).pending()) == 6
    client._buffer.clear()  # not to be sent at exit: nothing listens


async def test_a_full_buffer_that_cannot_spill_drops_and_counts_without_raising(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("the spill folder cannot be made under a file")
    client = TelemetryClient(f"127.0.0.1:{free_port()}", max_buffer=10, spill_dir=blocked / "x")
    _emit(client, 15)
    assert client.stats.accepted == 10
    assert client.stats.dropped == 5
    assert client.stats.spilled == 0
    client._buffer.clear()


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


async def test_a_half_written_spill_file_is_recovered_on_the_next_replay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A writer died inside write(): two whole records, then half of a third.
    whole = [job() for _ in range(6)]
    records = [
        telemetry_pb2.RecordRequest(events=whole[i : i + 3]).SerializeToString() for i in (0, 3)
    ]
    torn = telemetry_pb2.RecordRequest(events=[job(), job()]).SerializeToString()
    data = b"".join(struct.pack(">I", len(r)) + r for r in records)
    data += struct.pack(">I", len(torn)) + torn[: len(torn) // 2]
    pid = _dead_pid()
    (tmp_path / f".1-000001-{pid}.partial").write_bytes(data)
    (tmp_path / f".2-000002-{pid}.partial").write_bytes(b"\x00\x00")  # nothing whole

    client = HeldSend(tmp_path, batch_size=10)
    with caplog.at_level(logging.WARNING, logger="costguard.sdk._spill"):
        assert await client.flush(timeout_s=10)
    assert sorted(client.delivered) == sorted(e.job.event_id for e in whole)
    assert client.stats.recovered == 6
    assert sorted(os.listdir(tmp_path)) == []
    warned = [r for r in caplog.records if "half-written" in r.getMessage()]
    assert len(warned) == 2
    await client.close()


async def test_files_left_by_an_earlier_process_with_the_same_pid_are_replayed(
    tmp_path: Path,
) -> None:
    # Every run of a container's PID 1 has the same PID as the run that was killed.
    claimed_events = [job() for _ in range(4)]
    spilled = SpillFolder(tmp_path).write(claimed_events, 10)
    spilled.rename(spilled.with_name(f"{spilled.name}.claimed-{os.getpid()}.0000dead"))
    partial_events = [job() for _ in range(3)]
    record = telemetry_pb2.RecordRequest(events=partial_events).SerializeToString()
    partial = tmp_path / f".9-000009-{os.getpid()}.0000dead.partial"
    partial.write_bytes(struct.pack(">I", len(record)) + record)

    client = HeldSend(tmp_path, batch_size=10)
    assert await client.flush(timeout_s=10)
    expected = [event.job.event_id for event in claimed_events + partial_events]
    assert sorted(client.delivered) == sorted(expected)
    assert sorted(os.listdir(tmp_path)) == []
    await client.close()
