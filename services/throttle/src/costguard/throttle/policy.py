"""From a reservation's figures to a decision a human can read. Pure: no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from costguard.common.pricing import NANO
from costguard.throttle.budgets import METRICS
from costguard.throttle.config import TierPolicy


class Action(enum.Enum):
    ALLOW = "ALLOW"
    DOWNGRADE = "DOWNGRADE"
    DEFER = "DEFER"
    DENY = "DENY"


def amount(metric: str, value: int) -> Decimal:
    """A counter figure in its metric's unit: USD for cost (counted in nano-USD), else a count."""
    return Decimal(value) * NANO if metric == "cost_usd" else Decimal(value)


def amount_text(metric: str, value: int) -> str:
    """``str(amount(metric, value))``, without a Decimal for a count (the same digits)."""
    return str(Decimal(value) * NANO) if metric == "cost_usd" else str(value)


class Remaining(NamedTuple):
    """What one cap leaves after a check, in counter units (nano-USD for ``cost_usd``)."""

    scope: str
    metric: str
    cap: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.used)


@dataclass(frozen=True)
class BudgetDecision:
    action: Action
    reason: str
    retry_after_ms: int = 0
    downgrade_model: str = ""
    remaining: tuple[Remaining, ...] = field(default_factory=tuple)
    reservation_id: str = ""


@dataclass(frozen=True)
class Tightest:
    """The cap closest to its limit after the request: where, which, and how close."""

    scope: str
    metric: str
    fraction: float
    used: Decimal
    cap: Decimal


def _pct(fraction: float) -> str:
    return "over 1000%" if fraction >= 10 else f"{fraction:.0%}"


def _figure(metric: str, value: Decimal) -> str:
    return f"${value:,.4f}" if metric == "cost_usd" else f"{value:,.0f}"


def describe(t: Tightest) -> str:
    used, cap = _figure(t.metric, t.used), _figure(t.metric, t.cap)
    return f"{t.scope} {t.metric} at {_pct(t.fraction)} ({used} of {cap})"


def decide(
    *,
    tier: str,
    policy: TierPolicy,
    reserved: bool,
    tightest: Tightest | None,
    llm_model: str,
    downgrade_map: Mapping[str, str],
    over_cap_action: str,
    retry_after_ms: int,
) -> tuple[Action, str, str, int]:
    """(action, reason, downgrade model, retry after ms) for one check."""
    if tightest is None:
        return Action.ALLOW, "allowed: no cap applies", "", 0
    where = describe(tightest)
    if not reserved and tightest.fraction > 1.0:
        action = Action.DENY if over_cap_action == "deny" else Action.DEFER
        verb = "denied" if action is Action.DENY else "deferred"
        return (
            action,
            f"{verb}: the cap would be exceeded: {where} after this request; "
            "budgets reset at local midnight",
            "",
            retry_after_ms,
        )
    if not reserved:
        return (
            Action.DEFER,
            f"deferred: tier {tier} waits once a cap passes {policy.defer_at:.0%}: "
            f"{where} after this request",
            "",
            retry_after_ms,
        )
    if policy.downgrade_at is not None and tightest.fraction >= policy.downgrade_at:
        cheaper = downgrade_map.get(llm_model, "")
        if cheaper:
            return (
                Action.DOWNGRADE,
                f"downgraded {llm_model} -> {cheaper}: "
                f"tier {tier} downgrades from {policy.downgrade_at:.0%}: {where}",
                cheaper,
                0,
            )
        return (
            Action.ALLOW,
            f"allowed (no cheaper model mapped for {llm_model or 'this job'}): {where}",
            "",
            0,
        )
    return Action.ALLOW, f"allowed: tightest cap is {where} after this request", "", 0


def metric_name(index: int) -> str:
    return METRICS[index - 1][0]
