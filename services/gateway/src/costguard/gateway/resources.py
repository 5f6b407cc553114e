"""What handlers share, opened in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import httpx
from grpc import aio
from redis.asyncio import Redis
from starlette.requests import Request

from costguard.gateway.config import GatewayConfig


@dataclass
class Resources:
    config: GatewayConfig
    pool: asyncpg.Pool
    redis: Redis
    channels: dict[str, aio.Channel]
    http: httpx.AsyncClient
    session_secret: bytes


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found
