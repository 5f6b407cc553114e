"""Implicit pipelining: concurrent checks share one Redis round trip for their reservations.

Natural batching, as a group commit: a reservation asked for while no script call is in
flight goes out at once, alone; those asked for while a call is in flight wait for it, then
go out together as one call of the batch script (:meth:`Reserver.check_batch`), at most
``max_batch`` of them. The script decides the requests strictly in the order they were
asked for, each seeing the reservations of those before it, atomically (see
``costguard.throttle.reserve``), so a batch decides exactly as the same checks sent one by
one.

A round trip to a Redis on the same host is shorter than the time the server takes to
take in one more RPC, so under load most natural batches would still carry one check.
While checks are seen to come concurrently (the recent batches averaged more than
``LINGER_FROM`` checks), a batch therefore waits up to ``window_s`` after its first check
arrived, or until it is full, for more to join. One caller alone never makes a batch of
two, so an idle or lightly loaded throttle stays natural and adds no latency; and when the
waits stop paying (batches of one), the average falls and the throttle stops waiting.

A batch holds requests of one day only: the counter keys carry the day as their Redis
Cluster hash tag, and one script call must stay in one slot. Requests queued across
midnight go out as one call per day, in order.

Each request gets its own answer: its reservation; ``CountersLost`` when Redis has lost the
day's counters (each caller rebuilds them and asks again, as it would alone); or the error
of the call that carried it (a Redis error: each caller answers by its tier's fail policy).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import date

from redis.exceptions import ResponseError

from costguard.throttle import metrics
from costguard.throttle.reserve import CountersLost, Reservation, Reserver, ReserveRequest

# Waiting for a batch to fill starts once recent batches averaged more checks than this.
LINGER_FROM = 1.25
_AVERAGE_OVER = 8  # batches: the weight of the newest in the moving average is 1/8


@dataclass(frozen=True)
class _Waiting:
    day: date
    request: ReserveRequest
    answer: asyncio.Future[Reservation]
    since: float  # loop time it arrived


def _fail(answer: asyncio.Future[Reservation], error: BaseException) -> None:
    if not answer.done():  # its caller may have gone (a cancelled RPC)
        answer.set_exception(error)


class ReservationPipeline:
    def __init__(self, reserver: Reserver, *, max_batch: int, window_s: float = 0.0) -> None:
        if max_batch < 1 or window_s < 0:
            raise ValueError("max_batch must be at least 1 and window_s not negative")
        self._reserver = reserver
        self._max_batch = max_batch
        self._window_s = window_s
        self._waiting: deque[_Waiting] = deque()
        self._busy = False  # a call is in flight, or one is due when its window ends
        self._due: asyncio.TimerHandle | None = None
        self._mean_batch = 1.0  # moving average of batch sizes
        self._sending: set[asyncio.Task[None]] = set()

    async def check(self, *, day: date, request: ReserveRequest) -> Reservation:
        """Decide and reserve ``request`` of ``day``, in one round trip with its neighbours."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Reservation] = loop.create_future()
        self._waiting.append(_Waiting(day, request, answer, loop.time()))
        if not self._busy:
            self._schedule()
        elif self._due is not None and len(self._waiting) >= self._max_batch:
            self._send()  # a full batch need not wait for its window
        return await answer

    def _schedule(self) -> None:
        """Send what waits now; or, while checks come concurrently, when the first waiting
        has waited ``window_s``."""
        self._busy = True
        if self._window_s and self._mean_batch > LINGER_FROM:
            loop = asyncio.get_running_loop()
            due = self._waiting[0].since + self._window_s
            if loop.time() < due and len(self._waiting) < self._max_batch:
                self._due = loop.call_at(due, self._send)
                return
        self._send()

    def _send(self) -> None:
        """Send the longest run of waiting requests of one day, up to ``max_batch``."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        batch: list[_Waiting] = []
        waiting = self._waiting
        while waiting and len(batch) < self._max_batch:
            if waiting[0].answer.done():  # its caller has gone (a cancelled RPC): not asked
                waiting.popleft()
            elif batch and waiting[0].day != batch[0].day:
                break
            else:
                batch.append(waiting.popleft())
        if not batch:
            self._busy = False
            return
        self._mean_batch += (len(batch) - self._mean_batch) / _AVERAGE_OVER
        task = asyncio.get_running_loop().create_task(self._round_trip(batch[0].day, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _round_trip(self, day: date, batch: list[_Waiting]) -> None:
        try:
            found = await self._reserver.check_batch(day, [w.request for w in batch])
        except CountersLost:
            for waiting in batch:
                _fail(waiting.answer, CountersLost())
        except Exception as error:  # a Redis error: every request of the call meets it
            for waiting in batch:
                _fail(waiting.answer, error)
        except asyncio.CancelledError:  # shutting down: the callers go too
            for waiting in batch:
                waiting.answer.cancel()
            raise
        else:
            for waiting, reservation in zip(batch, found, strict=True):
                if isinstance(reservation, ResponseError):
                    _fail(waiting.answer, reservation)
                elif not waiting.answer.done():
                    waiting.answer.set_result(reservation)
        finally:
            metrics.RESERVE_BATCH.observe(len(batch))
            self._busy = False
            if self._waiting:
                self._schedule()
