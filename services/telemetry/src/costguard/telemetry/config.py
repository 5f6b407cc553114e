from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from costguard.common.config import ConfigError, CoreConfig, Env
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.telemetry.otlp import Defaults


@dataclass(frozen=True)
class TelemetryConfig:
    core: CoreConfig
    database_url: str
    redis_url: str
    prices: SeedPrices
    aws: AwsPrices
    reconcile_interval_s: float
    otlp_defaults: Defaults
    otlp_http_port: int  # OTLP/HTTP on the gRPC listen address's host; 0: any free port

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TelemetryConfig:
        env = Env(environ)
        core = CoreConfig.from_env("telemetry", env, default_port=50051)
        otlp_tier = env.optional_str("OTLP_DEFAULT_TIER") or core.tiers[0]
        if otlp_tier not in core.tiers:
            # Caught here, not span by span: every span without a tier of its own would be
            # rejected at ingest.
            raise ConfigError(
                "OTLP_DEFAULT_TIER",
                f"{otlp_tier!r} is not one of COSTGUARD_TIERS ({', '.join(core.tiers)})",
            )
        return cls(
            core=core,
            database_url=env.database_url(),
            redis_url=env.redis_url(),
            prices=SeedPrices.from_env(environ),
            aws=AwsPrices.from_env(environ),
            reconcile_interval_s=env.number("COUNTER_RECONCILE_SECONDS", 60.0, minimum=1.0),
            otlp_defaults=Defaults(
                tier=otlp_tier,
                user=env.optional_str("OTLP_DEFAULT_USER"),
            ),
            otlp_http_port=env.integer("OTLP_HTTP_PORT", 4318, maximum=65535),
        )
