"""Rebuild today's live counters from Postgres, the source of truth.

Telemetry runs it at start-up, every ``COUNTER_RECONCILE_SECONDS`` (default 60) and
soon after a failed counter update (Redis down); the throttle runs it before it decides
on counters that Redis lost (after a restart or ``FLUSHDB``). Inside one transaction it
takes a SHARE lock on the event tables, which waits for in-flight ingest transactions
(they bump the counters before they commit) and holds new ones back while the figures
are read and written, so the rebuilt counters equal Postgres exactly. Only one replica
rebuilds at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import (
    UNATTRIBUTED,
    USAGE_FIELDS,
    LiveCounters,
    global_key,
    tier_key,
    user_key,
)
from costguard.common.day_sheets import aws_prices_of_day
from costguard.common.days import day_bounds, today
from costguard.common.db import Connection
from costguard.common.event_ranges import MAXIMUM, SUMMED
from costguard.common.pricing import AwsPrices
from costguard.common.storage import HELD_DURING_DAY_SQL

log = logging.getLogger(__name__)

_LOCK_KEY = 7_310_000_002
# NOTIFY channel: a day's events were priced again (payload: the date). Telemetry's
# reconciler rebuilds today's counters from the new prices when it hears it.
REPRICED = "costguard_repriced"

# The same figures as ingest adds: each event's stored price in whole nano-dollars (rounded
# per event; a row stored without a price, which only the rollup prices, counts 0 until it
# has one), and each user counted under the tier of their latest event of the day (ties:
# the greater tier name), cost events without a user as unattributed; plus the S3 storage
# held during the day, per object (``costguard.common.storage``), which never decides a
# tier. $3: the unattributed tier's name; $4: the day's storage price per byte-second.
# Counts outside their ranges ($5 to $7, costguard.common.event_ranges) count at the nearest
# end, as the rollup counts them; a cost past what a bigint of nano-dollars holds reads as
# the most it holds, rather than failing every rebuild of the day.
_TOTALS_TEMPLATE = """
WITH ev AS (
    SELECT user_id, tier, costguard_tier_vote(coalesce(started_at, created_at)) AS vote,
           1 AS jobs, least(greatest(coalesce(cpu_ms, 0), 0), $5) AS cpu_ms, 0 AS tokens_in,
           0 AS tokens_out, 0 AS ai_calls, coalesce(round(cost_usd * 1000000000), 0) AS cost_nusd
    FROM telemetry_job_events
    WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
    UNION ALL
    SELECT user_id, tier, costguard_tier_vote(created_at), 0, 0,
           least(greatest(input_tokens, 0), $6), least(greatest(output_tokens, 0), $7),
           1, coalesce(round(cost_usd * 1000000000), 0)
    FROM telemetry_llm_events
    WHERE created_at >= $1 AND created_at < $2
    UNION ALL
    SELECT user_id, CASE WHEN user_id IS NULL THEN $3 ELSE coalesce(tier, $3) END,
           CASE WHEN tier IS NULL THEN -2 ELSE costguard_tier_vote(created_at) END,
           0, 0, 0, 0, 0, coalesce(round(cost_usd * 1000000000), 0)
    FROM cost_events
    WHERE created_at >= $1 AND created_at < $2
    UNION ALL
    SELECT h.user_id, CASE WHEN h.user_id IS NULL THEN $3 ELSE coalesce(h.tier, $3) END,
           CASE WHEN h.user_id IS NOT NULL AND h.tier IS NOT NULL THEN -1 ELSE -2 END,
           0, 0, 0, 0, 0, round(h.cost * 1000000000)
    FROM (HELD_DURING_DAY) h
),
scoped AS (
    SELECT user_id, (array_agg(tier ORDER BY vote DESC, tier COLLATE "C" DESC))[1] AS tier,
           max(vote) AS vote, sum(jobs) AS jobs, sum(cpu_ms) AS cpu_ms,
           sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
           sum(ai_calls) AS ai_calls, sum(cost_nusd) AS cost_nusd
    FROM ev WHERE user_id IS NOT NULL GROUP BY user_id
    UNION ALL
    SELECT NULL, tier, NULL, jobs, cpu_ms, tokens_in, tokens_out, ai_calls, cost_nusd
    FROM ev WHERE user_id IS NULL
)
SELECT GROUPING(tier) AS no_tier, GROUPING(user_id) AS no_user, user_id,
       CASE WHEN GROUPING(user_id) = 0 THEN max(tier) ELSE tier END AS tier, max(vote) AS vote,
       coalesce(sum(jobs), 0)::bigint AS jobs, coalesce(sum(cpu_ms), 0)::bigint AS cpu_ms,
       coalesce(sum(tokens_in), 0)::bigint AS tokens_in,
       coalesce(sum(tokens_out), 0)::bigint AS tokens_out,
       coalesce(sum(ai_calls), 0)::bigint AS ai_calls,
       least(coalesce(sum(cost_nusd), 0), 9223372036854775807)::bigint AS cost_nusd
FROM scoped
GROUP BY GROUPING SETS ((), (tier), (user_id))
"""
_TOTALS = _TOTALS_TEMPLATE.replace(
    "HELD_DURING_DAY", HELD_DURING_DAY_SQL.strip().replace("$3", "$4")
)


@dataclass(frozen=True)
class DayTotals:
    """A day's counters as Postgres has them: figures by counter key, each user's tier."""

    figures: dict[str, dict[str, int]]
    user_tiers: dict[str, tuple[str, int]]


async def totals_for_day(conn: Connection, day: date, tz: ZoneInfo, aws: AwsPrices) -> DayTotals:
    """The day's counters from Postgres; ``aws``: the prices when the day has no sheet yet."""
    start, end = day_bounds(day, tz)
    storage = (await aws_prices_of_day(conn, day, aws)).s3_storage_per_byte_second
    figures: dict[str, dict[str, int]] = {}
    user_tiers: dict[str, tuple[str, int]] = {}
    ranges = (MAXIMUM[name] for name in SUMMED)
    for row in await conn.fetch(_TOTALS, start, end, UNATTRIBUTED, storage, *ranges):
        if row["no_tier"] and row["no_user"]:
            key = global_key(day)
        elif not row["no_tier"]:
            key = tier_key(day, row["tier"])
        elif row["user_id"] is None:
            continue  # the unattributed events, grouped by (no) user: counted above
        else:
            key = user_key(day, row["user_id"])
            user_tiers[key] = (row["tier"], int(row["vote"]))
        figures[key] = {name: int(row[name]) for name in USAGE_FIELDS}
    return DayTotals(figures, user_tiers)


class CounterReconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        counters: LiveCounters,
        *,
        timezone: ZoneInfo,
        aws: AwsPrices,
        interval_s: float,
    ) -> None:
        self._pool = pool
        self._counters = counters
        self._tz = timezone
        self._aws = aws
        self._interval_s = interval_s
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.listening = asyncio.Event()  # set once reprices are heard
        self.passes = 0
        self._passed = asyncio.Condition()
        self._stopping = False

    def request(self) -> None:
        """Ask for a rebuild soon (after a failed counter update)."""
        self._due.set()

    async def rebuild_today(self, *, wait: bool = False) -> bool:
        """Rebuild today's counters. When another replica is rebuilding, return False at
        once, or with ``wait`` wait for it and rebuild again (the caller needs fresh
        counters now)."""
        day = today(self._tz)
        async with self._pool.acquire() as conn, conn.transaction():
            if wait:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
                return False
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            await conn.execute(
                "LOCK TABLE telemetry_job_events, telemetry_llm_events, cost_events, s3_objects "
                "IN SHARE MODE"
            )
            totals = await totals_for_day(conn, day, self._tz, self._aws)
            await self._counters.replace_day(day, totals.figures, totals.user_tiers)
        log.info(
            "live counters rebuilt", extra={"day": day.isoformat(), "keys": len(totals.figures)}
        )
        return True

    async def wait_for_passes(self, count: int) -> None:
        """Wait until the background loop has completed ``count`` rebuilds in all."""
        async with self._passed:
            await self._passed.wait_for(lambda: self.passes >= count)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await self.rebuild_today():
                    async with self._passed:
                        self.passes += 1
                        self._passed.notify_all()
            except (RedisError, OSError, asyncpg.PostgresError):
                log.warning("counter rebuild failed; retrying", exc_info=True)
                self._due.set()
            if self._stopping:
                break
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._due.wait()
                if not self._stopping:
                    # Redis just failed: give it a moment rather than spinning.
                    await asyncio.sleep(min(1.0, self._interval_s))
            except TimeoutError:
                pass
            self._due.clear()

    def _repriced(self, *args: object) -> None:
        self._due.set()

    async def _listen(self) -> None:
        """Rebuild soon after a reprice anywhere: LISTEN on :data:`REPRICED`."""
        while not self._stopping:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(REPRICED, self._repriced)
                    self.listening.set()
                    while not self._stopping and not conn.is_closed():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(5.0):
                                await self._stopped.wait()
                    if not conn.is_closed():
                        await conn.remove_listener(REPRICED, self._repriced)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.listening.clear()
                log.warning("reprice listener lost its connection; reconnecting", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._stopped.wait()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._listener = loop.create_task(self._listen())

    async def stop(self) -> None:
        # A flag as well as cancel(): a cancellation that lands inside asyncpg while a
        # rebuild runs can be swallowed there, and the loop must still end.
        self._stopping = True
        self._due.set()
        self._stopped.set()
        if self._listener is not None:
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
