"""The telemetry client: a bounded in-memory buffer shipped in batches over gRPC.

``emit`` never blocks on the network and never raises. A background task sends what is
buffered in batches (one ``Record`` call, or a ``RecordStream`` of several batches),
retrying with exponential back-off. When the service has been unreachable for
``spill_after_s``, or the buffer is full, the buffered events go to the spill folder on
disk (``stats.spilled`` counts them) and are replayed once the service answers again,
by this process or the next one. Every event carries its own ``event_id``, so a retry or
a replay never stores an event twice.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from costguard.sdk._request_id import forget_request_id, with_request_id
from costguard.sdk._spill import SpillFolder, default_spill_dir
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


@dataclass
class ClientStats:
    """What happened to the events this client was given."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    spilled: int = 0
    replayed: int = 0
    send_failures: int = 0


class TelemetryClient:
    """Ships telemetry events to the telemetry service; see the module docstring."""

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
    ) -> None:
        self._target = target
        self._channel = aio.insecure_channel(target)
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._buffer: deque[telemetry_pb2.TelemetryEvent] = deque()
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
        atexit.register(self._at_exit)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        """Queue one event for shipping. Never blocks on the network, never raises."""
        try:
            if len(self._buffer) >= self._max_buffer:
                self._spill_buffer("the buffer is full")
            self._buffer.append(event)
            if self._closed:
                self._spill_buffer("the client is closed")
                return
            self._ensure_shipper()
            if len(self._buffer) >= self._batch_size:
                self._wakeup.set()
        except Exception:
            log.exception("telemetry event could not be queued")

    def _ensure_shipper(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the events wait for flush(), close() or exit
        self._task = loop.create_task(self._ship_forever())

    def _spill_buffer(self, why: str) -> None:
        if not self._buffer:
            return
        events = list(self._buffer)
        path = self._spill.write(events, self._batch_size)
        self._buffer.clear()
        self._spill_pending = True
        self.stats.spilled += len(events)
        log.warning(
            "telemetry events spilled to disk",
            extra={"events": len(events), "why": why, "path": str(path)},
        )

    def _count(self, reply: telemetry_pb2.RecordResponse) -> None:
        self.stats.accepted += reply.accepted
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
        self, events: list[telemetry_pb2.TelemetryEvent]
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
                events = [self._buffer[i] for i in range(count)]
                try:
                    reply = await self._send(events)
                except grpc.RpcError as exc:
                    return self._after_failure(exc)
                for _ in range(count):
                    self._buffer.popleft()
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
            self._spill.reclaim_orphans()
            for path in self._spill.pending():
                claimed = self._spill.claim(path)
                if claimed is None:
                    continue  # another process took it
                try:
                    for request in SpillFolder.read(claimed):
                        reply = await self._stub.Record(
                            request,
                            metadata=with_request_id(self._metadata),
                            timeout=self._timeout_s,
                        )
                        self._count(reply)
                        self.stats.replayed += len(request.events)
                except grpc.RpcError:
                    self._spill.release(claimed)
                    return False
                except BaseException:  # cancelled mid-file: give it back whole
                    self._spill.release(claimed)
                    raise
                claimed.unlink()
            self._spill_pending = False
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

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything buffered now, retrying for up to ``timeout_s``.

        Returns True when the service stored (or rejected) every event, spilled ones
        included; otherwise what is left waits on disk for a later replay, and False.
        """
        deadline = time.monotonic() + timeout_s
        backoff = 0.05
        while True:
            if await self._deliver_buffer() and await self._replay_spilled():
                return True
            if time.monotonic() + backoff >= deadline:
                self._spill_buffer("flush timed out")
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

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
            atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        """Interpreter exit: one synchronous attempt to send, else spill to disk."""
        if not self._buffer:
            return
        events = list(self._buffer)
        try:
            with grpc.insecure_channel(self._target) as channel:
                stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
                for i in range(0, len(events), self._batch_size):
                    stub.Record(
                        telemetry_pb2.RecordRequest(events=events[i : i + self._batch_size]),
                        metadata=self._metadata,
                        timeout=2.0,
                    )
                    for _ in range(min(self._batch_size, len(self._buffer))):
                        self._buffer.popleft()
        except Exception:
            self._spill_buffer("the interpreter is exiting")
