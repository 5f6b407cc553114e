"""Check-and-reserve in one Lua call, against every scope that applies, atomically.

The script first gives back reservations that expired (jobs that never reported), then
reads usage and reservations of the global, tier and user counters, works out the
tightest cap after this request's estimate, and reserves the estimate on all three keys
only if that stays within the tier's limit. Being one script, concurrent checks see each
other's reservations: a cap is never overshot by more than one request's estimate.
Telemetry settles a reservation to actuals when the job's event arrives (see
``costguard.common.counters``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from costguard.common.counters import (
    RELEASE_LUA,
    TTL_SECONDS,
    built_key,
    reservation_data_key,
    reservations_key,
)
from costguard.common.redis import RedisClient

# KEYS: built sentinel, reservations zset, reservation data hash, then the scope counters.
# ARGV: now (ms), reservation id, its expiry (ms), the tier's limit (fraction), JSON
# estimate [jobs, cpu_ms, tokens_in, tokens_out, cost_nusd], JSON caps per scope key
# (same order, -1 for none), key TTL (s), 1 to reserve or 0 for a dry run.
# Returns {reserved 0/1, worst fraction, scope index, metric index, JSON figures}; or
# {'rebuild'} when Redis has lost the day's counters and they must be rebuilt first.
_CHECK = (
    RELEASE_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'rebuild'} end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 500)
for _, id in ipairs(expired) do release(KEYS[2], KEYS[3], id) end

local again = redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1  -- a retried check
local est = cjson.decode(ARGV[5])
local caps = cjson.decode(ARGV[6])
local figures = {}
local worst, worst_scope, worst_metric = 0, 0, 0
for i = 4, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'jobs', 'cpu_ms', 'tokens_in', 'tokens_out', 'cost_nusd',
                       'r_jobs', 'r_cpu_ms', 'r_tokens_in', 'r_tokens_out', 'r_cost_nusd')
  local row = {}
  for f = 1, 10 do row[f] = tonumber(v[f]) or 0 end
  figures[i - 3] = row
  for m = 1, 5 do
    local cap = caps[i - 3][m]
    if cap >= 0 and est[m] > 0 then
      local after = row[m] + row[m + 5] + (again and 0 or est[m])
      local fraction
      if cap == 0 then fraction = 1e300 else fraction = after / cap end
      if fraction > worst then worst, worst_scope, worst_metric = fraction, i - 3, m end
    end
  end
end

local reserved = again or worst <= tonumber(ARGV[4])
if reserved and not again and ARGV[8] == '0' then
  -- A dry run: the figures are what this check would leave, and nothing is written.
  for i = 4, #KEYS do
    for m = 1, 5 do figures[i - 3][m + 5] = figures[i - 3][m + 5] + est[m] end
  end
elseif reserved and not again then
  local keys = {}
  for i = 4, #KEYS do
    for m = 1, 5 do
      if est[m] ~= 0 then
        redis.call('HINCRBY', KEYS[i], reserved_fields[m], string.format('%.0f', est[m]))
        figures[i - 3][m + 5] = figures[i - 3][m + 5] + est[m]
      end
    end
    redis.call('EXPIRE', KEYS[i], ARGV[7])
    keys[#keys + 1] = KEYS[i]
  end
  redis.call('HSET', KEYS[3], ARGV[2], cjson.encode({k = keys, a = est}))
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
return {reserved and 1 or 0, string.format('%.17g', worst), worst_scope, worst_metric,
        cjson.encode(figures)}
"""
)


class CountersLost(Exception):
    """Redis no longer holds the day's counters: rebuild them from Postgres first."""


@dataclass(frozen=True)
class Reservation:
    reserved: bool
    worst_fraction: float
    worst_scope: int  # 1-based index into the scope keys; 0 when no cap applies
    worst_metric: int  # 1-based index into budgets.METRICS
    # Per scope key: five usage figures then five reserved figures (after this request).
    figures: list[list[int]]


# KEYS: per day tried, its reservations zset and reservation data hash. ARGV: the id.
# Returns 1 when a live reservation was given back.
_RELEASE = (
    RELEASE_LUA
    + """
for i = 1, #KEYS, 2 do
  if release(KEYS[i], KEYS[i + 1], ARGV[1]) == 1 then return 1 end
end
return 0
"""
)


class Reserver:
    def __init__(self, redis: RedisClient) -> None:
        self._script = redis.register_script(_CHECK)
        self._release = redis.register_script(_RELEASE)

    async def release(self, reservation_id: str, days: list[date]) -> bool:
        """Give back the reservation ``reservation_id`` made on one of ``days``."""
        keys = [k for day in days for k in (reservations_key(day), reservation_data_key(day))]
        return int(await self._release(keys=keys, args=[reservation_id])) == 1

    async def check(
        self,
        *,
        day: date,
        scope_keys: list[str],
        caps: list[list[int]],
        estimate: list[int],
        limit: float,
        reservation_id: str,
        now_ms: int,
        ttl_ms: int,
        reserve: bool = True,
    ) -> Reservation:
        keys = [built_key(day), reservations_key(day), reservation_data_key(day), *scope_keys]
        args: list[str | int] = [
            now_ms,
            reservation_id,
            now_ms + ttl_ms,
            repr(limit),
            json.dumps(estimate),
            json.dumps(caps),
            TTL_SECONDS,
            1 if reserve else 0,
        ]
        reply = await self._script(keys=keys, args=args)
        first = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if first == "rebuild":
            raise CountersLost
        figures = json.loads(reply[4])
        return Reservation(
            reserved=int(reply[0]) == 1,
            worst_fraction=float(reply[1]),
            worst_scope=int(reply[2]),
            worst_metric=int(reply[3]),
            figures=[[int(x) for x in row] for row in figures] if isinstance(figures, list) else [],
        )
