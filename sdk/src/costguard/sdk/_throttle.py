"""``check_budget_and_maybe_defer``: ask the throttle before spending."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from costguard.sdk._context import UserContext, current_user_context
from costguard.sdk._request_id import with_request_id
from costguard.v1 import throttle_pb2, throttle_pb2_grpc

log = logging.getLogger(__name__)

# The service's own default when Redis is away, applied here when the throttle is:
# paying tiers run, the free tier waits.
_FAIL_OPEN_TIERS = frozenset({"pro", "enterprise"})
_FAIL_CLOSED_RETRY_MS = 30_000


@dataclass(frozen=True)
class BudgetDecision:
    """What the throttle decided: ``action`` is ALLOW, DOWNGRADE, DEFER or DENY."""

    action: str
    reason: str
    retry_after_ms: int = 0
    downgrade_model: str = ""
    reservation_id: str = ""
    remaining: tuple[throttle_pb2.Remaining, ...] = field(default_factory=tuple)
    deferred_job_id: str = ""

    @property
    def may_run(self) -> bool:
        return self.action in ("ALLOW", "DOWNGRADE")

    def bind(self, ctx: UserContext) -> UserContext:
        """``ctx`` carrying this decision's reservation, so the job's telemetry settles it."""
        return dataclasses.replace(ctx, reservation_id=self.reservation_id)


class ThrottleClient:
    def __init__(self, target: str, *, token: str | None = None, timeout_s: float = 2.0) -> None:
        self._channel = aio.insecure_channel(target)
        self._stub = throttle_pb2_grpc.ThrottleServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s

    async def check(self, request: throttle_pb2.CheckRequest) -> throttle_pb2.CheckResponse:
        return await self._stub.Check(
            request, metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def release(self, request: throttle_pb2.ReleaseRequest) -> throttle_pb2.ReleaseResponse:
        return await self._stub.Release(
            request, metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def defer(self, request: throttle_pb2.DeferRequest) -> throttle_pb2.DeferResponse:
        return await self._stub.Defer(
            request, metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def lease(self, request: throttle_pb2.LeaseRequest) -> throttle_pb2.LeaseResponse:
        return await self._stub.Lease(
            request, metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def ack(self, request: throttle_pb2.AckRequest) -> throttle_pb2.AckResponse:
        return await self._stub.Ack(
            request, metadata=with_request_id(self._metadata), timeout=self._timeout_s
        )

    async def close(self) -> None:
        await self._channel.close()


class _Default:
    client: ThrottleClient | None = None


def default_throttle() -> ThrottleClient:
    if _Default.client is None:
        _Default.client = ThrottleClient(
            os.environ.get("COSTGUARD_THROTTLE_ADDR", "127.0.0.1:50052"),
            token=os.environ.get("COSTGUARD_SERVICE_TOKEN"),
        )
    return _Default.client


async def check_budget_and_maybe_defer(
    *,
    tier: str | None = None,
    domain: str | None = None,
    est_cpu_ms: int = 0,
    est_input_tokens: int = 0,
    est_output_tokens: int = 0,
    llm_model: str = "",
    est_cached_input_tokens: int = 0,
    llm_provider: str = "",
    job_type: str = "",
    user_id: str | None = None,
    payload: bytes | None = None,
    reserve: bool = True,
    client: ThrottleClient | None = None,
) -> BudgetDecision:
    """Ask the throttle whether a job may run now, reserving its estimate if so.

    User, tier and domain default to the current ``UserContext``. The estimate is priced
    at ``llm_model``'s price (``est_input_tokens`` include ``est_cached_input_tokens``,
    billed at its cache rate), the price telemetry will store the job's calls at; with no
    model named, at the seed constants. When the answer is
    DEFER and a ``payload`` is given, the job is put on the throttle's deferral queue
    (not before ``retry_after_ms``) and ``deferred_job_id`` says where. If the throttle
    cannot be reached, paying tiers are allowed and the free tier is deferred, and the
    reason says so: this never raises for a telemetry or network failure.

    A job allowed to run holds its estimate against the caps (``reservation_id``) until
    its telemetry settles it to actual usage (run it under ``decision.bind(ctx)``), until
    ``release_reservation`` gives it back, or until the throttle's reservation TTL (10
    minutes by default) passes. ``reserve=False`` asks without reserving: a dry run,
    decided as a real check would be, that holds nothing and returns no reservation.
    """
    ctx = current_user_context()
    tier = tier or (ctx.tier if ctx else "")
    user_id = user_id or (ctx.user_id if ctx else "")
    throttle = client or default_throttle()
    request = throttle_pb2.CheckRequest(
        user_id=user_id,
        tier=tier,
        domain=domain or (ctx.domain if ctx else "default"),
        job_type=job_type,
        est_cpu_ms=est_cpu_ms,
        est_input_tokens=est_input_tokens,
        est_output_tokens=est_output_tokens,
        llm_model=llm_model,
        est_cached_input_tokens=est_cached_input_tokens,
        llm_provider=llm_provider,
        reserve=reserve,
    )
    try:
        reply = await throttle.check(request)
    except grpc.RpcError as exc:
        if isinstance(exc, aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise ValueError(exc.details()) from None  # the caller's mistake: say so
        log.warning(
            "throttle unreachable; applying the local fail policy", extra={"error": str(exc)}
        )
        if tier in _FAIL_OPEN_TIERS:
            return BudgetDecision(
                "ALLOW", f"throttle unreachable: allowed by the fail-open policy for tier {tier}"
            )
        return BudgetDecision(
            "DEFER",
            f"throttle unreachable: deferred by the fail-closed policy for tier {tier}",
            retry_after_ms=_FAIL_CLOSED_RETRY_MS,
        )
    decision = BudgetDecision(
        action=throttle_pb2.Action.Name(reply.action),
        reason=reply.reason,
        retry_after_ms=reply.retry_after_ms,
        downgrade_model=reply.downgrade_model,
        reservation_id=reply.reservation_id,
        remaining=tuple(reply.remaining),
    )
    if decision.action == "DEFER" and payload is not None:
        not_before_ms = int(time.time() * 1000) + decision.retry_after_ms
        seconds, millis = divmod(not_before_ms, 1000)
        deferred = await throttle.defer(
            throttle_pb2.DeferRequest(
                user_id=user_id,
                tier=tier,
                domain=request.domain,
                job_type=job_type,
                payload=payload,
                not_before=Timestamp(seconds=seconds, nanos=millis * 1_000_000),
            )
        )
        decision = dataclasses.replace(decision, deferred_job_id=deferred.job_id)
    return decision


async def release_reservation(reservation_id: str, *, client: ThrottleClient | None = None) -> bool:
    """Give back a reservation made by ``check_budget_and_maybe_defer`` now, not at its TTL.

    For a job that was allowed but will not run, or ran and will not report. True when a
    live reservation was released; False when there was none (already settled by the
    job's telemetry, released or expired) or when the throttle could not be reached
    (logged as a warning; the reservation then expires at its TTL). Never raises for a
    network failure.
    """
    if not reservation_id:
        return False
    throttle = client or default_throttle()
    try:
        reply = await throttle.release(throttle_pb2.ReleaseRequest(reservation_id=reservation_id))
    except grpc.RpcError as exc:
        if isinstance(exc, aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise ValueError(exc.details()) from None
        log.warning("reservation not released; it expires at its TTL", extra={"error": str(exc)})
        return False
    return reply.released
