"""``@metered``: a Python Lambda handler that records what its own invocation costs.

::

    from costguard.sdk.aws_lambda import metered

    @metered
    def handler(event, context):
        ...

Each invocation is one cost event, ``lambda_invocation`` / ``lambda``, 1 of ``requests``,
priced per docs/cost-events.md (per request, plus ``duration_seconds`` x ``memory_mb`` /
1024 GB-seconds), with ``function_name``, ``function_version``, ``aws_request_id``,
``memory_mb``, ``duration_ms`` (measured around the handler), ``billed_duration_ms`` (that,
rounded up to a whole millisecond, at least 1), ``duration_seconds`` (billed / 1000: what
the price reads), ``gb_seconds``, ``cold_start`` (the first invocation in this process),
``success``, ``error_code`` (the exception's class name; the exception itself is re-raised
untouched) and ``duration_source: "handler"``. The handler's time is what this process
can see: Lambda also bills its initialisation on a cold start, which it cannot.

Lambda freezes the process once the handler returns, and may never thaw it. So the
decorator flushes telemetry before the handler returns: every event of the invocation
(its own, and whatever the handler recorded) is sent and answered, or, when that takes
longer than the flush allows, written to the spill folder (``COSTGUARD_SPILL_DIR``; set it
to a folder under ``/tmp``, the only writable one in Lambda), from which the next
invocation's flush replays it. The flush leaves nothing in flight: a send still under way
when its time is up is cancelled and its batch spilled with the rest (docs/sdk-delivery.md).
Should a send be frozen all the same (a client shipping from another event loop), it
either reached the service, or fails after the thaw (its deadline passed, or the connection
died meanwhile) and goes back to the buffer whole, to be retried on a new connection; each
event's id makes the retry or the replay exactly-once at the service.

One invocation, two reports: a caller whose client went through ``instrument_aws`` also
records the invocation it made. Both use the event id :func:`invocation_event_id` of the
invocation's request id (``context.aws_request_id`` here; the Invoke reply's RequestId
there), so the service stores one event, the first to arrive, and answers the other as a
duplicate. For a ``RequestResponse`` invocation the handler flushes before it returns, so
before the caller has its reply: the handler's report, with its measured duration, is
kept. An ``Event`` (asynchronous) invocation is answered at once and runs later, so the
caller's report (``duration_seconds`` 0) usually arrives first and is kept: the request
is counted once, but its GB-seconds are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar, overload

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, user_context
from costguard.sdk._default import default_client
from costguard.sdk._events import CostEvent, track_cost_events

__all__ = ["LambdaContext", "invocation_event_id", "metered"]

log = logging.getLogger(__name__)

# Invocation ids live in a namespace of their own, so they never meet another uuid5.
_INVOCATIONS = uuid.uuid5(uuid.NAMESPACE_URL, "https://costguard.dev/aws/lambda-invocation")
_FLUSH_CAP_S = 10.0
# Left of the remaining time for what follows the flush: flush_blocking's own grace (the
# spill after a timeout) and the handler's return to the runtime.
_FLUSH_MARGIN_S = 1.5
_invocations = itertools.count()  # per process: the first one is the cold start


def invocation_event_id(request_id: str) -> str:
    """The event id of the Lambda invocation with this request id, for whoever reports it."""
    return str(uuid.uuid5(_INVOCATIONS, request_id))


class LambdaContext(Protocol):
    """What ``@metered`` reads of the context object the Lambda runtime passes."""

    @property
    def function_name(self) -> str: ...
    @property
    def function_version(self) -> str: ...
    @property
    def memory_limit_in_mb(self) -> str | int: ...  # the Python runtime gives a str
    @property
    def aws_request_id(self) -> str: ...
    def get_remaining_time_in_millis(self) -> int: ...


_E = TypeVar("_E")
_C = TypeVar("_C", bound=LambdaContext)
_R = TypeVar("_R")
UserContextOf = Callable[[Any, Any], UserContext | None]


class _Decorator(Protocol):
    @overload
    def __call__(
        self, handler: Callable[[_E, _C], Coroutine[Any, Any, _R]], /
    ) -> Callable[[_E, _C], _R]: ...
    @overload
    def __call__(self, handler: Callable[[_E, _C], _R], /) -> Callable[[_E, _C], _R]: ...


@overload
def metered(handler: Callable[[_E, _C], Coroutine[Any, Any, _R]], /) -> Callable[[_E, _C], _R]: ...
@overload
def metered(handler: Callable[[_E, _C], _R], /) -> Callable[[_E, _C], _R]: ...
@overload
def metered(
    *,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | UserContextOf | None = None,
    flush_timeout_s: float | None = None,
) -> _Decorator: ...
def metered(
    handler: Callable[[Any, Any], Any] | None = None,
    *,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | UserContextOf | None = None,
    flush_timeout_s: float | None = None,
) -> Any:
    """Record each invocation of a Lambda handler, and flush before it returns.

    Use as ``@metered`` or ``@metered(...)``. ``telemetry``: the client to record with
    (default: the SDK's default client, configured from the environment). ``user_ctx``:
    who the invocation is for, a ``UserContext`` or a function of ``(event, context)``
    returning one (or None); the handler runs inside it, so what it records itself is
    attributed the same way. ``flush_timeout_s``: how long the flush may take (default:
    the invocation's remaining time less 1.5 s, at most 10 s; what is not sent by then is
    spilled to disk). The Lambda runtime calls handlers synchronously; an ``async def``
    handler is run with ``asyncio.run``, a new event loop per invocation. See the module
    docstring for what is recorded and why nothing is lost across a freeze.
    """

    def decorate(function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        @functools.wraps(function)
        def invoke(event: Any, context: Any) -> Any:
            cold_start = next(_invocations) == 0
            ctx = _user_context(user_ctx, event, context)
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                with contextlib.ExitStack() as attributed:
                    if ctx is not None:
                        attributed.enter_context(user_context(ctx))
                    if inspect.iscoroutinefunction(function):
                        return asyncio.run(function(event, context))
                    return function(event, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                _report(
                    telemetry,
                    context,
                    ctx=ctx,
                    elapsed_ms=elapsed_ms,
                    cold_start=cold_start,
                    error=error,
                )
                _flush(telemetry, context, flush_timeout_s)

        return invoke

    return decorate(handler) if handler is not None else decorate


def _user_context(
    user_ctx: UserContext | UserContextOf | None, event: Any, context: Any
) -> UserContext | None:
    if user_ctx is None or isinstance(user_ctx, UserContext):
        return user_ctx
    try:
        return user_ctx(event, context)
    except Exception:  # telemetry never breaks the handler
        log.exception("user_ctx of the Lambda invocation failed")
        return None


def _report(
    telemetry: TelemetryClient | None,
    context: LambdaContext,
    *,
    ctx: UserContext | None,
    elapsed_ms: float,
    cold_start: bool,
    error: BaseException | None,
) -> None:
    try:
        memory_mb = int(context.memory_limit_in_mb)
        billed_ms = max(1, math.ceil(elapsed_ms))
        metadata = {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "aws_request_id": context.aws_request_id,
            "memory_mb": memory_mb,
            "duration_ms": round(elapsed_ms, 3),
            "billed_duration_ms": billed_ms,
            "duration_seconds": billed_ms / 1000,
            "gb_seconds": memory_mb / 1024 * billed_ms / 1000,
            "cold_start": cold_start,
            "success": error is None,
            "error_code": type(error).__name__ if error is not None else "",
            "duration_source": "handler",
        }
        event = CostEvent(
            "lambda_invocation",
            "lambda",
            1,
            "requests",
            metadata,
            user_ctx=ctx,
            event_id=invocation_event_id(context.aws_request_id),
        )
        track_cost_events([event], client=telemetry)
    except Exception:
        log.exception("could not record the Lambda invocation")


def _flush(
    telemetry: TelemetryClient | None, context: LambdaContext, timeout_s: float | None
) -> None:
    try:
        if timeout_s is None:
            remaining_s = context.get_remaining_time_in_millis() / 1000
            timeout_s = max(0.0, min(_FLUSH_CAP_S, remaining_s - _FLUSH_MARGIN_S))
        client = telemetry if telemetry is not None else default_client()
        if not client.flush_blocking(timeout_s):
            log.warning("telemetry not all delivered before the handler returned")
    except Exception:
        log.exception("could not flush telemetry before the handler returned")
