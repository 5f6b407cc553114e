"""``job_telemetry``: one telemetry_job_events row per job run, success or failure."""

from __future__ import annotations

import functools
import resource
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import ParamSpec, TypeVar

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, user_context
from costguard.sdk._default import default_client
from costguard.sdk._events import stamp
from costguard.v1 import telemetry_pb2

P = ParamSpec("P")
R = TypeVar("R")


class JobRun:
    """Handed to the job body so that it can report the rows it read and wrote."""

    def __init__(self) -> None:
        self.rows_read = 0
        self.rows_written = 0

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self.rows_read += read
        self.rows_written += written


def _peak_mem_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak so far, a ceiling for the job.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@asynccontextmanager
async def _measure(
    client: TelemetryClient, job_name: str, ctx: UserContext
) -> AsyncIterator[JobRun]:
    run = JobRun()
    started = datetime.now(UTC)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    error_code = ""
    try:
        with user_context(ctx):
            yield run
    except BaseException as exc:
        error_code = type(exc).__name__
        raise
    finally:
        wall_ms = int((time.perf_counter() - wall0) * 1000)
        queue_wait_ms = (
            max(0, int((started - ctx.queued_at).total_seconds() * 1000)) if ctx.queued_at else 0
        )
        event = telemetry_pb2.JobEvent(
            event_id=str(uuid.uuid4()),
            job_name=job_name,
            user_id=ctx.user_id,
            tier=ctx.tier,
            domain=ctx.domain,
            job_type=ctx.job_type,
            started_at=stamp(started),
            finished_at=stamp(datetime.now(UTC)),
            duration_ms=wall_ms,
            queue_wait_ms=queue_wait_ms,
            cpu_ms=int((time.process_time() - cpu0) * 1000),
            peak_mem_mb=_peak_mem_mb(),
            rows_read=run.rows_read,
            rows_written=run.rows_written,
            attempt=ctx.attempt,
            success=not error_code,
            error_code=error_code,
            episode_id=ctx.episode_id,
            podcast_id=ctx.podcast_id,
        )
        if ctx.queued_at:
            event.queued_at.CopyFrom(stamp(ctx.queued_at))
        client.emit(telemetry_pb2.TelemetryEvent(job=event))


class job_telemetry:  # the seed names it like a function; it is used like one
    """Record one job run as an async context manager or a decorator.

    ``async with job_telemetry("transcribe", ctx) as run: run.add_rows(read=10)`` writes
    one row when the block ends, with ``success=false`` and the exception's class name as
    ``error_code`` if it raised; the job's own exception is re-raised untouched.
    """

    def __init__(
        self, job_name: str, user_ctx: UserContext, *, client: TelemetryClient | None = None
    ) -> None:
        self._job_name = job_name
        self._ctx = user_ctx
        self._client = client
        self._active: AbstractAsyncContextManager[JobRun] | None = None

    def _resolve(self) -> TelemetryClient:
        return self._client if self._client is not None else default_client()

    async def __aenter__(self) -> JobRun:
        self._active = _measure(self._resolve(), self._job_name, self._ctx)
        return await self._active.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._active is not None, "__aexit__ without __aenter__"
        return await self._active.__aexit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            async with _measure(self._resolve(), self._job_name, self._ctx):
                return await func(*args, **kwargs)

        return wrapper
