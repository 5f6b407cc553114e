"""Issue 6's gateway figures: p50/p99 of summary?days=30 and of the top users over 7, 30 and
92 days, over 100,000 users' daily aggregates (92 days of cost_user_daily rows, each user's
cost random per day), through the real ASGI app in this process.

Beside them: the full ranking in SQL (``queries.TOP_USERS``, what the route ran before the
gateway held the days), the first read after start (it loads the days), and a read right
after today's rows are rewritten, as the rollup's near-live re-roll does every minute.

Then issue 17's analytics reads over the same users and a month of everything they read
(``bench.analytics``): the breakdown by each dimension, the summary of a from .. to range, a
user's page, the decisions and the alerts, each beside its SQL alone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from functools import partial

import asyncpg
import httpx

from bench import analytics
from bench.common import bench_stack, figure, percentile, report
from costguard.common.db import create_pool
from costguard.devstack import DevStack
from costguard.gateway import queries
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig

USERS, DAYS, CALLS, SQL_CALLS = 100_000, 92, 100, 3
TOKEN = secrets.token_urlsafe(16)

# One day of every user, as the rollup writes a day (its rows together). The cost is random
# per user and day, skewed (a few users cost much more), to 8 places, as the rollup's sums of
# stored prices are.
_FILL_DAY = """
INSERT INTO cost_user_daily
    (user_id, date, tier, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd)
SELECT 'user-' || u, $2::date, (ARRAY['free','pro','enterprise'])[1 + (u + $3) % 3],
       u % 40, u % 9, (u % 5000) * 10, u % 20000, u % 3000,
       round((random() ^ 4 * 20)::numeric, 8)
FROM generate_series(1, $1) AS u
"""
_FILL_GLOBAL = """
INSERT INTO cost_global_daily
    (date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd, tier_breakdown_json)
SELECT date, sum(jobs), sum(ai_calls), sum(cpu_ms), sum(tokens_in), sum(tokens_out), sum(cost_usd),
       jsonb_build_object('free', jsonb_build_object('cost_usd', (sum(cost_usd) / 3)::text))
FROM cost_user_daily GROUP BY date
"""
# Today re-rolled: every user's row rewritten, the costs of those active since (2%) changed.
_REROLL_TODAY = """
UPDATE cost_user_daily SET cost_usd = cost_usd + CASE WHEN random() < 0.02 THEN 0.001 ELSE 0 END,
       updated_at = now()
WHERE date = $1
"""


async def _fill(dsn: str, today: date) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT setseed(0.42)")  # the same costs in every run
        for back in range(DAYS):
            await conn.execute(_FILL_DAY, USERS, today - timedelta(days=back), back)
        await conn.execute(_FILL_GLOBAL)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _row(name: str, samples: list[float]) -> tuple[str, str]:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return name, f"p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   ({len(samples)} calls)"


async def run(stack: DevStack) -> None:
    today = date.today()
    started = time.perf_counter()
    await _fill(stack.postgres.dsn, today)
    filled_s = time.perf_counter() - started
    # As the gateway's pool: the full ranking groups in memory.
    pool = await create_pool(stack.postgres.dsn, max_size=2, server_settings={"work_mem": "64MB"})
    env = {
        "DATABASE_URL": stack.postgres.dsn,
        "REDIS_URL": stack.redis.url,
        "COSTGUARD_ADMIN_TOKENS": f"bench:admin:{hash_token(TOKEN)}",
        "LOG_LEVEL": "WARNING",
    }
    app = create_app(GatewayConfig.from_env(env))
    last_92 = f"from={(today - timedelta(days=DAYS - 1)).isoformat()}&to={today.isoformat()}"
    paths = {
        "summary?days=30": ("/api/admin/cost/summary?days=30", "summary_30d_p99_ms"),
        "users?days=7": ("/api/admin/cost/users?days=7", "users_7d_p99_ms"),
        "users?days=30": ("/api/admin/cost/users?days=30", "users_30d_p99_ms"),
        f"users?{last_92}": (f"/api/admin/cost/users?{last_92}", "users_92d_p99_ms"),
    }
    rows = [("filled", f"{USERS:,} users x {DAYS} days in {filled_s:.0f} s")]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

            async def get(path: str) -> None:
                reply = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                if reply.status_code != 200:
                    raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")

            first = await _timed(lambda: get(paths[f"users?{last_92}"][0]), 1)
            rows.append(("first users read after start (loads the days)", f"{first[0]:8.0f} ms"))
            for name, (path, figure_name) in paths.items():
                samples = await _timed(partial(get, path), CALLS)
                rows.append(_row(name, samples))
                figure(figure_name, percentile(samples, 99), "ms", goal="<= 50")
            await pool.execute(_REROLL_TODAY, today)
            reread = await _timed(lambda: get(paths["users?days=30"][0]), 1)
            rows.append(("users?days=30 right after today is rewritten", f"{reread[0]:8.0f} ms"))
            for days in (7, 30, DAYS):
                first_day = today - timedelta(days=days - 1)
                ranking = partial(pool.fetch, queries.TOP_USERS, first_day, today, 20)
                samples = await _timed(ranking, SQL_CALLS)
                rows.append(_row(f"full SQL ranking, {days} days (before)", samples))
            # Filled after the figures above, so that they stay comparable with earlier runs
            # (over the daily aggregates alone).
            started = time.perf_counter()
            await analytics.fill(pool, today, USERS)
            took = time.perf_counter() - started
            rows.append(("filled for the analytics", f"{analytics.RANGE} days in {took:.0f} s"))
            rows += await analytics.measure(get, _timed, pool, today, CALLS)
    await pool.close()
    report(f"gateway over {USERS:,} users x {DAYS} days of aggregates, and 30 days of events", rows)


def main() -> None:
    with bench_stack() as stack:
        asyncio.run(run(stack))


if __name__ == "__main__":
    main()
