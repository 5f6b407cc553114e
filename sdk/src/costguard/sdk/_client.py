"""The telemetry client: a bounded in-memory buffer shipped in batches over gRPC.

``emit`` never blocks on the network and never raises. Every event it accepts is, at
every moment, in exactly one place: the memory buffer, the one batch in flight, a
complete spill file on disk, or answered by the service. A background task takes a batch
off the front of the buffer and sends it (one ``Record`` call, or a ``RecordStream`` of
several batches), retrying with exponential back-off; a batch that fails goes back to
the front of the buffer whole. When the service has been unreachable for
``spill_after_s``, or the buffer is full, what is buffered (never what is in flight)
goes to the spill folder (``stats.spilled`` counts it) and is replayed once the service
answers again, by this process or the next one. Every event carries its own
``event_id``, so a retry or a replay never stores an event twice.

In durable mode each accepted event is also appended to a journal segment on disk
before ``emit`` returns (see ``_journal``), so a process killed with SIGKILL loses
nothing it accepted: the next client to open the folder replays what was not answered.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc import aio

from costguard.sdk._journal import Journal
from costguard.sdk._request_id import forget_request_id, with_request_id
from costguard.sdk._spill import SpillFolder, default_spill_dir
from costguard.sdk._stats import ClientStats, Throttled
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger(__name__)

# Codes after which the same events may succeed later. Anything else (a bad token, say)
# will not heal by retrying: those events go to disk at once, and an error is logged.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
_BATCHES_PER_STREAM = 20
_JITTER = random.SystemRandom()

# A buffered event and the journal segment that holds it (0 when not journaled).
_Entry = tuple[telemetry_pb2.TelemetryEvent, int]


class TelemetryClient:
    """Ships telemetry events to the telemetry service; see the module docstring.

    ``durable=True`` journals each event to ``journal_dir`` (default: ``journal`` inside
    the spill folder) before ``emit`` returns, fsynced every ``fsync_interval_s``.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        batch_size: int = 500,
        max_buffer: int = 20_000,
        flush_interval_s: float = 0.2,
        spill_after_s: float = 30.0,
        spill_dir: Path | None = None,
        timeout_s: float = 10.0,
        max_backoff_s: float = 5.0,
        durable: bool = False,
        journal_dir: Path | None = None,
        fsync_interval_s: float = 0.05,
    ) -> None:
        self._target = target
        self._channel = aio.insecure_channel(target)
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._buffer: deque[_Entry] = deque()
        self._in_flight: list[_Entry] = []
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._flush_interval_s = flush_interval_s
        self._spill_after_s = spill_after_s
        self._timeout_s = timeout_s
        self._max_backoff_s = max_backoff_s
        self._spill = SpillFolder(spill_dir or default_spill_dir())
        self._spill_pending = True  # files from an earlier run may be waiting
        self._unreachable_since: float | None = None
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = ClientStats()
        self._spilling = Throttled(log, logging.WARNING, "telemetry events spilled to disk")
        self._dropping = Throttled(log, logging.ERROR, "telemetry events dropped: disk refused")
        self._spill_failing = Throttled(log, logging.ERROR, "telemetry spill failed")
        self._journal_failing = Throttled(log, logging.ERROR, "telemetry journal write failed")
        self._journal: Journal | None = None
        if durable:
            self._journal = Journal(
                journal_dir or self._spill.path / "journal", fsync_interval_s=fsync_interval_s
            )
            self.stats.recovered += self._journal.recover_orphans(self._spill, batch_size)
        atexit.register(self._at_exit)

    @property
    def buffered(self) -> int:
        """Events in memory: waiting in the buffer or in the batch being sent."""
        return len(self._buffer) + len(self._in_flight)

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        """Queue one event for shipping. Never blocks on the network, never raises."""
        try:
            if self._closed:
                self._accept(event, journal=False)
                self._spill_buffer("the client is closed")
                return
            if len(self._buffer) >= self._max_buffer and not self._spill_buffer(
                "the buffer is full"
            ):
                self.stats.dropped += 1
                self._dropping.note(1, buffered=len(self._buffer))
                return
            self._accept(event, journal=True)
        except Exception:
            self.stats.dropped += 1
            log.exception("telemetry event could not be queued")
            return
        try:
            self._ensure_shipper()
            if len(self._buffer) >= self._batch_size:
                self._wakeup.set()
        except Exception:
            log.exception("telemetry shipper could not be started")

    def _accept(self, event: telemetry_pb2.TelemetryEvent, *, journal: bool) -> None:
        segment = 0
        if journal and self._journal is not None:
            try:
                segment = self._journal.append(event)
            except OSError as exc:
                # Still accepted, in memory only: the caller must never see telemetry fail.
                self.stats.journal_failures += 1
                self._journal_failing.note(1, error=repr(exc))
        self._buffer.append((event, segment))
        self.stats.accepted += 1

    def _ensure_shipper(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the events wait for flush(), close() or exit
        self._task = loop.create_task(self._ship_forever())

    def _spill_buffer(self, why: str) -> bool:
        """Write the buffer (never the batch in flight) to a spill file; False if refused."""
        if not self._buffer:
            return True
        entries = list(self._buffer)
        try:
            path = self._spill.write([event for event, _ in entries], self._batch_size)
        except OSError as exc:
            self._spill_failing.note(len(entries), error=repr(exc), why=why)
            return False
        self._buffer.clear()
        self._spill_pending = True
        self.stats.spilled += len(entries)
        self._answered(entries)  # safe in the spill file: the journal may let go of them
        self._spilling.note(len(entries), why=why, path=str(path))
        return True

    def _answered(self, entries: Sequence[_Entry]) -> None:
        if self._journal is not None:
            self._journal.release(segment for _, segment in entries)

    def _count(self, reply: telemetry_pb2.RecordResponse) -> None:
        self.stats.stored += reply.accepted
        self.stats.duplicate += reply.duplicate
        self.stats.rejected += reply.rejected
        for rejection in reply.rejections:
            log.warning(
                "telemetry event rejected",
                extra={
                    "event_id": rejection.event_id,
                    "field": rejection.field,
                    "reason": rejection.reason,
                },
            )

    async def _send(
        self, events: Sequence[telemetry_pb2.TelemetryEvent]
    ) -> telemetry_pb2.RecordResponse:
        batches = [
            telemetry_pb2.RecordRequest(events=events[i : i + self._batch_size])
            for i in range(0, len(events), self._batch_size)
        ]
        if len(batches) == 1:
            return await self._stub.Record(
                batches[0], metadata=with_request_id(self._metadata), timeout=self._timeout_s
            )
        return await self._stub.RecordStream(
            iter(batches), metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def _deliver_buffer(self) -> bool:
        """Send what is buffered; False when the service could not be reached."""
        async with self._lock:
            while self._buffer:
                count = min(len(self._buffer), self._batch_size * _BATCHES_PER_STREAM)
                batch = [self._buffer.popleft() for _ in range(count)]
                self._in_flight = batch
                try:
                    reply = await self._send([event for event, _ in batch])
                except BaseException as exc:
                    # Back to the front, whole: a spill meanwhile took only newer events.
                    self._buffer.extendleft(reversed(batch))
                    self._in_flight = []
                    if isinstance(exc, grpc.RpcError):
                        return self._after_failure(exc)
                    raise
                self._in_flight = []
                self.stats.sent += len(batch)
                self._answered(batch)
                self._unreachable_since = None
                self._count(reply)
            return True

    def _after_failure(self, exc: grpc.RpcError) -> bool:
        self.stats.send_failures += 1
        code = exc.code() if isinstance(exc, aio.AioRpcError) else grpc.StatusCode.UNKNOWN
        if code not in _RETRYABLE:
            log.error("telemetry service refused the events", extra={"code": code.name})
            self._spill_buffer(f"the service answered {code.name}")
            return False
        now = time.monotonic()
        self._unreachable_since = self._unreachable_since or now
        if now - self._unreachable_since >= self._spill_after_s:
            self._spill_buffer(f"the service was unreachable for {self._spill_after_s:g}s")
        return False

    async def _replay_spilled(self) -> bool:
        """Send spilled files; False when the service could not take them (yet)."""
        if not self._spill_pending:
            return True
        async with self._lock:  # one replayer at a time: flush() and the shipper share it
            # Cleared before listing: a spill made while we replay sets it again.
            self._spill_pending = False
            try:
                self._spill.reclaim_orphans()
                self.stats.recovered += self._spill.recover_partials()
                for path in self._spill.pending():
                    if not await self._replay_file(path):
                        self._spill_pending = True
                        return False
            except BaseException:
                self._spill_pending = True
                raise
            return True

    async def _replay_file(self, path: Path) -> bool:
        claimed = self._spill.claim(path)
        if claimed is None:
            return True  # another process took it
        try:
            requests = SpillFolder.read(claimed)
        except (OSError, ValueError):
            aside = self._spill.set_aside(claimed)
            log.exception("telemetry spill file unreadable, set aside", extra={"path": str(aside)})
            return True
        replies = []
        try:
            for request in requests:
                replies.append(await self._send(request.events))
        except BaseException as exc:  # failed or cancelled mid-file: give it back whole
            self._spill.release(claimed)
            if isinstance(exc, grpc.RpcError):
                self.stats.send_failures += 1
                return False
            raise
        claimed.unlink()
        # Counted once the whole file is answered: a file sent again after a failure
        # mid-way must not count its first part twice.
        for reply in replies:
            self._count(reply)
        self.stats.replayed += sum(len(request.events) for request in requests)
        return True

    async def _ship_forever(self) -> None:
        # This task's context was copied from whichever caller emitted first: its request id
        # would tag every later batch. Batches mix requests; the service names each one.
        forget_request_id()
        backoff = 0.1
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval_s):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                if await self._deliver_buffer() and await self._replay_spilled():
                    backoff = 0.1
                    continue
            except Exception:
                log.exception("telemetry shipping failed")
            # Back off before the next attempt, with jitter so that clients spread out.
            await asyncio.sleep(backoff * _JITTER.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff_s)

    def _idle(self) -> bool:
        """Nothing buffered, in flight, spilled or being replayed by this client."""
        return not (self._buffer or self._in_flight or self._spill_pending or self._lock.locked())

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything buffered now, retrying for up to ``timeout_s``.

        Returns True when nothing is left: the service answered every event (stored,
        duplicate or rejected), spilled ones included. Otherwise what is left is written
        to the spill folder for a later replay, and False.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        backoff = 0.05
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    if await self._deliver_buffer() and await self._replay_spilled():
                        if self._idle():
                            return True
                        continue  # more arrived, or the shipper holds the lock: go again
                    await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                    backoff = min(backoff * 2, self._max_backoff_s)
        except TimeoutError:
            pass
        self._spill_buffer("flush timed out")
        return False

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush (spilling what cannot be sent within ``timeout_s``) and close the channel."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush(timeout_s)
        finally:
            await self._channel.close()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        """Interpreter exit: one synchronous attempt to send, else spill to disk."""
        # A batch is still in flight only if its event loop was abandoned mid-send.
        entries = [*self._in_flight, *self._buffer]
        self._in_flight = []
        self._buffer.clear()
        sent = 0
        try:
            if entries:
                with grpc.insecure_channel(self._target) as channel:
                    stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                    for start in range(0, len(entries), self._batch_size):
                        chunk = entries[start : start + self._batch_size]
                        reply = stub.Record(
                            telemetry_pb2.RecordRequest(events=[event for event, _ in chunk]),
                            metadata=self._metadata,
                            timeout=2.0,
                        )
                        sent += len(chunk)
                        self.stats.sent += len(chunk)
                        self._answered(chunk)
                        self._count(reply)
        except Exception:
            self._buffer.extend(entries[sent:])
            self._spill_buffer("the interpreter is exiting")
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
