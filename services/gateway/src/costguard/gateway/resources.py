"""What handlers share, opened in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
from grpc import aio
from starlette.requests import Request

from costguard.common.redis import RedisClient
from costguard.gateway.config import GatewayConfig
from costguard.gateway.user_days import UserDays


@dataclass
class Resources:
    config: GatewayConfig
    pool: asyncpg.Pool
    redis: RedisClient
    channels: dict[str, aio.Channel]
    http: httpx.AsyncClient
    session_secret: bytes
    user_days: UserDays  # every user's cost of the recent days, for the top users
    # What "now" is: the wall clock, unless a test fixes it (the forecast depends on the
    # time of day).
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def now(self) -> datetime:
        """Now, in the configured time zone: it decides what "today" is."""
        return self.clock().astimezone(self.config.core.timezone)


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found
