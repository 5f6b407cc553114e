"""Live per-day counters in Redis: global, per tier and per user.

Keys carry the local date as a hash tag (``cg:{2026-11-25}:t:free``) so that one day's
keys share a Redis Cluster slot and a Lua script can touch global, tier and user
counters of that day atomically (the throttle's reservations rely on this). Every key
expires two days after its last write. A set per day indexes the day's keys, so a
rebuild from Postgres can also zero the keys that Postgres no longer supports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from redis.asyncio import Redis

USAGE_FIELDS = ("jobs", "cpu_ms", "tokens_in", "tokens_out", "ai_calls", "cost_nusd")
# What the throttle holds back for checks whose jobs have not reported yet, per key.
RESERVED_FIELDS = ("r_jobs", "r_cpu_ms", "r_tokens_in", "r_tokens_out", "r_cost_nusd")
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


def built_key(day: date) -> str:
    """Set by a rebuild from Postgres: its absence means Redis lost the day's counters."""
    return f"{day_prefix(day)}:built"


def reservations_key(day: date) -> str:
    """Sorted set: reservation id -> expiry (ms)."""
    return f"{day_prefix(day)}:resv"


def reservation_data_key(day: date) -> str:
    """Hash: reservation id -> JSON {"k": [counter keys], "a": [RESERVED_FIELDS amounts]}."""
    return f"{day_prefix(day)}:resd"


# Lua: give a reservation back (subtract its amounts from its keys' r_* fields). Used by
# the ingest script (settling to actuals) and by the throttle's check (expiring). The
# counter keys it touches are named in the reservation record rather than in KEYS; they
# share the day's hash tag, so they live in the same Redis Cluster slot.
RELEASE_LUA = """
local reserved_fields = {'r_jobs', 'r_cpu_ms', 'r_tokens_in', 'r_tokens_out', 'r_cost_nusd'}
local function release(resv, resd, id)
  local record = redis.call('HGET', resd, id)
  redis.call('ZREM', resv, id)
  if not record then return 0 end
  redis.call('HDEL', resd, id)
  local r = cjson.decode(record)
  for _, key in ipairs(r.k) do
    for f = 1, 5 do
      if r.a[f] ~= 0 then
        redis.call('HINCRBY', key, reserved_fields[f], string.format('%.0f', -r.a[f]))
      end
    end
  end
  return 1
end
"""


@dataclass(frozen=True)
class Usage:
    """What stored events of one day, tier and user add to the counters, in
    ``USAGE_FIELDS`` order."""

    day: date
    tier: str | None
    user_id: str | None
    figures: tuple[int, int, int, int, int, int]
    reservations: tuple[str, ...] = ()  # settled by these events: released as they count


# KEYS[1]: the day's key index, KEYS[2]: the global counter, KEYS[3], KEYS[4]: the day's
# reservations, then tier and user counters. ARGV[1]: TTL; ARGV[2]: JSON rows [tier key
# index or 0, user key index or 0, six figures]; ARGV[3]: JSON list of reservation ids
# these events settle. Sums per key happen here, so a batch is one round trip however
# many users it touches; actual usage arrives and its reservations go in the same step.
_ADD = (
    RELEASE_LUA
    + """
local ttl = tonumber(ARGV[1])
local fields = {'jobs', 'cpu_ms', 'tokens_in', 'tokens_out', 'ai_calls', 'cost_nusd'}
local totals = {}
local function add(k, row)
  local t = totals[k]
  if not t then t = {0, 0, 0, 0, 0, 0}; totals[k] = t end
  for f = 1, 6 do t[f] = t[f] + row[f + 2] end
end
for _, row in ipairs(cjson.decode(ARGV[2])) do
  add(2, row)
  if row[1] > 0 then add(row[1], row) end
  if row[2] > 0 then add(row[2], row) end
end
for k, t in pairs(totals) do
  for f = 1, 6 do
    if t[f] ~= 0 then redis.call('HINCRBY', KEYS[k], fields[f], string.format('%.0f', t[f])) end
  end
  redis.call('EXPIRE', KEYS[k], ttl)
  redis.call('SADD', KEYS[1], KEYS[k])
end
redis.call('EXPIRE', KEYS[1], ttl)
for _, id in ipairs(cjson.decode(ARGV[3])) do
  release(KEYS[3], KEYS[4], id)
end
return #KEYS
"""
)


def _script_input(day: date, usages: list[Usage]) -> tuple[list[str], list[list[int]]]:
    """KEYS and the JSON rows for ``_ADD``: each row points at its tier and user keys."""
    keys = [index_key(day), global_key(day), reservations_key(day), reservation_data_key(day)]
    position: dict[str, int] = {}

    def slot(key: str) -> int:
        if key not in position:
            keys.append(key)
            position[key] = len(keys)  # Lua indexes from 1
        return position[key]

    rows = [
        [
            slot(tier_key(day, u.tier)) if u.tier else 0,
            slot(user_key(day, u.user_id)) if u.user_id else 0,
            *u.figures,
        ]
        for u in usages
    ]
    return keys, rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LiveCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._add_script = redis.register_script(_ADD)

    async def add(self, usages: Iterable[Usage]) -> None:
        """Add usages with one script call per day: one round trip, applied atomically."""
        by_day: dict[date, list[Usage]] = {}
        for usage in usages:
            by_day.setdefault(usage.day, []).append(usage)
        for day, day_usages in by_day.items():
            keys, rows = _script_input(day, day_usages)
            settled = [r for usage in day_usages for r in usage.reservations]
            await self._add_script(
                keys=keys, args=[TTL_SECONDS, json.dumps(rows), json.dumps(settled)]
            )

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
        pipe.set(built_key(day), "1", ex=TTL_SECONDS)
        await pipe.execute()
