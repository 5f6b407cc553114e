"""Thin gRPC adapter: validate and decode, call the domain, encode."""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from redis.exceptions import RedisError

from costguard.throttle import metrics
from costguard.throttle.decisions import DecisionRecorder
from costguard.throttle.policy import Action, BudgetDecision, amount_text
from costguard.throttle.queue import DeferralQueue, DeferredJob
from costguard.throttle.service import CheckInput, Throttle
from costguard.v1 import throttle_pb2, throttle_pb2_grpc

SERVICE_NAME = throttle_pb2.DESCRIPTOR.services_by_name["ThrottleService"].full_name
Context = aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)


class InvalidRequest(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")


def _stamp_ms(epoch_ms: int) -> Timestamp:
    seconds, millis = divmod(epoch_ms, 1000)
    return Timestamp(seconds=seconds, nanos=millis * 1_000_000)


# An estimate's bounds: far above any one job, and low enough that the counters (Lua
# numbers, exact to 2**53) add many of them exactly. The cost bound is in USD.
MAX_ESTIMATE = 10**9
MAX_ESTIMATE_USD = Decimal(10**6)


def check_input(request: throttle_pb2.CheckRequest, tiers: tuple[str, ...]) -> CheckInput:
    if not request.user_id:
        raise InvalidRequest("user_id", "is required")
    if len(request.user_id) > 64:
        raise InvalidRequest("user_id", "is longer than 64 characters")
    if request.tier not in tiers:
        raise InvalidRequest(
            "tier", f"{request.tier[:32]!r} is not a configured tier ({', '.join(tiers)})"
        )
    for name in ("est_cpu_ms", "est_input_tokens", "est_output_tokens", "est_cached_input_tokens"):
        value = getattr(request, name)
        if not 0 <= value <= MAX_ESTIMATE:
            raise InvalidRequest(name, f"must be from 0 to {MAX_ESTIMATE:,}, got {value}")
    if request.est_cached_input_tokens > request.est_input_tokens:
        raise InvalidRequest(
            "est_cached_input_tokens", "exceeds est_input_tokens, which include them"
        )
    for name, limit in (("llm_model", 128), ("llm_provider", 128), ("reservation_id", 64)):
        if len(getattr(request, name)) > limit:
            raise InvalidRequest(name, f"is longer than {limit} characters")
    cost: Decimal | None = None
    if request.est_cost_usd:
        try:
            cost = Decimal(request.est_cost_usd)
        except InvalidOperation:
            raise InvalidRequest(
                "est_cost_usd", f"is not a decimal number: {request.est_cost_usd[:40]!r}"
            ) from None
        if not cost.is_finite() or not 0 <= cost <= MAX_ESTIMATE_USD:
            raise InvalidRequest("est_cost_usd", f"must be an amount from 0 to {MAX_ESTIMATE_USD}")
    return CheckInput(
        user_id=request.user_id,
        tier=request.tier,
        domain=request.domain or "default",
        job_type=request.job_type,
        est_cpu_ms=request.est_cpu_ms,
        est_input_tokens=request.est_input_tokens,
        est_output_tokens=request.est_output_tokens,
        llm_model=request.llm_model,
        reservation_id=request.reservation_id,
        est_cost_usd=cost,
        est_cached_input_tokens=request.est_cached_input_tokens,
        llm_provider=request.llm_provider or "openai",
        reserve=request.reserve if request.HasField("reserve") else True,
    )


_ACTIONS = {action: throttle_pb2.Action.Value(action.value) for action in Action}


def encode_decision(decision: BudgetDecision) -> throttle_pb2.CheckResponse:
    return throttle_pb2.CheckResponse(
        action=_ACTIONS[decision.action],
        retry_after_ms=decision.retry_after_ms,
        downgrade_model=decision.downgrade_model,
        reason=decision.reason,
        reservation_id=decision.reservation_id,
        remaining=[
            throttle_pb2.Remaining(
                scope=r.scope,
                metric=r.metric,
                cap=amount_text(r.metric, r.cap),
                used=amount_text(r.metric, r.used),
                remaining=amount_text(r.metric, r.remaining),
            )
            for r in decision.remaining
        ],
    )


class ThrottleServicer(throttle_pb2_grpc.ThrottleServiceServicer):
    def __init__(
        self,
        throttle: Throttle,
        queue: DeferralQueue,
        tiers: tuple[str, ...],
        decisions: DecisionRecorder | None = None,
    ) -> None:
        self._decisions = decisions
        self._throttle = throttle
        self._queue = queue
        self._tiers = tiers

    async def Check(
        self, request: throttle_pb2.CheckRequest, context: Context
    ) -> throttle_pb2.CheckResponse:
        try:
            checked = check_input(request, self._tiers)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        started = time.perf_counter()
        decision = await self._throttle.check(checked)
        metrics.CHECK_SECONDS.observe(time.perf_counter() - started)
        metrics.decided(decision.action.value, checked.tier)
        if self._decisions is not None:
            self._decisions.record(
                checked.user_id, checked.tier, decision.action.value, decision.reason
            )
        return encode_decision(decision)

    async def Release(
        self, request: throttle_pb2.ReleaseRequest, context: Context
    ) -> throttle_pb2.ReleaseResponse:
        if not request.reservation_id or len(request.reservation_id) > 64:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "reservation_id: must be 1 to 64 characters"
            )
        try:
            released = await self._throttle.release(request.reservation_id)
        except (RedisError, OSError):
            log.warning("reservation not released: Redis unreachable", exc_info=True)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Redis unreachable; retry")
        return throttle_pb2.ReleaseResponse(released=released)

    async def _observe_queue(self) -> None:
        """Refresh the queue gauges after a change; a metric never fails the call."""
        try:
            depth = await self._queue.depth()
            leased = await self._queue.leased_count()
        except (RedisError, OSError):
            log.warning("deferral queue depth not read", exc_info=True)
            return
        for tier, count in depth.items():
            metrics.QUEUE_DEPTH.labels(tier).set(count)
        metrics.QUEUE_LEASED.set(leased)

    async def Defer(
        self, request: throttle_pb2.DeferRequest, context: Context
    ) -> throttle_pb2.DeferResponse:
        if request.tier not in self._tiers:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"tier: {request.tier[:32]!r} is not a configured tier",
            )
        if len(request.payload) > 256 * 1024:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "payload: larger than 256 KiB")
        not_before_ms = (
            request.not_before.seconds * 1000 + request.not_before.nanos // 1_000_000
            if request.HasField("not_before")
            else int(time.time() * 1000)
        )
        stored = await self._queue.defer(
            DeferredJob(
                job_id=request.job_id[:64],
                user_id=request.user_id[:64],
                tier=request.tier,
                domain=request.domain[:64],
                job_type=request.job_type[:64],
                payload=request.payload,
                not_before_ms=not_before_ms,
            )
        )
        await self._observe_queue()
        return throttle_pb2.DeferResponse(
            job_id=stored.job_id, not_before=_stamp_ms(stored.not_before_ms)
        )

    async def Lease(
        self, request: throttle_pb2.LeaseRequest, context: Context
    ) -> throttle_pb2.LeaseResponse:
        if not 0 < request.max_jobs <= 1000:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "max_jobs: must be between 1 and 1000"
            )
        if not 0 < request.visibility_timeout_ms <= 24 * 3600 * 1000:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "visibility_timeout_ms: must be between 1 ms and 24 h",
            )
        leases = await self._queue.lease(
            request.worker_id[:64] or "anonymous",
            max_jobs=request.max_jobs,
            visibility_timeout_ms=request.visibility_timeout_ms,
        )
        await self._observe_queue()
        return throttle_pb2.LeaseResponse(
            jobs=[
                throttle_pb2.LeasedJob(
                    job_id=lease.job.job_id,
                    lease_token=lease.lease_token,
                    user_id=lease.job.user_id,
                    tier=lease.job.tier,
                    domain=lease.job.domain,
                    job_type=lease.job.job_type,
                    payload=lease.job.payload,
                    deliveries=lease.deliveries,
                    enqueued_at=_stamp_ms(lease.enqueued_at_ms),
                    lease_expires_at=_stamp_ms(lease.lease_expires_at_ms),
                )
                for lease in leases
            ]
        )

    async def Ack(
        self, request: throttle_pb2.AckRequest, context: Context
    ) -> throttle_pb2.AckResponse:
        if not request.job_id or not request.lease_token:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "job_id and lease_token: both are required"
            )
        acked = await self._queue.ack(request.job_id, request.lease_token)
        await self._observe_queue()
        return throttle_pb2.AckResponse(acked=acked)
