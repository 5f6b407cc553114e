"""The Starlette application: routes declared as a list, resources opened in lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from grpc import aio
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route

from costguard.common.db import create_pool
from costguard.common.redis import create_redis
from costguard.gateway import routes
from costguard.gateway.config import GatewayConfig


@dataclass
class Resources:
    config: GatewayConfig
    pool: asyncpg.Pool
    redis: Redis
    channels: dict[str, aio.Channel]


def create_app(config: GatewayConfig) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await create_pool(config.database_url)
        redis = create_redis(config.redis_url)
        channels = {
            "telemetry": aio.insecure_channel(config.telemetry_addr),
            "throttle": aio.insecure_channel(config.throttle_addr),
            "rollup": aio.insecure_channel(config.rollup_addr),
        }
        app.state.resources = Resources(config, pool, redis, channels)
        try:
            yield
        finally:
            for channel in reversed(channels.values()):
                await channel.close()
            await redis.aclose()
            await pool.close()

    return Starlette(
        routes=[
            Route("/healthz", routes.healthz),
            Route("/readyz", routes.readyz),
            Route("/api/admin/cost/summary", routes.cost_summary),
        ],
        lifespan=lifespan,
    )
