"""Redis access: one client (with its own connection pool) per process."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=2.0
    )
