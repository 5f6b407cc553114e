"""Issue 5's rollup figures, from one run on this machine.

Seconds to roll up one day of 1,000,000 events (700,000 jobs, 300,000 LLM calls) over
10,000 users, and events per second, beside a bare ``SELECT user_id, count(*),
sum(cpu_ms) ... GROUP BY user_id`` over the same rows in the same run, and the ratio.

The rows are inserted straight into Postgres, without a price (as the seed's own code
would write them), so the first rollup also prices every one of them; the re-run adds up
the stored prices, which is what a day of events stored by telemetry (priced at ingest)
costs to roll up (``rollup_vs_scan``). Then 1,000 new events arrive and a near-live
refresh adds them (``incremental_vs_full``), beside a full rollup of the same day, which
must give the same cost.

The day's rows are in its own day partitions. Last, retention's two ways of removing a day
are timed (``partition_drop_vs_delete``): dropping that day's partitions whole, beside the
batched delete of another 1,000,000-event day that waits in the default partitions (the
rows retention deletes in batches, with no pause between them here).
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from bench.common import bench_stack, figure, measure_cpu, report
from costguard.common.days import day_bounds
from costguard.common.db import create_pool
from costguard.common.partitions import DayPartition, add_day_partitions, drop_partition
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.devstack import DevStack
from costguard.rollup.retention import prune_raw_events
from costguard.rollup.rollup import DateRollup, Pricing, rollup_costs_for_date

DAY = date(2026, 11, 20)
UNPARTITIONED_DAY = DAY - timedelta(days=1)  # in the default partitions
UTC_ZONE = ZoneInfo("UTC")
JOBS, LLM_CALLS, USERS = 700_000, 300_000, 10_000
NEW_EVENTS = 1_000

_FILL = """
INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, rows_read,
    rows_written, success, started_at, created_at, episode_id, podcast_id)
SELECT gen_random_uuid(), 'job', 'user-' || (i % $2), (ARRAY['free','pro','enterprise'])[1 + i % 3],
       'audio', i % 5000, i % 300, i % 20, true, $3::date + (i % 86400) * interval '1 second',
       $3::date + (i % 86400) * interval '1 second', 'ep-' || (i % 20000), 'pod-' || (i % 500)
FROM generate_series(1, $1) AS i;
"""
_FILL_LLM = """
INSERT INTO telemetry_llm_events (event_id, user_id, tier, llm_model, context_type, input_tokens,
    cached_input_tokens, output_tokens, created_at, episode_id, podcast_id)
SELECT gen_random_uuid(), 'user-' || (i % $2), (ARRAY['free','pro','enterprise'])[1 + i % 3],
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'house-model'])[1 + i % 3], 'insight',
       1000 + i % 4000, i % 500,
       100 + i % 900, $3::date + (i % 86400) * interval '1 second', 'ep-' || (i % 20000),
       'pod-' || (i % 500)
FROM generate_series(1, $1) AS i;
"""
_BARE = """
SELECT user_id, count(*), sum(cpu_ms) FROM (
    SELECT user_id, cpu_ms FROM telemetry_job_events
    WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
    UNION ALL
    SELECT user_id, 0 FROM telemetry_llm_events WHERE created_at >= $1 AND created_at < $2
) e GROUP BY user_id
"""


# New events as telemetry stores them: priced, with the day's sheet.
_NEW_JOBS = """
INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, rows_read,
    rows_written, success, started_at, created_at, episode_id, podcast_id, cost_usd,
    price_sheet_id)
SELECT gen_random_uuid(), 'job', 'user-' || (i * 7919 % $2), 'pro', 'audio', i % 5000, i % 300,
       i % 20, true, $3::date + interval '23 hours' + i * interval '1 second',
       $3::date + interval '23 hours' + i * interval '1 second', 'ep-new-' || i % 300,
       'pod-' || (i % 500), (i % 5000) * 0.0000001,
       (SELECT price_sheet_id FROM price_sheet_days WHERE date = $3)
FROM generate_series(1, $1) AS i;
"""


async def _timed_rollup(pool: asyncpg.Pool, pricing: Pricing, *, refresh: bool) -> DateRollup:
    return await rollup_costs_for_date(pool, DAY, tz=UTC_ZONE, pricing=pricing, refresh=refresh)


def _phases(rolled: DateRollup) -> list[tuple[str, str]]:
    """Where a rollup's time went, step by step."""
    return [(f"    {name}", f"{seconds:6.3f} s") for name, seconds in rolled.phases]


async def _vacuum(pool: asyncpg.Pool) -> None:
    for table in ("telemetry_job_events", "telemetry_llm_events"):
        await pool.execute(f"VACUUM ANALYZE {table}")


async def _drop_vs_delete(pool: asyncpg.Pool) -> tuple[float, float, int]:
    """Seconds to drop DAY's partitions, and to delete the unpartitioned day's rows in
    batches; the rows deleted. Both start from vacuumed tables, so that neither waits for
    autovacuum (which the rollups' million updates set off) to give way."""
    await _vacuum(pool)
    started = time.perf_counter()
    for table in ("telemetry_job_events", "telemetry_llm_events"):
        async with pool.acquire() as conn, conn.transaction():
            await drop_partition(conn, DayPartition(table, DAY))
    drop_s = time.perf_counter() - started
    await pool.execute(_FILL, JOBS, USERS, UNPARTITIONED_DAY)
    await pool.execute(_FILL_LLM, LLM_CALLS, USERS, UNPARTITIONED_DAY)
    # Retention deletes only a day rolled up and clean: say so, without rolling it up.
    await pool.execute("INSERT INTO cost_global_daily (date) VALUES ($1)", UNPARTITIONED_DAY)
    await _vacuum(pool)
    days_kept = (datetime.now(UTC_ZONE).date() - DAY).days
    started = time.perf_counter()
    pruned = await prune_raw_events(pool, retention_days=days_kept, tz=UTC_ZONE, pause_s=0)
    delete_s = time.perf_counter() - started
    assert pruned is not None
    return drop_s, delete_s, sum(pruned.deleted.values())


async def run(stack: DevStack) -> None:
    pool = await create_pool(stack.postgres.dsn, max_size=2)
    await add_day_partitions(pool, [DAY], tz=UTC_ZONE)
    await pool.execute(_FILL, JOBS, USERS, DAY)
    await pool.execute(_FILL_LLM, LLM_CALLS, USERS, DAY)
    await _vacuum(pool)
    bounds = day_bounds(DAY, UTC_ZONE)
    bare_runs = []
    for _ in range(2):
        started = time.perf_counter()
        groups = await pool.fetch(_BARE, *bounds)
        bare_runs.append(time.perf_counter() - started)
    bare_s = min(bare_runs)
    pricing = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    first = await _timed_rollup(pool, pricing, refresh=False)
    again, cpu = await measure_cpu(stack, None, _timed_rollup(pool, pricing, refresh=False))
    await pool.execute(_NEW_JOBS, NEW_EVENTS, USERS, DAY)
    refreshed = await _timed_rollup(pool, pricing, refresh=True)
    full = await _timed_rollup(pool, pricing, refresh=False)
    drop_s, delete_s, deleted = await _drop_vs_delete(pool)
    await pool.close()
    if not refreshed.incremental or refreshed.cost_usd != full.cost_usd:
        raise RuntimeError(f"the refresh ({refreshed}) does not equal the full rollup ({full})")
    events = JOBS + LLM_CALLS
    figure("rollup_vs_scan", again.seconds, "s", baseline=bare_s, goal="<= 2")
    figure("incremental_vs_full", refreshed.seconds, "s", baseline=full.seconds, goal="<= 0.05")
    figure("partition_drop_vs_delete", drop_s, "s", baseline=delete_s)
    report(
        f"rollup of one day: {events:,} events over {USERS:,} users",
        [
            ("bare GROUP BY user_id scan", f"{bare_s:6.2f} s  ({len(groups):,} users)"),
            (
                "rollup_costs_for_date, pricing every row",
                f"{first.seconds:6.2f} s  ({events / first.seconds:,.0f} events/s)",
            ),
            (
                "  again, from stored prices",
                f"{again.seconds:6.2f} s  ({events / again.seconds:,.0f} events/s)"
                f"  cost ${again.cost_usd}",
            ),
            ("  ratio re-run / bare scan", f"{again.seconds / bare_s:.2f}  (goal <= 2)"),
            (
                "  Postgres CPU of the re-run",
                f"{cpu.postgres:6.2f} s  ({events / cpu.postgres:,.0f} events per CPU-second)",
            ),
            *_phases(again),
            (
                f"refresh after {NEW_EVENTS:,} new events",
                f"{refreshed.seconds:6.3f} s  cost ${refreshed.cost_usd}",
            ),
            *_phases(refreshed),
            ("  full rollup of the same day", f"{full.seconds:6.3f} s  cost ${full.cost_usd}"),
            (
                "  ratio refresh / full rollup",
                f"{refreshed.seconds / full.seconds:.3f}  (goal <= 0.05)",
            ),
            (f"drop the day's partitions ({events + NEW_EVENTS:,} events)", f"{drop_s:6.3f} s"),
            (f"  batched delete of {deleted:,} events", f"{delete_s:6.3f} s"),
            ("  ratio drop / batched delete", f"{drop_s / delete_s:.4f}"),
        ],
    )


def main() -> None:
    with bench_stack() as stack:
        asyncio.run(run(stack))


if __name__ == "__main__":
    main()
