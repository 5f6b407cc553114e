"""The durable journal: in durable mode an event is on disk before ``record_*`` returns.

Segment files ``<time_ns>-<n>-<pid>.seg`` in the journal folder are append-only runs of
records: a 4-byte length, a 4-byte CRC-32 of the payload, and one serialized
``TelemetryEvent``. Each record goes to the kernel in one ``os.write`` before
``append`` returns, so a process killed with SIGKILL loses none of them; a background
thread fdatasyncs the segments every ``fsync_interval_s``, so a power loss or a kernel
crash loses at most that window. A segment is deleted once every event in it has been
answered by the service or written to a spill file.

The writer holds an exclusive ``flock`` on each of its segments. A segment nobody holds
belongs to a process that died (the kernel drops the lock of a killed process, and a
reused PID cannot fool it), so the next client that opens the folder turns its records
into a spill file, replayed like any other, and deletes it. Events that were already
delivered are sent again and the service stores each ``event_id`` once. A torn last
record (the process died inside ``os.write``, or the disk lost the unsynced tail) fails
its length or CRC check and ends the segment.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from costguard.sdk._spill import SpillFolder
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
_SUFFIX = ".seg"
_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass
class _Segment:
    number: int
    path: Path
    fd: int
    written: int = 0
    outstanding: int = 0


class Journal:
    """Append-only segments of accepted events; see the module docstring."""

    def __init__(
        self, folder: Path, *, fsync_interval_s: float = 0.05, segment_events: int = 4096
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._fsync_interval_s = fsync_interval_s
        self._segment_events = segment_events
        self._numbers = itertools.count(1)
        self._segments: dict[int, _Segment] = {}
        self._active: _Segment | None = None
        # The syncer thread alone closes segment fds (``_closing``), so an fd it syncs
        # can never be closed, and its number reused, under it.
        self._lock = threading.Lock()
        self._closing: list[int] = []
        self._dirty = False
        self._files_opened = 0
        self._files_synced = 0
        self._stop = threading.Event()
        self._syncer = threading.Thread(
            target=self._sync_forever, name="costguard-journal-sync", daemon=True
        )
        self._syncer.start()

    def append(self, event: telemetry_pb2.TelemetryEvent) -> int:
        """Write one event; return the number of the segment that holds it.

        Raises ``OSError`` when the disk refuses; the event is then not journaled.
        """
        data = event.SerializeToString()
        record = _HEADER.pack(len(data), zlib.crc32(data)) + data
        segment = self._active if self._active is not None else self._open()
        try:
            written = os.write(segment.fd, record)
            if written != len(record):  # a short write: rare, but the rest must follow
                _write_all(segment.fd, memoryview(record)[written:])
        except OSError:
            # Part of the record may be on disk: nothing may follow it in this segment.
            self._seal(segment)
            raise
        segment.written += 1
        segment.outstanding += 1
        self._dirty = True
        if segment.written >= self._segment_events:
            self._seal(segment)
        return segment.number

    def release(self, numbers: Iterable[int]) -> None:
        """These events were answered or spilled: a segment with none left is deleted."""
        for number, count in Counter(numbers).items():
            segment = self._segments.get(number)
            if segment is None:
                continue
            segment.outstanding -= count
            if segment.outstanding <= 0:
                self._retire(segment)

    def close(self) -> None:
        """Sync and close; segments with events still outstanding stay for the next start."""
        self._stop.set()
        self._syncer.join()
        with self._lock:
            self._closing += [segment.fd for segment in self._segments.values()]
            self._segments.clear()
        self._active = None
        self._sync_once()

    def recover_orphans(self, spill: SpillFolder, batch_size: int) -> int:
        """Move the records of segments no live process holds into spill files.

        Returns how many events were recovered.
        """
        recovered = 0
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process recovered it first
            try:
                if not _lock_if_orphaned(fd, path):
                    continue
                data = os.pread(fd, os.fstat(fd).st_size, 0)
                events, torn = _complete_records(data)
                if events:
                    spill.write(events, batch_size)
                path.unlink()
            except OSError:
                # Left in place, whole: the next client to start tries again.
                log.exception("telemetry journal could not be recovered", extra={"path": str(path)})
                continue
            finally:
                os.close(fd)
            recovered += len(events)
            log.warning(
                "telemetry journal of a process that died: replaying its events",
                extra={"path": str(path), "events": len(events), "torn_bytes": torn},
            )
        return recovered

    def _open(self) -> _Segment:
        number = next(self._numbers)
        path = self.folder / f"{time.time_ns()}-{number}-{os.getpid()}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = _Segment(number, path, fd)
        with self._lock:
            self._segments[number] = segment
        self._active = segment
        self._files_opened += 1
        return segment

    def _seal(self, segment: _Segment) -> None:
        """No more writes to this segment; it is deleted once its events are answered."""
        if self._active is segment:
            self._active = None
        if segment.outstanding <= 0:
            self._retire(segment)

    def _retire(self, segment: _Segment) -> None:
        if self._active is segment:
            self._active = None  # the next append starts a fresh, empty segment
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        with self._lock:
            self._segments.pop(segment.number, None)
            self._closing.append(segment.fd)

    def _sync_forever(self) -> None:
        while not self._stop.wait(self._fsync_interval_s):
            try:
                self._sync_once()
            except OSError:
                log.exception("telemetry journal could not be synced")

    def _sync_once(self) -> None:
        opened = self._files_opened
        if not (self._dirty or self._closing or opened != self._files_synced):
            return
        self._dirty = False  # a write from here on is synced now or in the next round
        with self._lock:
            closing, self._closing = self._closing, []
            syncing = [segment.fd for segment in self._segments.values()]
        try:
            for fd in syncing + closing:
                _datasync(fd)
        finally:
            for fd in closing:
                os.close(fd)
        if opened != self._files_synced:
            folder = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(folder)  # the new segments' names survive a power loss too
            finally:
                os.close(folder)
            self._files_synced = opened


def _lock_if_orphaned(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its writer is alive (this process or another)
    # Another recoverer may have unlinked the file between our open and our lock.
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _complete_records(data: bytes) -> tuple[list[telemetry_pb2.TelemetryEvent], int]:
    """The events whose records are whole, and how many bytes after them are not."""
    events: list[telemetry_pb2.TelemetryEvent] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        payload = data[offset + _HEADER.size : end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        try:
            events.append(telemetry_pb2.TelemetryEvent.FromString(payload))
        except DecodeError:
            break
        offset = end
    return events, len(data) - offset
