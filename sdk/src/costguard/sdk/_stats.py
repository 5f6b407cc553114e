"""What the telemetry client counts, and how it logs a condition that keeps recurring."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

_LOG_EVERY_S = 60.0


@dataclass
class ClientStats:
    """What happened to the events this client was given.

    ``accepted`` = ``sent`` + ``spilled`` + what is still in memory: each accepted event
    is either answered from memory or written to a spill file, once. ``replayed`` counts
    events sent from spill files (this client's, or another process's in the same
    folder), so after a clean ``flush`` of a folder of its own ``replayed == spilled``.
    The service's answers are split into ``stored``, ``duplicate`` (already stored: a
    retry or a replay) and ``rejected`` (invalid; logged with the reason).
    """

    accepted: int = 0
    sent: int = 0
    spilled: int = 0
    replayed: int = 0
    recovered: int = 0  # read back from journals or spill files of processes that died
    dropped: int = 0  # refused: the buffer was full and the spill folder refused them
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    send_failures: int = 0
    journal_failures: int = 0


class Throttled:
    """Log a recurring condition at most once per ``_LOG_EVERY_S``, with a running count."""

    def __init__(self, log: logging.Logger, level: int, message: str) -> None:
        self._log = log
        self._level = level
        self._message = message
        self._last = float("-inf")
        self._since = 0

    def note(self, count: int, **extra: object) -> None:
        self._since += count
        now = time.monotonic()
        if now - self._last < _LOG_EVERY_S:
            return
        self._log.log(self._level, self._message, extra={**extra, "events": self._since})
        self._last = now
        self._since = 0
