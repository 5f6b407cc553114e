"""The spill folder: events that could not be shipped in time wait here on disk.

A spill file is a sequence of length-prefixed ``RecordRequest`` messages, written to a
temporary ``.partial`` name, fsynced and renamed into place, so a reader never sees half
a file. A client claims a file by renaming it before replaying it, so two processes
sharing the folder do not both send it (and if they did, the service would store each
event once anyway: every event carries its ``event_id``). A writer that dies mid-write
leaves its ``.partial`` file behind; the next client to replay keeps its complete
records and removes the rest, with a warning.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import DecodeError

from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_SUFFIX = ".spill"
_PARTIAL = ".partial"


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
        """Write events as batches to a new spill file; return its path.

        Raises ``OSError`` (disk full, no permission) with nothing left behind.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        # time_ns keeps files in spill order; the counter keeps two spills of one
        # process within a clock tick apart.
        name = f"{time.time_ns()}-{next(_SEQUENCE):06d}-{_owner()}"
        partial = self.path / f".{name}{_PARTIAL}"
        try:
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
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return final

    def pending(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob(f"*{_SUFFIX}"))

    def claim(self, path: Path) -> Path | None:
        """Rename a spill file so this process owns it; None if another one took it."""
        claimed = path.with_name(f"{path.name}.claimed-{_owner()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            return None
        return claimed

    def release(self, claimed: Path) -> None:
        """Give a claimed file back (its replay failed), to be tried again later."""
        original = claimed.name.rsplit(".claimed-", 1)[0]
        claimed.rename(claimed.with_name(original))

    def set_aside(self, claimed: Path) -> Path:
        """A file that does not parse: keep it for a human, out of the replay's way."""
        original = claimed.name.rsplit(".claimed-", 1)[0]
        corrupt = claimed.with_name(f"{original}.corrupt")
        claimed.rename(corrupt)
        return corrupt

    def reclaim_orphans(self) -> None:
        """Put back files claimed by processes that no longer run."""
        if not self.path.is_dir():
            return
        for claimed in self.path.glob(f"*{_SUFFIX}.claimed-*"):
            if _orphaned(claimed.name.rsplit(".claimed-", 1)[1]):
                self.release(claimed)

    def recover_partials(self) -> int:
        """Files whose writer died mid-write: keep their complete records, drop the rest.

        Returns how many events were recovered into spill files.
        """
        if not self.path.is_dir():
            return 0
        recovered = 0
        for partial in self.path.glob(f".*{_PARTIAL}"):
            if not _orphaned(partial.name[: -len(_PARTIAL)].rsplit("-", 1)[1]):
                continue  # still being written
            requests, torn = _complete_records(partial.read_bytes())
            events = [event for request in requests for event in request.events]
            if events:
                self.write(events, max(len(r.events) for r in requests))
            partial.unlink()
            recovered += len(events)
            log.warning(
                "telemetry spill file left half-written by a process that died",
                extra={"path": str(partial), "recovered": len(events), "torn_bytes": torn},
            )
        return recovered

    @staticmethod
    def read(path: Path) -> list[telemetry_pb2.RecordRequest]:
        """Every batch of a complete spill file; ``ValueError`` when it does not parse."""
        requests, torn = _complete_records(path.read_bytes())
        if torn:
            raise ValueError(f"{path.name}: {torn} bytes after the last complete record")
        return requests


def _complete_records(data: bytes) -> tuple[list[telemetry_pb2.RecordRequest], int]:
    """The records that parse, and how many bytes after them do not."""
    requests: list[telemetry_pb2.RecordRequest] = []
    offset = 0
    while offset + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + _LENGTH.size + length
        if end > len(data):
            break
        try:
            requests.append(
                telemetry_pb2.RecordRequest.FromString(data[offset + _LENGTH.size : end])
            )
        except DecodeError:
            break
        offset = end
    return requests, len(data) - offset


_SEQUENCE = itertools.count(1)


class _Owner:
    """This process's name on the files it writes and claims: its PID and a random tag.

    The PID alone cannot tell a file of this process from one left by an earlier process
    that had the same PID, as every run of a container's PID 1 does.
    """

    pid = 0
    name = ""


def _owner() -> str:
    if _Owner.pid != os.getpid():  # first use, or a forked child
        _Owner.pid = os.getpid()
        _Owner.name = f"{_Owner.pid}.{secrets.token_hex(4)}"
    return _Owner.name


def _orphaned(owner: str) -> bool:
    """True when the process named by ``owner`` (``<pid>.<tag>``, or a bare PID) is gone."""
    if owner == _owner():
        return False
    pid_text = owner.split(".", 1)[0]
    if not (pid_text.isascii() and pid_text.isdigit()):
        return False  # not a name we write: leave the file alone
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier process with this PID
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
