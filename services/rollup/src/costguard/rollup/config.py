from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time

from costguard.common.config import ConfigError, CoreConfig, Env
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.rollup.rollup import Pricing


def _clock_time(env: Env, name: str, default: str) -> time:
    raw = env.raw(name) or default
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise ConfigError(name, f"expected HH:MM, got {raw!r}") from None


@dataclass(frozen=True)
class RollupConfig:
    core: CoreConfig
    database_url: str
    pricing: Pricing
    nightly_at: time
    dirty_interval_s: float
    scheduler: bool
    retention_days: int = 400

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RollupConfig:
        env = Env(environ)
        return cls(
            core=CoreConfig.from_env("rollup", env, default_port=50053),
            database_url=env.database_url(),
            pricing=Pricing(SeedPrices.from_env(environ), AwsPrices.from_env(environ)),
            nightly_at=_clock_time(env, "ROLLUP_NIGHTLY_AT", "02:30"),
            dirty_interval_s=env.number("ROLLUP_DIRTY_INTERVAL_SECONDS", 60.0, minimum=1.0),
            scheduler=env.flag("ROLLUP_SCHEDULER", True),
            retention_days=env.integer("RETENTION_DAYS", 400),
        )
