"""The telemetry client: buffers events in memory and ships them in batches over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import grpc
from grpc import aio

from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger(__name__)


class TelemetryClient:
    """Ships :class:`~costguard.v1.telemetry_pb2.TelemetryEvent` messages to the service.

    ``emit`` never blocks and never raises: events wait in a bounded buffer and a
    background task sends them in batches. ``flush`` sends what is buffered now.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        timeout_s: float = 10.0,
    ) -> None:
        self._channel = aio.insecure_channel(target)
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._buffer: deque[telemetry_pb2.TelemetryEvent] = deque()
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._timeout_s = timeout_s
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.rejected = 0

    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        self._buffer.append(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ship_forever())
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    async def _ship_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval_s)
            self._wakeup.clear()
            try:
                await self.flush()
            except grpc.RpcError as exc:
                log.warning("telemetry shipping failed; will retry", extra={"error": str(exc)})

    async def flush(self) -> None:
        """Send everything buffered now. Events stay buffered when the send fails."""
        async with self._lock:
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
                reply = await self._stub.Record(
                    telemetry_pb2.RecordRequest(events=batch),
                    metadata=self._metadata,
                    timeout=self._timeout_s,
                )
                for _ in batch:
                    self._buffer.popleft()
                self.rejected += reply.rejected
                for rejection in reply.rejections:
                    log.warning(
                        "telemetry event rejected",
                        extra={"field": rejection.field, "reason": rejection.reason},
                    )

    async def close(self) -> None:
        """Flush and close the channel."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await self.flush()
        finally:
            await self._channel.close()
