"""Rollups as recorded runs: what the RPCs, the CLI and the scheduler call."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.day_sheets import DaySheets
from costguard.common.money import exact_sum
from costguard.common.partitions import DayPartition, keep_day_partitions
from costguard.rollup import metrics
from costguard.rollup.retention import PastRetention, horizon, refuse_past_horizon
from costguard.rollup.rollup import DateRollup, Pricing, rollup_costs_for_date

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 400
ENTITY_TYPES = ("episode", "podcast")

_ENTITY_DATES = {
    # The local dates an entity has events on; each date is re-rolled whole.
    "episode": """
        SELECT DISTINCT (at AT TIME ZONE $2)::date AS day FROM (
            SELECT coalesce(started_at, created_at) AS at
            FROM telemetry_job_events WHERE episode_id = $1
            UNION ALL SELECT created_at FROM telemetry_llm_events WHERE episode_id = $1
            UNION ALL SELECT created_at FROM cost_events WHERE episode_id = $1) e
    """,
    "podcast": """
        SELECT DISTINCT (at AT TIME ZONE $2)::date AS day FROM (
            SELECT coalesce(started_at, created_at) AS at
            FROM telemetry_job_events WHERE podcast_id = $1
            UNION ALL SELECT created_at FROM telemetry_llm_events WHERE podcast_id = $1
            UNION ALL SELECT created_at FROM cost_events WHERE podcast_id = $1) e
    """,
}


class BadRange(ValueError):
    pass


def dates_between(first: date, last: date) -> list[date]:
    if last < first:
        raise BadRange("to_date is before from_date")
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        raise BadRange(f"a range holds at most {MAX_RANGE_DAYS} days, this one {days}")
    return [first + timedelta(days=i) for i in range(days)]


class Rollups:
    def __init__(
        self, pool: asyncpg.Pool, *, tz: ZoneInfo, pricing: Pricing, retention_days: int = 0
    ) -> None:
        self.pool = pool
        self.tz = tz
        self.pricing = pricing
        self.retention_days = retention_days
        self.sheets = DaySheets(seed=pricing.seed, aws=pricing.aws, tz=tz)

    async def keep_partitions(self) -> list[DayPartition]:
        """Make the raw tables' day partitions due now and ahead (a catalog lookup when
        they are there already); those made."""
        return await keep_day_partitions(self.pool, tz=self.tz, today=datetime.now(self.tz).date())

    async def run(
        self, trigger: str, days: list[date], *, reprice: bool = False, refresh: bool = False
    ) -> list[DateRollup]:
        """Roll up ``days`` in order as one recorded run; a failure is recorded and re-raised.

        ``refresh`` adds only the events stored since a day's last rollup, where it can
        (``rollup_costs_for_date``).

        A date before the retention horizon is refused (:class:`PastRetention`), before
        anything runs: its raw events may be gone (see ``retention``).
        """
        try:
            refuse_past_horizon(days, self.retention_days, self.tz)
        except PastRetention:
            metrics.RUNS.labels(trigger, "refused").inc()
            raise
        run_id = await self.pool.fetchval(
            "INSERT INTO rollup_runs (trigger, from_date, to_date) VALUES ($1, $2, $3) "
            "RETURNING id",
            trigger,
            min(days),
            max(days),
        )
        results: list[DateRollup] = []
        try:
            for day in days:
                results.append(
                    await rollup_costs_for_date(
                        self.pool,
                        day,
                        tz=self.tz,
                        pricing=self.pricing,
                        reprice=reprice,
                        sheets=self.sheets,
                        refresh=refresh,
                    )
                )
        except Exception as exc:
            await self.pool.execute(
                "UPDATE rollup_runs SET status = 'failed', finished_at = now(), error = $2 "
                "WHERE id = $1",
                run_id,
                f"{type(exc).__name__}: {exc}"[:2000],
            )
            log.exception("rollup failed", extra={"trigger": trigger, "run_id": run_id})
            metrics.RUNS.labels(trigger, "failed").inc()
            raise
        await self.pool.execute(
            "UPDATE rollup_runs SET status = 'succeeded', finished_at = now(), "
            "events = $2, cost_usd = $3 WHERE id = $1",
            run_id,
            sum(r.events for r in results),
            exact_sum(r.cost_usd for r in results),
        )
        metrics.RUNS.labels(trigger, "succeeded").inc()
        metrics.LAST_SUCCESS.labels(trigger).set_to_current_time()
        return results

    async def roll_dirty(self) -> list[DateRollup]:
        """Re-roll every date that telemetry marked dirty (late events, today's new events)."""
        days = [
            row["date"]
            for row in await self.pool.fetch("SELECT date FROM rollup_dirty_dates ORDER BY date")
        ]
        metrics.DIRTY_DATES.set(len(days))
        oldest = horizon(self.retention_days, self.tz)
        if oldest is not None and days and days[0] < oldest:
            # Events that arrived for a date past the horizon: it is not rolled up again
            # (retention), so its mark is dropped and retention deletes those events.
            stale = [day for day in days if day < oldest]
            await self.pool.execute(
                "DELETE FROM rollup_dirty_dates WHERE date = ANY($1::date[])", stale
            )
            log.warning(
                "late events for dates past the retention horizon are not rolled up",
                extra={"dates": [day.isoformat() for day in stale], "horizon": oldest.isoformat()},
            )
            days = days[len(stale) :]
        return await self.run("dirty", days, refresh=True) if days else []

    async def recalculate_entity(self, entity_type: str, entity_id: str) -> asyncpg.Record | None:
        """Seed two's admin recalculation: re-roll every date with the entity's events."""
        if entity_type not in ENTITY_TYPES:
            raise BadRange(f"entity_type must be one of {', '.join(ENTITY_TYPES)}")
        rows = await self.pool.fetch(_ENTITY_DATES[entity_type], entity_id, self.tz.key)
        oldest = horizon(self.retention_days, self.tz)
        # Dates past the retention horizon keep their aggregates; the entity's total is
        # refreshed from its daily rows by the dates re-rolled here.
        days = sorted(row["day"] for row in rows if oldest is None or row["day"] >= oldest)
        if days:
            await self.run("entity", days)
        return await self.pool.fetchrow(
            "SELECT * FROM entity_costs WHERE entity_type = $1 AND entity_id = $2",
            entity_type,
            entity_id,
        )

    async def last_runs(self, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM rollup_runs ORDER BY id DESC LIMIT $1", limit)

    async def last_success(self, trigger: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM rollup_runs WHERE trigger = $1 AND status = 'succeeded' "
            "ORDER BY id DESC LIMIT 1",
            trigger,
        )
