"""The spill folder: events that could not be shipped in time wait here on disk.

A spill file is a sequence of length-prefixed ``RecordRequest`` messages, written to a
temporary name and renamed into place, so a reader never sees half a file. A client
claims a file by renaming it before replaying it, so two processes sharing the folder
do not both send it (and if they did, the service would store each event once anyway:
every event carries its ``event_id``).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_SUFFIX = ".spill"


def default_spill_dir() -> Path:
    configured = os.environ.get("COSTGUARD_SPILL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "costguard" / "spill"


class SpillFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, events: Sequence[telemetry_pb2.TelemetryEvent], batch_size: int) -> Path:
        """Write events as batches to a new spill file; return its path."""
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}"
        partial = self.path / f".{name}.partial"
        with partial.open("wb") as out:
            for start in range(0, len(events), batch_size):
                request = telemetry_pb2.RecordRequest(events=events[start : start + batch_size])
                data = request.SerializeToString()
                out.write(_LENGTH.pack(len(data)))
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        final = self.path / f"{name}{_SUFFIX}"
        partial.rename(final)
        return final

    def pending(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob(f"*{_SUFFIX}"))

    def claim(self, path: Path) -> Path | None:
        """Rename a spill file so this process owns it; None if another one took it."""
        claimed = path.with_name(f"{path.name}.claimed-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            return None
        return claimed

    def release(self, claimed: Path) -> None:
        """Give a claimed file back (its replay failed), to be tried again later."""
        original = claimed.name.rsplit(".claimed-", 1)[0]
        claimed.rename(claimed.with_name(original))

    def reclaim_orphans(self) -> None:
        """Put back files claimed by processes that no longer run."""
        if not self.path.is_dir():
            return
        for claimed in self.path.glob(f"*{_SUFFIX}.claimed-*"):
            pid = int(claimed.name.rsplit("-", 1)[1])
            if not _alive(pid):
                self.release(claimed)

    @staticmethod
    def read(path: Path) -> Iterator[telemetry_pb2.RecordRequest]:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            yield telemetry_pb2.RecordRequest.FromString(data[offset : offset + length])
            offset += length


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
