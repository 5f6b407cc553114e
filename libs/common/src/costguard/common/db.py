"""Postgres access: one asyncpg pool per process."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What ``pool.acquire()`` yields and what ``asyncpg.connect()`` returns: code that runs
# SQL takes either.
Connection = asyncpg.Connection | PoolConnectionProxy


_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + json.dumps(value).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


def _encode_json(value: Any) -> bytes:
    return json.dumps(value).encode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (always binary in asyncpg) can write jsonb columns too.
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_encode_json, decoder=json.loads, schema="pg_catalog", format="binary"
    )


# Every statement is planned for its own parameters. A generic plan of a query over one
# day of the raw event tables would prune their day partitions only as it starts, after
# locking every one of them and their indexes (Postgres 15): hundreds of locks a statement.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={**SERVER_SETTINGS, **(server_settings or {})},
    )
    assert pool is not None  # create_pool only returns None when not awaited
    return pool
