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

from costguard.common.redis import RedisClient

USAGE_FIELDS = ("jobs", "cpu_ms", "tokens_in", "tokens_out", "ai_calls", "cost_nusd")
# What the throttle holds back for checks whose jobs have not reported yet, per key.
RESERVED_FIELDS = ("r_jobs", "r_cpu_ms", "r_tokens_in", "r_tokens_out", "r_cost_nusd")
TTL_SECONDS = 2 * 24 * 3600
# The tier of cost events without a user, and of users whose events name no tier.
UNATTRIBUTED = "unattributed"


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
    ``USAGE_FIELDS`` order. ``vote`` is the latest of the events' instants (microseconds
    since 1970; -2 for events without a tier, which never decide one; -1 for storage held
    over from earlier days): the user's tier for the day is the tier of the greatest vote."""

    day: date
    tier: str
    user_id: str | None
    vote: int
    figures: tuple[int, int, int, int, int, int]
    reservations: tuple[str, ...] = ()  # settled by these events: released as they count


# One tier per user and day: the tier of their latest event (ties: the greater tier name),
# the rule ``cost_user_daily`` and ``tier_breakdown_json`` follow. A user's hash keeps
# ``tier`` and ``tier_at`` (that event's vote); when a later event names another tier, the
# user's figures so far move from the old tier's counters to the new one's, so the tier
# counters always equal the users grouped by their tier (plus the unattributed events).
#
# KEYS[1]: the day's key index, KEYS[2]: the global counter, KEYS[3], KEYS[4]: the day's
# reservations. ARGV[1]: TTL; ARGV[2]: JSON rows [tier, user id or false, vote, six
# figures]; ARGV[3]: JSON list of reservation ids these events settle; ARGV[4], ARGV[5]: the
# prefixes of the day's tier and user keys. Tier and user keys are named by the script (they
# share the day's hash tag, so they live in the same Redis Cluster slot; a batch's hundreds
# of users, each encoded as a KEYS argument, took the client milliseconds). A batch is one
# round trip however many users it touches; actual usage arrives and its reservations go in
# the same step.
_ADD = (
    RELEASE_LUA
    + """
local ttl = tonumber(ARGV[1])
local tiers = ARGV[4]
local users = ARGV[5]
local fields = {'jobs', 'cpu_ms', 'tokens_in', 'tokens_out', 'ai_calls', 'cost_nusd'}
-- Tier and global sums are gathered here and written once per key at the end; user hashes
-- are written as each row comes, so a move reads what the batch already added.
local sums = {}
local function add(key, f, n)
  local t = sums[key]
  if not t then t = {0, 0, 0, 0, 0, 0}; sums[key] = t end
  t[f] = t[f] + n
end
local touched = {}
local function chosen(ukey, tier, vote)
  local cur = redis.call('HMGET', ukey, 'tier', 'tier_at')
  local cur_tier, cur_at = cur[1], tonumber(cur[2])
  if cur_tier and cur_at and (vote < cur_at or (vote == cur_at and tier <= cur_tier)) then
    return cur_tier
  end
  if cur_tier and cur_tier ~= tier then
    local v = redis.call('HMGET', ukey, unpack(fields))
    for f = 1, 6 do
      local n = tonumber(v[f]) or 0
      add(tiers .. cur_tier, f, -n)
      add(tiers .. tier, f, n)
    end
  end
  redis.call('HSET', ukey, 'tier', tier, 'tier_at', string.format('%.0f', vote))
  return tier
end
for _, row in ipairs(cjson.decode(ARGV[2])) do
  local tier = row[1]
  if row[2] then
    local ukey = users .. row[2]
    tier = chosen(ukey, tier, row[3])
    for f = 1, 6 do
      if row[f + 3] ~= 0 then
        redis.call('HINCRBY', ukey, fields[f], string.format('%.0f', row[f + 3]))
      end
    end
    touched[ukey] = true
  end
  for f = 1, 6 do
    add(tiers .. tier, f, row[f + 3])
    add(KEYS[2], f, row[f + 3])
  end
end
for key, t in pairs(sums) do
  for f = 1, 6 do
    if t[f] ~= 0 then redis.call('HINCRBY', key, fields[f], string.format('%.0f', t[f])) end
  end
  touched[key] = true
end
for k in pairs(touched) do
  redis.call('EXPIRE', k, ttl)
  redis.call('SADD', KEYS[1], k)
end
redis.call('EXPIRE', KEYS[1], ttl)
for _, id in ipairs(cjson.decode(ARGV[3])) do
  release(KEYS[3], KEYS[4], id)
end
return #KEYS
"""
)


def _script_input(day: date, usages: list[Usage]) -> tuple[list[str], list[list[object]]]:
    """KEYS and the JSON rows for ``_ADD``: each row names its tier and its user, if any."""
    keys = [index_key(day), global_key(day), reservations_key(day), reservation_data_key(day)]
    rows: list[list[object]] = [[u.tier, u.user_id or False, u.vote, *u.figures] for u in usages]
    return keys, rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LiveCounters:
    def __init__(self, redis: RedisClient) -> None:
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
                keys=keys,
                args=[
                    TTL_SECONDS,
                    # Raw UTF-8, as the user keys are named: cjson passes it through.
                    json.dumps(rows, ensure_ascii=False),
                    json.dumps(settled),
                    tier_key(day, ""),
                    user_key(day, ""),
                ],
            )

    async def read(self, key: str) -> dict[str, int]:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(key)).items()}
        return {name: int(raw.get(name, 0)) for name in USAGE_FIELDS}

    async def replace_day(
        self,
        day: date,
        totals: Mapping[str, Mapping[str, int]],
        user_tiers: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        """Set the day's usage fields to ``totals`` (key -> figures), zeroing other keys,
        and each user key's tier for the day (``user_tiers``: key -> tier and its vote).

        Only usage fields and tiers are written: anything else in the hashes (the
        throttle's reservations) is left as it is.
        """
        stale = {_text(member) for member in await self._redis.smembers(index_key(day))}
        pipe = self._redis.pipeline(transaction=True)
        for key in stale | set(totals):
            figures = totals.get(key, {})
            pipe.hset(key, mapping={name: figures.get(name, 0) for name in USAGE_FIELDS})
            pipe.expire(key, TTL_SECONDS)
            pipe.sadd(index_key(day), key)
        for key, (tier, vote) in (user_tiers or {}).items():
            pipe.hset(key, mapping={"tier": tier, "tier_at": vote})
        for key in stale - set(user_tiers or {}):
            if key.startswith(user_key(day, "")):
                pipe.hdel(key, "tier", "tier_at")
        pipe.expire(index_key(day), TTL_SECONDS)
        pipe.set(built_key(day), "1", ex=TTL_SECONDS)
        await pipe.execute()
