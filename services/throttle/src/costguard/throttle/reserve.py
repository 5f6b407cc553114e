"""Check-and-reserve in one Lua call, against every scope that applies, atomically.

For each request, in order, the script first gives back reservations that expired (jobs
that never reported), then reads usage and reservations of the request's counters (global,
tier and user), works out the tightest cap after the request's estimate, and reserves the
estimate on all of them only if that stays within the tier's limit. One call may carry a
batch of requests (see ``costguard.throttle.pipeline``): Redis runs a script without
interleaving anything else, and the script takes the requests strictly one after another,
each seeing the reservations of those before it. So a batch decides exactly as the same
requests sent one by one, and concurrent checks see each other's reservations: a cap is
never overshot by more than one request's estimate. Telemetry settles a reservation to
actuals when the job's event arrives (see ``costguard.common.counters``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast

from redis.exceptions import ResponseError

from costguard.common.counters import (
    RELEASE_LUA,
    TTL_SECONDS,
    built_key,
    reservation_data_key,
    reservations_key,
)
from costguard.common.redis import RedisClient

# KEYS: built sentinel, reservations zset, reservation data hash, then the batch's counter
# keys (each once). ARGV[1]: key TTL (s); ARGV[2]: JSON list, one entry per request:
# [now ms, expiry ms, tier limit (fraction), 1 to reserve or 0 for a dry run, [indexes into
# KEYS of its counters], estimate [jobs, cpu_ms, tokens_in, tokens_out, cost_nusd], caps per
# counter (same order, -1 for none)]; ARGV[2 + n]: request n's reservation id.
# Returns, per request, flat: reserved 0/1, worst fraction (text), scope index, metric
# index, then per counter five usage and five reserved figures (after the request), or
# 'error' and the message of the Redis error that failed it; or {'rebuild'} when Redis has
# lost the day's counters and they must be rebuilt first.
# Figures go back as integer replies and a reservation's amounts are written with %.0f:
# cjson keeps only 14 significant digits, and nano-dollars need more.
_CHECK = (
    RELEASE_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'rebuild'} end
local ttl = ARGV[1]
local out = {}
-- Keys written get their TTL once, after the batch: as fresh as after each write.
local written = {}

local function check(id, req)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', req[1]),
                             'LIMIT', 0, 500)
  for _, old in ipairs(expired) do release(KEYS[2], KEYS[3], old) end

  local again = redis.call('HEXISTS', KEYS[3], id) == 1  -- a retried check
  local scopes, est, caps = req[5], req[6], req[7]
  local figures = {}
  local worst, worst_scope, worst_metric = 0, 0, 0
  for s, k in ipairs(scopes) do
    local v = redis.call('HMGET', KEYS[k], 'jobs', 'cpu_ms', 'tokens_in', 'tokens_out',
                         'cost_nusd', 'r_jobs', 'r_cpu_ms', 'r_tokens_in', 'r_tokens_out',
                         'r_cost_nusd')
    local row = {}
    for f = 1, 10 do row[f] = tonumber(v[f]) or 0 end
    figures[s] = row
    for m = 1, 5 do
      local cap = caps[s][m]
      if cap >= 0 and est[m] > 0 then
        local after = row[m] + row[m + 5] + (again and 0 or est[m])
        local fraction
        if cap == 0 then fraction = 1e300 else fraction = after / cap end
        if fraction > worst then worst, worst_scope, worst_metric = fraction, s, m end
      end
    end
  end

  local reserved = again or worst <= req[3]
  if reserved and not again and req[4] == 0 then
    -- A dry run: the figures are what this check would leave, and nothing is written.
    for s = 1, #scopes do
      for m = 1, 5 do figures[s][m + 5] = figures[s][m + 5] + est[m] end
    end
  elseif reserved and not again then
    local keys = {}
    for s, k in ipairs(scopes) do
      written[k] = true
      for m = 1, 5 do
        if est[m] ~= 0 then
          redis.call('HINCRBY', KEYS[k], reserved_fields[m], string.format('%.0f', est[m]))
          figures[s][m + 5] = figures[s][m + 5] + est[m]
        end
      end
      keys[#keys + 1] = KEYS[k]
    end
    local amounts = string.format('[%.0f,%.0f,%.0f,%.0f,%.0f]', est[1], est[2], est[3],
                                  est[4], est[5])
    written[2], written[3] = true, true
    redis.call('HSET', KEYS[3], id, '{"k":' .. cjson.encode(keys) .. ',"a":' .. amounts .. '}')
    redis.call('ZADD', KEYS[2], string.format('%.0f', req[2]), id)
  end
  local answer = {reserved and 1 or 0, string.format('%.17g', worst), worst_scope, worst_metric}
  for s = 1, #scopes do
    local row = figures[s]
    for f = 1, 10 do answer[#answer + 1] = row[f] end
  end
  return answer
end

for n, req in ipairs(cjson.decode(ARGV[2])) do
  -- A command that fails fails its own request only, as it would in a call of its own (what
  -- it wrote before failing stays, as it would then too); the others still get decided.
  local ok, answer = pcall(check, ARGV[n + 2], req)
  if ok then
    for _, x in ipairs(answer) do out[#out + 1] = x end
  else
    out[#out + 1] = 'error'
    out[#out + 1] = type(answer) == 'table' and answer.err or tostring(answer)
  end
end
for k in pairs(written) do redis.call('EXPIRE', KEYS[k], ttl) end
return out
"""
)


class CountersLost(Exception):
    """Redis no longer holds the day's counters: rebuild them from Postgres first."""


@dataclass(frozen=True)
class ReserveRequest:
    """One check's reservation, as the script takes it (all amounts in counter units)."""

    scope_keys: Sequence[str]
    caps: Sequence[Sequence[int]]  # per scope key, in budgets.METRICS order; -1 for none
    estimate: Sequence[int]  # jobs, cpu_ms, tokens_in, tokens_out, cost_nusd
    limit: float  # the tier's limit, a fraction of the tightest cap
    reservation_id: str
    now_ms: int
    ttl_ms: int
    reserve: bool = True  # False: a dry run, decided without reserving


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


def _script_input(
    day: date, requests: Sequence[ReserveRequest]
) -> tuple[list[str], list[str | int]]:
    keys = [built_key(day), reservations_key(day), reservation_data_key(day)]
    position: dict[str, int] = {}
    entries = []
    for r in requests:
        indexes = []
        for key in r.scope_keys:
            index = position.get(key)
            if index is None:
                keys.append(key)
                index = position[key] = len(keys)  # Lua indexes from 1
            indexes.append(index)
        reserve = 1 if r.reserve else 0
        entries.append(
            [r.now_ms, r.now_ms + r.ttl_ms, r.limit, reserve, indexes, r.estimate, r.caps]
        )
    args: list[str | int] = [TTL_SECONDS, json.dumps(entries)]
    args += [r.reservation_id for r in requests]
    return keys, args


def _reservations(
    reply: list[int | str], requests: Sequence[ReserveRequest]
) -> list[Reservation | ResponseError]:
    out: list[Reservation | ResponseError] = []
    at = 0
    for r in requests:
        if reply[at] in ("error", b"error"):
            message = reply[at + 1]
            out.append(ResponseError(message.decode() if isinstance(message, bytes) else message))
            at += 2
            continue
        rows = []
        start = at + 4
        for _ in r.scope_keys:
            rows.append(cast(list[int], reply[start : start + 10]))  # integer replies
            start += 10
        out.append(
            Reservation(
                reserved=int(reply[at]) == 1,
                worst_fraction=float(reply[at + 1]),
                worst_scope=int(reply[at + 2]),
                worst_metric=int(reply[at + 3]),
                figures=rows,
            )
        )
        at = start
    return out


class Reserver:
    def __init__(self, redis: RedisClient) -> None:
        self._script = redis.register_script(_CHECK)
        self._release = redis.register_script(_RELEASE)

    async def release(self, reservation_id: str, days: list[date]) -> bool:
        """Give back the reservation ``reservation_id`` made on one of ``days``."""
        keys = [k for day in days for k in (reservations_key(day), reservation_data_key(day))]
        return int(await self._release(keys=keys, args=[reservation_id])) == 1

    async def check_batch(
        self, day: date, requests: Sequence[ReserveRequest]
    ) -> list[Reservation | ResponseError]:
        """Decide and reserve ``requests`` of ``day`` in one script call, in their order: for
        each, its reservation or the Redis error that failed it alone."""
        keys, args = _script_input(day, requests)
        reply = await self._script(keys=keys, args=args)
        if reply and reply[0] in ("rebuild", b"rebuild"):
            raise CountersLost
        return _reservations(reply, requests)

    async def check(self, *, day: date, request: ReserveRequest) -> Reservation:
        """One request alone: a batch of one."""
        (reservation,) = await self.check_batch(day, [request])
        if isinstance(reservation, ResponseError):
            raise reservation
        return reservation
