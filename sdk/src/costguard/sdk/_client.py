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

Any thread may emit. The shipper task runs on the event loop of the first caller that
had one running; a caller with none (a sync program, a worker thread) starts a daemon
thread with an event loop of its own, and the same shipper runs there: there is one
implementation of delivery, always async. One ``threading.Lock`` guards the buffer, the
batch in flight and the counters, and is never held across an await; deliveries (from
the shipper or a ``flush``, on whichever loop) take turns through a second lock held
across the send. A ``grpc.aio`` channel belongs to the loop that created it, so each loop
gets a channel of its own, made on its first send (a new one per ``asyncio.run``).

In durable mode each accepted event is also appended to a journal segment on disk
before ``emit`` returns (see ``_journal``), so a process killed with SIGKILL loses
nothing it accepted: the next client to open the folder replays what was not answered.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
_RECALL_S = 0.5  # how long a timed-out flush waits for the shipper's send to be cancelled
_FLUSH_GRACE_S = 1.0  # flush_blocking's wait beyond its timeout: that recall, and the spill
_EXIT_SEND_S = 2.0  # at interpreter exit, how long to try before spilling
# Channels to one target share their connections unless told otherwise: a channel given
# up for a dead connection must take its connection with it.
_CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)

# A buffered event and the journal segment that holds it (0 when not journaled).
_Entry = tuple[telemetry_pb2.TelemetryEvent, int]


class _DeliveryLock:
    """One delivery (a send from memory or a replay) at a time, across loops and threads.

    It is held across the send's awaits, so it can be neither an ``asyncio.Lock`` (bound
    to one loop) nor a blocking ``threading.Lock`` acquire (that would stall the waiter's
    loop). Waiters queue a future of their own loop; a release hands the lock to the first
    one, on its loop, with ``call_soon_threadsafe``. ``holder`` is the task holding it.
    """

    def __init__(self) -> None:
        # Reentrant: a task destroyed with its loop runs its except blocks in whichever
        # thread the garbage collector happens to run, perhaps one inside this lock.
        self._guard = threading.RLock()
        self._held = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self.holder: asyncio.Task[Any] | None = None

    def locked(self) -> bool:
        return self._held

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        with self._guard:
            if not self._held:
                self._held = True
                self.holder = asyncio.current_task()
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except BaseException:
            with self._guard:
                if (loop, waiter) in self._waiters:  # never handed over
                    self._waiters.remove((loop, waiter))
                    raise
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over, then this task was cancelled: pass it on
            raise  # (handed over to a cancelled waiter: _grant passes it on)
        self.holder = asyncio.current_task()

    async def __aexit__(self, *_: object) -> None:
        self.holder = None
        self._release()

    def _release(self) -> None:
        with self._guard:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                with contextlib.suppress(RuntimeError):  # its loop is closed: the next one
                    loop.call_soon_threadsafe(self._grant, waiter)
                    return  # still held: it now belongs to that waiter
            self._held = False

    def _grant(self, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():
            self._release()
        else:
            waiter.set_result(None)


@dataclass(eq=False)
class _Shipper:
    """The background shipping task and the loop it runs on."""

    loop: asyncio.AbstractEventLoop
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # The task (started on this thread's loop) or the future of one (started on the
    # background loop from another thread); ``task`` is set by the task once it runs.
    handle: asyncio.Task[None] | concurrent.futures.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    wake_scheduled: bool = False

    def alive(self) -> bool:
        """Running, or about to: a loop that stopped or closed ships nothing."""
        if self.handle is None or self.handle.done() or not self.loop.is_running():
            return False
        return self.task is None or not self.task.done()

    def wake(self) -> None:
        """Make the shipper send now; from any thread."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            self.wakeup.set()
        elif not self.wake_scheduled:  # one cross-thread call per wake, not one per emit
            self.wake_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self.wake_scheduled = False
        self.wakeup.set()


class _Background:
    """A daemon thread running an event loop of its own, for callers that have none."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        running = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(running,), name="costguard-telemetry", daemon=True
        )
        self._thread.start()
        if not running.wait(timeout=10):
            raise RuntimeError("the telemetry thread did not start")

    def _run(self, running: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(running.set)
        try:
            self.loop.run_forever()
        finally:
            # As asyncio.run does: a cancelled send puts its batch back in the buffer.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def alive(self) -> bool:
        return self._thread.is_alive() and self.loop.is_running()

    def stop(self, timeout_s: float) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)


@dataclass(frozen=True)
class _Link:
    """A channel and its stub, for the one event loop that may use them."""

    channel: aio.Channel
    stub: telemetry_pb2_grpc.TelemetryServiceAsyncStub


def _timed_out(exc: aio.AioRpcError) -> bool:
    return exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED


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
        self._links: dict[asyncio.AbstractEventLoop, _Link] = {}
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        # Guards the buffer, the batch in flight, the counters and the journal; never
        # held across an await.
        self._mutex = threading.Lock()
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
        self._delivery = _DeliveryLock()
        self._shipper: _Shipper | None = None
        self._background: _Background | None = None
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
        """Queue one event for shipping, from any thread. Never blocks on the network,
        never raises."""
        try:
            with self._mutex:
                queued = self._queue(event)
        except Exception:
            with self._mutex:
                self.stats.dropped += 1
            log.exception("telemetry event could not be queued")
            return
        if not queued:
            return
        try:
            shipper = self._ensure_shipper()
            if shipper is not None and len(self._buffer) >= self._batch_size:
                shipper.wake()
        except Exception:
            log.exception("telemetry shipper could not be started")

    def _queue(self, event: telemetry_pb2.TelemetryEvent) -> bool:
        """Take the event (mutex held); False when it needs no shipping (spilled, dropped)."""
        if self._closed:
            self._accept(event, journal=False)
            self._spill_buffer("the client is closed")
            return False
        if len(self._buffer) >= self._max_buffer and not self._spill_buffer("the buffer is full"):
            self.stats.dropped += 1
            self._dropping.note(1, buffered=len(self._buffer))
            return False
        self._accept(event, journal=True)
        return True

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

    def _ensure_shipper(self) -> _Shipper | None:
        """The live shipper; started on this thread's loop, else on the background one."""
        shipper = self._shipper
        if shipper is not None and shipper.alive():
            return shipper
        with self._mutex:  # two threads must not both start one
            shipper = self._shipper
            if self._closed:
                return None
            if shipper is not None and shipper.alive():
                return shipper
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a sync caller, or a worker thread
                loop = self._background_loop()
                shipper = _Shipper(loop)
                shipper.handle = asyncio.run_coroutine_threadsafe(self._ship_forever(shipper), loop)
            else:
                shipper = _Shipper(loop)
                shipper.handle = loop.create_task(self._ship_forever(shipper))
            self._shipper = shipper
            return shipper

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        """The background thread's loop, started if need be (mutex held)."""
        if self._background is None or not self._background.alive():
            self._background = _Background()
        return self._background.loop

    def _spill_buffer(self, why: str) -> bool:
        """Write the buffer (never the batch in flight) to a spill file; False if refused.

        Called with the mutex held.
        """
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
        """Called with the mutex held."""
        if self._journal is not None:
            self._journal.release(segment for _, segment in entries)

    def _count(self, reply: telemetry_pb2.RecordResponse) -> None:
        """Called with the mutex held."""
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

    def _link(self, loop: asyncio.AbstractEventLoop) -> _Link:
        """The running loop's own channel, made on its first use."""
        link = self._links.get(loop)
        if link is None:
            with self._mutex:
                for gone in [old for old in self._links if old.is_closed()]:
                    del self._links[gone]  # its loop is closed: the channel is garbage
                channel = aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
                link = self._links[loop] = _Link(
                    channel, telemetry_pb2_grpc.TelemetryServiceStub(channel)
                )
        return link

    def _forget(self, loop: asyncio.AbstractEventLoop, link: _Link) -> None:
        """Stop using a channel: the next send opens a new one (it closes when collected)."""
        with self._mutex:
            if self._links.get(loop) is link:
                del self._links[loop]

    async def _send(
        self, events: Sequence[telemetry_pb2.TelemetryEvent]
    ) -> telemetry_pb2.RecordResponse:
        batches = [
            telemetry_pb2.RecordRequest(events=events[i : i + self._batch_size])
            for i in range(0, len(events), self._batch_size)
        ]
        loop = asyncio.get_running_loop()
        link = self._link(loop)
        try:
            if len(batches) == 1:
                return await link.stub.Record(
                    batches[0], metadata=with_request_id(self._metadata), timeout=self._timeout_s
                )
            return await link.stub.RecordStream(
                iter(batches), metadata=with_request_id(self._metadata), timeout=self._timeout_s
            )
        except (asyncio.CancelledError, aio.AioRpcError) as exc:
            # A send that hung may be on a connection that died without a word (a process
            # thawed after a freeze, a NAT that forgot it): the next one starts afresh.
            if isinstance(exc, asyncio.CancelledError) or _timed_out(exc):
                self._forget(loop, link)
            raise

    async def _deliver_buffer(self) -> bool:
        """Send what is buffered; False when the service could not be reached."""
        async with self._delivery:
            while True:
                with self._mutex:
                    if self._in_flight:  # its loop was closed mid-send: it never came back
                        self._buffer.extendleft(reversed(self._in_flight))
                    if not self._buffer:
                        self._in_flight = []
                        return True
                    count = min(len(self._buffer), self._batch_size * _BATCHES_PER_STREAM)
                    batch = [self._buffer.popleft() for _ in range(count)]
                    self._in_flight = batch
                try:
                    reply = await self._send([event for event, _ in batch])
                except GeneratorExit:
                    # The task was destroyed with its loop, maybe on another thread holding
                    # the mutex: leave the batch in flight, for the next delivery to take.
                    raise
                except BaseException as exc:
                    with self._mutex:
                        # Back to the front, whole: a spill meanwhile took only newer events.
                        self._buffer.extendleft(reversed(batch))
                        self._in_flight = []
                        if isinstance(exc, grpc.RpcError):
                            return self._after_failure(exc)
                    raise
                with self._mutex:
                    self._in_flight = []
                    self.stats.sent += len(batch)
                    self._answered(batch)
                    self._unreachable_since = None
                    self._count(reply)

    def _after_failure(self, exc: grpc.RpcError) -> bool:
        """Called with the mutex held."""
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
        async with self._delivery:  # one replayer at a time: flush() and the shipper share it
            # Cleared before listing: a spill made while we replay sets it again.
            self._spill_pending = False
            try:
                self._spill.reclaim_orphans()
                recovered = self._spill.recover_partials()
                with self._mutex:
                    self.stats.recovered += recovered
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
                with self._mutex:
                    self.stats.send_failures += 1
                return False
            raise
        claimed.unlink()
        # Counted once the whole file is answered: a file sent again after a failure
        # mid-way must not count its first part twice.
        with self._mutex:
            for reply in replies:
                self._count(reply)
            self.stats.replayed += sum(len(request.events) for request in requests)
        return True

    async def _ship_forever(self, shipper: _Shipper) -> None:
        shipper.task = asyncio.current_task()
        # This task's context was copied from whichever caller emitted first: its request id
        # would tag every later batch. Batches mix requests; the service names each one.
        forget_request_id()
        backoff = 0.1
        while not self._closed and self._shipper is shipper:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval_s):
                    await shipper.wakeup.wait()
            shipper.wakeup.clear()
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
        return not (
            self._buffer or self._in_flight or self._spill_pending or self._delivery.locked()
        )

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything buffered now, retrying for up to ``timeout_s``.

        Returns True when nothing is left: the service answered every event (stored,
        duplicate or rejected), spilled ones included. Otherwise what is left in memory is
        written to the spill folder for a later replay, and False: a send the shipper
        still had under way is cancelled first (its batch goes back to the buffer whole,
        and the service stores each event once if it did arrive), so that nothing is in
        flight when this returns, unless the shipper runs on another loop that does not
        answer within half a second.
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
        recalled = await self._recall_shipper_send()
        with self._mutex:
            self._spill_buffer("flush timed out")
        if recalled:
            self._ensure_shipper()  # it goes on with the replay, from disk
        return False

    async def _recall_shipper_send(self) -> bool:
        """Cancel the shipper if it holds a send; True once it has let go of the batch."""
        shipper, holder = self._shipper, self._delivery.holder
        if shipper is None or holder is None or holder is not shipper.task:
            return False
        with contextlib.suppress(RuntimeError):  # its loop is closed
            shipper.loop.call_soon_threadsafe(holder.cancel)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RECALL_S), self._delivery:
                return True  # our turn: the cancelled send has put its batch back
        return False

    def flush_blocking(self, timeout_s: float = 30.0) -> bool:
        """``flush`` for sync code: deliver everything now and wait, up to ``timeout_s``.

        The flush runs on the client's background thread and its event loop, whatever
        thread calls this; the answer is ``flush``'s (True: nothing left; False: what was
        left is in the spill folder). On a thread that runs an event loop this would block
        that loop, and deadlock if the shipper runs on it: it logs a warning and returns
        False at once. Use ``await flush()`` there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            log.warning("flush_blocking() called on an event loop's thread: use await flush()")
            return False
        with self._mutex:
            if self._closed:  # close() spilled what it could not send; nothing is in memory
                return not (self._buffer or self._in_flight)
            loop = self._background_loop()
        future = asyncio.run_coroutine_threadsafe(self.flush(timeout_s), loop)
        try:
            return future.result(timeout_s + _FLUSH_GRACE_S)
        except TimeoutError:
            future.cancel()
            log.warning("telemetry flush did not finish in time", extra={"timeout_s": timeout_s})
            return False

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush (spilling what cannot be sent within ``timeout_s``) and close the channel."""
        with self._mutex:  # an emit on another thread now either came first or spills
            self._closed = True
        shipper, self._shipper = self._shipper, None
        await self._stop(shipper)
        try:
            await self.flush(timeout_s)
        finally:
            await self._close_channels()
            background, self._background = self._background, None
            if background is not None:
                await asyncio.to_thread(background.stop, _EXIT_SEND_S)
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            atexit.unregister(self._at_exit)

    @staticmethod
    async def _stop(shipper: _Shipper | None) -> None:
        """Cancel the shipper; when it runs on another loop, the flush after this waits for
        it to let go of the delivery lock (and of its batch)."""
        if shipper is None:
            return
        if shipper.task is not None and shipper.loop is asyncio.get_running_loop():
            shipper.task.cancel()
            await asyncio.gather(shipper.task, return_exceptions=True)
        elif isinstance(shipper.handle, concurrent.futures.Future):
            shipper.handle.cancel()  # cancels the task on its own loop
        elif shipper.task is not None:
            with contextlib.suppress(RuntimeError):
                shipper.loop.call_soon_threadsafe(shipper.task.cancel)

    async def _close_channels(self) -> None:
        here = asyncio.get_running_loop()
        with self._mutex:
            links, self._links = self._links, {}
        for loop, link in links.items():
            if loop is here:
                await link.channel.close()
            elif loop.is_running():  # a channel must be closed on its own loop
                closing = asyncio.run_coroutine_threadsafe(link.channel.close(), loop)
                await asyncio.wait([asyncio.wrap_future(closing)], timeout=1.0)
            # a closed loop's channel is closed when it is collected

    def _at_exit(self) -> None:
        """Interpreter exit: deliver, or spill to disk, whatever is still in memory."""
        background = self._background
        if background is not None and background.alive():
            self.flush_blocking(_EXIT_SEND_S)  # sends, else spills
            background.stop(_EXIT_SEND_S)  # a send it had under way comes back to the buffer
        # Left now only by an event loop abandoned mid-send, or never given a shipper: one
        # synchronous attempt to send, else spill.
        with self._mutex:
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
                            timeout=_EXIT_SEND_S,
                        )
                        sent += len(chunk)
                        with self._mutex:
                            self.stats.sent += len(chunk)
                            self._answered(chunk)
                            self._count(reply)
        except Exception:
            with self._mutex:
                self._buffer.extend(entries[sent:])
                self._spill_buffer("the interpreter is exiting")
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
