"""``Check``: what a job may do now, from live counters and budgets.

The path of every check stays in whole numbers (counter units: nano-USD for cost) until a
figure is written for a person: the budgets' caps, thresholds and what they leave are
worked out once per budget (``Budget``), an estimate's price once per sheet
(``Estimator``), and the reservation shares its Redis round trip with concurrent checks
(``ReservationPipeline``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from redis.exceptions import RedisError

from costguard.common.counters import global_key, tier_key, user_key
from costguard.common.days import day_bounds
from costguard.common.pricing import to_nano_usd
from costguard.common.rebuild import CounterReconciler
from costguard.throttle.alerts import AlertRecorder, Crossing
from costguard.throttle.budgets import METRICS, NO_BUDGET_CAPS, Budget, BudgetBook
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.estimate import Estimator
from costguard.throttle.pipeline import ReservationPipeline
from costguard.throttle.policy import (
    Action,
    BudgetDecision,
    Remaining,
    Tightest,
    amount,
    decide,
)
from costguard.throttle.reserve import CountersLost, Reservation, Reserver, ReserveRequest

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


Scopes = list[tuple[str, str]]  # (scope name, its counter key), global, tier, user


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
        self._pipeline = ReservationPipeline(
            reserver, max_batch=config.reserve_batch_max, window_s=config.reserve_window_s
        )
        self._rebuilder = rebuilder
        self._alerts = alerts
        self._estimator = estimator
        self._rebuild_due = False
        self._clock_ms = clock_ms  # reservations expire by this clock (tests move it)

    async def _estimate(self, day: date, request: CheckInput) -> list[int]:
        if request.est_cost_usd is None:
            cost = await self._estimator.nano_usd(
                day,
                cpu_ms=request.est_cpu_ms,
                model=request.llm_model,
                provider=request.llm_provider,
                input_tokens=request.est_input_tokens,
                cached_input_tokens=request.est_cached_input_tokens,
                output_tokens=request.est_output_tokens,
            )
        else:
            cost = to_nano_usd(request.est_cost_usd)
        return [1, request.est_cpu_ms, request.est_input_tokens, request.est_output_tokens, cost]

    def _retry_after_ms(self, now: datetime) -> int:
        if self._config.retry_after_ms:
            return self._config.retry_after_ms
        _, midnight = day_bounds(now.date(), self._config.core.timezone)
        return max(1, int((midnight - now).total_seconds() * 1000))

    async def _reserve(self, day: date, request: ReserveRequest) -> Reservation:
        """Reserve, first rebuilding the counters when Redis failed or lost them."""
        if self._rebuild_due:
            await self._rebuilder.rebuild_today(wait=True)
            self._rebuild_due = False
        try:
            return await self._pipeline.check(day=day, request=request)
        except CountersLost:
            log.info("live counters lost; rebuilding from Postgres before deciding")
            await self._rebuilder.rebuild_today(wait=True)
            return await self._pipeline.check(day=day, request=request)

    async def check(self, request: CheckInput) -> BudgetDecision:
        now = datetime.now(self._config.core.timezone)
        day = now.date()
        scopes = [
            ("global", global_key(day)),
            (request.tier, tier_key(day, request.tier)),
            (f"user:{request.user_id}", user_key(day, request.user_id)),
        ]
        budgets = [self._budgets.get(name) for name, _ in scopes]
        caps = [NO_BUDGET_CAPS if b is None else b.script_caps for b in budgets]
        estimate = await self._estimate(day, request)
        policy = self._config.policies[request.tier]
        reservation_id = request.reservation_id or secrets.token_hex(16)
        try:
            result = await self._reserve(
                day,
                ReserveRequest(
                    scope_keys=[key for _, key in scopes],
                    caps=caps,
                    estimate=estimate,
                    limit=min(policy.defer_at, 1.0),
                    reservation_id=reservation_id,
                    now_ms=self._clock_ms(),
                    ttl_ms=self._config.reservation_ttl_s * 1000,
                    reserve=request.reserve,
                ),
            )
        except (RedisError, OSError):
            self._rebuild_due = True
            return self._fault_decision(request.tier, now)
        action, reason, cheaper, retry = decide(
            tier=request.tier,
            policy=policy,
            reserved=result.reserved,
            tightest=self._tightest(result, scopes, caps, estimate),
            llm_model=request.llm_model,
            downgrade_map=self._config.downgrade_map,
            over_cap_action=self._config.over_cap_action,
            # Only a check that reserved nothing waits (DEFER, DENY): only it needs the time.
            retry_after_ms=0 if result.reserved else self._retry_after_ms(now),
        )
        if request.reserve:  # a dry run leaves no trace, alerts included
            self._observe_crossings(day, scopes, budgets, result)
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
        scopes: Scopes,
        caps: list[tuple[int, ...]],
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
            used=amount(metric, after),
            cap=amount(metric, caps[result.worst_scope - 1][m]),
        )

    @staticmethod
    def _remaining(
        scopes: Scopes, budgets: list[Budget | None], result: Reservation
    ) -> tuple[Remaining, ...]:
        return tuple(
            Remaining(name, metric, cap, row[m] + row[m + 5])
            for (name, _), budget, row in zip(scopes, budgets, result.figures, strict=False)
            if budget is not None
            for m, metric, cap in budget.capped
        )

    def _observe_crossings(
        self, day: date, scopes: Scopes, budgets: list[Budget | None], result: Reservation
    ) -> None:
        """Hand the alerts the thresholds this check finds crossed (actual usage, not
        reservations) that are not recorded yet."""
        found = []
        for (name, _), budget, row in zip(scopes, budgets, result.figures, strict=False):
            if budget is None:
                continue
            for m, metric, cap, threshold, crossed_at in budget.alert_levels:
                if row[m] >= crossed_at and not self._alerts.recorded(day, name, metric, threshold):
                    found.append(
                        Crossing(
                            day,
                            name,
                            metric,
                            threshold,
                            amount(metric, row[m]),
                            amount(metric, cap),
                        )
                    )
        if found:
            self._alerts.observe(found)
