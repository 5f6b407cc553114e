"""``job_telemetry``: one telemetry_job_events row per job run, success or failure."""

from __future__ import annotations

import functools
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from types import TracebackType
from typing import ParamSpec, TypeVar

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, bind_user_context, reset_user_context
from costguard.sdk._default import default_client
from costguard.sdk._events import new_event_id
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class JobRun:
    """Handed to the job body so that it can report the rows it read and wrote."""

    __slots__ = ("rows_read", "rows_written")

    def __init__(self) -> None:
        self.rows_read = 0
        self.rows_written = 0

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self.rows_read += read
        self.rows_written += written


def _mem_mb_peak() -> int:
    # ru_maxrss is in KiB on Linux: the process's peak so far, a ceiling for the job,
    # rounded up to whole MB (a job that used any memory used at least 1 MB).
    return -(-resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


class _Measurement:
    """One run: measures on enter, emits the row on exit. A plain class rather than a
    generator-based context manager: this is on every job's path (see ``make bench``)."""

    __slots__ = (
        "_client",
        "_context_token",
        "_cpu0",
        "_ctx",
        "_job_id",
        "_job_name",
        "_run",
        "_started_ns",
        "_wall0",
    )

    def __init__(
        self, client: TelemetryClient, job_name: str, ctx: UserContext, job_id: str
    ) -> None:
        self._client = client
        self._job_name = job_name
        self._job_id = job_id
        self._ctx = ctx
        self._run = JobRun()
        self._started_ns = 0
        self._wall0 = 0
        self._cpu0 = 0
        self._context_token: Token[UserContext | None] | None = None

    async def __aenter__(self) -> JobRun:
        self._context_token = bind_user_context(self._ctx)
        self._started_ns = time.time_ns()
        self._wall0 = time.perf_counter_ns()
        self._cpu0 = time.process_time_ns()
        return self._run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cpu_ms = (time.process_time_ns() - self._cpu0) // 1_000_000
        duration_ms = (time.perf_counter_ns() - self._wall0) // 1_000_000
        if self._context_token is not None:
            reset_user_context(self._context_token)
        try:
            self._client.emit(self._event(exc_type, cpu_ms, duration_ms))
        except Exception:  # telemetry never breaks the job
            log.exception("could not record a job event")
        # Returning None lets the job's own exception propagate untouched.

    def _event(
        self, exc_type: type[BaseException] | None, cpu_ms: int, duration_ms: int
    ) -> telemetry_pb2.TelemetryEvent:
        ctx, run = self._ctx, self._run
        # Filled in place (no nested message copies) and only where not a default.
        wrapper = telemetry_pb2.TelemetryEvent()
        event = wrapper.job
        event.event_id = new_event_id()
        event.job_name = self._job_name
        if self._job_id:
            event.job_id = self._job_id
        event.user_id = ctx.user_id
        event.tier = ctx.tier
        event.domain = ctx.domain
        # The seed's one name column: the job's kind, which is its name unless the context
        # gives a coarser one.
        event.job_type = ctx.job_type or self._job_name
        event.started_at.seconds, event.started_at.nanos = divmod(self._started_ns, 1_000_000_000)
        event.finished_at.seconds, event.finished_at.nanos = divmod(time.time_ns(), 1_000_000_000)
        if ctx.queued_at is not None:
            event.queued_at.FromDatetime(ctx.queued_at)
            queued_ns = int(ctx.queued_at.timestamp() * 1e9)
            event.queue_wait_ms = max(0, (self._started_ns - queued_ns) // 1_000_000)
        event.duration_ms = duration_ms
        event.cpu_ms = cpu_ms
        event.mem_mb_peak = _mem_mb_peak()
        event.rows_read = run.rows_read
        event.rows_written = run.rows_written
        event.attempt = ctx.attempt
        event.success = exc_type is None
        if exc_type is not None:
            event.error_code = exc_type.__name__
        if ctx.episode_id:
            event.episode_id = ctx.episode_id
        if ctx.podcast_id:
            event.podcast_id = ctx.podcast_id
        if ctx.reservation_id:
            event.reservation_id = ctx.reservation_id
        return wrapper


class job_telemetry:  # the seed names it like a function; it is used like one
    """Record one job run as an async context manager or a decorator.

    ``async with job_telemetry("transcribe", ctx, job_id=job.id) as run:
    run.add_rows(read=10)`` writes one row when the block ends, with ``success=false`` and
    the exception's class name as ``error_code`` if it raised; the job's own exception is
    re-raised untouched. ``job_id`` is the run's own id (its queue job id, say); the row's
    ``job_type`` is ``ctx.job_type``, else ``job_name``. Inside the block ``ctx`` is the
    current user context, so LLM calls and AWS operations made there are attributed to the
    same user and entities.
    """

    def __init__(
        self,
        job_name: str,
        user_ctx: UserContext,
        *,
        job_id: str = "",
        client: TelemetryClient | None = None,
    ) -> None:
        self._job_name = job_name
        self._ctx = user_ctx
        self._job_id = job_id
        self._client = client
        self._active: _Measurement | None = None

    def _measure(self) -> _Measurement:
        client = self._client if self._client is not None else default_client()
        return _Measurement(client, self._job_name, self._ctx, self._job_id)

    async def __aenter__(self) -> JobRun:
        self._active = self._measure()
        return await self._active.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._active is not None, "__aexit__ without __aenter__"
        await self._active.__aexit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            async with self._measure():
                return await func(*args, **kwargs)

        return wrapper
