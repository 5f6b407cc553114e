from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from costguard.common.config import CoreConfig, Env


@dataclass(frozen=True)
class RollupConfig:
    core: CoreConfig
    database_url: str
    redis_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RollupConfig:
        env = Env(environ)
        return cls(
            core=CoreConfig.from_env("rollup", env, default_port=50053),
            database_url=env.database_url(),
            redis_url=env.redis_url(),
        )
