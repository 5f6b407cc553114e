"""Deliver the throttle's threshold alerts, and a resolved message when usage falls back.

One message per crossing (``budget_alerts`` holds one row per cap, scope, threshold and
day) and one when it resolves: after the day's reset, or when the cap was raised or
removed so that today's use is back under the threshold. Never a storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from costguard.common.counters import LiveCounters, global_key, tier_key, user_key
from costguard.common.pricing import NANO
from costguard.common.redis import RedisClient
from costguard.gateway import queries
from costguard.gateway.webhook import WebhookSender

log = logging.getLogger(__name__)

# An alert not delivered after this many attempts is given up on: the alerts route calls it
# failed (and one still under it pending), so both read this one figure.
GIVE_UP_ATTEMPTS = 10
_CLAIM = """
UPDATE budget_alerts SET delivery_attempts = delivery_attempts + 1
WHERE id IN (SELECT id FROM budget_alerts WHERE delivered_at IS NULL
             AND delivery_attempts < $1
             ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED)
RETURNING *
"""
_OPEN_CROSSINGS = """
SELECT a.* FROM budget_alerts a
WHERE a.kind = 'crossed' AND a.day >= $1::date - 2 AND NOT EXISTS (
    SELECT 1 FROM budget_alerts r WHERE r.kind = 'resolved' AND r.day = a.day
    AND r.apply_scope = a.apply_scope AND r.metric = a.metric AND r.threshold = a.threshold)
"""
_CAP_COLUMN = {
    "jobs": ("daily_jobs_cap", "jobs"),
    "cpu_ms": ("daily_cpu_ms_cap", "cpu_ms"),
    "llm_input_tokens": ("llm_input_tokens_cap", "tokens_in"),
    "llm_output_tokens": ("llm_output_tokens_cap", "tokens_out"),
    "cost_usd": ("daily_cost_usd_cap", "cost_nusd"),
}


def _describe(row: asyncpg.Record) -> tuple[str, dict[str, str]]:
    share = f"{Decimal(row['threshold']):.0%}"
    fields = {
        "scope": row["apply_scope"],
        "metric": row["metric"],
        "threshold": share,
        "used": f"{row['used']:f}",
        "cap": f"{row['cap']:f}",
        "day": row["day"].isoformat(),
    }
    if row["kind"] == "resolved":
        return (
            f"costguard: {row['apply_scope']} {row['metric']} is back under {share} of its cap",
            fields,
        )
    return (
        f"costguard: {row['apply_scope']} {row['metric']} passed {share} of its daily cap "
        f"({row['used']:f} of {row['cap']:f}) on {row['day']}",
        fields,
    )


class AlertDispatcher:
    def __init__(
        self,
        sender: WebhookSender,
        pool: asyncpg.Pool,
        redis: RedisClient,
        *,
        tz: ZoneInfo,
        interval_s: float,
    ) -> None:
        self._tz = tz
        self._sender = sender
        self._pool = pool
        self._counters = LiveCounters(redis)
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def _used_today(self, scope: str, metric: str, today: date) -> Decimal:
        if scope == "global":
            key = global_key(today)
        elif scope.startswith("user:"):
            key = user_key(today, scope.removeprefix("user:"))
        else:
            key = tier_key(today, scope)
        field = _CAP_COLUMN[metric][1]
        value = Decimal((await self._counters.read(key))[field])
        return value * NANO if field == "cost_nusd" else value

    async def resolve_once(self, today: date) -> int:
        """Record a resolution for crossings that no longer hold; how many."""
        resolved = 0
        for row in await self._pool.fetch(_OPEN_CROSSINGS, today):
            budget = await self._pool.fetchrow(queries.BUDGET_OF_SCOPE, row["apply_scope"])
            cap = budget[_CAP_COLUMN[row["metric"]][0]] if budget else None
            used = row["used"]
            if row["day"] == today:
                used = await self._used_today(row["apply_scope"], row["metric"], today)
                if cap is not None and used >= row["threshold"] * cap:
                    continue  # still over
            resolved += int(
                await self._pool.execute(
                    "INSERT INTO budget_alerts "
                    "(day, apply_scope, metric, threshold, kind, used, cap) "
                    "VALUES ($1, $2, $3, $4, 'resolved', $5, $6) "
                    "ON CONFLICT ON CONSTRAINT budget_alerts_once DO NOTHING",
                    row["day"], row["apply_scope"], row["metric"], row["threshold"], used,
                    cap if cap is not None else row["cap"],
                ) == "INSERT 0 1"
            )  # fmt: skip
        return resolved

    async def deliver_once(self) -> int:
        """Send undelivered alerts; how many were delivered."""
        delivered = 0
        for row in await self._pool.fetch(_CLAIM, GIVE_UP_ATTEMPTS):
            text, fields = _describe(row)
            result = await self._sender.send(row["kind"], text, fields, alert_id=row["id"])
            await self._pool.execute(
                "UPDATE budget_alerts SET delivered_at = CASE WHEN $2 THEN now() END, "
                "last_error = $3 WHERE id = $1",
                row["id"],
                result.delivered,
                result.error,
            )
            delivered += result.delivered
        return delivered

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.resolve_once(datetime.now(self._tz).date())
                await self.deliver_once()
            except (OSError, RedisError, asyncpg.PostgresError):
                log.warning("alert dispatch failed; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stopping.wait()

    def start(self) -> None:
        if self._sender.url:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
