"""Throttle settings: the policy per tier, the downgrade map, fault behaviour, queue weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from costguard.common.config import ConfigError, CoreConfig, Env
from costguard.common.pricing import AwsPrices, SeedPrices


@dataclass(frozen=True)
class TierPolicy:
    """Fractions of a cap, counted after the request's own estimate.

    ``defer_at``: from here the tier waits (DEFER) although the cap is not reached;
    ``downgrade_at``: from here the tier is sent to a cheaper model (when one is mapped).
    Past 1.0 (the cap itself) every tier gets the over-cap action.
    """

    defer_at: float
    downgrade_at: float | None


# The free tier is deferred first, then pro is downgraded, and enterprise is protected
# until the cap itself (issue 4).
DEFAULT_DEFER_AT = "free:0.8,pro:1.0,enterprise:1.0"
DEFAULT_DOWNGRADE_AT = "pro:0.9"


# A batch is one Lua call that Redis runs without serving anyone else: long enough, it
# would stall every other client of the Redis.
MAX_RESERVE_BATCH = 1024
# Every check may wait this long for its batch's window: past it, the wait is the latency.
MAX_RESERVE_WINDOW_MS = 50.0


def _window_ms(env: Env) -> float:
    window = env.number("THROTTLE_RESERVE_WINDOW_MS", 2.0)
    if window > MAX_RESERVE_WINDOW_MS:
        raise ConfigError(
            "THROTTLE_RESERVE_WINDOW_MS",
            f"expected at most {MAX_RESERVE_WINDOW_MS} ms, got {window}",
        )
    return window


def _fractions(env: Env, name: str, default: str) -> dict[str, float]:
    raw = env.raw(name) or default
    result: dict[str, float] = {}
    for entry in raw.split(","):
        tier, sep, value = entry.strip().partition(":")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not tier or not 0 < fraction <= 1.0:
            raise ConfigError(
                name, f"expected tier:fraction entries with 0 < fraction <= 1, got {entry!r}"
            )
        result[tier] = fraction
    return result


def _pairs(env: Env, name: str, default: str, separator: str) -> dict[str, str]:
    raw = env.raw(name) if env.raw(name) is not None else default
    result: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in (raw or "").split(","))):
        left, sep, right = entry.partition(separator)
        if not sep or not left.strip() or not right.strip():
            raise ConfigError(name, f"expected entries like a{separator}b, got {entry!r}")
        result[left.strip()] = right.strip()
    return result


@dataclass(frozen=True)
class ThrottleConfig:
    core: CoreConfig
    database_url: str
    redis_url: str
    prices: SeedPrices
    aws: AwsPrices
    policies: Mapping[str, TierPolicy]
    downgrade_map: Mapping[str, str]
    over_cap_action: str  # "defer" or "deny"
    retry_after_ms: int  # 0: until the budgets reset at local midnight
    fail_open_tiers: frozenset[str]
    fail_closed_retry_ms: int
    reservation_ttl_s: int
    redis_timeout_s: float
    queue_weights: Mapping[str, int]
    budget_reload_s: float
    reserve_batch_max: int  # checks per Redis round trip, at most (1: one call per check)
    reserve_window_s: float  # how long a batch may wait to fill while checks come together
    decisions_flush_s: float = 5.0  # how often the counted decisions are added to Postgres

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ThrottleConfig:
        env = Env(environ)
        core = CoreConfig.from_env("throttle", env, default_port=50052)
        defer_at = _fractions(env, "THROTTLE_DEFER_AT", DEFAULT_DEFER_AT)
        downgrade_at = _fractions(env, "THROTTLE_DOWNGRADE_AT", DEFAULT_DOWNGRADE_AT)
        for name, tiers in (
            ("THROTTLE_DEFER_AT", defer_at),
            ("THROTTLE_DOWNGRADE_AT", downgrade_at),
        ):
            unknown = set(tiers) - set(core.tiers)
            if unknown:
                raise ConfigError(name, f"names tiers that are not configured: {sorted(unknown)}")
        over_cap = env.string("THROTTLE_OVER_CAP", "defer")
        if over_cap not in ("defer", "deny"):
            raise ConfigError("THROTTLE_OVER_CAP", f"expected defer or deny, got {over_cap!r}")
        weights = {
            tier: int(w)
            for tier, w in _pairs(
                env, "THROTTLE_QUEUE_WEIGHTS", "enterprise:5,pro:3,free:1", ":"
            ).items()
            if w.isdigit()
        }
        return cls(
            core=core,
            database_url=env.database_url(),
            redis_url=env.redis_url(),
            prices=SeedPrices.from_env(environ),
            aws=AwsPrices.from_env(environ),
            policies={
                tier: TierPolicy(defer_at.get(tier, 1.0), downgrade_at.get(tier))
                for tier in core.tiers
            },
            downgrade_map=_pairs(
                env, "THROTTLE_DOWNGRADE_MAP", "gpt-4o=gpt-4o-mini,gpt-4.1=gpt-4.1-mini", "="
            ),
            over_cap_action=over_cap,
            retry_after_ms=env.integer("THROTTLE_RETRY_AFTER_MS", 0),
            fail_open_tiers=frozenset(env.names("THROTTLE_FAIL_OPEN_TIERS", ("pro", "enterprise"))),
            fail_closed_retry_ms=env.integer("THROTTLE_FAIL_CLOSED_RETRY_MS", 30_000, minimum=1),
            reservation_ttl_s=env.integer("THROTTLE_RESERVATION_TTL_SECONDS", 600, minimum=1),
            redis_timeout_s=env.number("THROTTLE_REDIS_TIMEOUT_SECONDS", 0.25, minimum=0.01),
            queue_weights=weights,
            budget_reload_s=env.number("THROTTLE_BUDGET_RELOAD_SECONDS", 30.0, minimum=1.0),
            reserve_batch_max=env.integer(
                "THROTTLE_RESERVE_BATCH_MAX", 64, minimum=1, maximum=MAX_RESERVE_BATCH
            ),
            reserve_window_s=_window_ms(env) / 1000,
            decisions_flush_s=env.number("THROTTLE_DECISIONS_FLUSH_SECONDS", 5.0, minimum=0.1),
        )
