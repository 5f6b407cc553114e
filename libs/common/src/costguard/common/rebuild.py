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
import logging
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import USAGE_FIELDS, LiveCounters, global_key, tier_key, user_key
from costguard.common.days import day_bounds, today
from costguard.common.db import Connection
from costguard.common.pricing import SeedPrices

log = logging.getLogger(__name__)

_LOCK_KEY = 7_310_000_002

# The same figures, through the same cost functions, as ingest.
_TOTALS = """
WITH usage AS (
    SELECT tier, user_id, 1 AS jobs, coalesce(cpu_ms, 0) AS cpu_ms, 0 AS tokens_in,
           0 AS tokens_out, 0 AS ai_calls,
           costguard_job_cost_nusd(coalesce(cpu_ms, 0),
                                   coalesce(rows_read, 0) + coalesce(rows_written, 0), $3, $4)
               AS cost_nusd
    FROM telemetry_job_events
    WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
    UNION ALL
    SELECT tier, user_id, 0, 0, input_tokens, output_tokens, 1,
           costguard_llm_cost_nusd(input_tokens, output_tokens, coalesce(cache_hit, false), $5, $6)
    FROM telemetry_llm_events
    WHERE created_at >= $1 AND created_at < $2
)
SELECT GROUPING(tier) AS no_tier, GROUPING(user_id) AS no_user, tier, user_id,
       coalesce(sum(jobs), 0)::bigint AS jobs, coalesce(sum(cpu_ms), 0)::bigint AS cpu_ms,
       coalesce(sum(tokens_in), 0)::bigint AS tokens_in,
       coalesce(sum(tokens_out), 0)::bigint AS tokens_out,
       coalesce(sum(ai_calls), 0)::bigint AS ai_calls,
       coalesce(sum(cost_nusd), 0)::bigint AS cost_nusd
FROM usage
GROUP BY GROUPING SETS ((), (tier), (user_id))
"""


async def totals_for_day(
    conn: Connection,
    day: date,
    tz: ZoneInfo,
    prices: SeedPrices,
) -> dict[str, dict[str, int]]:
    start, end = day_bounds(day, tz)
    rows = await conn.fetch(
        _TOTALS,
        start,
        end,
        prices.cpu_ms,
        prices.db_row_1k,
        prices.llm_input_token,
        prices.llm_output_token,
    )
    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        if row["no_tier"] and row["no_user"]:
            key = global_key(day)
        elif not row["no_tier"]:
            key = tier_key(day, row["tier"])
        else:
            key = user_key(day, row["user_id"])
        totals[key] = {name: int(row[name]) for name in USAGE_FIELDS}
    return dict(totals)


class CounterReconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        counters: LiveCounters,
        *,
        timezone: ZoneInfo,
        prices: SeedPrices,
        interval_s: float,
    ) -> None:
        self._pool = pool
        self._counters = counters
        self._tz = timezone
        self._prices = prices
        self._interval_s = interval_s
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
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
                "LOCK TABLE telemetry_job_events, telemetry_llm_events IN SHARE MODE"
            )
            totals = await totals_for_day(conn, day, self._tz, self._prices)
            await self._counters.replace_day(day, totals)
        log.info("live counters rebuilt", extra={"day": day.isoformat(), "keys": len(totals)})
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

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        # A flag as well as cancel(): a cancellation that lands inside asyncpg while a
        # rebuild runs can be swallowed there, and the loop must still end.
        self._stopping = True
        self._due.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
