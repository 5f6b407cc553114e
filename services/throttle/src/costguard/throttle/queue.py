"""The throttle's deferral queue: jobs that must wait, for apps without a queue of their own.

``defer`` stores a job with its tier and not-before time; ``lease`` hands due jobs to a worker
in weighted fair order across tiers and FIFO within a tier, hidden from other workers for a
visibility timeout; ``ack`` removes a job. A worker that dies loses nothing: once its lease
expires the job goes back to its tier, at its original position (README, "Budgets and the
throttle").

Every key of one queue carries the queue's name as a Redis Cluster hash tag::

    cgq:{<name>}:seq            INCR counter: enqueue order
    cgq:{<name>}:tiers          set of tiers that have queued (ready or delayed) jobs
    cgq:{<name>}:ready:<tier>   sorted set, member "<16-digit seq>:<job_id>", score not_before ms
    cgq:{<name>}:leased         sorted set, member job_id, score lease expiry ms
    cgq:{<name>}:credit         hash tier -> smooth weighted round-robin credit
    cgq:{<name>}:job:<job_id>   hash: the job's fields, payload as base64, lease state

so each operation is one atomic Lua script call. The lease script builds tier and job keys
from the prefix it is given (the set of tiers is only known inside the script); they share
the declared keys' slot, which is what Redis Cluster needs.

Equal scores in a sorted set order by member, so the zero-padded sequence keeps enqueue order
among jobs with the same not_before. The payload is stored base64-encoded because the shared
client decodes replies as UTF-8 text (``decode_responses=True``). Tiers missing from
``weights`` get weight 1. Timestamps come from Redis ``TIME`` so that every replica agrees,
unless a caller passes ``now_ms`` (tests do, to move time without sleeping).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from costguard.common.redis import RedisClient

MAX_LEASE_BATCH = 1000
# The fields a script returns for a job, in this order (the hash also holds the member and
# the leasing worker's id).
_JOB_FIELDS = (
    "job_id",
    "user_id",
    "tier",
    "domain",
    "job_type",
    "payload",
    "not_before_ms",
    "enqueued_at_ms",
    "deliveries",
    "lease_token",
    "lease_expires_at_ms",
)

# ARGV[1] of every script that needs a clock: a caller's time in ms, or '' for Redis TIME.
_CLOCK = f"""
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local JOB_FIELDS = {{{", ".join(f"'{field}'" for field in _JOB_FIELDS)}}}
"""

# KEYS: job hash, sequence, the tier's ready set, tiers set.
# ARGV: now, job_id, user_id, tier, domain, job_type, payload (base64), not_before ms.
# A job_id already queued is left as it is (idempotent retries) and its stored fields
# returned. not_before is raised to the enqueue time, so a job due "now" queues behind jobs
# that were due earlier instead of jumping ahead of them with a smaller score.
_DEFER = (
    _CLOCK
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = clock(ARGV[1])
  local not_before = math.max(tonumber(ARGV[8]), now)
  local member = string.format('%016d', redis.call('INCR', KEYS[2])) .. ':' .. ARGV[2]
  redis.call('HSET', KEYS[1], 'job_id', ARGV[2], 'user_id', ARGV[3], 'tier', ARGV[4],
    'domain', ARGV[5], 'job_type', ARGV[6], 'payload', ARGV[7],
    'not_before_ms', string.format('%d', not_before), 'enqueued_at_ms', string.format('%d', now),
    'deliveries', 0, 'member', member)
  redis.call('ZADD', KEYS[3], not_before, member)
  redis.call('SADD', KEYS[4], ARGV[4])
end
return redis.call('HMGET', KEYS[1], unpack(JOB_FIELDS))
"""
)

# KEYS: leased set, tiers set, credit hash.
# ARGV: now, key prefix, visibility timeout ms, worker id, weights JSON, then one fresh
# lease token per job wanted (Redis 6 seeds Lua's math.random identically on every call).
_LEASE = (
    _CLOCK
    + """
local now = clock(ARGV[1])
local prefix = ARGV[2]
local expires = now + tonumber(ARGV[3])
local weights = cjson.decode(ARGV[5])

-- 1. Leases that expired (their worker died or is too slow) go back to their tier with
--    their original score and member, so they keep their place in line.
for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local job = prefix .. ':job:' .. job_id
  local tier, member, not_before =
    unpack(redis.call('HMGET', job, 'tier', 'member', 'not_before_ms'))
  if tier then
    redis.call('ZADD', prefix .. ':ready:' .. tier, not_before, member)
    redis.call('SADD', KEYS[2], tier)
    redis.call('HDEL', job, 'lease_token', 'lease_expires_at_ms', 'worker_id')
  end
  redis.call('ZREM', KEYS[1], job_id)
end

-- The oldest due member of each tier that has one, tiers in name order (ties go to the first).
local function due_heads()
  local tiers = redis.call('SMEMBERS', KEYS[2])
  table.sort(tiers)
  local heads = {}
  for _, tier in ipairs(tiers) do
    local ready = prefix .. ':ready:' .. tier
    local head = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, 1)
    if head[1] then heads[#heads + 1] = {tier, head[1]} end
  end
  return heads
end

-- 2. Each pick is one step of smooth weighted round-robin (nginx's SWRR) over the tiers with
--    a due job: each gains its weight in credit, the richest is served and pays the total.
--    Tiers with nothing due keep their credit untouched. Credit lives in Redis, so replicas
--    share one rotation.
local leased = {}
for i = 6, #ARGV do
  local heads = due_heads()
  if #heads == 0 then break end
  local total, best, best_credit = 0, nil, nil
  for _, head in ipairs(heads) do
    local weight = weights[head[1]] or 1
    total = total + weight
    local credit = redis.call('HINCRBY', KEYS[3], head[1], weight)
    if best == nil or credit > best_credit then best, best_credit = head, credit end
  end
  redis.call('HINCRBY', KEYS[3], best[1], -total)

  local tier, member = best[1], best[2]
  local ready = prefix .. ':ready:' .. tier
  redis.call('ZREM', ready, member)
  if redis.call('EXISTS', ready) == 0 then redis.call('SREM', KEYS[2], tier) end
  local job_id = string.sub(member, 18)  -- after the 16-digit sequence and ':'
  local job = prefix .. ':job:' .. job_id
  redis.call('HINCRBY', job, 'deliveries', 1)
  redis.call('HSET', job, 'lease_token', ARGV[i], 'worker_id', ARGV[4],
    'lease_expires_at_ms', string.format('%d', expires))
  redis.call('ZADD', KEYS[1], expires, job_id)
  leased[#leased + 1] = redis.call('HMGET', job, unpack(JOB_FIELDS))
end
return leased
"""
)

# KEYS: job hash, leased set. ARGV: now, job_id, lease token.
# Only the live lease may ack: a wrong token, or a lease past its expiry (the job is due to
# go back, or already went back and may be leased again), leaves the job queued.
_ACK = (
    _CLOCK
    + """
local token, expires = unpack(redis.call('HMGET', KEYS[1], 'lease_token', 'lease_expires_at_ms'))
if not token or token ~= ARGV[3] or tonumber(expires) <= clock(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""
)

# KEYS: tiers set. ARGV: key prefix. Returns tier, count, tier, count, ...
_DEPTH = """
local depth = {}
for _, tier in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  depth[#depth + 1] = tier
  depth[#depth + 1] = redis.call('ZCARD', ARGV[1] .. ':ready:' .. tier)
end
return depth
"""


@dataclass(frozen=True)
class DeferredJob:
    """A job waiting in the queue. An empty ``job_id`` is replaced by a uuid4 on ``defer``."""

    job_id: str
    user_id: str
    tier: str
    domain: str
    job_type: str
    payload: bytes
    not_before_ms: int


@dataclass(frozen=True)
class Lease:
    """A job handed to a worker; ``deliveries`` counts leases so far, this one included."""

    job: DeferredJob
    lease_token: str
    deliveries: int
    enqueued_at_ms: int
    lease_expires_at_ms: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(row: Sequence[Any]) -> dict[str, str]:
    """A job hash's fields as text (the client may or may not decode replies)."""
    return {name: _text(value) for name, value in zip(_JOB_FIELDS, row, strict=True) if value}


def _job(fields: Mapping[str, str]) -> DeferredJob:
    return DeferredJob(
        job_id=fields["job_id"],
        user_id=fields.get("user_id", ""),
        tier=fields["tier"],
        domain=fields.get("domain", ""),
        job_type=fields.get("job_type", ""),
        payload=base64.b64decode(fields.get("payload", "")),
        not_before_ms=int(fields["not_before_ms"]),
    )


def _lease(fields: Mapping[str, str]) -> Lease:
    return Lease(
        job=_job(fields),
        lease_token=fields["lease_token"],
        deliveries=int(fields["deliveries"]),
        enqueued_at_ms=int(fields["enqueued_at_ms"]),
        lease_expires_at_ms=int(fields["lease_expires_at_ms"]),
    )


def _now_arg(now_ms: int | None) -> str:
    return "" if now_ms is None else str(now_ms)


class DeferralQueue:
    """One named deferral queue in Redis; any number of replicas may share it."""

    def __init__(
        self, redis: RedisClient, *, weights: Mapping[str, int], name: str = "default"
    ) -> None:
        if not name or "{" in name or "}" in name:
            raise ValueError(f"queue name must be non-empty and without braces: {name!r}")
        if any(weight < 1 for weight in weights.values()):
            raise ValueError(f"tier weights must be positive integers: {dict(weights)}")
        self._redis = redis
        self._weights = dict(weights)
        self._weights_json = json.dumps(self._weights)
        self._prefix = f"cgq:{{{name}}}"
        self._defer_script = redis.register_script(_DEFER)
        self._lease_script = redis.register_script(_LEASE)
        self._ack_script = redis.register_script(_ACK)
        self._depth_script = redis.register_script(_DEPTH)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def defer(self, job: DeferredJob, *, now_ms: int | None = None) -> DeferredJob:
        """Queue ``job`` and return it as stored.

        Deferring a job_id that is still queued or leased changes nothing and returns the
        stored job. ``not_before_ms`` is stored as at least the enqueue time.
        """
        if not job.tier:
            raise ValueError("a deferred job needs a tier")
        job_id = job.job_id or str(uuid.uuid4())
        row = await self._defer_script(
            keys=[
                self._key("job", job_id),
                self._key("seq"),
                self._key("ready", job.tier),
                self._key("tiers"),
            ],
            args=[
                _now_arg(now_ms),
                job_id,
                job.user_id,
                job.tier,
                job.domain,
                job.job_type,
                base64.b64encode(job.payload).decode("ascii"),
                job.not_before_ms,
            ],
        )
        return _job(_fields(row))

    async def lease(
        self,
        worker_id: str,
        *,
        max_jobs: int,
        visibility_timeout_ms: int,
        now_ms: int | None = None,
    ) -> list[Lease]:
        """Lease up to ``max_jobs`` due jobs, weighted fair across tiers, FIFO within one.

        Leases that expired are first returned to their tiers. A leased job is hidden from
        other workers until ``visibility_timeout_ms`` has passed or it is acked.
        """
        if not 1 <= max_jobs <= MAX_LEASE_BATCH:
            raise ValueError(f"max_jobs must be between 1 and {MAX_LEASE_BATCH}: {max_jobs}")
        if visibility_timeout_ms < 1:
            raise ValueError(f"visibility_timeout_ms must be positive: {visibility_timeout_ms}")
        tokens = [secrets.token_urlsafe(16) for _ in range(max_jobs)]
        rows = await self._lease_script(
            keys=[self._key("leased"), self._key("tiers"), self._key("credit")],
            args=[
                _now_arg(now_ms),
                self._prefix,
                visibility_timeout_ms,
                worker_id,
                self._weights_json,
                *tokens,
            ],
        )
        return [_lease(_fields(row)) for row in rows]

    async def ack(self, job_id: str, lease_token: str, *, now_ms: int | None = None) -> bool:
        """Remove a leased job; False if the token is not the job's live (unexpired) lease."""
        acked = await self._ack_script(
            keys=[self._key("job", job_id), self._key("leased")],
            args=[_now_arg(now_ms), job_id, lease_token],
        )
        return bool(acked)

    async def depth(self) -> dict[str, int]:
        """Ready and delayed (not leased) jobs per tier; configured tiers appear even at 0."""
        flat = await self._depth_script(keys=[self._key("tiers")], args=[self._prefix])
        depth = dict.fromkeys(self._weights, 0)
        for tier, count in zip(flat[::2], flat[1::2], strict=True):
            depth[_text(tier)] = int(count)
        return depth

    async def leased_count(self) -> int:
        """Jobs currently leased, including expired leases not yet returned."""
        return int(await self._redis.zcard(self._key("leased")))
