"""``Check``: what a job may do now, from live counters and budgets."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from redis.exceptions import RedisError

from costguard.common.counters import global_key, tier_key, user_key
from costguard.common.days import day_bounds
from costguard.common.pricing import NANO, to_nano_usd
from costguard.common.rebuild import CounterReconciler
from costguard.throttle.alerts import AlertRecorder, Crossing
from costguard.throttle.budgets import METRICS, Budget, BudgetBook
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.estimate import Estimator
from costguard.throttle.policy import Action, BudgetDecision, Remaining, Tightest, decide
from costguard.throttle.reserve import CountersLost, Reservation, Reserver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckInput:
    user_id: str
    tier: str
    domain: str = "default"
    job_type: str = ""
    est_cpu_ms: int = 0
    est_input_tokens: int = 0
    est_output_tokens: int = 0
    llm_model: str = ""
    reservation_id: str = ""
    est_cost_usd: Decimal | None = None
    est_cached_input_tokens: int = 0
    llm_provider: str = "openai"
    reserve: bool = True  # False: a dry run, decided without reserving


def _in_units(metric: str, value: int) -> Decimal:
    return Decimal(value) * NANO if metric == "cost_usd" else Decimal(value)


class Throttle:
    def __init__(
        self,
        config: ThrottleConfig,
        budgets: BudgetBook,
        reserver: Reserver,
        rebuilder: CounterReconciler,
        alerts: AlertRecorder,
        *,
        estimator: Estimator,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._config = config
        self._budgets = budgets
        self._reserver = reserver
        self._rebuilder = rebuilder
        self._alerts = alerts
        self._estimator = estimator
        self._rebuild_due = False
        self._clock_ms = clock_ms  # reservations expire by this clock (tests move it)

    async def _estimate(self, day: date, request: CheckInput) -> list[int]:
        cost = request.est_cost_usd
        if cost is None:
            cost = await self._estimator.cost(
                day,
                cpu_ms=request.est_cpu_ms,
                model=request.llm_model,
                provider=request.llm_provider,
                input_tokens=request.est_input_tokens,
                cached_input_tokens=request.est_cached_input_tokens,
                output_tokens=request.est_output_tokens,
            )
        return [
            1,
            request.est_cpu_ms,
            request.est_input_tokens,
            request.est_output_tokens,
            to_nano_usd(cost),
        ]

    def _retry_after_ms(self, now: datetime) -> int:
        if self._config.retry_after_ms:
            return self._config.retry_after_ms
        _, midnight = day_bounds(now.date(), self._config.core.timezone)
        return max(1, int((midnight - now).total_seconds() * 1000))

    async def _reserve(self, attempt: Callable[[], Awaitable[Reservation]]) -> Reservation:
        """Reserve, first rebuilding the counters when Redis failed or lost them."""
        if self._rebuild_due:
            await self._rebuilder.rebuild_today(wait=True)
            self._rebuild_due = False
        try:
            return await attempt()
        except CountersLost:
            log.info("live counters lost; rebuilding from Postgres before deciding")
            await self._rebuilder.rebuild_today(wait=True)
            return await attempt()

    async def check(self, request: CheckInput) -> BudgetDecision:
        now = datetime.now(self._config.core.timezone)
        day = now.date()
        scopes = [
            ("global", global_key(day)),
            (request.tier, tier_key(day, request.tier)),
            (f"user:{request.user_id}", user_key(day, request.user_id)),
        ]
        budgets = [self._budgets.get(name) for name, _ in scopes]
        caps = [
            [cap if cap is not None else -1 for cap in b.caps] if b else [-1] * 5 for b in budgets
        ]
        estimate = await self._estimate(day, request)
        policy = self._config.policies[request.tier]
        reservation_id = request.reservation_id or uuid.uuid4().hex
        try:
            result = await self._reserve(
                functools.partial(
                    self._reserver.check,
                    day=day,
                    scope_keys=[key for _, key in scopes],
                    caps=caps,
                    estimate=estimate,
                    limit=min(policy.defer_at, 1.0),
                    reservation_id=reservation_id,
                    now_ms=self._clock_ms(),
                    ttl_ms=self._config.reservation_ttl_s * 1000,
                    reserve=request.reserve,
                )
            )
        except (RedisError, OSError):
            self._rebuild_due = True
            return self._fault_decision(request.tier, now)
        tightest = self._tightest(result, scopes, caps, estimate)
        action, reason, cheaper, retry = decide(
            tier=request.tier,
            policy=policy,
            reserved=result.reserved,
            tightest=tightest,
            llm_model=request.llm_model,
            downgrade_map=self._config.downgrade_map,
            over_cap_action=self._config.over_cap_action,
            retry_after_ms=self._retry_after_ms(now),
        )
        if request.reserve:  # a dry run leaves no trace, alerts included
            self._alerts.observe(self._crossings(day, scopes, budgets, result))
        return BudgetDecision(
            action=action,
            reason=reason,
            retry_after_ms=retry if action in (Action.DEFER, Action.DENY) else 0,
            downgrade_model=cheaper,
            remaining=self._remaining(scopes, budgets, result),
            reservation_id=reservation_id if result.reserved and request.reserve else "",
        )

    async def release(self, reservation_id: str) -> bool:
        """Give back a reservation before it expires; False when there was none to give.

        A check just after midnight reserved on the day before, so both days are tried, one
        call each: each day's keys live in their own Redis Cluster slot.
        """
        today = datetime.now(self._config.core.timezone).date()
        for day in (today, today - timedelta(days=1)):
            if await self._reserver.release(reservation_id, [day]):
                return True
        return False

    def _fault_decision(self, tier: str, now: datetime) -> BudgetDecision:
        if tier in self._config.fail_open_tiers:
            return BudgetDecision(
                Action.ALLOW, f"Redis unreachable: allowed by the fail-open policy for tier {tier}"
            )
        return BudgetDecision(
            Action.DEFER,
            f"Redis unreachable: deferred by the fail-closed policy for tier {tier}",
            retry_after_ms=self._config.fail_closed_retry_ms,
        )

    @staticmethod
    def _tightest(
        result: Reservation,
        scopes: list[tuple[str, str]],
        caps: list[list[int]],
        estimate: list[int],
    ) -> Tightest | None:
        if not result.worst_scope:
            return None
        row = result.figures[result.worst_scope - 1]
        m = result.worst_metric - 1
        metric = METRICS[m][0]
        after = row[m] + row[m + 5] + (0 if result.reserved else estimate[m])
        return Tightest(
            scope=scopes[result.worst_scope - 1][0],
            metric=metric,
            fraction=result.worst_fraction,
            used=_in_units(metric, after),
            cap=_in_units(metric, caps[result.worst_scope - 1][m]),
        )

    @staticmethod
    def _remaining(
        scopes: list[tuple[str, str]], budgets: list[Budget | None], result: Reservation
    ) -> tuple[Remaining, ...]:
        out = []
        for (name, _), budget, row in zip(scopes, budgets, result.figures, strict=False):
            if budget is None:
                continue
            for m, cap in enumerate(budget.caps):
                if cap is None:
                    continue
                metric = METRICS[m][0]
                used = row[m] + row[m + 5]
                out.append(
                    Remaining(
                        name,
                        metric,
                        _in_units(metric, cap),
                        _in_units(metric, used),
                        _in_units(metric, max(0, cap - used)),
                    )
                )
        return tuple(out)

    @staticmethod
    def _crossings(
        day: date, scopes: list[tuple[str, str]], budgets: list[Budget | None], result: Reservation
    ) -> list[Crossing]:
        found = []
        for (name, _), budget, row in zip(scopes, budgets, result.figures, strict=False):
            if budget is None:
                continue
            for m, cap in enumerate(budget.caps):
                if not cap:
                    continue
                metric = METRICS[m][0]
                for threshold in budget.thresholds:
                    if row[m] >= threshold * cap:  # actual usage, not reservations
                        found.append(
                            Crossing(
                                day,
                                name,
                                metric,
                                threshold,
                                _in_units(metric, row[m]),
                                _in_units(metric, cap),
                            )
                        )
        return found
