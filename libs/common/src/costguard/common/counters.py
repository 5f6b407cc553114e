"""Live per-day counters in Redis: global, per tier and per user.

Keys carry the local date as a hash tag (``cg:{2026-11-25}:t:free``) so that one day's
keys share a Redis Cluster slot and a Lua script can touch global, tier and user
counters of that day atomically (the throttle's reservations rely on this). Every key
expires two days after its last write. A set per day indexes the day's keys, so a
rebuild from Postgres can also zero the keys that Postgres no longer supports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from redis.asyncio import Redis

USAGE_FIELDS = ("jobs", "cpu_ms", "tokens_in", "tokens_out", "ai_calls", "cost_nusd")
TTL_SECONDS = 2 * 24 * 3600


def day_prefix(day: date) -> str:
    return f"cg:{{{day.isoformat()}}}"


def global_key(day: date) -> str:
    return f"{day_prefix(day)}:g"


def tier_key(day: date, tier: str) -> str:
    return f"{day_prefix(day)}:t:{tier}"


def user_key(day: date, user_id: str) -> str:
    return f"{day_prefix(day)}:u:{user_id}"


def index_key(day: date) -> str:
    return f"{day_prefix(day)}:keys"


@dataclass
class Usage:
    """What one or more stored events add to a day's counters."""

    day: date
    tier: str | None
    user_id: str | None
    figures: dict[str, int] = field(default_factory=dict)

    def counter_keys(self) -> list[str]:
        keys = [global_key(self.day)]
        if self.tier:
            keys.append(tier_key(self.day, self.tier))
        if self.user_id:
            keys.append(user_key(self.day, self.user_id))
        return keys


def merge(usages: Iterable[Usage]) -> dict[tuple[date, str], dict[str, int]]:
    """Sum usages per counter key, so a batch costs one HINCRBY per key and field."""
    totals: dict[tuple[date, str], dict[str, int]] = {}
    for usage in usages:
        for key in usage.counter_keys():
            figures = totals.setdefault((usage.day, key), {})
            for name, value in usage.figures.items():
                if value:
                    figures[name] = figures.get(name, 0) + value
    return totals


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LiveCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, usages: Iterable[Usage]) -> None:
        totals = merge(usages)
        if not totals:
            return
        pipe = self._redis.pipeline(transaction=True)
        for (day, key), figures in totals.items():
            for name, value in figures.items():
                pipe.hincrby(key, name, value)
            pipe.expire(key, TTL_SECONDS)
            pipe.sadd(index_key(day), key)
            pipe.expire(index_key(day), TTL_SECONDS)
        await pipe.execute()

    async def read(self, key: str) -> dict[str, int]:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(key)).items()}
        return {name: int(raw.get(name, 0)) for name in USAGE_FIELDS}

    async def replace_day(self, day: date, totals: Mapping[str, Mapping[str, int]]) -> None:
        """Set the day's usage fields to ``totals`` (key -> figures), zeroing other keys.

        Only usage fields are written: anything else in the hashes (the throttle's
        reservations) is left as it is.
        """
        stale = {_text(member) for member in await self._redis.smembers(index_key(day))}
        pipe = self._redis.pipeline(transaction=True)
        for key in stale | set(totals):
            figures = totals.get(key, {})
            pipe.hset(key, mapping={name: figures.get(name, 0) for name in USAGE_FIELDS})
            pipe.expire(key, TTL_SECONDS)
            pipe.sadd(index_key(day), key)
        pipe.expire(index_key(day), TTL_SECONDS)
        await pipe.execute()
